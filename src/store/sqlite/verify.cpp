// verify_store for SQLite store files (see store/verify.hpp). Everything runs in one read
// transaction (one snapshot), so appends that commit meanwhile are simply not seen, and nothing is
// ever written. The logical checks are the backend-neutral LogicalChecks (store/verify_checks.hpp),
// fed by one read of the events table in position order; this file adds what only a SQLite file
// has: the integrity pragma, the schema objects and triggers, the prev links (checked against the
// position of version v-1 the scan knows, or by a lookup for anomalous events), the partial
// "marks" index the read path relies on (events whose version is a multiple of 64 are looked up
// in it), ids checked with one ordered scan of their unique index (adjacent duplicates; entry
// count = event count), and the queue rows' own layout (lease runs, front flags).
#include "store/sqlite/verify.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <cctype>
#include <cstdio>
#include <map>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>

#include "core/varint.hpp"
#include "core/error.hpp"
#include "core/filter.hpp"
#include "core/signals.hpp"
#include "core/uuid.hpp"
#include "store/sqlite/event_store.hpp"
#include "store/sqlite/schema.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/verify_checks.hpp"

namespace esctl::sqlite {
namespace {

constexpr std::int64_t kMarkEvery = 64;
constexpr int kIntegrityMessages = 100;

std::string uuid_text(std::string_view raw) {
  if (raw.size() != 16) return fmt::format("({} bytes)", raw.size());
  std::string s;
  append_uuid(s, raw);
  return s;
}

// A "too damaged" failure while reading the header or schema: exit 1 with a plain message.
[[noreturn]] void unreadable(sql::Db& db, const std::string& path, const Error& e) {
  if (e.code() != Errc::corrupt) throw e;
  throw Error(Errc::corrupt, fmt::format("store '{}' is too damaged to verify: its header or schema cannot be read "
                                         "({}); restore it from a backup",
                                         path, sqlite3_errmsg(db.raw())));
}

// Opens without the right to write when that changes nothing on disk. A read-only SQLite
// connection to a WAL store creates -wal/-shm files if they are missing and, unable to remove
// them, leaves them behind; so when there is no -wal file (no writer, nothing to recover) we open
// like any reader does, with writes refused by query_only, and SQLite removes them on close.
std::unique_ptr<sql::Db> open_store_readonly(const VerifyOptions& o) {
  sqlite::check_store_file(o.location, Access::read, "pass --store or set ESCTL_STORE to the store to verify");
  struct stat st {};
  if (::stat(o.location.c_str(), &st) == 0 && st.st_size == 0)
    throw Error(Errc::not_found, fmt::format("no store at '{}' (the file is empty)", o.location));
  std::unique_ptr<sql::Db> db;
  if (::access((o.location + "-wal").c_str(), F_OK) != 0) {
    db = std::make_unique<sql::Db>(o.location, sql::OpenMode::read_write, o.busy_timeout_ms);
    db->exec("PRAGMA query_only = ON");
  } else {
    db = std::make_unique<sql::Db>(o.location, sql::OpenMode::read_only, o.busy_timeout_ms);
  }
  try {
    db->query_i64("PRAGMA application_id");
    db->query_i64("SELECT count(*) FROM sqlite_schema");
  } catch (const Error& e) {
    unreadable(*db, o.location, e);
  }
  prepare_schema(*db, Access::read);
  // A small page cache: the scan reads each page once, and verify must stay small.
  db->exec("PRAGMA cache_size = -8192");
  return db;
}

class Verifier {
 public:
  Verifier(sql::Db& db, const VerifyOptions& o, const ViolationFn& report, const ProgressFn& progress)
      : db_(db),
        o_(o),
        report_(report),
        progress_(progress),
        checks_(std::bind_front(&Verifier::report, this)) {}

