// `esctl rebuild`: build a query db from scratch with a projection into a temporary file beside
// it, then atomically replace it, and optionally hand its queue over (esctl-rebuild(1)). Not the
// incremental path: that is Projector (projector.hpp) driven by `queue drain`.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "projection/projection.hpp"
#include "store/queue.hpp"
#include "store/store.hpp"

namespace esctl {

struct RebuildOptions {
  std::string db_path;
  std::string queue;             ///< empty: all events; else only that queue's, and hand over to it
  std::int64_t batch = 10000;    ///< applied events per transaction of the new db
  std::int64_t chunk = 16384;    ///< store positions per read transaction
  bool dry_run = false;          ///< check everything, read the head and the queue's status, write nothing
  /// Called now and then with the position reached and the head being rebuilt to.
  std::function<void(std::int64_t position, std::int64_t head)> progress;
};

struct RebuildResult {
  /// The store's head position at the start: the db reflects every event up to it.
  std::int64_t head_position = 0;
  std::int64_t read = 0;           ///< events the projection handles (and the queue matches) up to there
  std::int64_t applied = 0;        ///< events whose statements ran (== read: rebuild stops on a failure)
  std::int64_t streams = 0;        ///< streams with at least one applied event
  bool replaced = false;           ///< an old db existed and was replaced (dry run: exists)
  /// With a queue: its status just before the hand-over (dry run: now).
  std::optional<QueueStatus> queue_before;
  /// With a queue: its unacked events up to the head position that the hand-over settled (dry
  /// run: would settle).
  std::int64_t settled = 0;
  double seconds = 0;
};

/// Rebuilds `options.db_path` from the store's head H at the start: @init, then every event up
/// to H that the projection handles (and, with a queue, that the queue's filter matches) in
/// position order, read in chunks of positions (a short read transaction each), into
/// `.NAME.rebuild-PID.tmp` beside the db; then fsync, rename over the db, fsync the directory.
/// With a queue, that queue's cursor is then set to H and its delivery state cleared, so a later
/// drain continues with no gap and no duplicate. Temporary files of earlier rebuilds whose
/// process is gone are removed first. Rebuilds of one db run one at a time (a second waits up to
/// the store's busy timeout, then Errc::busy), and drains into it are kept out of the rename
/// (see query_db_lock.hpp). The new db records the queue (or keeps the one the old db recorded).
/// A db that records another queue than `options.queue` is refused with Errc::conflict before
/// anything is written. With `dry_run`, returns after these checks with head and queue status.
/// Failures before the rename leave the old db as it was and remove the temporary file: an event
/// whose statements fail throws Errc::invalid_input naming its stream, version and position;
/// SIGINT throws Errc::interrupted; an existing file that is not a query db made by esctl (e.g.
/// the store itself) is refused with Errc::corrupt before anything is written. An operational
/// failure (Errc::io, read_only, busy) says what the db is after it: "query db 'DB' is
/// unchanged" before the rename; after it (the directory's fsync or the hand-over failed), "is
/// the rebuilt one now, but" what is not done.
RebuildResult rebuild(Store& store, std::shared_ptr<const Projection> projection, const RebuildOptions& options);

/// Removes temporary files left beside `db_path` by rebuilds whose process no longer runs.
/// Returns how many files were removed.
int remove_stale_rebuild_files(const std::string& db_path);

}  // namespace esctl
