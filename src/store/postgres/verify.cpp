// verify_store for PostgreSQL stores (see verify.hpp). One REPEATABLE READ, READ ONLY
// transaction, so concurrent appends cause no findings and nothing is written. The events are
// read once in position order through a server-side cursor (bounded memory) and fed to the
// backend-neutral LogicalChecks (store/verify_checks.hpp), with positions expected dense from 1
// up to the store's position counter, since appends take them from it one transaction at a time.
// This file adds the catalog checks (unique indexes, triggers) and the position counter.
#include "store/postgres/verify.hpp"

#include <algorithm>
#include <functional>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/signals.hpp"
#include "store/postgres/store.hpp"
#include "store/verify_checks.hpp"

namespace esctl::pg {
namespace {

constexpr int kFetch = 2000;
struct StreamRow {
  std::string name, category;
};

class Verifier {
 public:
  Verifier(PgStore& store, const VerifyOptions& o, const ViolationFn& report, const ProgressFn& progress)
      : conn_(store.conn()),
        o_(o),
        report_(report),
        progress_(progress),
        checks_(std::bind_front(&Verifier::report, this)) {}

  VerifyCounts run() {
    counts_.storage = "PostgreSQL";
    counts_.storage_check = "catalog";
    conn_.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    load_streams();
    resolve_targets();
    check_catalog();
    if (!o_.narrowed() || o_.stream) {
      scan_events();
      check_streams();
      check_last_versions();
      if (!o_.stream) check_ids();
    }
    if (!o_.narrowed() || !o_.queues.empty()) check_queues();
    conn_.exec("COMMIT");
    return counts_;
  }

 private:
  void report(const char* kind, std::optional<std::int64_t> stream_id, std::optional<std::int64_t> version,
              std::optional<std::int64_t> position, std::string detail) {
    Violation v;
    v.kind = kind;
    if (stream_id) {
      auto it = streams_.find(*stream_id);
      if (it != streams_.end()) v.stream = it->second.name;
    }
    v.version = version;
    v.position = position;
    v.detail = std::move(detail);
    report_(v);
  }

  void load_streams() {
    auto r = conn_.exec("SELECT id, name, category FROM esctl.streams");
    std::int64_t max_id = 0;
    for (int i = 0; i < r.rows(); ++i) max_id = std::max(max_id, r.i64(i, 0));
    checks_.expect_streams(r.rows(), max_id);
    for (int i = 0; i < r.rows(); ++i) {
      streams_.emplace(r.i64(i, 0), StreamRow{std::string(r.text(i, 1)), std::string(r.text(i, 2))});
      checks_.stream_row(r.i64(i, 0));
    }
  }

  void resolve_targets() {
    if (o_.stream) {
      for (const auto& [id, row] : streams_)
        if (row.name == *o_.stream) only_stream_ = id;
      if (!only_stream_) throw Error(Errc::not_found, fmt::format("stream '{}' not found (see 'esctl streams')", *o_.stream));
    }
    for (const auto& q : o_.queues) {
      auto r = conn_.exec("SELECT id FROM esctl.queues WHERE name = $1", {q});
      if (r.rows() == 0) throw Error(Errc::not_found, fmt::format("queue '{}' not found", q));
      queue_ids_.push_back(r.i64(0, 0));
    }
  }

