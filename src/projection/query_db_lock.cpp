// The swap protocol between `rebuild`, which replaces a query db DB with rename(2), and the
// drainers that write DB (`queue drain --projection F --into DB`: any number, in any processes).
//
// Why it is needed. Query dbs use SQLite's rollback journal, which lives at the path
// `DB-journal`. A connection still open on the file that DB named before a rename, when it starts
// a transaction (a read too: it takes a SHARED lock), looks for `DB-journal`, finds the journal of
// a writer of the *new* file, sees no lock on its own (old) file and takes it for a hot journal:
// it rolls it back into the old file and deletes it. The real writer then fails in the middle of
// its commit ("disk I/O error"), and a crash at that moment would corrupt the new db. So a
// drainer must never start a transaction on a file that is no longer DB, and its "is my file
// still DB?" check must not race with the rename.
//
// The lock file. `DB.lock` lies beside DB and is never replaced or removed (removing it would let
// two processes lock two different files). It carries three one-byte locks, open file description
// locks (F_OFD_SETLK: owned by one open(), not by the process, and not dropped when the process
// closes some other descriptor of the file):
//   byte 0, gate:    a Swap holds it exclusive; a Use passes through it shared.
//   byte 1, use:     a Use holds it shared; a Swap holds it exclusive.
//   byte 2, rebuild: a Rebuild holds it exclusive for the whole run of one rebuild.
//
// A drainer, around opening DB and around each of its transactions on DB:
//   take gate shared, take use shared, drop gate;
//   if DB (stat) is not the file its connection has open: close the connection, open DB again;
//   BEGIN IMMEDIATE ... COMMIT; drop use.
// A rebuild:
//   take rebuild exclusive (a second rebuild of DB waits up to --busy-timeout, then exit 7);
//   read the store's head H; build the temporary file;
//   Swap: take gate exclusive (drainers arriving now wait at the gate), take use exclusive (wait
//   until the drainers inside have committed); hand the queue over to H and rename; drop use, gate;
//   drop rebuild.
//
// Why it holds for any number of drainers: the rename happens only while use is held exclusive,
// that is while no drainer is between its check and its COMMIT, so the file a drainer checked is
// the file its transaction runs on, and the journal it finds at `DB-journal` is its own file's.
// Drainers share use with each other (SQLite's locks order their transactions). The gate gives the
// swap priority: without it, shared holders that overlap (one drainer waiting for SQLite's lock
// while another commits) could keep use taken for ever.
// Why the hand-over is inside the swap: a drainer that leases events after the queue was handed
// over applies them only after the rename (it needs use), so into the new db; a lease taken before
// is stale after the hand-over, and what it applies anywhere is either in the new db already
// (position <= H) or redelivered and then recognised as applied. Because a Rebuild spans the whole
// run, two rebuilds cannot rename in the opposite order of their heads: the db's checkpoint and
// the queue's cursor agree.
// No deadlock: a drainer holds use only around its query-db transaction, never while waiting for
// the store; the swap waits for the store's write lock (the hand-over) while holding use, and no
// store transaction ever waits for use.
//
// Waiting polls F_OFD_SETLK with a short sleep, up to --busy-timeout (Linux does not queue a
// blocked writer ahead of new readers anyway). A process that dies loses its locks.
#include "projection/query_db_lock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/signals.hpp"

namespace esctl {

std::string QueryDbLock::lock_path(const std::string& db_path) { return db_path + ".lock"; }

QueryDbLock::QueryDbLock(const std::string& db_path, int busy_timeout_ms)
    : db_path_(db_path), busy_timeout_ms_(busy_timeout_ms) {
  std::string path = lock_path(db_path);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  created_ = fd_ >= 0;
  if (fd_ < 0 && errno == EEXIST) fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    if (err == ENOENT)
      throw Error(Errc::not_found, fmt::format("cannot use query db '{}': its directory does not exist", db_path));
    throw Error(err == EACCES || err == EPERM || err == EROFS ? Errc::read_only : Errc::io,
                fmt::format("cannot open the lock file '{}' of query db '{}': {}", path, db_path, std::strerror(err)));
  }
}

void QueryDbLock::remove_if_created() noexcept {
  if (created_) ::unlink(lock_path(db_path_).c_str());
  created_ = false;
}

QueryDbLock::~QueryDbLock() {
  if (fd_ >= 0) ::close(fd_);
}

bool QueryDbLock::try_lock(Byte b, bool exclusive, int timeout_ms) {
  struct flock fl {};
  fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = b;
  fl.l_len = 1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto pause = std::chrono::microseconds(500);
  for (;;) {
    if (::fcntl(fd_, F_OFD_SETLK, &fl) == 0) return true;
    if (errno != EAGAIN && errno != EACCES && errno != EINTR)
      throw Error(Errc::io, fmt::format("cannot lock '{}': {}", lock_path(db_path_), std::strerror(errno)));
    if (interrupted()) throw Error(Errc::interrupted, "interrupted");
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
}

void QueryDbLock::lock(Byte b, bool exclusive, const char* waiting_for) {
  if (try_lock(b, exclusive, busy_timeout_ms_)) return;
  throw Error(Errc::busy, fmt::format("query db '{}' is busy: {}; gave up after {}ms (raise --busy-timeout to wait "
                                      "longer)",
                                      db_path_, waiting_for, busy_timeout_ms_));
}

void QueryDbLock::unlock(Byte b) noexcept {
  struct flock fl {};
  fl.l_type = F_UNLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = b;
  fl.l_len = 1;
  ::fcntl(fd_, F_OFD_SETLK, &fl);
}

QueryDbLock::Use::Use(QueryDbLock& lock) : lock_(lock) {
  lock_.lock(kGate, false, "a rebuild is replacing it");
  try {
    lock_.lock(kUse, false, "a rebuild is replacing it");
  } catch (...) {
    lock_.unlock(kGate);
    throw;
  }
  lock_.unlock(kGate);
}

QueryDbLock::Use::~Use() { lock_.unlock(kUse); }

QueryDbLock::Swap::Swap(QueryDbLock& lock) : lock_(lock) {
  lock_.lock(kGate, true, "a drain into it is in a transaction");
  try {
    lock_.lock(kUse, true, "a drain into it is in a transaction");
  } catch (...) {
    lock_.unlock(kGate);
    throw;
  }
}

QueryDbLock::Swap::~Swap() {
  lock_.unlock(kUse);
  lock_.unlock(kGate);
}

QueryDbLock::Rebuild::Rebuild(QueryDbLock& lock) : lock_(lock) {
  lock_.lock(kRebuild, true, "another rebuild of it is running");
}

QueryDbLock::Rebuild::~Rebuild() { lock_.unlock(kRebuild); }

}  // namespace esctl
