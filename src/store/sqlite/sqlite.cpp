#include "store/sqlite/sqlite.hpp"

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/signals.hpp"
#include "store/sqlite/wal_vfs.hpp"

namespace esctl::sql {
namespace {

/// True when SQLite opened `path` read-only (file not writable by us) and could not set up the
/// WAL index beside it: no "-shm" file yet and a folder we may not write. SQLite then refuses
/// even to read a WAL-mode database unless it is opened as immutable.
bool needs_immutable_open(sqlite3* db, const std::string& path) {
  if (sqlite3_db_readonly(db, "main") != 1) return false;
  if (::access((path + "-shm").c_str(), F_OK) == 0 || ::access((path + "-wal").c_str(), F_OK) == 0) return false;
  auto dir = std::filesystem::path(path).parent_path();
  return ::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0;
}

/// A "file:" URI for `path` with every byte outside the unreserved set percent-encoded.
std::string immutable_uri(const std::string& path) {
  std::string uri = "file:";
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '.' || c == '_' || c == '-' || c == '~') uri += static_cast<char>(c);
    else uri += fmt::format("%{:02X}", c);
  }
  return uri + "?immutable=1";
}

/// Waits for a lock another connection holds, until the connection's busy timeout.
///
/// SQLite's own handler backs off to one attempt per 100 ms. A writer that commits in a loop
/// (import, drain) holds the write lock for the whole fsync of each commit and frees it only for
/// the few microseconds before its next BEGIN, so a waiter trying that rarely almost never finds
/// it free and times out while the store is making progress. Trying every 0.25-1.25 ms, at
/// random offsets so waiters do not fall into step with a writer, finds those gaps. Each try
/// is one failed lock call: cheap. Stops early on SIGINT.
int wait_for_lock(void* arg, int attempt) {
  auto& w = *static_cast<BusyWait*>(arg);
  auto now = std::chrono::steady_clock::now();
  if (attempt == 0) w.since = now;
  if (interrupted() || now - w.since >= std::chrono::milliseconds(w.timeout_ms)) return 0;
  // xorshift: jitter only, no quality needed; per connection, so no shared state.
  w.rng ^= w.rng << 13;
  w.rng ^= w.rng >> 7;
  w.rng ^= w.rng << 17;
  auto pause = std::chrono::microseconds(250 + static_cast<int>(w.rng % 1000));
  auto left = w.since + std::chrono::milliseconds(w.timeout_ms) - now;
  std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, left));
  return 1;
}

}  // namespace

Stmt::~Stmt() {
  if (s_) sqlite3_finalize(s_);
}

Stmt& Stmt::bind(int i, std::int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  sqlite3_bind_double(s_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view t) {
  sqlite3_bind_text64(s_, i, t.data() ? t.data() : "", t.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}
Stmt& Stmt::bind_blob(int i, std::string_view b) {
  sqlite3_bind_blob64(s_, i, b.data() ? b.data() : "", b.size(), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_static(int i, std::string_view t) {
  sqlite3_bind_text64(s_, i, t.data() ? t.data() : "", t.size(), SQLITE_STATIC, SQLITE_UTF8);
  return *this;
}
Stmt& Stmt::bind_blob_static(int i, std::string_view b) {
  sqlite3_bind_blob64(s_, i, b.data() ? b.data() : "", b.size(), SQLITE_STATIC);
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}
int Stmt::param_index(const char* name) const { return sqlite3_bind_parameter_index(s_, name); }

bool Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3_reset(s_);
  db_->fail(rc, sqlite3_sql(s_));
}

void Stmt::run() {
  while (step()) {
  }
  sqlite3_reset(s_);
}

void Stmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

std::int64_t Stmt::i64(int c) const { return sqlite3_column_int64(s_, c); }
double Stmt::f64(int c) const { return sqlite3_column_double(s_, c); }
std::string_view Stmt::text(int c) const {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
  return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c))) : std::string_view();
}
std::string_view Stmt::blob(int c) const {
  auto p = static_cast<const char*>(sqlite3_column_blob(s_, c));
  return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c))) : std::string_view();
}
bool Stmt::is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
int Stmt::column_count() const { return sqlite3_column_count(s_); }