  VerifyCounts run() {
    sql::Txn snapshot(db_, sql::Txn::deferred);
    load_schema();
    resolve_targets();
    check_triggers();
    if (!o_.narrowed() || o_.full) check_integrity();
    if (!o_.narrowed() || o_.stream) {
      if (has("table", "events") && has("table", "streams")) {
        guarded("reading streams and events", [&] { scan_events(); });
        guarded("checking ids", [&] { check_ids(); });
        guarded("checking stream rows", [&] { check_streams(); });
        if (has("table", "stream_heads")) guarded("checking stream heads", [&] { check_last_versions(); });
      }
    }
    if (!o_.narrowed() || !o_.queues.empty()) {
      if (has("table", "queues") && has("table", "queue_items") && has("table", "events") && has("table", "streams"))
        guarded("checking queues", [&] { check_queues(); });
    }
    return counts_;
  }

 private:
  // ---- reporting ----
  void report(const char* kind, std::optional<std::int64_t> stream_id, std::optional<std::int64_t> version,
              std::optional<std::int64_t> position, std::string detail) {
    Violation v;
    v.kind = kind;
    if (stream_id) v.stream = name_of(*stream_id);
    v.version = version;
    v.position = position;
    v.detail = std::move(detail);
    report_(v);
  }

  std::optional<std::string> name_of(std::int64_t stream_id) {
    auto it = names_.find(stream_id);
    if (it != names_.end()) return it->second;
    std::optional<std::string> name;
    if (has("table", "streams")) {
      sql::StmtScope s(db_.prepare("SELECT name FROM streams WHERE id = ?1"));
      s->bind(1, stream_id);
      if (s->step()) name = std::string(s->text(0));
    }
    names_.emplace(stream_id, name);
    return name;
  }

  // Damage met while reading becomes an "integrity" finding; the remaining checks still run.
  template <class F>
  void guarded(const char* what, F&& f) {
    try {
      f();
    } catch (const Error& e) {
      if (e.code() != Errc::corrupt) throw;
      report("integrity", std::nullopt, std::nullopt, std::nullopt,
             fmt::format("{} stopped: {}", what, sqlite3_errmsg(db_.raw())));
    }
  }

  // ---- schema objects ----
  void load_schema() {
    auto s = db_.prepare_new("SELECT type, name, coalesce(sql, '') FROM sqlite_schema");
    while (s.step()) schema_[std::string(s.text(0)) + ":" + std::string(s.text(1))] = std::string(s.text(2));
    for (const char* t : {"events", "streams", "stream_heads", "queues", "queue_items"})
      if (!has("table", t))
        report("schema", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("table '{}' is missing; the checks that need it were skipped", t));
  }
  bool has(const char* type, const char* name) const {
    return schema_.count(std::string(type) + ":" + name) > 0;
  }
  const std::string* sql_of(const char* type, const char* name) const {
    auto it = schema_.find(std::string(type) + ":" + name);
    return it == schema_.end() ? nullptr : &it->second;
  }

  void resolve_targets() {
    if (o_.stream) {
      if (!has("table", "streams"))
        throw Error(Errc::not_found, fmt::format("stream '{}' not found: the store has no streams table", *o_.stream));
      sql::StmtScope s(db_.prepare("SELECT id FROM streams WHERE name = ?1"));
      s->bind(1, *o_.stream);
      if (!s->step()) throw Error(Errc::not_found, fmt::format("stream '{}' not found (see 'esctl streams')", *o_.stream));
      only_stream_ = s->i64(0);
    }
    for (const auto& q : o_.queues) {
      std::optional<std::int64_t> id;
      if (has("table", "queues")) {
        sql::StmtScope s(db_.prepare("SELECT id FROM queues WHERE name = ?1"));
        s->bind(1, q);
        if (s->step()) id = s->i64(0);
      }
      if (!id) throw Error(Errc::not_found, fmt::format("queue '{}' not found (see 'esctl queue ls')", q));
      queue_ids_.push_back(*id);
    }
  }

