// Thin RAII wrapper over the SQLite C API: connection, cached prepared statements, transactions.
// The only place SQLite result codes are read and turned into esctl::Errc. Knows no schema.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace esctl::sql {

class Db;

/// A prepared statement. Owned by Db's cache (Db::prepare) or standalone (Db::prepare_new).
class Stmt {
 public:
  Stmt(Db& db, sqlite3_stmt* s) : db_(&db), s_(s) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt();

  Stmt& bind(int i, std::int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view text);  ///< TEXT, copied
  Stmt& bind(int i, const char* text) { return bind(i, std::string_view(text)); }
  Stmt& bind_blob(int i, std::string_view bytes);
  /// Like bind/bind_blob but not copied: the bytes must stay valid until reset() (hot paths).
  Stmt& bind_static(int i, std::string_view text);
  Stmt& bind_blob_static(int i, std::string_view bytes);
  Stmt& bind_null(int i);
  /// Binds by name (":name"); silently ignores names the statement does not use.
  int param_index(const char* name) const;

  /// Steps once: true if a row is available, false when done. Throws on error.
  bool step();
  /// Steps to completion, expecting no rows (an INSERT/UPDATE...).
  void run();
  /// Resets and clears bindings so the statement can be reused.
  void reset();

  std::int64_t i64(int col) const;
  double f64(int col) const;
  std::string_view text(int col) const;  ///< valid until the next step/reset
  std::string_view blob(int col) const;
  bool is_null(int col) const;
  int column_count() const;
  sqlite3_stmt* raw() const { return s_; }

 private:
  Db* db_;
  sqlite3_stmt* s_;
};

/// Resets a cached statement when the scope ends, so it never holds a read snapshot open.
class StmtScope {
 public:
  explicit StmtScope(Stmt& s) : s_(s) {}
  ~StmtScope() { s_.reset(); }
  Stmt* operator->() { return &s_; }
  Stmt& operator*() { return s_; }

 private:
  Stmt& s_;
};

enum class OpenMode { read_only, read_write, create };

/// State of one connection's busy handler (see wait_for_lock in sqlite.cpp).
struct BusyWait {
  int timeout_ms = 0;
  std::chrono::steady_clock::time_point since;
  std::uint64_t rng = 1;
};

class Db {
 public:
  /// Opens `path`. read_only opens without the right to write; create may create the file.
  /// `noun` names the file in messages: "store", or "query db".
  Db(const std::string& path, OpenMode mode, int busy_timeout_ms, std::string noun = "store");
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  void exec(const char* sql);
  /// A statement cached on this connection for its lifetime; reset it (StmtScope) after use.
  Stmt& prepare(const char* sql);
  /// A fresh statement owned by the caller.
  Stmt prepare_new(std::string_view sql);
  std::int64_t query_i64(const char* sql);
  std::int64_t last_insert_rowid() const;
  int changes() const;
  const std::string& path() const { return path_; }
  sqlite3* raw() const { return db_; }

  /// Best effort: checkpoints the WAL; when at least `restart_frames` frames are in it, with
  /// SQLITE_CHECKPOINT_RESTART (the next writer starts the WAL over), waiting at most `wait_ms`
  /// for the locks that needs. Returns the frames in the WAL, or -1 if it could not look.
  int checkpoint(int restart_frames, int wait_ms);
  /// Throws the esctl::Error for SQLite result `rc`, with `what` as context.
  [[noreturn]] void fail(int rc, std::string_view what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  std::string noun_;
  BusyWait busy_;
  std::map<std::string, std::unique_ptr<Stmt>, std::less<>> cache_;
};

/// BEGIN IMMEDIATE (or DEFERRED for read snapshots) ... COMMIT; rolls back if not committed.
/// Inside another Txn of the same connection it is a savepoint of it: commit releases it into
/// the outer transaction, which alone decides (so a caller can run a whole operation, e.g. to
/// check its outcome or to preview it, and still roll it back).
class Txn {
 public:
  enum Kind { deferred, immediate };
  explicit Txn(Db& db, Kind kind = immediate);
  Txn(const Txn&) = delete;
  ~Txn();
  void commit();

 private:
  Db& db_;
  bool open_ = false;
  bool nested_ = false;
};

std::string_view library_version();

/// The first 16 bytes of the file at `path` (fewer if it is shorter), or nullopt if it cannot
/// be opened (errno says why). Safe while this process has SQLite connections to the file:
/// closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
/// included, which would let another process checkpoint and reset a WAL still in use here. So
/// the descriptor opened for a file is kept, and reused, for the life of the process.
std::optional<std::string> read_header(const std::string& path);

/// True if `header` (from read_header) starts a SQLite database file.
bool is_sqlite_header(std::string_view header);

}  // namespace esctl::sql
