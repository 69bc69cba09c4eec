// Queue rows in a PostgreSQL store (see queue_rows.hpp).
//
// Drainers of one queue may run in several processes on several machines. Every write
// transaction of a queue operation first locks the queue's row (`SELECT ... FOR UPDATE` in
// find_queue), so the operations on one queue run one at a time, as on SQLite, whose store has one
// writer: the delivery algorithm (store/queue.cpp) sees the rows of its queue change only under
// its own hand, which keeps per-stream order and fencing exactly as they are on SQLite. Operations
// on different queues do not wait for each other (apart from the short lock on the lease counter).
// Reads (status, parked, previews) run in one REPEATABLE READ snapshot and lock nothing.
//
// Times are the server's clock (clock_timestamp(), µs), the one clock every drainer shares; the
// boot part of a Clock is always 0 here. Queue state commits are relaxed with
// synchronous_commit = off: atomic, but the last ones may be lost if the server crashes, which
// at-least-once tolerates (a lost ack or lease means a redelivery).
// The column `head` of queue_items holds a row's front flag (see schema.cpp).
#include "store/postgres/queue_rows.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/uuid.hpp"

namespace esctl::pg {
namespace {

constexpr int kPending = static_cast<int>(QueueState::pending);
constexpr int kLeased = static_cast<int>(QueueState::leased);
constexpr int kParked = static_cast<int>(QueueState::parked);
constexpr std::int64_t kChunk = 1000;

#define ESCTL_PG_ROW_COLUMNS "position, stream_id, state, attempts, coalesce(due, 0), coalesce(lease, 0)"

QueueRow row_at(const Result& r, int i) {
  return QueueRow{r.i64(i, 0), r.i64(i, 1), static_cast<QueueState>(r.i64(i, 2)), r.i64(i, 3), r.i64(i, 4), 0,
                  r.i64(i, 5)};
}

std::string hex_bytea(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A bytea in the server's hex output form; nullopt if it is not one.
std::optional<std::string> unhex_bytea(std::string_view text) {
  if (text.substr(0, 2) != "\\x" || text.size() % 2) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 2 - 1);
  for (std::size_t i = 2; i < text.size(); i += 2) {
    int hi = hex_digit(text[i]), lo = hex_digit(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

class PgQueueTxn final : public QueueRows::Txn {
 public:
  PgQueueTxn(Conn& conn, QueueRows::TxnKind kind) : conn_(conn), nested_(PQtransactionStatus(conn.raw()) != PQTRANS_IDLE) {
    if (nested_) {
      conn_.exec("SAVEPOINT esctl_queue");
    } else if (kind == QueueRows::TxnKind::read) {
      conn_.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    } else {
      write_.emplace(conn_);  // its commit reports a connection lost inside COMMIT as an unknown outcome
      if (kind == QueueRows::TxnKind::write_relaxed) conn_.exec("SET LOCAL synchronous_commit = off");
    }
  }
  ~PgQueueTxn() override {
    if (write_ || done_ || conn_.lost()) return;  // write_ rolls itself back
    const char* sql = nested_ ? "ROLLBACK TO SAVEPOINT esctl_queue; RELEASE SAVEPOINT esctl_queue" : "ROLLBACK";
    if (pg_result* r = PQexec(conn_.raw(), sql)) PQclear(r);
  }
  void commit() override {
    done_ = true;
    if (write_) return write_->commit();
    auto r = conn_.exec(nested_ ? "RELEASE SAVEPOINT esctl_queue" : "COMMIT");
    (void)r;
  }

 private:
  Conn& conn_;
  bool nested_;
  bool done_ = false;
  std::optional<pg::Txn> write_;
};

class PgQueueRows final : public QueueRows {
 public:
  explicit PgQueueRows(Conn& conn) : c_(conn) {}

  std::unique_ptr<Txn> begin(TxnKind kind) override { return std::make_unique<PgQueueTxn>(c_, kind); }

  Clock clock(const Clock&) override {
    auto r = c_.exec("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint");
    const std::int64_t now = r.i64(0, 0);
    return Clock{now, 0, now};
  }

  std::string display() override { return c_.display(); }

  std::int64_t last_position() override {
    return c_.exec("SELECT coalesce(max(position), 0) FROM esctl.events").i64(0, 0);
  }

  std::optional<std::int64_t> next_counter(const char* name) override {
    auto r = c_.exec("UPDATE esctl.counters SET value = value + 1 WHERE name = $1 RETURNING value", {name});
    if (r.rows() == 0) return std::nullopt;
    return r.i64(0, 0);
  }

  std::optional<QueueInfo> find_queue(std::string_view name, bool lock) override {
    // The queue and its filter lists (JSON arrays) in one round trip: one row per list item
    // (k: 0 streams, 1 categories, 2 types), or one row with k NULL when it has none.
    static const std::string sql =
        "SELECT q.id, q.name, q.start_position, q.cursor, q.max_attempts, q.ack_timeout_ms, q.on_poison, "
        "q.generation, q.created_at, q.deliverable_since, f.k, f.v "
        "FROM esctl.queues q LEFT JOIN LATERAL ("
        "  SELECT 0 AS k, x AS v, o FROM json_array_elements_text(q.filter_streams::json) WITH ORDINALITY AS t(x, o)"
        "  UNION ALL SELECT 1, x, o FROM json_array_elements_text(q.filter_categories::json) WITH ORDINALITY AS t(x, o)"
        "  UNION ALL SELECT 2, x, o FROM json_array_elements_text(q.filter_types::json) WITH ORDINALITY AS t(x, o)"
        ") f ON true WHERE q.name = $1 ORDER BY f.k, f.o";
    static const std::string locking = sql + " FOR UPDATE OF q";
    auto r = c_.exec((lock && PQtransactionStatus(c_.raw()) != PQTRANS_IDLE ? locking : sql).c_str(), {name});
    if (r.rows() == 0) return std::nullopt;
    QueueInfo q;
    q.id = r.i64(0, 0);
    q.name = std::string(r.text(0, 1));
    q.start_position = r.i64(0, 2);
    q.cursor = r.i64(0, 3);
    q.max_attempts = r.i64(0, 4);
    q.ack_timeout_ms = r.i64(0, 5);
    q.on_poison = r.text(0, 6) == "park" ? Poison::park : Poison::block;
    q.generation = r.i64(0, 7);
    q.created_at_us = r.i64(0, 8);
    q.deliverable_since_us = r.i64(0, 9);
    for (int i = 0; i < r.rows(); ++i) {
      if (r.is_null(i, 10)) continue;
      auto k = r.i64(i, 10);
      auto& list = k == 0 ? q.filter.stream_globs : k == 1 ? q.filter.categories : q.filter.types;
      list.emplace_back(r.text(i, 11));
    }
    return q;
  }

  bool queue_exists(std::string_view name) override {
    return c_.exec("SELECT 1 FROM esctl.queues WHERE name = $1", {name}).rows() > 0;
  }

  bool insert_queue(const QueueInfo& q, const std::string& streams, const std::string& categories,
                    const std::string& types) override {
    auto r = c_.exec(
        "INSERT INTO esctl.queues (name, filter_streams, filter_categories, filter_types, start_position, cursor, "
        "max_attempts, ack_timeout_ms, on_poison, generation, created_at, deliverable_since, id) "
        "VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, 0, $9, $9, $10) ON CONFLICT (name) DO NOTHING",
        {q.name, streams, categories, types, q.start_position, q.max_attempts, q.ack_timeout_ms,
         poison_name(q.on_poison), q.created_at_us, q.id});
    return r.affected() == 1;
  }

  std::vector<std::string> queue_names(std::string_view prefix) override {
    // Byte order, as on SQLite, whatever the database's collation.
    auto r = c_.exec("SELECT name FROM esctl.queues WHERE name COLLATE \"C\" >= $1 ORDER BY name COLLATE \"C\"", {prefix});
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) {
      std::string_view n = r.text(i, 0);
      if (n.substr(0, prefix.size()) != prefix) break;
      out.emplace_back(n);
    }
    return out;
  }

  void set_cursor(std::int64_t queue, std::int64_t cursor) override {
    c_.exec("UPDATE esctl.queues SET cursor = $2 WHERE id = $1", {queue, cursor});
  }

  void restart_queue(std::int64_t queue, std::int64_t point, std::int64_t since_us) override {
    c_.exec("UPDATE esctl.queues SET start_position = $2, cursor = $2, generation = generation + 1, "
            "deliverable_since = $3 WHERE id = $1",
            {queue, point, since_us});
  }

  void clear_queue(std::int64_t queue, bool and_queue) override {
    c_.exec("DELETE FROM esctl.queue_items WHERE queue_id = $1", {queue});
    c_.exec("DELETE FROM esctl.queue_runs WHERE queue_id = $1", {queue});
    if (and_queue) c_.exec("DELETE FROM esctl.queues WHERE id = $1", {queue});
  }

  std::optional<QueueRow> item(std::int64_t queue, std::int64_t position) override {
    auto r = c_.exec("SELECT " ESCTL_PG_ROW_COLUMNS " FROM esctl.queue_items WHERE queue_id = $1 AND position = $2",
                     {queue, position});
    if (r.rows() == 0) return std::nullopt;
    return row_at(r, 0);
  }

  void fronts(std::int64_t queue, FunctionRef<bool(const QueueRow&)> fn) override {
    std::int64_t after = INT64_MIN;
    for (;;) {
      auto r = c_.exec("SELECT " ESCTL_PG_ROW_COLUMNS " FROM esctl.queue_items WHERE queue_id = $1 AND head "
                       "AND position > $2 ORDER BY position LIMIT $3",
                       {queue, after, kChunk});
      for (int i = 0; i < r.rows(); ++i)
        if (!fn(row_at(r, i))) return;
      if (r.rows() < kChunk) return;
      after = r.i64(r.rows() - 1, 0);
    }
  }

  std::optional<QueueRow> next_in_stream(std::int64_t queue, std::int64_t stream, std::int64_t position) override {
    auto r = c_.exec("SELECT " ESCTL_PG_ROW_COLUMNS " FROM esctl.queue_items WHERE queue_id = $1 AND stream_id = $2 "
                     "AND position > $3 ORDER BY position LIMIT 1",
                     {queue, stream, position});
    if (r.rows() == 0) return std::nullopt;
    return row_at(r, 0);
  }

  std::optional<std::int64_t> first_in_stream(std::int64_t queue, std::int64_t stream) override {
    auto r = c_.exec("SELECT position FROM esctl.queue_items WHERE queue_id = $1 AND stream_id = $2 "
                     "ORDER BY position LIMIT 1",
                     {queue, stream});
    if (r.rows() == 0) return std::nullopt;
    return r.i64(0, 0);
  }

  void set_front(std::int64_t queue, std::int64_t position, bool front) override {
    c_.exec("UPDATE esctl.queue_items SET head = $3 WHERE queue_id = $1 AND position = $2",
            {queue, position, front ? "true" : "false"});
  }

  void insert_item(std::int64_t queue, const QueueRow& row, const std::optional<Clock>& due, bool front) override {
    c_.exec("INSERT INTO esctl.queue_items (queue_id, position, stream_id, state, attempts, due, due_wall, head, lease) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            {queue, row.position, row.stream, static_cast<int>(row.state), row.attempts,
             due ? Param(due->mono_us) : Param(std::nullopt), due ? Param(due->wall_us) : Param(std::nullopt),
             front ? "true" : "false", row.lease ? Param(row.lease) : Param(std::nullopt)});
  }

  std::optional<std::pair<std::int64_t, bool>> delete_item(std::int64_t queue, std::int64_t position) override {
    auto r = c_.exec("DELETE FROM esctl.queue_items WHERE queue_id = $1 AND position = $2 RETURNING stream_id, head",
                     {queue, position});
    if (r.rows() == 0) return std::nullopt;
    return std::make_pair(r.i64(0, 0), r.text(0, 1) == "t");
  }

  void promote_front(std::int64_t queue, std::int64_t stream) override {
    c_.exec("UPDATE esctl.queue_items SET head = true WHERE queue_id = $1 AND position = "
            "(SELECT position FROM esctl.queue_items WHERE queue_id = $1 AND stream_id = $2 ORDER BY position LIMIT 1)",
            {queue, stream});
  }

  void set_state(std::int64_t queue, std::int64_t position, QueueState state, std::int64_t attempts,
                 const std::optional<Clock>& due, std::optional<std::int64_t> wall, const std::string* reason) override {
    c_.exec("UPDATE esctl.queue_items SET state = $3, attempts = $4, due = $5, due_wall = $6, lease = NULL, "
            "reason = CASE WHEN $8::boolean THEN $7::text ELSE reason END WHERE queue_id = $1 AND position = $2",
            {queue, position, static_cast<int>(state), attempts, due ? Param(due->mono_us) : Param(std::nullopt),
             wall ? Param(*wall) : Param(std::nullopt), reason ? Param(*reason) : Param(std::nullopt),
             reason ? "true" : "false"});
  }

  void lease_item(std::int64_t queue, std::int64_t position, const Clock& due, std::int64_t token) override {
    c_.exec("UPDATE esctl.queue_items SET state = $6, attempts = attempts + 1, due = $3, due_wall = $4, lease = $5 "
            "WHERE queue_id = $1 AND position = $2",
            {queue, position, due.mono_us, due.wall_us, token, kLeased});
  }

  void renew_item(std::int64_t queue, std::int64_t position, const Clock& due) override {
    c_.exec("UPDATE esctl.queue_items SET due = $3, due_wall = $4 WHERE queue_id = $1 AND position = $2",
            {queue, position, due.mono_us, due.wall_us});
  }

  std::int64_t park_expired(std::int64_t queue, std::int64_t max_attempts, const Clock& now) override {
    return c_.exec("UPDATE esctl.queue_items SET state = $4, lease = NULL, reason = 'lease expired', due = NULL "
                   "WHERE queue_id = $1 AND state = $5 AND attempts >= $2 AND coalesce(due, 0) <= $3",
                   {queue, max_attempts, now.mono_us, kParked, kLeased})
        .affected();
  }

  void leased_items(std::int64_t queue, FunctionRef<void(const QueueRow&, std::int64_t)> fn) override {
    auto r = c_.exec("SELECT " ESCTL_PG_ROW_COLUMNS ", coalesce(due_wall, 0) FROM esctl.queue_items "
                     "WHERE queue_id = $1 AND state = $2",
                     {queue, kLeased});
    for (int i = 0; i < r.rows(); ++i) fn(row_at(r, i), r.i64(i, 6));
  }

  void state_counts(std::int64_t queue, FunctionRef<void(QueueState, std::int64_t, std::int64_t)> fn) override {
    auto r = c_.exec("SELECT state, count(*), min(position) FROM esctl.queue_items WHERE queue_id = $1 AND state <> $2 "
                     "GROUP BY state",
                     {queue, kLeased});
    for (int i = 0; i < r.rows(); ++i) fn(static_cast<QueueState>(r.i64(i, 0)), r.i64(i, 1), r.i64(i, 2));
  }

  void parked_items(std::int64_t queue,
                    FunctionRef<void(std::int64_t, std::int64_t, std::string_view, std::int64_t)> fn) override {
    auto r = c_.exec("SELECT position, attempts, coalesce(reason, ''), coalesce(due_wall, 0) FROM esctl.queue_items "
                     "WHERE queue_id = $1 AND state = $2 ORDER BY position",
                     {queue, kParked});
    for (int i = 0; i < r.rows(); ++i) fn(r.i64(i, 0), r.i64(i, 1), r.text(i, 2), r.i64(i, 3));
  }

  std::int64_t unpark_all(std::int64_t queue) override {
    return c_.exec("UPDATE esctl.queue_items SET state = $3, attempts = 0, due = NULL, due_wall = NULL "
                   "WHERE queue_id = $1 AND state = $2",
                   {queue, kParked, kPending})
        .affected();
  }

  void item_positions(std::int64_t queue, FunctionRef<void(std::int64_t)> fn) override {
    auto r = c_.exec("SELECT position FROM esctl.queue_items WHERE queue_id = $1", {queue});
    for (int i = 0; i < r.rows(); ++i) fn(r.i64(i, 0));
  }

  void runs(std::int64_t queue, FunctionRef<void(const RunRow&)> fn) override {
    auto r = c_.exec("SELECT first, last, count, members, due, due_wall, lease FROM esctl.queue_runs "
                     "WHERE queue_id = $1 ORDER BY first",
                     {queue});
    std::string members;
    for (int i = 0; i < r.rows(); ++i) {
      auto bytes = unhex_bytea(r.text(i, 3));
      members = bytes ? std::move(*bytes) : std::string("\xff", 1);  // not a varint list: reported as damaged
      fn(RunRow{r.i64(i, 0), r.i64(i, 1), r.i64(i, 2), members, r.i64(i, 4), 0, r.i64(i, 5), r.i64(i, 6)});
    }
  }

  void insert_run(std::int64_t queue, const RunRow& run) override {
    c_.exec("INSERT INTO esctl.queue_runs (queue_id, first, last, count, members, due, due_wall, lease) "
            "VALUES ($1, $2, $3, $4, $5::bytea, $6, $7, $8)",
            {queue, run.first, run.last, run.count, hex_bytea(run.members), run.due_mono, run.due_wall, run.lease});
  }

  void delete_run(std::int64_t queue, std::int64_t first) override {
    c_.exec("DELETE FROM esctl.queue_runs WHERE queue_id = $1 AND first = $2", {queue, first});
  }

  void renew_run(std::int64_t queue, std::int64_t first, const Clock& due) override {
    c_.exec("UPDATE esctl.queue_runs SET due = $3, due_wall = $4 WHERE queue_id = $1 AND first = $2",
            {queue, first, due.mono_us, due.wall_us});
  }

  void events(std::int64_t after, std::int64_t upto, bool payload, std::int64_t hint,
              FunctionRef<bool(const EventRow&)> fn) override {
    const char* sql = payload ? "SELECT position, stream_id, version, id, type, data, meta, recorded_at FROM esctl.events "
                                "WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
                              : "SELECT position, stream_id, version, type FROM esctl.events "
                                "WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3";
    // Chunks start at about what the caller needs and grow: a filter may skip many events.
    std::int64_t chunk = std::clamp<std::int64_t>(hint, 1, kChunk);
    while (after < upto) {
      auto r = c_.exec(sql, {after, upto, chunk});
      for (int i = 0; i < r.rows(); ++i)
        if (!fn(event_row(r, i, payload))) return;
      if (r.rows() < chunk) return;
      after = r.i64(r.rows() - 1, 0);
      chunk = std::min(chunk * 4, kChunk * 10);
    }
  }

  bool event_at(std::int64_t position, FunctionRef<bool(const EventRow&)> fn) override {
    auto r = c_.exec("SELECT position, stream_id, version, id, type, data, meta, recorded_at FROM esctl.events "
                     "WHERE position = $1",
                     {position});
    if (r.rows() == 0) return false;
    fn(event_row(r, 0, true));
    return true;
  }

 private:
  EventRow event_row(const Result& r, int i, bool payload) {
    if (!payload) return EventRow{r.i64(i, 0), r.i64(i, 1), r.i64(i, 2), {}, r.text(i, 3), {}, {}, 0};
    auto id = parse_uuid(r.text(i, 3));
    if (!id)
      throw Error(Errc::corrupt, fmt::format("store '{}' holds a malformed event id '{}'", c_.display(), r.text(i, 3)));
    raw_id_.assign(id->view());
    return EventRow{r.i64(i, 0), r.i64(i, 1), r.i64(i, 2), raw_id_, r.text(i, 4), r.text(i, 5), r.text(i, 6), r.i64(i, 7)};
  }

  Conn& c_;
  std::string raw_id_;
};

}  // namespace

std::unique_ptr<QueueRows> make_queue_rows(Conn& conn) { return std::make_unique<PgQueueRows>(conn); }

}  // namespace esctl::pg
