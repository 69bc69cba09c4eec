// A fault-injection SQLite VFS for tests: simulates a power loss at any I/O call (unsynced
// writes dropped, torn at sector granularity, reordered) and fails the Nth I/O call with an I/O
// error or a full disk. Stacked under esctl's WAL VFS (see use_base_vfs_for_tests), so that VFS
// is inside what is tested; the renames and folder fsyncs made outside SQLite (core/fs_ops.hpp)
// are modelled too. Single-threaded: one test drives it at a time.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace esctl::test::fault {

/// Kinds of I/O call, as a bit mask.
enum Kind : unsigned {
  kRead = 1,
  kWrite = 2,
  kSync = 4,
  kTruncate = 8,  ///< and deletes, and renames made through core/fs_ops.hpp
  kLock = 16,
  kMutating = kWrite | kSync | kTruncate,
  kAll = kRead | kWrite | kSync | kTruncate | kLock,
};

/// Registers the VFS ("esctl-fault", over SQLite's default VFS) on first use; returns its name.
const char* vfs_name();

/// Makes every esctl connection go through the fault VFS, under the WAL VFS if `wal_vfs`, or
/// directly, and the renames, deletes and fsyncs of core/fs_ops.hpp (rebuild's swap) through its
/// model too (kSync, kTruncate). Restores esctl's normal VFS and calls when it goes out of scope.
/// No connection may be open.
class Install {
 public:
  explicit Install(bool wal_vfs);
  ~Install();
  Install(const Install&) = delete;
  Install& operator=(const Install&) = delete;
};

/// Runs `fn` once, right after the `n`th time (1-based) a connection's lock on a file whose name
/// ends with `suffix` drops to none (a read or write transaction ended): a moment between two
/// statements, where another process may commit. `fn` may open connections of its own (their
/// unlocks are not counted). Cleared before it runs, and by ~Install.
void on_unlock(std::string suffix, int n, std::function<void()> fn);

/// Forgets every tracked file, counter and pending fault: the files on disk now are as a disk
/// would hold them after a sync. Call with no connection open through the VFS.
void reset();

/// Calls of the kinds in `kinds` made since reset().
std::int64_t calls(unsigned kinds = kAll);
/// The renames, deletes and fsyncs made through core/fs_ops.hpp since reset(), each as the
/// number crash_at(n) gives the call (counting writes, syncs and truncates).
const std::vector<std::int64_t>& outside_calls();
/// write(2)-level writes that reached the base VFS for files whose name ends with `suffix`.
std::int64_t writes_to(const std::string& suffix);

/// Power is lost at the `n`th call (1-based, counting only `kinds`, since reset): that call and
/// every later one fails with an I/O error and changes nothing. n <= 0 cancels.
void crash_at(std::int64_t n, unsigned kinds = kMutating);
/// True once the crash point was reached.
bool crashed();

/// Fails the `n`th call of `kinds` (1-based since reset) with `rc` (an SQLite result code:
/// SQLITE_IOERR_*, SQLITE_FULL, SQLITE_BUSY); every later call too if `sticky`.
void fail_at(std::int64_t n, unsigned kinds, int rc, bool sticky = false);
/// How many calls were failed by fail_at.
std::int64_t failures();
/// What each of those failures hit, in order: "sync of s.db-wal", "write of s.db".
const std::vector<std::string>& failed_calls();

/// How a power loss leaves the disk.
struct CrashOptions {
  std::uint64_t seed = 1;
  double keep = 0.5;      ///< chance that each unsynced write (or truncate) reached the disk
  bool tear = true;       ///< the last kept writes of a file may be cut at 512-byte sectors
  bool reorder = false;   ///< unsynced writes reach the disk in a random order
};

/// What reboot() did, for messages and for the VFS's own tests.
struct CrashReport {
  std::int64_t dropped = 0, kept = 0, torn = 0, vanished = 0, resurrected = 0;
  std::int64_t renames_kept = 0, renames_lost = 0;
  std::string summary() const;
};

/// Rewrites every tracked file as the disk holds it after the power loss, as chosen by
/// `options`, removes the WAL indexes (-shm), then forgets the tracked state (as reset()).
/// Every connection through the VFS must be closed.
CrashReport reboot(const CrashOptions& options);

/// The content of the file at `path` (empty if absent), read directly.
std::string read_file(const std::string& path);

}  // namespace esctl::test::fault
