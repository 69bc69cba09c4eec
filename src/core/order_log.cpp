// A delivery is classified by one lookup in its stream's ranges of seen versions: seen before
// means redelivery; otherwise it must be above the stream's highest version. Ranges stay one
// per stream for gap-free logs because each new version extends the last range.
#include "core/order_log.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/json_text.hpp"

namespace esctl {
namespace {

constexpr const char* kLineShape = "each line must be a JSON object with a string \"stream\" and an integer \"version\"";

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

std::optional<std::int64_t> integer(std::string_view raw) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), v);
  if (ec != std::errc() || p != raw.data() + raw.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<LogEntry> parse_log_line(std::string_view line, std::int64_t line_no) {
  if (blank(line)) return std::nullopt;
  LogEntry e;
  bool have_stream = false, have_version = false;
  std::string problem;
  auto err = json::for_each_member(line, [&](std::string_view key, std::string_view raw) {
    if (key == "stream") {
      auto s = raw.empty() || raw[0] != '"' ? std::nullopt : json::decode_string(raw);
      if (!s) {
        if (problem.empty()) problem = "\"stream\" must be a string";
        return;
      }
      e.stream = std::move(*s);
      have_stream = true;
    } else if (key == "version") {
      auto v = integer(raw);
      if (!v || *v < 0) {
        if (problem.empty()) problem = fmt::format("\"version\" must be a non-negative integer, not {}", raw.substr(0, 40));
        return;
      }
      e.version = *v;
      have_version = true;
    } else if (key == "position") {
      e.position = integer(raw);  // informational only: anything else is ignored
    }
  });
  if (err)
    throw Error(Errc::invalid_input,
                fmt::format("line {}: not a JSON object: {} at byte {}; {}", line_no, err->message, err->offset, kLineShape));
  if (!problem.empty()) throw Error(Errc::invalid_input, fmt::format("line {}: {}", line_no, problem));
  if (!have_stream || !have_version)
    throw Error(Errc::invalid_input,
                fmt::format("line {}: missing \"{}\"; {}", line_no, have_stream ? "version" : "stream", kLineShape));
  return e;
}

bool OrderLog::contains(const StreamState& s, std::int64_t v) {
  // First range whose upper end is >= v; v is seen if that range starts at or below it.
  auto it = std::lower_bound(s.seen.begin(), s.seen.end(), v,
                             [](const std::pair<std::int64_t, std::int64_t>& r, std::int64_t x) { return r.second < x; });
  return it != s.seen.end() && it->first <= v;
}

void OrderLog::insert(StreamState& s, std::int64_t v) {
  auto& r = s.seen;
  if (!r.empty() && r.back().second < v) {  // the common case: at the end
    if (r.back().second + 1 == v) r.back().second = v;
    else r.emplace_back(v, v);
    return;
  }
  auto it = std::lower_bound(r.begin(), r.end(), v,
                             [](const std::pair<std::int64_t, std::int64_t>& x, std::int64_t y) { return x.second < y; });
  // `it` is the first range above v (v is not in any range); join its neighbours where they touch.
  bool join_next = it != r.end() && it->first == v + 1;
  bool join_prev = it != r.begin() && std::prev(it)->second + 1 == v;
  if (join_prev && join_next) {
    std::prev(it)->second = it->second;
    r.erase(it);
  } else if (join_prev) {
    std::prev(it)->second = v;
  } else if (join_next) {
    it->first = v;
  } else {
    r.insert(it, {v, v});
  }
}

bool OrderLog::seen(const std::string& stream, std::int64_t version) const {
  auto it = streams_.find(stream);
  return it != streams_.end() && contains(it->second, version);
}

std::optional<Violation> OrderLog::add(const LogEntry& e, std::int64_t line_no) {
  ++counts_.lines;
  auto [it, fresh] = streams_.try_emplace(e.stream);
  if (fresh) ++counts_.streams;
  StreamState& s = it->second;
  if (contains(s, e.version)) {
    ++counts_.redeliveries;
    return std::nullopt;
  }
  ++counts_.first_deliveries;
  std::optional<Violation> found;
  if (s.high >= 0 && e.version < s.high) {
    found = Violation{"delivery_order", e.stream, e.version, e.position, line_no,
                      fmt::format("first delivery of version {} came after version {} (line {}); "
                                  "per-stream order requires increasing versions",
                                  e.version, s.high, s.high_line)};
  } else if (no_gaps_ && s.high >= 0 && e.version > s.high + 1) {
    std::string missing = e.version == s.high + 2 ? fmt::format("version {} was", s.high + 1)
                                                  : fmt::format("versions {}..{} were", s.high + 1, e.version - 1);
    found = Violation{"delivery_gap", e.stream, e.version, e.position, line_no,
                      fmt::format("{} never delivered: version {} (line {}) was followed by version {}", missing,
                                  s.high, s.high_line, e.version)};
  }
  insert(s, e.version);
  if (e.version > s.high) {
    s.high = e.version;
    s.high_line = line_no;
  }
  return found;
}

}  // namespace esctl
