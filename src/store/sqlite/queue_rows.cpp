// Queue rows in a SQLite store file (see queue_rows.hpp). Queue states enter the SQL from the
// QueueState enum: written into the statement text where a partial index needs the literal
// (queue_items_leased is `WHERE state = 1`), bound everywhere else. Write transactions are
// BEGIN IMMEDIATE, the store's one writer; relaxed ones commit with synchronous=NORMAL.
// The column `head` of queue_items holds a row's front flag (see schema.cpp).
#include "store/sqlite/queue_rows.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "store/sqlite/event_store.hpp"
#include "store/sqlite/sqlite.hpp"

namespace esctl::sqlite {
namespace {

constexpr int kLeased = static_cast<int>(QueueState::leased);
constexpr int kParked = static_cast<int>(QueueState::parked);
constexpr int kPending = static_cast<int>(QueueState::pending);
static_assert(kLeased == 1, "queue_items_leased (schema.cpp) indexes state = 1");

#define ESCTL_ROW_COLUMNS "position, stream_id, state, attempts, due_mono, due_boot, coalesce(lease, 0)"
#define ESCTL_EVENT_COLUMNS "position, stream_id, version, id, type, data, meta, recorded_at"

QueueRow read_row(const sql::Stmt& s) {
  return QueueRow{s.i64(0), s.i64(1), static_cast<QueueState>(s.i64(2)), s.i64(3), s.i64(4), s.i64(5), s.i64(6)};
}

EventRow event_row(const sql::Stmt& s, bool payload) {
  if (!payload) return EventRow{s.i64(0), s.i64(1), s.i64(2), {}, s.text(3), {}, {}, 0};
  return EventRow{s.i64(0), s.i64(1), s.i64(2), s.blob(3), s.text(4), s.text(5), s.text(6), s.i64(7)};
}

// Queue state commits need not be fsynced (see Queues): synchronous=NORMAL while in scope.
class RelaxedSync {
 public:
  explicit RelaxedSync(sql::Db& db) : db_(db) { db_.exec("PRAGMA synchronous = NORMAL"); }
  ~RelaxedSync() {
    try {
      db_.exec("PRAGMA synchronous = FULL");
    } catch (...) {
    }
  }

 private:
  sql::Db& db_;
};

class SqliteTxn final : public QueueRows::Txn {
 public:
  SqliteTxn(sql::Db& db, QueueRows::TxnKind kind)
      : relaxed_(kind == QueueRows::TxnKind::write_relaxed ? std::make_unique<RelaxedSync>(db) : nullptr),
        txn_(db, kind == QueueRows::TxnKind::read ? sql::Txn::deferred : sql::Txn::immediate) {}
  void commit() override { txn_.commit(); }

 private:
  std::unique_ptr<RelaxedSync> relaxed_;  // declared first: outlives the transaction
  sql::Txn txn_;
};

std::vector<std::string> json_strings(sql::Db& db, std::string_view text) {
  std::vector<std::string> out;
  sql::StmtScope s(db.prepare("SELECT value FROM json_each(?1)"));
  s->bind(1, text);
  while (s->step()) out.emplace_back(s->text(0));
  return out;
}

class SqliteQueueRows final : public QueueRows {
 public:
  SqliteQueueRows(sql::Db& db, std::string location) : db_(db), location_(std::move(location)) {}

  std::unique_ptr<Txn> begin(TxnKind kind) override { return std::make_unique<SqliteTxn>(db_, kind); }
  // The caller's clock if pinned (tests that move time by hand), else the clocks read now: the
  // write lock is held by then, and a lease that expired while waiting for it counts as expired.
  Clock clock(const Clock& local) override { return local.pinned ? local : Clock::now(); }
  std::string display() override { return location_; }

  std::int64_t last_position() override { return sqlite::last_position(db_); }

  std::optional<std::int64_t> next_counter(const char* name) override {
    sql::StmtScope s(db_.prepare("UPDATE counters SET value = value + 1 WHERE name = ?1 RETURNING value"));
    s->bind(1, name);
    if (!s->step()) return std::nullopt;
    return s->i64(0);
  }

