// The event store in a PostgreSQL database (schema `esctl`): appends with dense positions in
// commit order, expected-version checks and idempotency by id, and reads by stream and by
// position. Same model values and semantics as the SQLite store (core/event.hpp).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.hpp"
#include "core/filter.hpp"
#include "store/postgres/pg.hpp"
#include "store/postgres/schema.hpp"

namespace esctl::pg {

/// Called per event; return false to stop early.
using EventCallback = std::function<bool(const EventRef&)>;

/// What `stats` shows of a PostgreSQL store.
struct PgStats {
  std::string uri;             ///< without password
  std::string server_version;  ///< e.g. "15.18"
  std::string database;
  int schema_version = 0;
  std::int64_t database_bytes = 0;  ///< pg_database_size
  std::int64_t store_bytes = 0;     ///< tables and indexes of schema esctl
  std::int64_t events = 0;
  std::int64_t streams = 0;
  std::int64_t head_position = 0;
};

/// Where the events recorded within a time range can be (as the SQLite store's TimeSpan).
struct PgTimeSpan {
  std::int64_t from = 1;
  std::int64_t to = INT64_MAX;
  std::int64_t ordered_through = 0;
};

class PgStore {
 public:
  /// Connects to `uri` and checks (or, for Intent::write, creates) its esctl schema.
  PgStore(const std::string& uri, int busy_timeout_ms, Intent intent);

  Conn& conn() { return conn_; }

  /// Appends `events` in one transaction: all or nothing, positions dense and in commit order
  /// (the transaction first locks the store's position counter). Semantics as the SQLite
  /// store's append: an event whose id is stored with the same stream, type and data is a
  /// no-op reported with existed=true, the same id with other content is Errc::conflict;
  /// `expect` applies to the first event that is not such a repeat; with `check_versions` an
  /// event's own `version` must be its stream's next. On a conflict *failed_at (if given) is
  /// the index of the event that did not fit. A connection lost before the commit is
  /// confirmed throws Errc::io saying the outcome is unknown.
  std::vector<Appended> append(const std::vector<NewEvent>& events, const Expect& expect = {},
                               bool check_versions = true, std::size_t* failed_at = nullptr);

  /// Events with position >= `from` in position order that pass `filter`, at most `count`,
  /// up to the head as of the call (so that a read under constant appends ends). Read in
  /// chunks, one statement each: no transaction stays open while `fn` works.
  void read_all(std::int64_t from, std::optional<std::int64_t> count, const EventFilter& filter,
                const EventCallback& fn);
  void read_all(std::int64_t from, std::optional<std::int64_t> count, const EventCallback& fn) {
    read_all(from, count, EventFilter{}, fn);
  }
  /// The last `count` events passing `filter`, oldest first.
  void read_last(std::int64_t count, const EventFilter& filter, const EventCallback& fn);
  /// Narrows a --since/--until range (inclusive, µs) to positions over the prefix whose
  /// recorded_at is known to be in order (esctl.time_order).
  PgTimeSpan time_span(std::optional<std::int64_t> since_us, std::optional<std::int64_t> until_us);
  /// As read_all, but only events with since_us <= recorded_at <= until_us.
  void read_all_in_time(std::int64_t from, std::optional<std::int64_t> count, const EventFilter& filter,
                        std::optional<std::int64_t> since_us, std::optional<std::int64_t> until_us,
                        const EventCallback& fn);
  /// The event at `position`, or with id `id` (16 raw bytes): calls fn once and returns true,
  /// or returns false if there is none.
  bool read_event_at(std::int64_t position, const EventCallback& fn);
  bool read_event_by_id(std::string_view id, const EventCallback& fn);
  /// Streams by name, optionally of one category and/or with a name prefix (exact bytes).
  std::vector<StreamInfo> streams(std::optional<std::string> category, std::optional<std::string> prefix);
  PgStats stats();
  /// Events of `stream` from version `from` up (or down, with `backwards`, from `from` or the
  /// last), at most `count`. Errc::not_found if the stream has no events.
  void read_stream(std::string_view stream, std::optional<std::int64_t> from, std::optional<std::int64_t> count,
                   bool backwards, const EventCallback& fn);
  /// The last version of `stream`, or nullopt if it has no events.
  std::optional<std::int64_t> stream_version(std::string_view stream);
  /// The highest committed position (0 for an empty store).
  std::int64_t head_position();

 private:
  /// Runs `sql` (whose rows are position, stream, version, id, type, data, meta, recorded_at)
  /// and calls fn per row; returns false if fn stopped, and the rows seen in *rows.
  bool emit(Result& r, const EventCallback& fn);

  Conn conn_;
  std::vector<signed char> stream_ok_;  // read_all's filter cache, per stream id: 0 unknown, 1/-1
  EventFilter stream_ok_filter_;
};

/// A PostgreSQL array literal of `items` (for `$1::text[]` and the like): every element quoted.
std::string array_literal(const std::vector<std::string_view>& items);

}  // namespace esctl::pg