  // The catalog objects the store's guarantees rest on: unique indexes (ids, stream versions)
  // and the triggers that keep events immutable.
  void check_catalog() {
    auto idx = conn_.exec(
        "SELECT c.relname, i.indisunique, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = 'esctl.events'::regclass");
    for (const char* name : {"events_pkey", "events_by_id", "events_by_stream"}) {
      bool ok = false;
      for (int i = 0; i < idx.rows(); ++i)
        if (idx.text(i, 0) == name) ok = idx.text(i, 1) == "t" && idx.text(i, 2) == "t";
      if (!ok)
        report("index", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("unique index '{}' of esctl.events is missing or not valid", name));
    }
    auto trg = conn_.exec(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'esctl.events'::regclass AND NOT tgisinternal");
    for (const char* name : {"events_immutable", "events_immutable_truncate"}) {
      ++counts_.triggers;
      int at = -1;
      for (int i = 0; i < trg.rows(); ++i)
        if (trg.text(i, 0) == name) at = i;
      if (at < 0)
        report("trigger", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("trigger '{}' is missing: stored events can be changed", name));
      else if (trg.text(at, 1) == "D")
        report("trigger", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("trigger '{}' is disabled: stored events can be changed", name));
    }
  }

  // The highest position in the snapshot (0: no events).
  std::int64_t last_position() {
    return conn_.exec("SELECT coalesce(max(position), 0) FROM esctl.events").i64(0, 0);
  }

  void scan_events() {
    store_last_ = last_position();
    if (!only_stream_) {
      auto t = conn_.exec("SELECT ordered_through, max_recorded_at FROM esctl.time_order WHERE id = 1");
      if (t.rows() == 1) checks_.claim_time_order(t.i64(0, 0), t.i64(0, 1));
      checks_.expect_dense_positions();
    }
    if (only_stream_)
      conn_.exec("DECLARE esctl_verify NO SCROLL CURSOR FOR SELECT position, stream_id, version, data, meta, recorded_at "
                 "FROM esctl.events WHERE stream_id = $1 ORDER BY position",
                 {*only_stream_});
    else
      conn_.exec("DECLARE esctl_verify NO SCROLL CURSOR FOR SELECT position, stream_id, version, data, meta, recorded_at "
                 "FROM esctl.events ORDER BY position");
    const std::string fetch = fmt::format("FETCH {} FROM esctl_verify", kFetch);
    for (;;) {
      auto r = conn_.exec(fetch.c_str());
      if (r.rows() == 0) break;
      for (int i = 0; i < r.rows(); ++i) {
        const std::int64_t p = r.i64(i, 0), sid = r.i64(i, 1), v = r.i64(i, 2);
        ++counts_.events;
        checks_.event(p, sid, v, r.i64(i, 5));
        checks_.payload(p, sid, v, r.text(i, 3), r.text(i, 4));
      }
      check_interrupted();
      if (progress_) progress_(checks_.last_position(), store_last_, counts_.events);
    }
    conn_.exec("CLOSE esctl_verify");
    if (progress_) progress_(store_last_, store_last_, counts_.events);
    if (!only_stream_) {
      auto c = conn_.exec("SELECT value FROM esctl.counters WHERE name = 'position'");
      if (c.rows() != 1)
        report("position_counter", std::nullopt, std::nullopt, std::nullopt,
               "the position counter row is missing: appends cannot take positions");
      else if (c.i64(0, 0) != checks_.last_position())
        report("position_counter", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("the position counter says {}, but the last event is at position {}", c.i64(0, 0),
                           checks_.last_position()));
    }
    checks_.end_scan(true);
  }

  void check_streams() {
    for (const auto& [id, row] : streams_) {
      if (only_stream_ && id != *only_stream_) continue;
      ++counts_.streams;
      checks_.stream_category(id, row.name, row.category);
    }
  }

  // Every stream with events has a row in stream_heads naming its last version and where it is;
  // no other such rows exist.
  void check_last_versions() {
    auto r = only_stream_
                 ? conn_.exec("SELECT stream_id, head, head_position FROM esctl.stream_heads WHERE stream_id = $1",
                              {*only_stream_})
                 : conn_.exec("SELECT stream_id, head, head_position FROM esctl.stream_heads");
    for (int i = 0; i < r.rows(); ++i) checks_.last_version_row(r.i64(i, 0), r.i64(i, 1), r.i64(i, 2));
    checks_.end_last_version_rows();
  }

  // Ids are unique by an index; this finds duplicates even if that index was dropped.
  void check_ids() {
    counts_.ids = counts_.events;
    auto r = conn_.exec(
        "SELECT e.position, e.stream_id, e.version, e.id, "
        "       (SELECT min(o.position) FROM esctl.events o WHERE o.id = e.id AND o.position <> e.position) "
        "FROM esctl.events e WHERE e.id IN (SELECT id FROM esctl.events GROUP BY id HAVING count(*) > 1) "
        "ORDER BY e.position LIMIT 1000");
    for (int i = 0; i < r.rows(); ++i)
      checks_.id_duplicate(r.i64(i, 1), r.i64(i, 2), r.i64(i, 0), r.text(i, 3), r.i64(i, 4));
  }

  // Queues: the cursor is within the store, and every event in flight (item rows) exists, in the
  // stream the row says, at or below the cursor.
  void check_queues() {
    const std::int64_t last = last_position();
    auto q = conn_.exec("SELECT id, name, cursor FROM esctl.queues ORDER BY name");
    for (int i = 0; i < q.rows(); ++i) {
      const std::int64_t qid = q.i64(i, 0), cursor = q.i64(i, 2);
      if (!queue_ids_.empty() && std::find(queue_ids_.begin(), queue_ids_.end(), qid) == queue_ids_.end()) continue;
      ++counts_.queues;
      const std::string name(q.text(i, 1));
      checks_.queue_cursor(name, cursor, last);
      auto items = conn_.exec(
          "SELECT qi.position, qi.stream_id, e.stream_id, e.version FROM esctl.queue_items qi "
          "LEFT JOIN esctl.events e ON e.position = qi.position WHERE qi.queue_id = $1 ORDER BY qi.position",
          {qid});
      for (int j = 0; j < items.rows(); ++j) {
        ++counts_.queue_items;
        const std::int64_t pos = items.i64(j, 0);
        std::optional<LogicalChecks::StoredEvent> stored;
        if (!items.is_null(j, 2)) stored = LogicalChecks::StoredEvent{items.i64(j, 2), items.i64(j, 3), {}, {}};
        checks_.in_flight(name, "item", pos, items.i64(j, 1), stored, nullptr, cursor);
      }
    }
  }

  Conn& conn_;
  const VerifyOptions& o_;
  const ViolationFn& report_;
  const ProgressFn& progress_;
  LogicalChecks checks_;
  VerifyCounts counts_;
  std::unordered_map<std::int64_t, StreamRow> streams_;
  std::optional<std::int64_t> only_stream_;
  std::vector<std::int64_t> queue_ids_;
  std::int64_t store_last_ = 0;  // the store's last position (its head position), for progress
};

}  // namespace

VerifyCounts verify_store(const VerifyOptions& o, const ViolationFn& on_violation, const ProgressFn& on_progress) {
  PgStore store(o.location, o.busy_timeout_ms, Access::read);
  Verifier v(store, o, on_violation, on_progress);
  return v.run();
}

}  // namespace esctl::pg