  std::optional<QueueInfo> find_queue(std::string_view name, bool) override {
    QueueInfo q;
    std::string streams, categories, types;
    {
      sql::StmtScope s(db_.prepare(
          "SELECT id, name, filter_streams, filter_categories, filter_types, start_position, cursor, max_attempts, "
          "ack_timeout_ms, on_poison, generation, created_at, deliverable_since FROM queues WHERE name = ?1"));
      s->bind(1, name);
      if (!s->step()) return std::nullopt;
      q.id = s->i64(0);
      q.name = std::string(s->text(1));
      streams = std::string(s->text(2));
      categories = std::string(s->text(3));
      types = std::string(s->text(4));
      q.start_position = s->i64(5);
      q.cursor = s->i64(6);
      q.max_attempts = s->i64(7);
      q.ack_timeout_ms = s->i64(8);
      q.on_poison = s->text(9) == "park" ? Poison::park : Poison::block;
      q.generation = s->i64(10);
      q.created_at_us = s->i64(11);
      q.deliverable_since_us = s->i64(12);
    }
    q.filter.stream_globs = json_strings(db_, streams);
    q.filter.categories = json_strings(db_, categories);
    q.filter.types = json_strings(db_, types);
    return q;
  }

  bool queue_exists(std::string_view name) override {
    sql::StmtScope s(db_.prepare("SELECT 1 FROM queues WHERE name = ?1"));
    s->bind(1, name);
    return s->step();
  }

  bool insert_queue(const QueueInfo& q, const std::string& streams, const std::string& categories,
                    const std::string& types) override {
    if (queue_exists(q.name)) return false;
    sql::StmtScope s(db_.prepare(
        "INSERT INTO queues (name, filter_streams, filter_categories, filter_types, start_position, cursor, max_attempts, "
        "ack_timeout_ms, on_poison, generation, created_at, deliverable_since, id) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, 0, ?9, ?9, ?10)"));
    s->bind(1, q.name)
        .bind(2, streams)
        .bind(3, categories)
        .bind(4, types)
        .bind(5, q.start_position)
        .bind(6, q.max_attempts)
        .bind(7, q.ack_timeout_ms)
        .bind(8, poison_name(q.on_poison))
        .bind(9, q.created_at_us)
        .bind(10, q.id);
    s->run();
    return true;
  }

  std::vector<std::string> queue_names(std::string_view prefix) override {
    std::vector<std::string> out;
    sql::StmtScope s(db_.prepare("SELECT name FROM queues WHERE name >= ?1 ORDER BY name"));
    s->bind(1, prefix);
    while (s->step()) {
      std::string_view n = s->text(0);
      if (n.substr(0, prefix.size()) != prefix) break;
      out.emplace_back(n);
    }
    return out;
  }

  void set_cursor(std::int64_t queue, std::int64_t cursor) override {
    sql::StmtScope s(db_.prepare("UPDATE queues SET cursor = ?2 WHERE id = ?1"));
    s->bind(1, queue).bind(2, cursor);
    s->run();
  }

  void restart_queue(std::int64_t queue, std::int64_t point, std::int64_t since_us) override {
    sql::StmtScope s(db_.prepare(
        "UPDATE queues SET start_position = ?2, cursor = ?2, generation = generation + 1, deliverable_since = ?3 "
        "WHERE id = ?1"));
    s->bind(1, queue).bind(2, point).bind(3, since_us);
    s->run();
  }

  void clear_queue(std::int64_t queue, bool and_queue) override {
    auto run = [&](const char* sql) {
      sql::StmtScope s(db_.prepare(sql));
      s->bind(1, queue);
      s->run();
    };
    run("DELETE FROM queue_items WHERE queue_id = ?1");
    run("DELETE FROM queue_runs WHERE queue_id = ?1");
    if (and_queue) run("DELETE FROM queues WHERE id = ?1");
  }

  std::optional<QueueRow> item(std::int64_t queue, std::int64_t position) override {
    sql::StmtScope s(db_.prepare("SELECT " ESCTL_ROW_COLUMNS " FROM queue_items WHERE queue_id = ?1 AND position = ?2"));
    s->bind(1, queue).bind(2, position);
    if (!s->step()) return std::nullopt;
    return read_row(*s);
  }