Db::Db(const std::string& path, OpenMode mode, int busy_timeout_ms, std::string noun)
    : path_(path), noun_(std::move(noun)) {
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  flags |= mode == OpenMode::read_only ? SQLITE_OPEN_READONLY
           : mode == OpenMode::create  ? (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
                                       : SQLITE_OPEN_READWRITE;
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, wal_vfs_name());
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    int err = db_ ? sqlite3_system_errno(db_) : 0;
    sqlite3_close_v2(db_);
    db_ = nullptr;
    if (err == EACCES || err == EPERM)
      throw Error(Errc::read_only, fmt::format("cannot open {} '{}': {}", noun_, path, std::strerror(err)));
    throw Error(Errc::io, fmt::format("cannot open {} '{}': {}", noun_, path, msg));
  }
  // A store we may read but not write, with no writer active (no -wal/-shm) and a folder we
  // cannot create the WAL index in: read it as an immutable snapshot (writes still fail cleanly
  // as read-only). A writer starting while such a reader runs is not seen by that reader.
  if (mode != OpenMode::create && needs_immutable_open(db_, path)) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    rc = sqlite3_open_v2(immutable_uri(path).c_str(), &db_, SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE |
                                                                SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw Error(Errc::io, fmt::format("cannot open {} '{}' read-only: {}", noun_, path, msg));
    }
  }
  busy_.timeout_ms = busy_timeout_ms;
  busy_.rng = reinterpret_cast<std::uintptr_t>(this) ^
              static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^ 1;
  sqlite3_busy_handler(db_, wait_for_lock, &busy_);
  sqlite3_extended_result_codes(db_, 1);
}

Db::~Db() {
  cache_.clear();
  if (db_) sqlite3_close_v2(db_);
}

namespace {
// RLIMIT_FSIZE in bytes, or -1 when there is none.
std::int64_t file_size_limit() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return -1;
  return static_cast<std::int64_t>(rl.rlim_cur);
}
bool file_size_limited() { return file_size_limit() >= 0; }
}  // namespace

void Db::fail(int rc, std::string_view what) const {
  int primary = rc & 0xff;
  std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  int sys = db_ ? sqlite3_system_errno(db_) : 0;
  switch (primary) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      if (interrupted()) throw Error(Errc::interrupted, "interrupted");
      throw Error(Errc::busy,
                  fmt::format("{} '{}' is busy: another process holds its lock; gave up after {}ms "
                              "(raise --busy-timeout to wait longer)",
                              noun_, path_, busy_.timeout_ms));
    case SQLITE_FULL:
      // A write cut short at the file size limit reads as a full disk to SQLite.
      if (file_size_limited())
        throw Error(Errc::io, fmt::format("cannot write {} '{}': disk full or file size limit reached ({}; the "
                                          "limit is {} bytes); free space or raise the limit (ulimit -f) and retry",
                                          noun_, path_, msg, file_size_limit()));
      throw Error(Errc::io, fmt::format("cannot write {} '{}': disk full ({}); free space and retry", noun_, path_, msg));
    case SQLITE_READONLY:
      throw Error(Errc::read_only,
                  fmt::format("cannot write {} '{}': it is read-only ({}); check the file's and its folder's permissions",
                              noun_, path_, msg));
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
      throw Error(Errc::read_only, fmt::format("cannot open {} '{}': {}", noun_, path_, sys ? std::strerror(sys) : msg.c_str()));
    case SQLITE_NOTADB:
      throw Error(Errc::corrupt, fmt::format("'{}' is not an esctl {} (not a SQLite database)", path_, noun_));
    case SQLITE_CORRUPT:
      throw Error(Errc::corrupt, noun_ == "store" ? fmt::format("store '{}' is damaged: {}; run 'esctl verify' for details", path_, msg)
                                                : fmt::format("{} '{}' is damaged: {}; rebuild it ('esctl rebuild')", noun_, path_, msg));
    case SQLITE_INTERRUPT:
      throw Error(Errc::interrupted, "interrupted");
    case SQLITE_IOERR:
      if (sys == EFBIG)
        throw Error(Errc::io, fmt::format("cannot write {} '{}': file size limit reached ({}{}); raise the limit "
                                          "(ulimit -f) or free space and retry",
                                          noun_, path_, std::strerror(sys),
                                          file_size_limited() ? fmt::format("; the limit is {} bytes", file_size_limit())
                                                              : std::string()));
      if (sys == ENOSPC || sys == EDQUOT)
        throw Error(Errc::io, fmt::format("cannot write {} '{}': {}; free space (or raise the file size limit) and retry",
                                          noun_, path_, std::strerror(sys)));
      throw Error(Errc::io, fmt::format("I/O error on {} '{}': {}{}", noun_, path_, msg,
                                        sys ? fmt::format(" ({})", std::strerror(sys)) : std::string()));
    default:
      throw Error(Errc::io, fmt::format("SQLite error on '{}': {} (in: {})", path_, msg, what.substr(0, 200)));
  }
}

