// The event store: open/create a store file, append events (atomically, idempotently by id,
// with expected-version checks), and read them back by stream, by category or globally.
// Knows nothing about the terminal; returns model values (core/event.hpp) or throws Error.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/event.hpp"
#include "core/filter.hpp"

namespace esctl {
namespace sql { class Db; }

struct StoreOptions {
  std::string path = "events.db";
  int busy_timeout_ms = 5000;
};

enum class Access {
  read,   ///< the store must exist (else Errc::not_found "no store at PATH")
  write,  ///< created with its schema if the file does not exist
  update, ///< may write, but the store must exist (else Errc::not_found): nothing is created
};

struct StoreStats {
  std::string path;
  int schema_version = 0;
  std::int64_t file_bytes = 0;
  std::int64_t wal_bytes = 0;
  std::int64_t events = 0;
  std::int64_t streams = 0;
  std::int64_t head_position = 0;
};

/// Where the events recorded within a time range can be (see Store::time_span).
struct TimeSpan {
  std::int64_t from = 1;                ///< no such event at a lower position
  std::int64_t to = INT64_MAX;          ///< nor at a position in (to, ordered_through]
  std::int64_t ordered_through = 0;     ///< recorded_at is non-decreasing over positions 1..this
};

/// Called per event; return false to stop early.
using EventFn = std::function<bool(const EventRef&)>;

class Store {
 public:
  Store(const StoreOptions& options, Access access);
  ~Store();
  Store(const Store&) = delete;

  const std::string& path() const { return options_.path; }
  const StoreOptions& options() const { return options_; }
  /// The connection, for the other store modules (queues, verify, rebuild).
  sql::Db& db() { return *db_; }

  /// Appends `events` in one transaction: all or nothing. An event whose id is already stored
  /// with the same stream, type and data is not written again; its stored place is reported
  /// with existed=true. `expect` is checked against the stream of the first event that is not
  /// such a repeat. With `check_versions`, an event's own `version` (import) must be the next
  /// version of its stream. Throws Errc::conflict on any mismatch, naming expected and actual;
  /// then, if `failed_at` is given, *failed_at is the index of the event that did not fit.
  /// Events must be valid (names checked, data/meta minified JSON): see core/ndjson.hpp.
  std::vector<Appended> append(const std::vector<NewEvent>& events, const Expect& expect = {},
                               bool check_versions = true, std::size_t* failed_at = nullptr);

  /// Events of one stream in version order from `from` (default 0), at most `count`; with
  /// `backwards`, from `from` (default: the last) down to 0. Errc::not_found if no such stream.
  void read_stream(std::string_view stream, std::optional<std::int64_t> from, std::optional<std::int64_t> count,
                   bool backwards, const EventFn& fn);
  /// Events with position >= `from` in position order that pass `filter`, at most `count`.
  void read_all(std::int64_t from, std::optional<std::int64_t> count, const EventFilter& filter, const EventFn& fn);
  /// The last `count` events passing `filter` with position >= `min_position`, oldest first.
  void read_last(std::int64_t count, const EventFilter& filter, const EventFn& fn);
  /// Narrows a --since/--until range (inclusive, µs) to positions by binary search over the
  /// prefix of the store whose recorded_at is known to be in order (kept by append in the
  /// time_order table). Events after that prefix are not narrowed: readers check each one.
  TimeSpan time_span(std::optional<std::int64_t> since_us, std::optional<std::int64_t> until_us);
  /// As read_all, but only events with since_us <= recorded_at <= until_us; `count` counts
  /// those. Searches where recorded_at is known to be in order, filters elsewhere.
  void read_all_in_time(std::int64_t from, std::optional<std::int64_t> count, const EventFilter& filter,
                        std::optional<std::int64_t> since_us, std::optional<std::int64_t> until_us, const EventFn& fn);
  /// The event at `position`, or the event with id `id` (16 raw bytes): calls fn once and returns
  /// true, or returns false if there is none.
  bool read_event_at(std::int64_t position, const EventFn& fn);
  bool read_event_by_id(std::string_view id, const EventFn& fn);
  /// The last version of `stream`, or nullopt if it has no events.
  std::optional<std::int64_t> stream_version(std::string_view stream);
  /// Streams by name, optionally of one category and/or with a name prefix (exact bytes, no wildcards).
  std::vector<StreamInfo> streams(std::optional<std::string> category, std::optional<std::string> prefix);
  /// The highest committed position (0 for an empty store).
  std::int64_t head_position();
  StoreStats stats();

  /// The stream name for a stream id (cached).
  std::string_view stream_name(std::int64_t stream_id);

 private:
  struct StreamRow {
    std::int64_t id = 0;  // 0: no such stream yet
    std::int64_t head = -1;
    std::int64_t head_position = 0;
    bool dirty = false;  // changed by the append in progress
  };
  /// Stream rows by name, reused across append() calls. An open-addressing index into a vector
  /// of entries: a hit costs about one cache miss, where std::unordered_map's bucket and node
  /// chain cost three or four (the lookup was ~9% of an import over 10k streams).
  class StreamCache {
   public:
    /// The index of `name`'s entry, and whether it was just added (with a default StreamRow).
    std::pair<std::uint32_t, bool> find_or_add(std::string_view name);
    StreamRow& row(std::uint32_t i) { return entries_[i].row; }
    std::size_t size() const { return entries_.size(); }
    void clear();

   private:
    struct Entry {
      std::string name;
      StreamRow row;
    };
    void grow();
    std::vector<Entry> entries_;
    std::vector<std::uint64_t> slots_;  // 0: empty; else (hash >> 32) << 32 | (entry index + 1)
  };
  /// The cache entry of `name`, read from the streams table when new (id 0 if no such stream).
  std::uint32_t stream_row(std::string_view name);
  void forget_cached_streams();
  void emit_positions(const std::vector<std::int64_t>& positions, const EventFn& fn, bool& go);
  std::int64_t locate(std::int64_t stream_id, std::int64_t head, std::int64_t head_position, std::int64_t version);

  struct TimeOrder {
    std::int64_t ordered_through = 0;
    std::int64_t max_recorded_at = INT64_MIN;
  };
  /// The time_order row (every schema v3 store has one; nullopt only if it was deleted by hand).
  std::optional<TimeOrder> time_order();

  StoreOptions options_;
  std::unique_ptr<sql::Db> db_;
  std::vector<std::string> names_;  // stream id -> name cache ("" = unknown)
  // Stream heads as of our own last commit, reused across append() calls (import batches) for
  // as long as no other connection has committed (PRAGMA data_version unchanged).
  StreamCache heads_;
  std::int64_t heads_data_version_ = -1;
};

/// The version of the linked SQLite library.
std::string sqlite_version();

}  // namespace esctl