  // ---- triggers ----
  void check_triggers() {
    struct Want {
      const char* name;
      const char* op;
      const char* without;
    };
    for (const Want& w : {Want{"events_immutable_update", "UPDATE", "events can be changed in place"},
                          Want{"events_immutable_delete", "DELETE", "events can be deleted"}}) {
      ++counts_.triggers;
      const std::string* sql = sql_of("trigger", w.name);
      if (!sql) {
        report("trigger", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("trigger '{}' is missing, so {}", w.name, w.without));
        continue;
      }
      std::string up;
      for (char c : *sql)
        if (c != ' ' && c != '\n' && c != '\t' && c != '\r') up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (up.find(fmt::format("BEFORE{}ONEVENTS", w.op)) == std::string::npos ||
          up.find("RAISE(ABORT") == std::string::npos)
        report("trigger", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("trigger '{}' no longer rejects {} on events, so {}", w.name, w.op, w.without));
    }
  }

  // ---- SQLite integrity ----
  void check_integrity() {
    const char* pragma = o_.full ? "integrity_check" : "quick_check";
    counts_.storage_check = pragma;
    try {
      auto s = db_.prepare_new(fmt::format("PRAGMA {}({})", pragma, kIntegrityMessages));
      while (s.step()) {
        std::string_view msg = s.text(0);
        if (msg == "ok") continue;
        // The first message may start with a "*** in database main ***" line; keep one line each.
        constexpr std::string_view kBanner = "*** in database main ***";
        if (msg.substr(0, kBanner.size()) == kBanner) msg.remove_prefix(kBanner.size());
        std::string line;
        for (char c : msg) {
          if (c == '\n' || c == '\r') {
            if (!line.empty() && line.back() != ' ') line.append("; ");
          } else {
            line.push_back(c);
          }
        }
        report("integrity", std::nullopt, std::nullopt, std::nullopt, fmt::format("{}: {}", pragma, line));
      }
    } catch (const Error& e) {
      if (e.code() != Errc::corrupt) throw;
      report("integrity", std::nullopt, std::nullopt, std::nullopt,
             fmt::format("{} could not finish: {}", pragma, sqlite3_errmsg(db_.raw())));
    }
  }

  void load_stream_ids() {
    if (only_stream_) {
      checks_.stream_row(*only_stream_);
      return;
    }
    checks_.expect_streams(db_.query_i64("SELECT count(*) FROM streams"),
                           db_.query_i64("SELECT coalesce(max(id), 0) FROM streams"));
    auto s = db_.prepare_new("SELECT id FROM streams");
    while (s.step()) checks_.stream_row(s.i64(0));
  }

  // ---- the event scan ----
  void scan_events() {
    load_stream_ids();
    store_last_ = sqlite::last_position(db_);
    std::optional<sql::Stmt> mark;
    if (!has("index", "events_marks")) {
      report("index", std::nullopt, std::nullopt, std::nullopt,
             "index 'events_marks' is missing: reading any stream longer than 64 events fails; marks were not checked");
    } else {
      try {
        mark.emplace(db_.prepare_new("SELECT position FROM events INDEXED BY events_marks "
                                     "WHERE stream_id = ?1 AND version = ?2 AND version % 64 = 0"));
      } catch (const Error&) {
        report("index", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("index 'events_marks' cannot serve mark lookups ({}); marks were not checked",
                           sqlite3_errmsg(db_.raw())));
      }
    }
    std::optional<sql::Stmt> same_id;
    if (only_stream_ && has("index", "events_by_id"))
      same_id.emplace(db_.prepare_new("SELECT position FROM events WHERE id = ?1 AND position <> ?2 LIMIT 1"));

    auto s = db_.prepare_new(only_stream_ ? "SELECT position, stream_id, version, prev, id, data, meta, recorded_at "
                                            "FROM events WHERE stream_id = ?1 ORDER BY position"
                                          : "SELECT position, stream_id, version, prev, id, data, meta, recorded_at "
                                            "FROM events ORDER BY position");
    if (only_stream_) s.bind(1, *only_stream_);
    // The time_order claim (recorded_at non-decreasing through a position) that --since/--until
    // searches rely on: a wrong one would make them miss events.
    if (!only_stream_ && has("table", "time_order")) {
      auto t = db_.prepare_new("SELECT ordered_through, max_recorded_at FROM time_order");
      if (t.step()) checks_.claim_time_order(t.i64(0), t.i64(1));
    }
    std::int64_t last_position = 0;
    try {
      while (s.step()) {
        const std::int64_t p = s.i64(0), sid = s.i64(1), v = s.i64(2);
        last_position = p;
        const EventStep step = checks_.event(p, sid, v, s.i64(7));
        ++counts_.events;
        if ((counts_.events & 0xfff) == 0) {
          check_interrupted();
          if (progress_) progress_(p, store_last_, counts_.events);
        }
        check_prev(s, step, sid, v, p);
        if (step.advanced()) check_mark(sid, v, p, mark);
        check_id(s, sid, v, p, same_id);
        checks_.payload(p, sid, v, s.text(5), s.text(6));
      }
      scan_complete_ = true;
    } catch (const Error& e) {
      if (e.code() != Errc::corrupt) throw;
      report("integrity", std::nullopt, std::nullopt, last_position ? std::optional<std::int64_t>(last_position + 1) : std::nullopt,
             fmt::format("reading events stopped after position {}: {}; order, head and id checks that need every "
                         "event were skipped",
                         last_position, sqlite3_errmsg(db_.raw())));
    }
    if (progress_) progress_(store_last_, store_last_, counts_.events);
    checks_.end_scan(scan_complete_);
  }