int Db::checkpoint(int restart_frames, int wait_ms) {
  int log = 0, done = 0;
  if (sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done) != SQLITE_OK) return -1;
  if (log < restart_frames) return log;
  int saved = busy_.timeout_ms;
  busy_.timeout_ms = wait_ms;
  sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_RESTART, &log, &done);
  busy_.timeout_ms = saved;
  return log;
}

void Db::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (err) sqlite3_free(err);
  if (rc != SQLITE_OK) fail(rc, sql);
}

Stmt& Db::prepare(const char* sql) {
  auto it = cache_.find(std::string_view(sql));
  if (it != cache_.end()) return *it->second;
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) fail(rc, sql);
  auto [ins, _] = cache_.emplace(sql, std::make_unique<Stmt>(*this, s));
  return *ins->second;
}

Stmt Db::prepare_new(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) fail(rc, sql);
  return Stmt(*this, s);
}

std::int64_t Db::query_i64(const char* sql) {
  Stmt s = prepare_new(sql);
  return s.step() ? s.i64(0) : 0;
}

std::int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Db::changes() const { return sqlite3_changes(db_); }

Txn::Txn(Db& db, Kind kind) : db_(db), nested_(sqlite3_get_autocommit(db.raw()) == 0) {
  db_.exec(nested_ ? "SAVEPOINT esctl_nested" : kind == immediate ? "BEGIN IMMEDIATE" : "BEGIN");
  open_ = true;
}

Txn::~Txn() {
  if (!open_) return;
  if (nested_) sqlite3_exec(db_.raw(), "ROLLBACK TO esctl_nested; RELEASE esctl_nested", nullptr, nullptr, nullptr);
  else sqlite3_exec(db_.raw(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Txn::commit() {
  db_.exec(nested_ ? "RELEASE esctl_nested" : "COMMIT");
  open_ = false;
}

std::string_view library_version() { return sqlite3_libversion(); }

std::optional<std::string> read_header(const std::string& path) {
  static std::mutex mu;
  static std::map<std::pair<dev_t, ino_t>, int> kept;  // never closed: see the header
  std::lock_guard lock(mu);
  struct stat st {};
  int fd = -1;
  if (::stat(path.c_str(), &st) == 0) {
    auto it = kept.find({st.st_dev, st.st_ino});
    if (it != kept.end()) fd = it->second;
  }
  if (fd < 0) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    if (::fstat(fd, &st) == 0) kept.emplace(std::make_pair(st.st_dev, st.st_ino), fd);
  }
  char buf[16];
  ssize_t got;
  do got = ::pread(fd, buf, sizeof buf, 0);
  while (got < 0 && errno == EINTR);
  return std::string(buf, got > 0 ? static_cast<std::size_t>(got) : 0);
}

bool is_sqlite_header(std::string_view header) {
  return header.size() >= 16 && header.substr(0, 16) == std::string_view("SQLite format 3\0", 16);
}

}  // namespace esctl::sql
