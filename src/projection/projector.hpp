// The Projector: applies events to a query db with a projection, effectively-once, in one
// transaction per batch. Used by `queue drain --projection` (through the drain layer's adapter);
// rebuilding a db from scratch is rebuild.hpp.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/event.hpp"
#include "projection/projection.hpp"

namespace esctl {

/// What happened to one event of a batch given to Projector::apply.
struct ApplyResult {
  std::int64_t position = 0;
  /// The query db reflects the event: applied now, applied before (a redelivery), or of a type
  /// the projection does not handle. Ack it. False: nothing of it was applied; nack it.
  bool ok = true;
  bool applied = false;  ///< this call ran the event's statements
  bool held = false;     ///< not run because an earlier event of its stream failed: give it back, not nack it
  std::string error;     ///< when !ok: the SQLite message with file, line and section, or "held behind position P"
};

struct ProjectorOptions {
  int busy_timeout_ms = 5000;
  std::string store_path;  ///< recorded in the query db's meta table (information only)
  /// The queue feeding the db: recorded in its meta table when it records none yet; a db that
  /// records another queue is refused (Errc::conflict). Empty: no check, nothing recorded.
  std::string queue;
};

/// Applies events to one query db with a projection. Creates the db (running @init) if it does
/// not exist. Effectively-once: the db keeps, in table `_esctl_applied`, the last version applied
/// per stream, written in the same transaction as the event's rows, and in `_esctl_pending` the
/// events it failed to apply; an event is applied iff its version is above its stream's or it
/// is pending. So redeliveries change nothing, and an event retried after its stream moved on
/// (parked under --on-poison park) is still applied.
class Projector {
 public:
  /// Opens (or creates) `db_path`, and its lock file `db_path.lock` (see QueryDbLock). Throws
  /// Errc::invalid_input if a statement does not prepare against an existing db, Errc::corrupt if
  /// `db_path` is not a query db made by esctl, Errc::conflict if it records another queue than
  /// options.queue (nothing is written then).
  Projector(std::shared_ptr<const Projection> projection, const std::string& db_path,
            const ProjectorOptions& options = {});
  ~Projector();
  Projector(const Projector&) = delete;

  /// Applies `batch` (in order) in one transaction, each event in its own savepoint. If `rebuild`
  /// replaced the db since the last call, the new file is opened first (checked before the
  /// transaction begins, under the lock that the replacement also takes). An event
  /// whose statements fail is rolled back (nothing of it applied) and reported !ok; later events
  /// of its stream in the batch are then not applied either ("held behind position P"), so
  /// per-stream order holds. Results are in batch order. Throws only for operational failures
  /// (I/O, busy, disk full), after which nothing of the batch is applied.
  std::vector<ApplyResult> apply(std::span<const EventRef> batch);
  std::vector<ApplyResult> apply(std::span<const Event> batch);

  /// True if this Projector created the db (ran @init).
  bool created() const;
  /// True if the db was built with a projection file of different content (its _esctl_meta
  /// projection_hash): past events were applied with the old statements.
  bool projection_changed() const;
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace esctl
