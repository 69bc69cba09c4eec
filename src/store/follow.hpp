// Following a store: ChangeWaiter sleeps until another process may have committed (cheaply: the
// backend's notification, e.g. inotify on SQLite's WAL, no re-querying in a loop), and read_after
// reads what came after a position without holding a read transaction while the caller works.
// Not a subscription: callers keep their own cursor (tail keeps a position, queues a table row).
#pragma once
#include <cstdint>
#include <memory>

#include "core/filter.hpp"
#include "store/store.hpp"

namespace esctl {

/// Waits for commits to a store by other connections (other processes, or other Store objects).
///
/// Usage: construct it BEFORE the first read, then loop { read what is new; wait(); }. A commit
/// that lands between a read and the next wait() makes that wait() return `changed` at once,
/// so nothing is missed; a spurious `changed` (nothing new for the caller's filter) is possible.
/// Commits made through `store`'s own connection do not count, so a process that acks on the
/// same connection is not woken by its own writes.
///
/// Between calls and while sleeping it holds no read transaction: the WAL stays checkpointable.
/// Cost (SQLite): an idle waiter sleeps in ppoll(2) on an inotify descriptor for the store's -wal
/// file and checks data_version every 250 ms as a fallback (a few µs each). After the WAL is written it
/// checks data_version every 2 ms (for 100 ms, then every 8 ms up to a second) until the commit
/// becomes visible (the WAL is written before the commit is published in the -shm index). Without inotify it checks
/// every 10 ms. Not thread-safe; one waiter per Store.
class ChangeWaiter {
 public:
  explicit ChangeWaiter(Store& store);
  ~ChangeWaiter();
  ChangeWaiter(const ChangeWaiter&) = delete;
  ChangeWaiter& operator=(const ChangeWaiter&) = delete;

  /// Also end a wait with Wake::hangup as soon as `fd` reports POLLERR/POLLHUP/POLLNVAL, e.g.
  /// stdout when it is a pipe whose reader went away (`esctl tail -f | head -1`).
  void wake_on_hangup(int fd);

  /// Blocks until a change, `timeout_ms` (negative: no limit), a stop signal, or a hang-up.
  /// Returns `changed` immediately if a commit is already pending. SIGINT during the wait is not
  /// lost (the signal mask is swapped atomically by ppoll).
  Wake wait(int timeout_ms);

 private:
  std::unique_ptr<ChangeSource> source_;
};

/// Reads the events with position > `after` that pass `filter`, oldest first, calling `fn` for
/// each (return false to stop). Rows are read in chunks of at most `chunk` per statement and
/// copied out, and the statement is reset before `fn` runs: no read transaction is held while
/// `fn` works (or blocks writing to a slow pipe). Returns the last position examined, which may
/// be greater than the last event passed to `fn` (events the filter rejected); pass it back as
/// `after` next time. Events committed while reading are read too if they are visible in time.
std::int64_t read_after(Store& store, std::int64_t after, const EventFilter& filter, const EventFn& fn,
                        int chunk = 512);

}  // namespace esctl
