// The event store in a PostgreSQL database (schema `esctl`): appends with dense positions in
// commit order, expected-version checks and idempotency by id, and reads by stream and by
// position. Same model values and semantics as the SQLite store (core/event.hpp).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
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

class PgStore {
 public:
  /// Connects to `uri` and checks (or, for Access::write, creates) its esctl schema.
  PgStore(const std::string& uri, int busy_timeout_ms, Access access);

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
  /// append() in one transaction; without `look_up_ids` it takes every given id as new.
  std::vector<Appended> append_once(const std::vector<NewEvent>& events, const Expect& expect, bool check_versions,
                                    std::size_t* failed_at, bool look_up_ids);

  Conn conn_;
  bool id_clash_ = false;  // the last append_once's COPY hit a stored id
  /// Streams as this session's last appends left them, valid while the position counter still
  /// says known_through_ (an append that creates a stream or moves a head moves the counter):
  /// an import's later batches look up only the streams they have not met yet.
  struct KnownStream {
    std::int64_t id = 0, last_version = -1, last_position = 0;
  };
  std::unordered_map<std::string, KnownStream> known_;
  std::int64_t known_through_ = -1;
};

/// A PostgreSQL array literal of `items` (for `$1::text[]` and the like): every element quoted.
std::string array_literal(const std::vector<std::string_view>& items);

}  // namespace esctl::pg