  // The prev link of an event: of the next version of its stream, the position of version v-1
  // is known; any other is looked up.
  void check_prev(sql::Stmt& s, const EventStep& step, std::int64_t sid, std::int64_t v, std::int64_t p) {
    const bool prev_null = s.is_null(3);
    const std::int64_t prev = s.i64(3);
    if (step.kind == EventStep::invalid) return;
    if (step.kind != EventStep::in_order) {
      check_prev_slow(sid, v, p, prev_null, prev);
      return;
    }
    if (v == 0 ? !prev_null : (prev_null || prev != step.previous_position))
      report("prev_link", sid, v, p,
             v == 0 ? fmt::format("prev is {}, but version 0 has no previous event (prev must be NULL)", prev)
                    : fmt::format("prev is {}, but version {} is at position {}", prev_null ? "NULL" : std::to_string(prev),
                                  v - 1, step.previous_position));
  }

  // The prev link of an event that is not simply the next version of its stream.
  void check_prev_slow(std::int64_t sid, std::int64_t v, std::int64_t p, bool prev_null, std::int64_t prev) {
    if (v == 0) {
      if (!prev_null)
        report("prev_link", sid, v, p, fmt::format("prev is {}, but version 0 has no previous event (prev must be NULL)", prev));
      return;
    }
    if (prev_null) {
      report("prev_link", sid, v, p, fmt::format("prev is NULL, but version {} must link to version {}", v, v - 1));
      return;
    }
    if (prev >= p) {
      report("prev_link", sid, v, p, fmt::format("prev is {}, not below the event's own position", prev));
      return;
    }
    sql::StmtScope q(db_.prepare("SELECT stream_id, version FROM events WHERE position = ?1"));
    q->bind(1, prev);
    if (!q->step()) {
      report("prev_link", sid, v, p, fmt::format("prev is {}, but there is no event at position {}", prev, prev));
    } else if (q->i64(0) != sid) {
      report("prev_link", sid, v, p, fmt::format("prev is {}, an event of another stream", prev));
    } else if (q->i64(1) != v - 1) {
      report("prev_link", sid, v, p, fmt::format("prev is {}, which holds version {}, not version {}", prev, q->i64(1), v - 1));
    }
  }

  void check_mark(std::int64_t sid, std::int64_t v, std::int64_t p, std::optional<sql::Stmt>& mark) {
    if (!mark || v % kMarkEvery != 0) return;
    ++counts_.marks;
    mark->bind(1, sid).bind(2, v);
    bool found = false;
    while (mark->step())
      if (mark->i64(0) == p) found = true;
    mark->reset();
    if (!found)
      report("mark_missing", sid, v, p,
             fmt::format("index 'events_marks' has no entry for this event, so reading versions {}..{} of the stream "
                         "fails (REINDEX events_marks rebuilds the index)",
                         v < kMarkEvery ? 0 : v - kMarkEvery + 1, v));
  }

