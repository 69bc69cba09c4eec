// Rebuild of a query db (see rebuild.hpp).
//
// Atomic replacement: the new db is built in `.NAME.rebuild-PID.tmp` in DB's directory (same
// file system, so rename(2) is atomic), with journal_mode=OFF and synchronous=OFF because a
// half-built temporary file is thrown away, never repaired. When complete it is fsynced and
// renamed over DB, and the directory is fsynced (these calls go through core/fs_ops.hpp, which
// the power-loss tests intercept). Query dbs use the rollback journal (never WAL),
// so the file is the whole db: a reader that opens DB gets the old inode or the new one, and
// one that has the old one open keeps reading it. The rename and the queue's hand-over happen
// under QueryDbLock::Swap, and the whole run under QueryDbLock::Rebuild: the protocol with the
// drainers of DB, and why it makes them safe, is written down at the top of query_db_lock.cpp.
// Around the rename we also hold the old db's write lock (RESERVED), against writers from outside
// esctl.
//
// Reading the store: the head H is read once at the start; then positions (0, H] are read in
// chunks of RebuildOptions::chunk positions (and at most kChunkBytes of event data), each chunk
// copied out in a read transaction of its own that ends before the projection runs on it. So no
// snapshot is held for the whole run, nor for most of it (a reader's snapshot keeps the WAL from
// being checkpointed and started over: it would grow with every concurrent append).
// Events are immutable and positions never become visible out of order, so the chunks together
// are exactly the events up to H.
//
// Speed: events are filtered by type before any other column is touched; the per-stream
// checkpoint is kept in memory (a version per stream id) and written once at the end, because
// the temporary file is all-or-nothing.
#include "projection/rebuild.hpp"

#include <dirent.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/fs_ops.hpp"
#include "core/signals.hpp"
#include "core/time.hpp"
#include "projection/projection_db.hpp"
#include "projection/query_db_lock.hpp"
#include "store/queue.hpp"
#include "store/sqlite/sqlite.hpp"

namespace esctl {
namespace {

// Bytes of event data a chunk holds in memory at most (one event larger than this still fits).
constexpr std::size_t kChunkBytes = 8 << 20;

struct PathParts {
  std::string dir, base;
};

PathParts split_path(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

std::string temp_prefix(const std::string& base) { return "." + base + ".rebuild-"; }

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) throw Error(Errc::io, fmt::format("cannot open '{}' to sync it: {}", path, std::strerror(errno)));
  int rc = fs_ops::fsync(fd, path.c_str(), directory);
  int err = errno;
  ::close(fd);
  if (rc != 0) throw Error(Errc::io, fmt::format("cannot sync '{}' to disk: {}", path, std::strerror(err)));
}

// Removes the temporary file (and any journal SQLite left beside it) unless disarmed.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) { remove(); }
  ~TempFile() {
    if (armed_) remove();
  }
  const std::string& path() const { return path_; }
  void disarm() { armed_ = false; }
  void remove() const {
    fs_ops::unlink(path_.c_str());
    fs_ops::unlink((path_ + "-journal").c_str());
  }

 private:
  std::string path_;
  bool armed_ = true;
};

void check_directory(const std::string& path) {
  struct stat st {};
  std::string dir = split_path(path).dir;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(Errc::not_found, fmt::format("cannot build query db '{}': no directory '{}'", path, dir));
}

struct Existing {
  bool exists = false;
  std::string queue;  // the queue it records ("" if none)
};

