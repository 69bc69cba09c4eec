// The logical checks of `esctl verify`, written once for every backend: fed the rows a backend's
// verify reads in its one snapshot (stream rows, the events in position order, the rows of the
// streams' last versions, queue rows), they find what breaks the store's rules and word each
// finding the same way on every backend. No SQL here: each backend reads its own tables, and
// checks its storage-level objects (integrity, indexes, triggers, prev links) itself. The
// algorithm is at the top of verify_checks.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/filter.hpp"

namespace esctl {

/// One finding as the checks word it. `stream_id` is named by the backend (from its streams
/// table), which turns the finding into a Violation.
using FindingFn = std::function<void(const char* kind, std::optional<std::int64_t> stream_id,
                                     std::optional<std::int64_t> version, std::optional<std::int64_t> position,
                                     std::string detail)>;

/// What an event did to its stream's version sequence (LogicalChecks::event).
struct EventStep {
  enum Kind {
    in_order,  ///< the next version of its stream
    ahead,     ///< a higher version than the next: the versions between are missing so far
    late,      ///< a version missing so far, arriving after a higher one (version_order)
    repeat,    ///< a version seen before (version_duplicate)
    invalid,   ///< a negative version (version_invalid)
  } kind = in_order;
  /// For in_order: where version - 1 is (0 if version is 0), for a backend's prev-link check.
  std::int64_t previous_position = 0;
  /// True if the event became its stream's highest version (in_order, ahead).
  bool advanced() const { return kind == in_order || kind == ahead; }
};

/// The per-stream and store-wide rules over the rows of one snapshot. Memory: one small state
/// per stream, plus holes only where a stream is damaged (capped).
class LogicalChecks {
 public:
  explicit LogicalChecks(FindingFn report);
  ~LogicalChecks();
  LogicalChecks(const LogicalChecks&) = delete;

  // ---- stream rows, before the event scan ----
  /// Sizes the per-stream table for `count` stream rows with ids up to `max_id` (dense in
  /// practice; sparse ids fall back to a map).
  void expect_streams(std::int64_t count, std::int64_t max_id);
  /// The streams table has a row for `id`: its events are not stream_missing.
  void stream_row(std::int64_t id);
  /// A stream row's stored category must be its name's (stream_category).
  void stream_category(std::int64_t id, std::string_view name, std::string_view category);

  // ---- the event scan, in position order ----
  /// The store claims recorded_at is non-decreasing over positions 1..ordered_through, whose
  /// largest value is `max_recorded_at` (what --since/--until searches rely on).
  void claim_time_order(std::int64_t ordered_through, std::int64_t max_recorded_at);
  /// Positions must be dense from 1 (a backend that takes them from a counter): position_gap.
  void expect_dense_positions() { dense_ = true; }
  /// One event: positions (if dense), the time order, its stream row, its place in its stream's
  /// versions. Then the backend checks what it stores per event, and calls payload().
  EventStep event(std::int64_t position, std::int64_t stream_id, std::int64_t version, std::int64_t recorded_at_us);
  /// The event's data and meta must be valid JSON (json_invalid).
  void payload(std::int64_t position, std::int64_t stream_id, std::int64_t version, std::string_view data,
               std::string_view meta);
  /// After the scan. `complete`: every event was read (a scan cut short by damage skips the
  /// checks that need every event: time order claims, gaps and, later, last versions).
  void end_scan(bool complete);
  /// The last position the scan read (0: none).
  std::int64_t last_position() const { return last_position_; }

  // ---- the streams' last versions, after a complete scan ----
  /// A last-version row (a stream_heads row, in SQL): the stream's highest version
  /// `last_version`, at `last_position` (stream_head).
  void last_version_row(std::int64_t stream_id, std::int64_t last_version, std::int64_t last_position);
  /// After the last-version rows: every stream with events must have had one (stream_head).
  void end_last_version_rows();

  // ---- ids ----
  /// `id_text` (at `position`) is also the id of the event at `first`; `count` events share it.
  void id_duplicate(std::optional<std::int64_t> stream_id, std::optional<std::int64_t> version, std::int64_t position,
                    std::string_view id_text, std::int64_t first, std::int64_t count = 2);

  // ---- queues ----
  /// A queue's cursor must be within the store: 0 <= cursor <= the last position (queue_cursor).
  void queue_cursor(std::string_view queue, std::int64_t cursor, std::int64_t last_position);
  /// The event an in-flight row points at, as stored.
  struct StoredEvent {
    std::int64_t stream_id = 0;
    std::int64_t version = 0;
    std::string_view stream;  ///< its name, for the filter check
    std::string_view type;
  };
  /// One event in flight (`what`: "item" or "run member") of queue `queue` at `position`, whose
  /// row says `stream_id`: the event exists (`event`), in that stream, passes `filter` (if
  /// given) and is at or below the queue's `cursor` (queue_item).
  void in_flight(std::string_view queue, const char* what, std::int64_t position, std::int64_t stream_id,
                 const std::optional<StoredEvent>& event, const EventFilter* filter, std::int64_t cursor);

 private:
  struct Hole {
    std::int64_t lo, hi;          // versions lo..hi not seen yet
    std::int64_t after_version;   // the version that skipped them ...
    std::int64_t after_position;  // ... and where it is
  };
  struct StreamState {
    std::int64_t next = 0;           // one above the highest version seen
    std::int64_t last_position = 0;  // position of the first event seen with version next-1
    std::int64_t events = 0;
    bool has_row = false;            // the streams table has this id
    bool has_last_version = false;   // a last-version row was seen for it
    bool missing_reported = false;
    bool holes_overflow = false;
    std::unique_ptr<std::map<std::int64_t, Hole>> holes;  // by lo; only for damaged streams
  };
  StreamState& state(std::int64_t id);
  StreamState* find_state(std::int64_t id);
  template <class F>
  void each_state(F&& f);
  void report_gaps();

  FindingFn report_;
  std::vector<StreamState> states_;  // by stream id
  std::unordered_map<std::int64_t, StreamState> other_states_;
  std::size_t holes_ = 0;
  bool dense_ = false;
  std::int64_t last_position_ = 0;
  std::optional<std::int64_t> ordered_through_;
  std::int64_t claimed_max_ = 0;
  std::int64_t seen_max_ = INT64_MIN;
  bool order_reported_ = false;
};

}  // namespace esctl
