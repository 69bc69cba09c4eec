// The interface a storage backend implements (SQLite in store/sqlite/; a server database the same
// way). The neutral model above it (Store's filters and time search, read_after, queues, verify's
// report) is written once, so every backend behaves the same by construction. No SQL here.
//
// What a backend must guarantee:
// - Positions are assigned by the backend inside the append's transaction, dense from 1, never
//   reused, and in commit order: a reader that has seen position p never later sees a commit
//   below p (serialise appends, e.g. on one counter row, if the database's sequences are not).
// - append() is atomic (all or nothing), idempotent by event id, and checks expected versions in
//   the same serialised transaction that writes.
// - Every read below runs in one read snapshot: the caller's open ReadSnapshot if any, else one
//   that ends before the call returns (a scan holds none once it returns).
// - Stream ids are small positive integers, stable for the life of the store (readers index
//   arrays by them); stream_name() answers for every id a read returned.
// - Only esctl::Error leaves a backend: the client library's result codes are turned into Errc
//   (busy, read_only, corrupt, io, ...) inside it, with the store's location in the message.
// - Times are the store's: µs since the epoch from the writer's clock (SQLite) or the server's.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.hpp"
#include "core/function_ref.hpp"

namespace esctl {

class QueueRows;

/// One stored event as a backend reads it: the stream by id (Store names it, cached), every
/// view valid only during the call it is passed to.
struct EventRow {
  std::int64_t position = 0;
  std::int64_t stream_id = 0;
  std::int64_t version = 0;
  std::string_view id;  ///< 16 raw bytes
  std::string_view type;
  std::string_view data;
  std::string_view meta;
  std::int64_t recorded_at_us = 0;
};

/// Called per event; return false to stop early.
using EventFn = std::function<bool(const EventRef&)>;

/// Called per row; return false to stop.
using RowFn = FunctionRef<bool(const EventRow&)>;

/// Which positions a scan visits, in position order (descending with `backwards`).
struct ScanRange {
  std::int64_t from = 1;          ///< lowest position visited
  std::int64_t to = INT64_MAX;    ///< highest position visited
  bool backwards = false;
  std::int64_t limit = INT64_MAX; ///< at most this many rows
};

/// The prefix of the store whose recorded_at is known to be non-decreasing (kept by append).
struct TimeOrder {
  std::int64_t ordered_through = 0;           ///< positions 1..this are in recorded_at order
  std::int64_t max_recorded_at = INT64_MIN;   ///< recorded_at at ordered_through
};

/// A size a backend reports in `stats` (SQLite: the file and its WAL; a server: its tables).
struct StoreSize {
  std::string key;    ///< machine name, e.g. "file_bytes"
  std::string label;  ///< for people, e.g. "file size"
  std::int64_t bytes = 0;
};

/// What `esctl stats` shows of a store.
struct StoreStats {
  std::string location;
  std::string server;          ///< a database server's product, e.g. "PostgreSQL" (empty: embedded)
  std::string server_version;  ///< its version as the server reports it, e.g. "15.18"
  int schema_version = 0;
  std::vector<StoreSize> sizes;  ///< the first is the store's main size
  std::int64_t events = 0;
  std::int64_t streams = 0;
  std::int64_t last_position = 0;  ///< the highest committed position (0: empty store)
};

/// Why ChangeWaiter::wait returned.
enum class Wake {
  changed,      ///< another connection committed since the last `changed` (or construction)
  timeout,      ///< `timeout_ms` passed without a change
  interrupted,  ///< SIGINT/SIGTERM arrived (core/signals.hpp interrupted() is true)
  hangup,       ///< a file descriptor given to wake_on_hangup() reported an error or hang-up
};

/// Waits for commits by other connections; the contract is ChangeWaiter's (store/follow.hpp).
/// SQLite: inotify on the WAL plus its data_version; a server: LISTEN/NOTIFY, polling as a fallback.
class ChangeSource {
 public:
  virtual ~ChangeSource() = default;
  virtual void wake_on_hangup(int fd) = 0;
  virtual Wake wait(int timeout_ms) = 0;
};

/// A read snapshot held open until destroyed: reads in between see one state of the store.
class ReadSnapshot {
 public:
  virtual ~ReadSnapshot() = default;
};

/// The append rules every backend enforces, with one wording (all throw Errc::conflict).
/// `last_version` is the stream's last version, -1 when it has no events.
/// `expect` not met by a stream at `last_version`:
void check_expected(std::string_view stream, std::int64_t last_version, const Expect& expect);
/// An event asking for `version` that does not follow `last_version` (a SettingError naming
/// "ignoring versions", which appends at the end instead):
void check_version_fits(std::string_view stream, std::int64_t last_version, std::int64_t version);
/// An event id already stored with other content (at `position`, `stream` `version`):
[[noreturn]] void throw_id_conflict(std::string_view id, std::int64_t position, std::string_view stream,
                                    std::int64_t version);

/// One connection to one store. Not thread-safe: one per thread.
class StoreBackend {
 public:
  virtual ~StoreBackend() = default;

  /// Store::append's contract (store.hpp).
  virtual std::vector<Appended> append(const std::vector<NewEvent>& events, const Expect& expect, bool check_versions,
                                       std::size_t* failed_at) = 0;
  /// Store::read_stream's contract: the backend knows how to walk a stream's versions.
  virtual void read_stream(std::string_view stream, std::optional<std::int64_t> from,
                           std::optional<std::int64_t> count, bool backwards, const EventFn& fn) = 0;
  /// Calls fn for the stored events in `range`, in one read snapshot.
  virtual void scan(const ScanRange& range, RowFn fn) = 0;
  /// The event at `position` / with id `id`: calls fn once and returns true, or returns false.
  virtual bool read_at(std::int64_t position, RowFn fn) = 0;
  virtual bool read_by_id(std::string_view id, RowFn fn) = 0;
  /// The last version of `stream`, or nullopt if it has no events.
  virtual std::optional<std::int64_t> stream_version(std::string_view stream) = 0;
  /// Store::streams's contract.
  virtual std::vector<StreamInfo> streams(std::optional<std::string> category, std::optional<std::string> prefix) = 0;
  /// The highest committed position (0 for an empty store).
  virtual std::int64_t last_position() = 0;
  /// The name of a stream id a read returned (cached). Errc::corrupt if there is none.
  virtual std::string_view stream_name(std::int64_t stream_id) = 0;
  /// The time order kept by append; nullopt if the store has none (damaged by hand).
  virtual std::optional<TimeOrder> time_order() = 0;
  virtual StoreStats stats() = 0;
  virtual std::unique_ptr<ReadSnapshot> snapshot() = 0;
  virtual std::unique_ptr<ChangeSource> change_source() = 0;
  /// Best effort, between the chunks of a long read with no snapshot open: lets the backend
  /// reclaim its write-ahead log (SQLite: checkpoint, and restart a big WAL). May do nothing.
  virtual void reclaim_log() = 0;
  /// The queue rows of this connection (store/queue_rows.hpp), which the projector queues'
  /// delivery algorithm (store/queue.cpp) runs over; owned by the backend.
  virtual QueueRows& queue_rows() = 0;
};

}  // namespace esctl