  void check_id(sql::Stmt& s, std::int64_t sid, std::int64_t v, std::int64_t p, std::optional<sql::Stmt>& same_id) {
    sqlite3_stmt* raw = s.raw();
    int id_type = sqlite3_column_type(raw, 4);
    std::string_view id = s.blob(4);
    if (id_type != SQLITE_BLOB || id.size() != 16) {
      report("id_invalid", sid, v, p,
             id_type == SQLITE_BLOB ? fmt::format("id is a {}-byte blob; ids are 16-byte UUIDs", id.size())
                                    : fmt::format("id is stored as {}, not as a 16-byte blob",
                                                  id_type == SQLITE_NULL      ? "NULL"
                                                  : id_type == SQLITE_TEXT    ? "text"
                                                  : id_type == SQLITE_INTEGER ? "an integer"
                                                                              : "a real"));
    } else if (same_id) {
      ++counts_.ids;
      same_id->bind_blob(1, id).bind(2, p);
      bool dup = same_id->step();
      std::int64_t other = dup ? same_id->i64(0) : 0;
      same_id->reset();
      if (dup) checks_.id_duplicate(sid, v, p, uuid_text(id), other);
    }
  }

  // ---- ids ----
  void check_ids() {
    if (only_stream_) return;  // checked per event during the scan
    {
      if (!has("index", "events_by_id")) {
        report("index", std::nullopt, std::nullopt, std::nullopt,
               "index 'events_by_id' is missing: ids are not unique-checked on append and idempotent appends are slow");
        auto s = db_.prepare_new(
            "SELECT id, count(*), min(position), max(position) FROM events GROUP BY id HAVING count(*) > 1");
        while (s.step())
          report_duplicate_id(s.blob(0), s.i64(2), s.i64(3), s.i64(1));
        counts_.ids = counts_.events;
        return;
      }
      auto s = db_.prepare_new("SELECT id, position FROM events INDEXED BY events_by_id ORDER BY id");
      std::string last;
      int last_type = 0;
      std::int64_t last_position = 0, n = 0;
      while (s.step()) {
        ++n;
        if ((n & 0xffff) == 0) check_interrupted();
        int type = sqlite3_column_type(s.raw(), 0);
        std::string_view id = s.blob(0);
        if (n > 1 && type == last_type && id == last) report_duplicate_id(id, last_position, s.i64(1), 2);
        last.assign(id);
        last_type = type;
        last_position = s.i64(1);
      }
      counts_.ids = n;
      if (scan_complete_ && n != counts_.events)
        report("index", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("index 'events_by_id' has {} entries for {} events (REINDEX events_by_id rebuilds it)", n,
                           counts_.events));
    }
  }

  void report_duplicate_id(std::string_view id, std::int64_t first, std::int64_t at, std::int64_t count) {
    sql::StmtScope q(db_.prepare("SELECT stream_id, version FROM events WHERE position = ?1"));
    q->bind(1, at);
    std::optional<std::int64_t> sid, v;
    if (q->step()) sid = q->i64(0), v = q->i64(1);
    checks_.id_duplicate(sid, v, at, uuid_text(id), first, count);
  }

  // ---- stream rows and their last versions ----
  void check_streams() {
    auto s = db_.prepare_new(only_stream_ ? "SELECT id, name, category FROM streams WHERE id = ?1"
                                          : "SELECT id, name, category FROM streams");
    if (only_stream_) s.bind(1, *only_stream_);
    while (s.step()) {
      ++counts_.streams;
      checks_.stream_category(s.i64(0), s.text(1), s.text(2));
    }
  }

  // Every stream with events has a row in stream_heads naming its last version and where it is;
  // no other such rows exist. Judged only after a complete scan of the events.
  void check_last_versions() {
    if (!scan_complete_) return;
    auto s = db_.prepare_new(only_stream_ ? "SELECT stream_id, head, head_position FROM stream_heads WHERE stream_id = ?1"
                                          : "SELECT stream_id, head, head_position FROM stream_heads");
    if (only_stream_) s.bind(1, *only_stream_);
    while (s.step()) checks_.last_version_row(s.i64(0), s.i64(1), s.i64(2));
    checks_.end_last_version_rows();
  }

