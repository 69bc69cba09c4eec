// Progress drawing: "\r" + line + erase-to-end, rewritten in place; throttled by a monotonic
// clock so that per-item update() calls cost a clock read and a compare.
#include "render/progress.hpp"

#include <time.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>

namespace esctl {
namespace {

std::int64_t clock_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n <= 0) return;  // progress is best effort: a failing terminal must not stop the work
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

constexpr std::int64_t kRedrawUs = 100000;

/// Time before the first draw: work done quicker than this never flickers a line.
/// ESCTL_PROGRESS_DELAY (milliseconds), like git's GIT_PROGRESS_DELAY.
std::int64_t first_draw_delay_us() {
  const char* env = std::getenv("ESCTL_PROGRESS_DELAY");
  if (!env || !*env) return kRedrawUs;
  char* end = nullptr;
  long long ms = std::strtoll(env, &end, 10);
  if (*end != '\0' || ms < 0 || ms > 3600000) return kRedrawUs;
  return ms * 1000;
}

}  // namespace

std::string progress_line(std::string_view label, std::string_view unit, std::int64_t work, std::int64_t total,
                          std::int64_t items, double seconds, int width) {
  std::string line(label);
  if (total > 0) {
    double f = work <= 0 ? 0.0 : work >= total ? 1.0 : static_cast<double>(work) / static_cast<double>(total);
    int full = static_cast<int>(f * width);
    line += " [";
    line.append(static_cast<std::size_t>(full), '#');
    line.append(static_cast<std::size_t>(width - full), '-');
    line += fmt::format("] {:3d}%", static_cast<int>(f * 100));
  }
  // "1 event", not "1 events": the unit is given in the plural.
  line += fmt::format("  {} {}", items, items == 1 && unit.ends_with('s') ? unit.substr(0, unit.size() - 1) : unit);
  if (seconds > 0.05) line += fmt::format("  {:.0f}/s", static_cast<double>(items) / seconds);
  if (total > 0 && work > 0 && work < total && seconds >= 0.5) {
    auto left = static_cast<std::int64_t>(seconds * static_cast<double>(total - work) / static_cast<double>(work) + 0.5);
    if (left < 60) line += fmt::format("  eta {}s", left);
    else if (left < 3600) line += fmt::format("  eta {}m{:02}s", left / 60, left % 60);
    else line += fmt::format("  eta {}h{:02}m", left / 3600, left / 60 % 60);
  }
  return line;
}

Progress::Progress(bool enabled, std::string label, std::string unit, std::int64_t total, int fd)
    : enabled_(enabled), fd_(fd), label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  if (enabled_) {
    start_us_ = clock_us();
    last_draw_us_ = start_us_ - kRedrawUs + first_draw_delay_us();  // update() draws once now - last >= kRedrawUs
  }
}

Progress::~Progress() { finish(); }

void Progress::update(std::int64_t work, std::int64_t items) {
  if (!enabled_) return;
  std::lock_guard lock(m_);
  work_ = work;
  items_ = items;
  std::int64_t now = clock_us();
  if (now - last_draw_us_ < kRedrawUs || line_open_) return;
  last_draw_us_ = now;
  draw(now);
}

void Progress::write_through(int fd, std::string_view bytes) {
  if (bytes.empty()) return;
  if (!enabled_) {
    write_all(fd, bytes);
    return;
  }
  std::lock_guard lock(m_);
  const bool was_drawn = drawn_;
  if (drawn_) {
    write_all(fd_, "\r\x1b[K");
    drawn_ = false;
  }
  write_all(fd, bytes);
  line_open_ = bytes.back() != '\n';
  if (was_drawn && !line_open_) draw(clock_us());
}

void Progress::draw(std::int64_t now_us) {
  std::string s = "\r";
  s += progress_line(label_, unit_, work_, total_, items_, static_cast<double>(now_us - start_us_) / 1e6);
  s += "\x1b[K";
  write_all(fd_, s);
  drawn_ = true;
}

void Progress::finish() {
  if (!enabled_) return;
  std::lock_guard lock(m_);
  if (!drawn_) return;
  write_all(fd_, "\r\x1b[K");
  drawn_ = false;
}

}  // namespace esctl
