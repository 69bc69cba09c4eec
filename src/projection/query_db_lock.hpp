// The lock file beside a query db (`DB.lock`) through which `rebuild` and `queue drain
// --projection` agree on when DB may be replaced. The protocol is described at the top of
// query_db_lock.cpp. Used by rebuild.cpp and projector.cpp; not a public API of the commands.
#pragma once
#include <string>

namespace esctl {

/// One open description of `DB.lock` (created if missing, never removed). Each object has its
/// own (OFD) locks, so two objects in one process exclude each other like two processes do.
/// Every wait polls for at most `busy_timeout_ms`, then throws Errc::busy naming the query db.
class QueryDbLock {
 public:
  /// Opens (creating it if needed) `db_path + ".lock"`. Errc::not_found if DB's directory does
  /// not exist, Errc::read_only if the lock file cannot be opened for writing.
  QueryDbLock(const std::string& db_path, int busy_timeout_ms);
  ~QueryDbLock();
  QueryDbLock(const QueryDbLock&) = delete;
  QueryDbLock& operator=(const QueryDbLock&) = delete;

  /// The path of the lock file for `db_path`.
  static std::string lock_path(const std::string& db_path);
  /// Removes the lock file if this object created it: for a path found not to be a query db at
  /// all (no esctl process uses its lock file then), so that refusing it leaves nothing behind.
  void remove_if_created() noexcept;

  /// Held by a user of DB (a drainer) around opening DB and around each of its transactions:
  /// while it is held, DB is not replaced. Shared with other users.
  class Use {
   public:
    explicit Use(QueryDbLock& lock);
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    QueryDbLock& lock_;
  };

  /// Held by the rebuild that replaces DB, around the rename and the queue's hand-over: waits
  /// until no user holds Use, and keeps new users out meanwhile.
  class Swap {
   public:
    explicit Swap(QueryDbLock& lock);
    ~Swap();
    Swap(const Swap&) = delete;
    Swap& operator=(const Swap&) = delete;

   private:
    QueryDbLock& lock_;
  };

  /// Held by a rebuild for its whole run, from reading the store's head to the hand-over:
  /// rebuilds of one DB do not overlap. Throws Errc::busy ("another rebuild of DB is running")
  /// if another holder keeps it past the timeout.
  class Rebuild {
   public:
    explicit Rebuild(QueryDbLock& lock);
    ~Rebuild();
    Rebuild(const Rebuild&) = delete;
    Rebuild& operator=(const Rebuild&) = delete;

   private:
    QueryDbLock& lock_;
  };

 private:
  enum Byte { kGate = 0, kUse = 1, kRebuild = 2 };
  /// Takes byte `b` (shared or exclusive), polling for up to `timeout_ms`; false on timeout.
  bool try_lock(Byte b, bool exclusive, int timeout_ms);
  void lock(Byte b, bool exclusive, const char* waiting_for);
  void unlock(Byte b) noexcept;

  std::string db_path_;
  int fd_ = -1;
  bool created_ = false;
  int busy_timeout_ms_;
};

}  // namespace esctl