  // ---- queues (kept together: the queue tables may still change) ----
  //
  // Layout (see store/queue.cpp): a queue's cursor; its events in flight (all at or below the
  // cursor) are queue_items rows (one per event; the lowest row of each stream is flagged as its
  // front, in the column `head`) or members of queue_runs rows (first deliveries leased
  // together, packed as varint pairs of position delta and stream id). An event is in flight in
  // one form only.
  void check_queues() {
    const std::int64_t store_last = sqlite::last_position(db_);
    const bool runs_table = has("table", "queue_runs");
    const bool front_flags = db_.query_i64("SELECT count(*) FROM pragma_table_info('queue_items') WHERE name = 'head'") > 0;
    auto queues = db_.prepare_new(
        "SELECT id, name, cursor, filter_streams, filter_categories, filter_types FROM queues ORDER BY name");
    auto& event_at = db_.prepare(
        "SELECT e.stream_id, e.version, e.type, s.name FROM events e LEFT JOIN streams s ON s.id = e.stream_id "
        "WHERE e.position = ?1");
    auto& items = db_.prepare("SELECT position, stream_id, state FROM queue_items WHERE queue_id = ?1 ORDER BY position");
    auto& by_stream = db_.prepare(
        "SELECT stream_id, position, head FROM queue_items WHERE queue_id = ?1 ORDER BY stream_id, position");
    auto& item_at = db_.prepare("SELECT 1 FROM queue_items WHERE queue_id = ?1 AND position = ?2");
    while (queues.step()) {
      const std::int64_t qid = queues.i64(0);
      if (!queue_ids_.empty() && std::find(queue_ids_.begin(), queue_ids_.end(), qid) == queue_ids_.end()) continue;
      ++counts_.queues;
      const std::string name(queues.text(1));
      const std::int64_t cursor = queues.i64(2);
      checks_.queue_cursor(name, cursor, store_last);
      const std::optional<EventFilter> filter = queue_filter(name, queues.text(3), queues.text(4), queues.text(5));

      // One event in flight (`what`: "item" or "run member"), checked against the events.
      auto in_flight = [&](const char* what, std::int64_t pos, std::int64_t stream_id) {
        sql::StmtScope e(event_at);
        e->bind(1, pos);
        std::optional<LogicalChecks::StoredEvent> stored;
        if (e->step()) stored = LogicalChecks::StoredEvent{e->i64(0), e->i64(1), e->text(3), e->text(2)};
        checks_.in_flight(name, what, pos, stream_id, stored, filter ? &*filter : nullptr, cursor);
      };

      {
        sql::StmtScope it(items);
        it->bind(1, qid);
        while (it->step()) {
          ++counts_.queue_items;
          const std::int64_t pos = it->i64(0), state = it->i64(2);
          in_flight("item", pos, it->i64(1));
          if (state < 0 || state > 3)
            report("queue_item", std::nullopt, std::nullopt, pos,
                   fmt::format("queue '{}' item has unknown delivery state {}", name, state));
        }
      }
      if (front_flags) {  // exactly the lowest row of each stream is flagged as its front
        sql::StmtScope it(by_stream);
        it->bind(1, qid);
        std::optional<std::int64_t> stream;
        while (it->step()) {
          const bool first = !stream || *stream != it->i64(0);
          stream = it->i64(0);
          if (first != (it->i64(2) != 0))
            report("queue_item", std::nullopt, std::nullopt, it->i64(1),
                   fmt::format("queue '{}' item {} marked as its stream's lowest (head = {}), but it is {}", name,
                               first ? "is not" : "is", it->i64(2), first ? "the lowest" : "not the lowest"));
        }
      }
      if (!runs_table) continue;
      auto runs = db_.prepare_new("SELECT first, last, count, members FROM queue_runs WHERE queue_id = ?1 ORDER BY first");
      runs.bind(1, qid);
      while (runs.step()) {
        const std::int64_t first = runs.i64(0), last = runs.i64(1), count = runs.i64(2);
        const std::string members(runs.blob(3));
        std::vector<std::pair<std::int64_t, std::int64_t>> decoded;  // (position, stream id)
        std::size_t at = 0;
        std::int64_t pos = 0;
        bool ok = true;
        while (ok && at < members.size()) {
          std::uint64_t delta = 0, sid = 0;
          ok = get_varint(members, at, delta) && get_varint(members, at, sid) && delta > 0 && delta < (1ull << 62);
          pos += static_cast<std::int64_t>(delta);
          if (ok) decoded.emplace_back(pos, static_cast<std::int64_t>(sid));
        }
        auto bad_run = [&](std::string detail) {
          report("queue_item", std::nullopt, std::nullopt, first, fmt::format("queue '{}' run at {}: {}", name, first, detail));
        };
        if (!ok) {
          bad_run("its member list is damaged");
          continue;
        }
        if (decoded.empty() || decoded.front().first != first || decoded.back().first != last ||
            static_cast<std::int64_t>(decoded.size()) != count)
          bad_run(fmt::format("says positions {}..{} and {} members, but holds {} members{}", first, last, count,
                              decoded.size(),
                              decoded.empty() ? std::string()
                                              : fmt::format(" from {} to {}", decoded.front().first, decoded.back().first)));
        for (const auto& [p, sid] : decoded) {
          ++counts_.queue_items;
          in_flight("run member", p, sid);
          sql::StmtScope dup(item_at);
          dup->bind(1, qid).bind(2, p);
          if (dup->step())
            report("queue_item", std::nullopt, std::nullopt, p,
                   fmt::format("queue '{}' has position {} both as an item and in the run at {}", name, p, first));
        }
      }
    }
  }

