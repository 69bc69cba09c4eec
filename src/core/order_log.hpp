// The checker behind `esctl verify --log`: given what a projector saw (stream, version per
// delivery, in the order it saw them), decides whether per-stream order held under
// at-least-once delivery. Pure logic: no files, no store, no output.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/violation.hpp"

namespace esctl {

/// One delivery read from a log line.
struct LogEntry {
  std::string stream;
  std::int64_t version = 0;
  std::optional<std::int64_t> position;  ///< the line's "position", if it has an integer one
};

/// Parses one NDJSON log line: a JSON object with a string "stream" and a non-negative integer
/// "version" (an optional integer "position" is kept; other members are ignored). Returns
/// nullopt for a blank line. Throws Error(invalid_input) "line N: ..." for anything else.
std::optional<LogEntry> parse_log_line(std::string_view line, std::int64_t line_no);

struct LogCounts {
  std::int64_t lines = 0;            ///< deliveries read (blank lines excluded)
  std::int64_t streams = 0;          ///< distinct streams
  std::int64_t first_deliveries = 0; ///< deliveries of a version not seen before
  std::int64_t redeliveries = 0;     ///< deliveries of a version already seen
};

/// Per-stream delivery order checker.
///
/// A delivery of (stream, version) is a *redelivery* if that version of that stream was
/// delivered before: counted, never a violation (at-least-once: a crashed or failed batch is
/// sent again, possibly after later events of other streams, and `queue reset` replays).
/// Otherwise it is a *first delivery*, and it must have a higher version than every earlier
/// first delivery of the stream ("delivery_order" otherwise). With `no_gaps`, it must also be
/// exactly one above the highest version delivered so far ("delivery_gap" otherwise); the
/// first delivery of a stream may have any version (a log may start mid-stream).
///
/// Memory: per stream, the set of versions seen as ranges: one range per stream when
/// deliveries have no gaps, one per gap otherwise.
class OrderLog {
 public:
  explicit OrderLog(bool no_gaps) : no_gaps_(no_gaps) {}

  /// Records the delivery on log line `line_no`; returns the violation it shows, if any.
  std::optional<Violation> add(const LogEntry& e, std::int64_t line_no);
  const LogCounts& counts() const { return counts_; }
  /// Whether the log delivered `version` of `stream` (at least once).
  bool seen(const std::string& stream, std::int64_t version) const;

 private:
  struct StreamState {
    std::int64_t high = -1;       ///< highest version delivered
    std::int64_t high_line = 0;   ///< the line that first delivered it
    std::vector<std::pair<std::int64_t, std::int64_t>> seen;  ///< sorted disjoint [lo, hi] ranges
  };
  static bool contains(const StreamState& s, std::int64_t v);
  static void insert(StreamState& s, std::int64_t v);

  bool no_gaps_;
  LogCounts counts_;
  std::unordered_map<std::string, StreamState> streams_;
};

}  // namespace esctl
