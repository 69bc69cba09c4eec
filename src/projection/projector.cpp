// The Projector (see projector.hpp).
//
// Effectively-once (Projector::apply): per stream, `_esctl_applied` holds the highest version
// applied; `_esctl_pending` holds events this db failed to apply (or held back behind a failure).
// An event is applied iff version > applied version, or (stream, version) is pending. Per-stream
// delivery order makes "version <= applied" mean "already applied", except for events that were
// skipped while their stream moved on (parked under --on-poison park): those are exactly the ones
// that failed here, hence pending. A global position checkpoint would be wrong: a stream held
// behind a parked event falls behind positions that other streams have passed.
//
// Replacement by `rebuild`: the Projector opens DB and runs each transaction while holding
// QueryDbLock::Use, and first checks that DB still names the file its connection has open (else
// it reopens). Never starting a transaction on a replaced file is what keeps it from taking a
// writer's journal of the new file for its own hot journal; the protocol is in query_db_lock.cpp.
//
// Identity: a query db records, in _esctl_meta, the queue it is fed from; a Projector for
// another queue refuses it (Errc::conflict) before writing anything.
#include "projection/projector.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/time.hpp"
#include "projection/projection_db.hpp"
#include "projection/query_db_lock.hpp"
#include "store/sqlite/sqlite.hpp"

namespace esctl {

struct Projector::Impl {
  std::shared_ptr<const Projection> projection;
  std::string path;
  ProjectorOptions options;
  std::unique_ptr<QueryDbLock> lock;  // DB.lock: DB is not replaced while we hold a Use of it
  std::unique_ptr<detail::ProjectionDb> qdb;
  dev_t dev = 0;
  ino_t ino = 0;
  bool created = false;
  bool changed = false;
  std::int64_t last_position = 0;

  void open();  // call holding a Use of `lock`
  bool replaced() const;
};

namespace {
// Errc::conflict if the db records a queue other than `queue` (a db that records none is anyone's).
void check_recorded_queue(detail::ProjectionDb& qdb, const std::string& path, const std::string& queue) {
  if (queue.empty()) return;
  std::string recorded = qdb.meta("queue");
  if (!recorded.empty() && recorded != queue)
    throw Error(Errc::conflict,
                fmt::format("query db '{}' is fed from queue '{}', not '{}': draining '{}' into it would mix the two "
                            "queues' events (drain '{}' into it, or choose another --into for '{}')",
                            path, recorded, queue, queue, recorded, queue));
}
}  // namespace

void Projector::Impl::open() {
  qdb.reset();
  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) throw Error(Errc::usage, fmt::format("query db '{}' is a directory", path));
  if (exists && st.st_size > 0) {
    auto header = sql::read_header(path);
    if (header && !sql::is_sqlite_header(*header))
      throw Error(Errc::corrupt, fmt::format("'{}' is not a SQLite database; refusing to use it as a query db", path));
  }
  qdb = std::make_unique<detail::ProjectionDb>(projection->file(), path, sql::OpenMode::create, options.busy_timeout_ms);
  auto& db = qdb->db();
  // Before anything is changed: refuse a db that is not ours (the store itself, say).
  auto kind = qdb->kind();
  if (kind == detail::QueryDbKind::foreign) detail::throw_not_a_query_db(path, "write to");
  if (kind == detail::QueryDbKind::ours) check_recorded_queue(*qdb, path, options.queue);
  // Rollback journal, not WAL: the db is one file, so `rebuild` can replace it with a rename
  // (a WAL file beside it would belong to the old inode). Durable commits: an event is acked
  // to the queue only after its rows are on disk. EXTRA, not FULL: a commit deletes the journal,
  // and only EXTRA syncs the folder after that; otherwise a power loss can bring the journal
  // back, and the next open rolls the committed batch back while its acks stay in the store.
  {
    auto s = db.prepare_new("PRAGMA journal_mode = DELETE");
    if (s.step() && s.text(0) != "delete")
      throw Error(Errc::busy, fmt::format("query db '{}' is in {} mode and in use elsewhere; esctl keeps query dbs in "
                                          "rollback-journal mode (close its other users and retry)",
                                          path, s.text(0)));
  }
  db.exec("PRAGMA synchronous = EXTRA; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8192");
  created = false;
  {
    sql::Txn txn(db);
    kind = qdb->kind();  // again, under the write lock: another drainer may have created it
    if (kind == detail::QueryDbKind::foreign) detail::throw_not_a_query_db(path, "write to");
    if (kind == detail::QueryDbKind::empty) {
      qdb->initialize();
      qdb->set_meta("projection", projection->name());
      qdb->set_meta("projection_hash", projection->hash());
      qdb->set_meta("created_by", "queue drain");
      qdb->set_meta("created_at", format_rfc3339(now_us()));
      if (!options.store_path.empty())
        qdb->set_meta("store", std::filesystem::absolute(options.store_path).lexically_normal().string());
      if (!options.queue.empty()) qdb->set_meta("queue", options.queue);
      qdb->set_meta("last_position", std::int64_t{0});
      created = true;
    } else if (!options.queue.empty()) {
      check_recorded_queue(*qdb, path, options.queue);  // again, under the write lock
      if (qdb->meta("queue").empty()) qdb->set_meta("queue", options.queue);
    }
    txn.commit();
  }
  qdb->prepare_statements(created ? std::string() : path);
  changed = qdb->meta("projection_hash") != projection->hash();
  std::string last = qdb->meta("last_position");
  last_position = last.empty() ? 0 : std::strtoll(last.c_str(), nullptr, 10);
  if (::stat(path.c_str(), &st) == 0) {
    dev = st.st_dev;
    ino = st.st_ino;
  }
}