// What is at DB now: nothing, or a query db made by esctl (anything else is refused).
Existing check_existing(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    throw Error(Errc::io, fmt::format("cannot look at '{}': {}", path, std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) throw Error(Errc::usage, fmt::format("query db '{}' is a directory", path));
  if (!S_ISREG(st.st_mode))
    throw Error(Errc::usage, fmt::format("'{}' is not a regular file; refusing to replace it", path));
  if (st.st_size == 0) return {true, {}};
  // sql::read_header, not fopen/fclose: closing a descriptor would drop this process's locks.
  auto header = sql::read_header(path);
  if (!header) throw Error(Errc::read_only, fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  if (!sql::is_sqlite_header(*header))
    throw Error(Errc::corrupt, fmt::format("'{}' is not a SQLite database; refusing to replace it with a query db", path));
  sql::Db db(path, sql::OpenMode::read_only, 5000, "query db");
  auto kind = detail::query_db_kind(db);
  if (kind == detail::QueryDbKind::foreign) detail::throw_not_a_query_db(path, "replace");
  Existing out{true, {}};
  if (kind == detail::QueryDbKind::ours) {
    auto q = db.prepare_new("SELECT value FROM _esctl_meta WHERE key = 'queue'");
    if (q.step() && !q.is_null(0)) out.queue = std::string(q.text(0));
  }
  return out;
}

// Holds the old db's write lock, so that no drain is in a write transaction on it.
class OldDbLock {
 public:
  OldDbLock(const std::string& path, int busy_timeout_ms) {
    db_ = std::make_unique<sql::Db>(path, sql::OpenMode::read_write, busy_timeout_ms, "query db");
    auto mode = db_->prepare_new("PRAGMA journal_mode");
    if (mode.step() && mode.text(0) == "wal") {
      auto to = db_->prepare_new("PRAGMA journal_mode = DELETE");
      if (!to.step() || to.text(0) != "delete")
        throw Error(Errc::busy, fmt::format("cannot replace '{}': it is in WAL mode and in use; close its other "
                                            "connections and retry",
                                            path));
    }
    db_->exec("BEGIN IMMEDIATE");
    struct stat st {};
    if (::stat((path + "-wal").c_str(), &st) == 0)
      throw Error(Errc::busy, fmt::format("cannot replace '{}': '{}-wal' exists (a connection uses it in WAL mode); "
                                          "close it and retry",
                                          path, path));
  }
  ~OldDbLock() {
    if (db_) db_->exec("ROLLBACK");
  }

 private:
  std::unique_ptr<sql::Db> db_;
};

// How far a rebuild got, for the message of a failure: what DB is now, and what is left undone.
struct Reached {
  bool renamed = false;        // DB names the new db
  bool folder_synced = false;  // and that rename survives a power loss
  std::string queue;           // the queue to hand over ("" if none, or handed over already)
};

/// `e`, with what DB is after the failure added to its message (for the operational failures:
/// I/O, read-only, busy; the others say it already).
[[noreturn]] void rethrow_saying_outcome(const Error& e, const std::string& path, const Reached& r) {
  std::string outcome;
  if (!r.renamed) {
    outcome = fmt::format("; query db '{}' is unchanged", path);
  } else {
    std::string missing;
    if (!r.folder_synced) missing = "not yet durable (a power loss may bring the old one back)";
    if (!r.queue.empty())
      missing += fmt::format("{}queue '{}' was not handed over to it (its drains skip the events the db already has)",
                             missing.empty() ? "" : ", and ", r.queue);
    outcome = missing.empty() ? fmt::format("; query db '{}' is the rebuilt one all the same", path)
                              : fmt::format("; query db '{}' is the rebuilt one now, but {}: rebuild again", path, missing);
  }
  std::string message = e.what() + outcome;
  if (const auto* lost = dynamic_cast<const ConnectionLost*>(&e)) throw ConnectionLost(lost->server(), std::move(message));
  throw Error(e.code(), std::move(message));
}

RebuildResult rebuild_steps(Store& store, std::shared_ptr<const Projection> projection, const RebuildOptions& options,
                            Reached& reached);

}  // namespace

int remove_stale_rebuild_files(const std::string& db_path) {
  auto [dir, base] = split_path(db_path);
  std::string prefix = temp_prefix(base);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  while (dirent* ent = ::readdir(d)) {
    std::string_view name = ent->d_name;
    if (name.substr(0, prefix.size()) != prefix) continue;
    std::string_view rest = name.substr(prefix.size());
    std::size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    std::string_view suffix = rest.substr(digits);
    if (digits == 0 || digits > 9 || (suffix != ".tmp" && suffix != ".tmp-journal")) continue;
    pid_t pid = static_cast<pid_t>(std::stol(std::string(rest.substr(0, digits))));
    if (pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its rebuild may still be running
    if (fs_ops::unlink((dir + "/" + std::string(name)).c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

RebuildResult rebuild(Store& store, std::shared_ptr<const Projection> projection, const RebuildOptions& options) {
  Reached reached;
  try {
    return rebuild_steps(store, std::move(projection), options, reached);
  } catch (const Error& e) {
    if (e.code() != Errc::io && e.code() != Errc::read_only && e.code() != Errc::busy) throw;
    rethrow_saying_outcome(e, options.db_path, reached);
  }
}

namespace {

RebuildResult rebuild_steps(Store& store, std::shared_ptr<const Projection> projection, const RebuildOptions& options,
                            Reached& reached) {
  auto started = std::chrono::steady_clock::now();
  const std::string& path = options.db_path;
  const int busy_ms = store.options().busy_timeout_ms;
  RebuildResult result;
  check_directory(path);

  // One rebuild of DB at a time, from reading the head to the hand-over (query_db_lock.cpp). A
  // dry run takes no lock (it would create the lock file) and only reads.
  std::optional<QueryDbLock> lock;
  std::optional<QueryDbLock::Rebuild> serial;
  if (!options.dry_run) {
    lock.emplace(path, busy_ms);
    serial.emplace(*lock);
  }
  Existing existing;
  try {
    existing = check_existing(path);
  } catch (const Error& e) {
    if (lock && (e.code() == Errc::corrupt || e.code() == Errc::usage)) lock->remove_if_created();  // not a query db
    throw;
  }
  result.replaced = existing.exists;
  if (!options.queue.empty() && !existing.queue.empty() && existing.queue != options.queue)
    throw Error(Errc::conflict,
                fmt::format("query db '{}' is fed from queue '{}', not '{}': handing it over to '{}' would skip "
                            "the unacked events of '{}' (rebuild it with --queue {}, or choose another path for '{}')",
                            path, existing.queue, options.queue, options.queue, options.queue, existing.queue,
                            options.queue));
  const std::string recorded_queue = options.queue.empty() ? existing.queue : options.queue;

  std::optional<QueueInfo> queue;
  if (!options.queue.empty()) queue = Queues(store).get(options.queue);

  // H: the rebuild applies the matching events up to here, then hands the queue over at H.
  const std::int64_t head = store.last_position();
  result.head_position = head;
  if (options.dry_run) {
    if (queue) result.queue_before = Queues(store).status(options.queue, Clock::now());
    result.settled = result.queue_before ? result.queue_before->lag : 0;
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return result;
  }

  remove_stale_rebuild_files(path);
  auto [dir, base] = split_path(path);
  TempFile temp(dir + "/" + temp_prefix(base) + std::to_string(::getpid()) + ".tmp");
  std::vector<std::int64_t> last_version;  // per stream id: last applied version, -1 if none

  {
    detail::ProjectionDb qdb(projection->file(), temp.path(), sql::OpenMode::create, busy_ms);
    auto& db = qdb.db();
    qdb.set_interruptible();
    db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE; "
            "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY");
    if (result.replaced) {
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0) ::chmod(temp.path().c_str(), st.st_mode & 07777);
    }

    std::optional<sql::Txn> txn;
    txn.emplace(db);
    qdb.initialize();
    qdb.prepare_statements("");

    std::optional<StreamFilter> pass;
    if (queue) pass.emplace(store, queue->filter);
    const std::int64_t chunk = std::max<std::int64_t>(1, options.chunk);
    std::int64_t in_txn = 0, seen = 0;
    std::string error;
    // One chunk of matching events, copied out of the store so that its read transaction ends
    // before the projection runs: the snapshot is held only while rows are copied (a small part
    // of the run), so the appenders' checkpoints can start the WAL over in between.
    struct Row {
      const detail::Plan* plan;
      std::int64_t position, stream_id, version, recorded_at;
      std::size_t at;  // in `bytes`: id (16), type, data, meta
      std::uint32_t type_len, data_len, meta_len;
    };
    std::vector<Row> rows;
    std::string bytes;
    // Positions (from, to] in a read transaction of their own, cut short once kChunkBytes are held.
    for (std::int64_t from = 0; from < head;) {
      std::int64_t to = head - from > chunk ? from + chunk : head;
      rows.clear();
      bytes.clear();
      store.read_chunk(from, to, INT64_MAX, [&](const EventRow& e) {
        if ((++seen & 0xff) == 0) check_interrupted();
        const detail::Plan& plan = qdb.plan(e.type);
        if (plan.empty()) return true;
        if (pass && !pass->matches(e.stream_id, e.type)) return true;
        rows.push_back(Row{&plan, e.position, e.stream_id, e.version, e.recorded_at_us, bytes.size(),
                           static_cast<std::uint32_t>(e.type.size()), static_cast<std::uint32_t>(e.data.size()),
                           static_cast<std::uint32_t>(e.meta.size())});
        bytes.append(e.id).append(16 - std::min<std::size_t>(16, e.id.size()), '\0');
        bytes.append(e.type).append(e.data).append(e.meta);
        if (bytes.size() >= kChunkBytes && e.position < to) {
          to = e.position;  // the rest of this chunk comes with the next one
          return false;
        }
        return true;
      });
      for (const Row& r : rows) {
        const char* b = bytes.data() + r.at;
        std::string_view id(b, 16), type(b + 16, r.type_len), data(b + 16 + r.type_len, r.data_len),
            meta(b + 16 + r.type_len + r.data_len, r.meta_len);
        EventRef e{r.position, store.stream_name(r.stream_id), r.version, id, type, data, meta, r.recorded_at};
        ++result.read;
        if (!qdb.run(*r.plan, e, error))
          throw Error(Errc::invalid_input,
                      fmt::format("event {} of stream '{}' (version {}, position {}) failed: {}; '{}' is unchanged "
                                  "(fix the projection or the event and rebuild again)",
                                  e.type, e.stream, e.version, e.position, error, path));
        ++result.applied;
        auto i = static_cast<std::size_t>(r.stream_id);
        if (i >= last_version.size()) last_version.resize(std::max(i + 1, last_version.size() * 2), -1);
        if (last_version[i] < 0) ++result.streams;
        last_version[i] = e.version;
        if (++in_txn >= options.batch) {
          txn->commit();
          check_interrupted();
          txn.emplace(db);
          in_txn = 0;
        }
      }
      check_interrupted();
      if (options.progress) options.progress(to, head);
      from = to;
      // Between chunks, with no snapshot of ours open: checkpoint what the appenders committed
      // meanwhile, and once the WAL holds 4 MiB, make the next append start it over (RESTART,
      // waiting at most 10 ms for the locks). Best effort: cheap when nothing was committed;
      // busy or read-only is ignored.
      if (from < head) store.reclaim_log();
    }
    // The checkpoint: per stream, the last version applied; and what this db was built from.
    auto& put = db.prepare("INSERT INTO _esctl_applied (stream, version) VALUES (?1, ?2)");
    for (std::size_t i = 0; i < last_version.size(); ++i) {
      if (last_version[i] < 0) continue;
      sql::StmtScope p(put);
      p->bind(1, store.stream_name(static_cast<std::int64_t>(i))).bind(2, last_version[i]);
      p->run();
    }
    qdb.set_meta("projection", projection->name());
    qdb.set_meta("projection_hash", projection->hash());
    qdb.set_meta("created_by", "rebuild");
    qdb.set_meta("created_at", format_rfc3339(now_us()));
    qdb.set_meta("store", std::filesystem::absolute(store.location()).lexically_normal().string());
    if (!recorded_queue.empty()) qdb.set_meta("queue", recorded_queue);
    qdb.set_meta("rebuilt_through", head);
    qdb.set_meta("last_position", head);
    txn->commit();
    txn.reset();
    check_interrupted();
    if (options.progress) options.progress(head, head);
  }  // closes the new db: every page is written

  fsync_path(temp.path(), false);
  {
    // Replace and hand over, with no drainer of DB in a transaction meanwhile (Swap). The order
    // makes a crash between the two steps harmless: if the queue's cursor is beyond H (a drain
    // ran during the rebuild), move it back first, so the old db (which saw those events) is
    // never left behind a queue that skipped them; else replace first, so the new db (which saw
    // everything to H) is never behind the queue.
    QueryDbLock::Swap swap(*lock);
    std::optional<OldDbLock> old_db;  // a connection from outside esctl must not be writing either
    if (result.replaced) old_db.emplace(path, busy_ms);
    auto hand_over = [&] { Queues(store).reset(options.queue, StartPoint{StartPoint::at, result.head_position}); };
    if (queue) result.queue_before = Queues(store).status(options.queue, Clock::now());
    bool queue_first = queue && result.queue_before->queue.cursor > result.head_position;
    if (queue_first) hand_over();
    if (fs_ops::rename(temp.path().c_str(), path.c_str()) != 0)
      throw Error(Errc::io, fmt::format("cannot rename '{}' to '{}': {}", temp.path(), path, std::strerror(errno)));
    temp.disarm();
    reached.renamed = true;
    if (queue && !queue_first) reached.queue = options.queue;
    fsync_path(dir, true);
    reached.folder_synced = true;
    old_db.reset();
    if (queue && !queue_first) hand_over();
    reached.queue.clear();
    if (queue) {
      auto after = Queues(store).status(options.queue, Clock::now());
      result.settled = std::max<std::int64_t>(0, result.queue_before->lag - after.lag);
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace
}  // namespace esctl