  void fronts(std::int64_t queue, FunctionRef<bool(const QueueRow&)> fn) override {
    sql::StmtScope s(
        db_.prepare("SELECT " ESCTL_ROW_COLUMNS " FROM queue_items WHERE queue_id = ?1 AND head ORDER BY position"));
    s->bind(1, queue);
    while (s->step())
      if (!fn(read_row(*s))) return;
  }

  std::optional<QueueRow> next_in_stream(std::int64_t queue, std::int64_t stream, std::int64_t position) override {
    sql::StmtScope s(db_.prepare("SELECT " ESCTL_ROW_COLUMNS
                                 " FROM queue_items WHERE queue_id = ?1 AND stream_id = ?2 AND position > ?3 "
                                 "ORDER BY position LIMIT 1"));
    s->bind(1, queue).bind(2, stream).bind(3, position);
    if (!s->step()) return std::nullopt;
    return read_row(*s);
  }

  std::optional<std::int64_t> first_in_stream(std::int64_t queue, std::int64_t stream) override {
    sql::StmtScope s(db_.prepare(
        "SELECT position FROM queue_items WHERE queue_id = ?1 AND stream_id = ?2 ORDER BY position LIMIT 1"));
    s->bind(1, queue).bind(2, stream);
    if (!s->step()) return std::nullopt;
    return s->i64(0);
  }

  void set_front(std::int64_t queue, std::int64_t position, bool front) override {
    sql::StmtScope u(db_.prepare("UPDATE queue_items SET head = ?3 WHERE queue_id = ?1 AND position = ?2"));
    u->bind(1, queue).bind(2, position).bind(3, front ? 1 : 0);
    u->run();
  }