bool Projector::Impl::replaced() const {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(Errc::not_found, fmt::format("query db '{}' disappeared while esctl was writing to it", path));
  return st.st_dev != dev || st.st_ino != ino;
}

Projector::Projector(std::shared_ptr<const Projection> projection, const std::string& db_path,
                     const ProjectorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->projection = std::move(projection);
  impl_->path = db_path;
  impl_->options = options;
  impl_->lock = std::make_unique<QueryDbLock>(db_path, options.busy_timeout_ms);
  try {
    QueryDbLock::Use use(*impl_->lock);
    impl_->open();
  } catch (const Error& e) {
    if (e.code() == Errc::corrupt || e.code() == Errc::usage) impl_->lock->remove_if_created();  // not a query db
    throw;
  }
}

Projector::~Projector() = default;

bool Projector::created() const { return impl_->created; }
bool Projector::projection_changed() const { return impl_->changed; }
const std::string& Projector::path() const { return impl_->path; }

std::vector<ApplyResult> Projector::apply(std::span<const Event> batch) {
  std::vector<EventRef> refs;
  refs.reserve(batch.size());
  for (const auto& e : batch) refs.push_back(e.ref());
  return apply(std::span<const EventRef>(refs));
}

std::vector<ApplyResult> Projector::apply(std::span<const EventRef> batch) {
  std::vector<ApplyResult> out(batch.size());
  if (batch.empty()) return out;
  // No rename of DB while we hold this: check that DB is still our file BEFORE any transaction.
  QueryDbLock::Use use(*impl_->lock);
  if (impl_->replaced()) impl_->open();
  auto* db = &impl_->qdb->db();
  std::optional<sql::Txn> txn;
  txn.emplace(*db);
  auto& qdb = *impl_->qdb;
  auto& get_applied = db->prepare("SELECT version FROM _esctl_applied WHERE stream = ?1");
  auto& set_applied = db->prepare(
      "INSERT INTO _esctl_applied (stream, version) VALUES (?1, ?2) "
      "ON CONFLICT (stream) DO UPDATE SET version = max(version, excluded.version)");
  auto& is_pending = db->prepare("SELECT 1 FROM _esctl_pending WHERE stream = ?1 AND version = ?2");
  auto& add_pending = db->prepare(
      "INSERT OR REPLACE INTO _esctl_pending (stream, version, position, reason) VALUES (?1, ?2, ?3, ?4)");
  auto& del_pending = db->prepare("DELETE FROM _esctl_pending WHERE stream = ?1 AND version = ?2");
  auto& savepoint = db->prepare("SAVEPOINT esctl_event");
  auto& release = db->prepare("RELEASE esctl_event");

  bool any_pending = db->query_i64("SELECT EXISTS (SELECT 1 FROM _esctl_pending)") != 0;
  std::unordered_map<std::string_view, std::int64_t> applied;  // stream -> version, this batch
  std::unordered_map<std::string_view, std::int64_t> held;     // stream -> position that failed
  std::int64_t last = impl_->last_position;

  auto applied_version = [&](std::string_view stream) {
    auto it = applied.find(stream);
    if (it != applied.end()) return it->second;
    sql::StmtScope s(get_applied);
    s->bind(1, stream);
    std::int64_t v = s->step() ? s->i64(0) : -1;
    applied.emplace(stream, v);
    return v;
  };
  auto record_pending = [&](const EventRef& e, const std::string& reason) {
    sql::StmtScope s(add_pending);
    s->bind(1, e.stream).bind(2, e.version).bind(3, e.position).bind(4, reason);
    s->run();
    any_pending = true;
  };

  for (std::size_t i = 0; i < batch.size(); ++i) {
    const EventRef& e = batch[i];
    ApplyResult& r = out[i];
    r.position = e.position;
    if (auto h = held.find(e.stream); h != held.end()) {
      r.ok = false;
      r.held = true;
      r.error = fmt::format("held behind position {} of stream '{}', which failed", h->second, e.stream);
      record_pending(e, r.error);
      continue;
    }
    std::int64_t done = applied_version(e.stream);
    bool pending = false;
    if (e.version <= done) {
      if (any_pending) {
        sql::StmtScope s(is_pending);
        s->bind(1, e.stream).bind(2, e.version);
        pending = s->step();
      }
      if (!pending) continue;  // applied before: a redelivery
    }
    const detail::Plan& plan = qdb.plan(e.type);
    if (plan.empty()) {
      if (pending) {
        sql::StmtScope s(del_pending);
        s->bind(1, e.stream).bind(2, e.version);
        s->run();
      }
      continue;
    }
    savepoint.run();
    std::string error;
    if (!qdb.run(plan, e, error)) {
      db->exec("ROLLBACK TO esctl_event; RELEASE esctl_event");
      r.ok = false;
      r.error = std::move(error);
      held.emplace(e.stream, e.position);
      record_pending(e, r.error);
      continue;
    }
    {
      sql::StmtScope s(set_applied);
      s->bind(1, e.stream).bind(2, e.version);
      s->run();
    }
    if (pending || any_pending) {
      sql::StmtScope s(del_pending);
      s->bind(1, e.stream).bind(2, e.version);
      s->run();
    }
    release.run();
    applied[e.stream] = std::max(done, e.version);
    r.applied = true;
    last = std::max(last, e.position);
  }
  if (last != impl_->last_position) qdb.set_meta("last_position", last);
  txn->commit();
  impl_->last_position = last;
  return out;
}

}  // namespace esctl
