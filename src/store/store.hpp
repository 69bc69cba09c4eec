// The event store, backend-neutral: open a store by its location, append events (atomically,
// idempotently by id, with expected-version checks), read them back by stream, by category or
// globally. Backends (backend.hpp) do the storing; filters and time search are written here once.
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
#include "store/backend.hpp"

namespace esctl {

class StoreBackend;

struct StoreOptions {
  /// Where the store is: a file path for SQLite (the backend is chosen by its form).
  std::string location = "events.db";
  int busy_timeout_ms = 5000;
  /// The connection mostly scans events in position order (a drain's): it gets the small page
  /// cache of a reader, recycled rather than grown (SQLite; a server backend ignores it).
  bool scans = false;
};

/// How a store is opened.
enum class Access {
  read,   ///< the store must exist (else Errc::not_found "no store at PATH")
  write,  ///< created with its schema if the file does not exist
  update, ///< may write, but the store must exist (else Errc::not_found): nothing is created
};

/// Where the events recorded within a time range can be (see Store::time_span).
struct TimeSpan {
  std::int64_t from = 1;                ///< no such event at a lower position
  std::int64_t to = INT64_MAX;          ///< nor at a position in (to, ordered_through]
  std::int64_t ordered_through = 0;     ///< recorded_at is non-decreasing over positions 1..this
};

/// An open event store: the backend-neutral model over one backend connection (backend.hpp).
class Store {
 public:
  /// Opens the store at options.location with the backend its form names.
  Store(const StoreOptions& options, Access access);
  ~Store();
  Store(const Store&) = delete;

  const std::string& location() const { return options_.location; }
  const StoreOptions& options() const { return options_; }
  /// The backend connection, for the store's own modules (queues, follow, verify) and a
  /// backend's tests. Commands use the operations below.
  StoreBackend& backend() { return *backend_; }

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
  /// The last `count` events passing `filter`, oldest first.
  void read_last(std::int64_t count, const EventFilter& filter, const EventFn& fn);
  /// Narrows a --since/--until range (inclusive, µs) to positions by binary search over the
  /// prefix of the store whose recorded_at is known to be in order (kept by append).
  /// Events after that prefix are not narrowed: readers check each one.
  TimeSpan time_span(std::optional<std::int64_t> since_us, std::optional<std::int64_t> until_us);
  /// As read_all, but only events with since_us <= recorded_at <= until_us; `count` counts
  /// those. Searches where recorded_at is known to be in order, filters elsewhere.
  void read_all_in_time(std::int64_t from, std::optional<std::int64_t> count, const EventFilter& filter,
                        std::optional<std::int64_t> since_us, std::optional<std::int64_t> until_us, const EventFn& fn);
  /// Calls `fn` for the events with after < position <= to, in position order, from a read
  /// snapshot of its own that ends before this returns (hold none while working on a chunk).
  /// fn may stop early by returning false; at most `limit` rows are visited.
  void read_chunk(std::int64_t after, std::int64_t to, std::int64_t limit, RowFn fn);
  /// The event at `position`, or the event with id `id` (16 raw bytes): calls fn once and returns
  /// true, or returns false if there is none.
  bool read_event_at(std::int64_t position, const EventFn& fn);
  bool read_event_by_id(std::string_view id, const EventFn& fn);
  /// The last version of `stream`, or nullopt if it has no events.
  std::optional<std::int64_t> stream_version(std::string_view stream);
  /// Streams by name, optionally of one category and/or with a name prefix (exact bytes, no wildcards).
  std::vector<StreamInfo> streams(std::optional<std::string> category, std::optional<std::string> prefix);
  /// The highest committed position (0 for an empty store).
  std::int64_t last_position();
  StoreStats stats();
  /// Best effort, between the chunks of a long read: lets the backend reclaim its log.
  void reclaim_log();

  /// The stream name for a stream id (cached).
  std::string_view stream_name(std::int64_t stream_id);

 private:
  StoreOptions options_;
  std::unique_ptr<StoreBackend> backend_;
};

/// Which stream ids pass a filter's stream part, decided once per stream id: the one cache
/// every filtered scan uses.
class StreamFilter {
 public:
  StreamFilter(Store& store, const EventFilter& filter)
      : store_(store), filter_(filter), by_stream_(!filter.stream_globs.empty() || !filter.categories.empty()) {}
  /// True if events of stream `stream_id` with type `type` pass the filter.
  bool matches(std::int64_t stream_id, std::string_view type) {
    if (by_stream_ && !stream_matches(stream_id)) return false;
    return filter_.matches_type(type);
  }
  bool stream_matches(std::int64_t stream_id);

 private:
  Store& store_;
  const EventFilter& filter_;
  bool by_stream_;
  std::vector<signed char> ok_;  // per stream id: 0 unknown, 1 match, -1 no match
};

/// A client library of a backend built in (--version).
struct BackendLibrary {
  std::string key;      ///< JSON key, e.g. "sqlite"
  std::string name;     ///< e.g. "SQLite"
  std::string version;  ///< e.g. "3.51.3"
};
std::vector<BackendLibrary> backend_libraries();

}  // namespace esctl