  void insert_item(std::int64_t queue, const QueueRow& r, const std::optional<Clock>& due, bool front) override {
    sql::StmtScope s(db_.prepare(
        "INSERT INTO queue_items (queue_id, position, stream_id, state, attempts, due_mono, due_boot, due_wall, head, lease) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
    s->bind(1, queue).bind(2, r.position).bind(3, r.stream).bind(4, static_cast<int>(r.state)).bind(5, r.attempts);
    if (due) s->bind(6, due->mono_us).bind(7, due->boot).bind(8, due->wall_us);
    else s->bind_null(6).bind_null(7).bind_null(8);
    s->bind(9, front ? 1 : 0);
    if (r.lease) s->bind(10, r.lease);
    else s->bind_null(10);
    s->run();
  }

  std::optional<std::pair<std::int64_t, bool>> delete_item(std::int64_t queue, std::int64_t position) override {
    sql::StmtScope s(
        db_.prepare("DELETE FROM queue_items WHERE queue_id = ?1 AND position = ?2 RETURNING stream_id, head"));
    s->bind(1, queue).bind(2, position);
    if (!s->step()) return std::nullopt;
    return std::make_pair(s->i64(0), s->i64(1) != 0);
  }

  void promote_front(std::int64_t queue, std::int64_t stream) override {
    sql::StmtScope u(db_.prepare(
        "UPDATE queue_items SET head = 1 WHERE queue_id = ?1 AND position = "
        "(SELECT position FROM queue_items WHERE queue_id = ?1 AND stream_id = ?2 ORDER BY position LIMIT 1)"));
    u->bind(1, queue).bind(2, stream);
    u->run();
  }

  void set_state(std::int64_t queue, std::int64_t position, QueueState state, std::int64_t attempts,
                 const std::optional<Clock>& due, std::optional<std::int64_t> wall, const std::string* reason) override {
    sql::StmtScope s(db_.prepare(
        "UPDATE queue_items SET state = ?3, attempts = ?4, due_mono = ?5, due_boot = ?6, due_wall = ?7, lease = NULL, "
        "reason = CASE WHEN ?9 THEN ?8 ELSE reason END WHERE queue_id = ?1 AND position = ?2"));
    s->bind(1, queue).bind(2, position).bind(3, static_cast<int>(state)).bind(4, attempts);
    if (due) s->bind(5, due->mono_us).bind(6, due->boot);
    else s->bind_null(5).bind_null(6);
    if (wall) s->bind(7, *wall);
    else s->bind_null(7);
    if (reason) s->bind(8, *reason).bind(9, 1);
    else s->bind_null(8).bind(9, 0);
    s->run();
  }

  void lease_item(std::int64_t queue, std::int64_t position, const Clock& due, std::int64_t token) override {
    sql::StmtScope s(db_.prepare(
        "UPDATE queue_items SET state = ?7, attempts = attempts + 1, due_mono = ?3, due_boot = ?4, due_wall = ?5, "
        "lease = ?6 WHERE queue_id = ?1 AND position = ?2"));
    s->bind(1, queue).bind(2, position).bind(3, due.mono_us).bind(4, due.boot).bind(5, due.wall_us).bind(6, token);
    s->bind(7, kLeased);
    s->run();
  }

  void renew_item(std::int64_t queue, std::int64_t position, const Clock& due) override {
    sql::StmtScope s(db_.prepare(
        "UPDATE queue_items SET due_mono = ?3, due_boot = ?4, due_wall = ?5 WHERE queue_id = ?1 AND position = ?2"));
    s->bind(1, queue).bind(2, position).bind(3, due.mono_us).bind(4, due.boot).bind(5, due.wall_us);
    s->run();
  }

  std::int64_t park_expired(std::int64_t queue, std::int64_t max_attempts, const Clock& now) override {
    // The leased state is written into the text: the partial index needs it to be usable.
    static const std::string sql = fmt::format(
        "UPDATE queue_items INDEXED BY queue_items_leased SET state = {}, lease = NULL, reason = 'lease expired', "
        "due_mono = NULL, due_boot = NULL WHERE queue_id = ?1 AND state = {} AND attempts >= ?2 AND "
        "(due_boot <> ?3 OR due_mono <= ?4)",
        kParked, kLeased);
    sql::StmtScope s(db_.prepare(sql.c_str()));
    s->bind(1, queue).bind(2, max_attempts).bind(3, now.boot).bind(4, now.mono_us);
    s->run();
    return db_.changes();
  }

  void leased_items(std::int64_t queue, FunctionRef<void(const QueueRow&, std::int64_t)> fn) override {
    static const std::string sql = fmt::format(
        "SELECT " ESCTL_ROW_COLUMNS ", coalesce(due_wall, 0) FROM queue_items WHERE queue_id = ?1 AND state = {}", kLeased);
    sql::StmtScope s(db_.prepare(sql.c_str()));
    s->bind(1, queue);
    while (s->step()) fn(read_row(*s), s->i64(7));
  }

  void state_counts(std::int64_t queue, FunctionRef<void(QueueState, std::int64_t, std::int64_t)> fn) override {
    sql::StmtScope s(db_.prepare(
        "SELECT state, count(*), min(position) FROM queue_items WHERE queue_id = ?1 AND state <> ?2 GROUP BY state"));
    s->bind(1, queue).bind(2, kLeased);
    while (s->step()) fn(static_cast<QueueState>(s->i64(0)), s->i64(1), s->i64(2));
  }

  void parked_items(std::int64_t queue,
                    FunctionRef<void(std::int64_t, std::int64_t, std::string_view, std::int64_t)> fn) override {
    sql::StmtScope s(db_.prepare(
        "SELECT position, attempts, coalesce(reason, ''), coalesce(due_wall, 0) FROM queue_items "
        "WHERE queue_id = ?1 AND state = ?2 ORDER BY position"));
    s->bind(1, queue).bind(2, kParked);
    while (s->step()) fn(s->i64(0), s->i64(1), s->text(2), s->i64(3));
  }

  std::int64_t unpark_all(std::int64_t queue) override {
    sql::StmtScope s(db_.prepare(
        "UPDATE queue_items SET state = ?3, attempts = 0, due_mono = NULL, due_boot = NULL, due_wall = NULL "
        "WHERE queue_id = ?1 AND state = ?2"));
    s->bind(1, queue).bind(2, kParked).bind(3, kPending);
    s->run();
    return db_.changes();
  }

  void item_positions(std::int64_t queue, FunctionRef<void(std::int64_t)> fn) override {
    sql::StmtScope s(db_.prepare("SELECT position FROM queue_items WHERE queue_id = ?1"));
    s->bind(1, queue);
    while (s->step()) fn(s->i64(0));
  }

  void runs(std::int64_t queue, FunctionRef<void(const RunRow&)> fn) override {
    sql::StmtScope s(db_.prepare(
        "SELECT first, last, count, members, due_mono, due_boot, due_wall, lease FROM queue_runs WHERE queue_id = ?1 "
        "ORDER BY first"));
    s->bind(1, queue);
    while (s->step())
      fn(RunRow{s->i64(0), s->i64(1), s->i64(2), s->blob(3), s->i64(4), s->i64(5), s->i64(6), s->i64(7)});
  }

  void insert_run(std::int64_t queue, const RunRow& r) override {
    sql::StmtScope s(db_.prepare(
        "INSERT INTO queue_runs (queue_id, first, last, count, members, due_mono, due_boot, due_wall, lease) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    s->bind(1, queue).bind(2, r.first).bind(3, r.last).bind(4, r.count);
    s->bind_blob(5, r.members).bind(6, r.due_mono).bind(7, r.due_boot).bind(8, r.due_wall).bind(9, r.lease);
    s->run();
  }

  void delete_run(std::int64_t queue, std::int64_t first) override {
    sql::StmtScope s(db_.prepare("DELETE FROM queue_runs WHERE queue_id = ?1 AND first = ?2"));
    s->bind(1, queue).bind(2, first);
    s->run();
  }

  void renew_run(std::int64_t queue, std::int64_t first, const Clock& due) override {
    sql::StmtScope s(db_.prepare(
        "UPDATE queue_runs SET due_mono = ?3, due_boot = ?4, due_wall = ?5 WHERE queue_id = ?1 AND first = ?2"));
    s->bind(1, queue).bind(2, first).bind(3, due.mono_us).bind(4, due.boot).bind(5, due.wall_us);
    s->run();
  }

  void events(std::int64_t after, std::int64_t upto, bool payload, std::int64_t,
              FunctionRef<bool(const EventRow&)> fn) override {
    const bool open = upto == INT64_MAX;
    const char* sql =
        payload ? (open ? "SELECT " ESCTL_EVENT_COLUMNS " FROM events WHERE position > ?1 ORDER BY position"
                        : "SELECT " ESCTL_EVENT_COLUMNS " FROM events WHERE position > ?1 AND position <= ?2 ORDER BY position")
                : (open ? "SELECT position, stream_id, version, type FROM events WHERE position > ?1 ORDER BY position"
                        : "SELECT position, stream_id, version, type FROM events WHERE position > ?1 AND position <= ?2 "
                          "ORDER BY position");
    // A fresh statement when the cached one is in use (a scan inside another's fn).
    std::optional<sql::Stmt> fresh;
    sql::Stmt* s;
    if (scanning_) s = &fresh.emplace(db_.prepare_new(sql));
    else s = &db_.prepare(sql);
    struct Done {
      sql::Stmt& s;
      bool& scanning;
      bool was;
      ~Done() { s.reset(); scanning = was; }
    } done{*s, scanning_, scanning_};
    scanning_ = true;
    s->bind(1, after);
    if (!open) s->bind(2, upto);
    while (s->step())
      if (!fn(event_row(*s, payload))) return;
  }

  bool event_at(std::int64_t position, FunctionRef<bool(const EventRow&)> fn) override {
    sql::StmtScope s(db_.prepare("SELECT " ESCTL_EVENT_COLUMNS " FROM events WHERE position = ?1"));
    s->bind(1, position);
    if (!s->step()) return false;
    fn(event_row(*s, true));
    return true;
  }

 private:
  sql::Db& db_;
  std::string location_;
  bool scanning_ = false;
};

}  // namespace

std::unique_ptr<QueueRows> make_queue_rows(sql::Db& db, const std::string& location) {
  return std::make_unique<SqliteQueueRows>(db, location);
}

}  // namespace esctl::sqlite