  std::optional<EventFilter> queue_filter(const std::string& queue, std::string_view streams, std::string_view categories,
                                          std::string_view types) {
    EventFilter f;
    struct Field {
      const char* column;
      std::string_view json;
      std::vector<std::string>* into;
    };
    auto& each = db_.prepare("SELECT json_valid(?1) AND json_type(?1) = 'array'");
    auto& values = db_.prepare("SELECT type, value FROM json_each(?1)");
    for (const Field& fl : {Field{"filter_streams", streams, &f.stream_globs}, Field{"filter_categories", categories, &f.categories},
                            Field{"filter_types", types, &f.types}}) {
      bool ok;
      {
        sql::StmtScope s(each);
        s->bind(1, fl.json);
        ok = s->step() && s->i64(0) == 1;
      }
      if (ok) {
        sql::StmtScope s(values);
        s->bind(1, fl.json);
        while (s->step()) {
          if (s->text(0) != "text") ok = false;
          fl.into->emplace_back(s->text(1));
        }
      }
      if (!ok) {
        report("queue_filter", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("queue '{}' has {} '{}', not a JSON array of strings; its items' filter was not checked", queue,
                           fl.column, fl.json.substr(0, 80)));
        return std::nullopt;
      }
    }
    return f;
  }

  sql::Db& db_;
  const VerifyOptions& o_;
  const ViolationFn& report_;
  const ProgressFn& progress_;
  LogicalChecks checks_;
  VerifyCounts counts_;
  std::map<std::string, std::string> schema_;  // "type:name" -> sql
  std::optional<std::int64_t> only_stream_;
  std::vector<std::int64_t> queue_ids_;
  std::unordered_map<std::int64_t, std::optional<std::string>> names_;
  std::int64_t store_last_ = 0;  // the store's last position (its head position), for progress
  bool scan_complete_ = false;
};

}  // namespace

VerifyCounts verify_store(const VerifyOptions& o, const ViolationFn& on_violation, const ProgressFn& on_progress) {
  auto db = open_store_readonly(o);
  Verifier v(*db, o, on_violation, on_progress);
  return v.run();
}

}  // namespace esctl::sqlite
