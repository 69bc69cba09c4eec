// A one-line progress display on stderr for long work (import, drain, rebuild, verify): a bar
// and an ETA when the total is known, else a counter, with the item rate. Draws only when enabled (the
// caller passes Context::progress: stderr is a terminal and not --quiet), never on stdout.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace esctl {

class Progress {
 public:
  /// `label` starts the line ("import"), `unit` names the counted items ("events"). `total` is
  /// the amount of work in whatever unit the caller reports it (bytes read, events), or 0 when
  /// unknown (no bar, no percentage). Nothing is drawn unless `enabled`.
  Progress(bool enabled, std::string label, std::string unit, std::int64_t total = 0, int fd = 2);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void set_total(std::int64_t total) { total_ = total; }
  /// Reports `work` units of `total` done and `items` items handled so far. Cheap to call per
  /// item: redraws at most ten times a second.
  void update(std::int64_t work, std::int64_t items);
  /// For work counted in items.
  void update(std::int64_t items) { update(items, items); }
  /// Erases the line, so a summary can follow. Called by the destructor too; idempotent.
  void finish();
  /// Writes `bytes` to `fd` (output of a child process, say) without mixing it into the line:
  /// the line is erased first and drawn again after, once the output ends a line. Safe to call
  /// from any thread, also while another calls update(). Writes the bytes even when disabled.
  void write_through(int fd, std::string_view bytes);

  bool enabled() const { return enabled_; }

 private:
  void draw(std::int64_t now_us);

  std::mutex m_;  // update() and write_through() may come from different threads
  bool line_open_ = false;  // the last bytes written through did not end a line: do not draw over it
  bool enabled_;
  int fd_;
  std::string label_, unit_;
  std::int64_t total_ = 0, work_ = 0, items_ = 0;
  std::int64_t start_us_ = 0, last_draw_us_ = 0;
  bool drawn_ = false;
};

/// The line Progress draws, without escape codes: for tests and for callers that log instead.
/// E.g. "import [#########-----------]  45%  450000 events  230000/s  eta 2s" (the ETA once
/// some work is done and half a second has passed).
std::string progress_line(std::string_view label, std::string_view unit, std::int64_t work, std::int64_t total,
                          std::int64_t items, double seconds, int width = 20);

}  // namespace esctl
