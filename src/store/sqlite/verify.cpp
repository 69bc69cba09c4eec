// Store verification. Everything runs in one read transaction (one snapshot), so appends that
// commit meanwhile are simply not seen, and nothing is ever written.
//
// The event scan reads the events table once in position order and keeps, per stream, the next
// expected version, the position and recorded_at of the highest version seen, and the "holes":
// versions skipped when a higher one appeared. In a sound store the versions of a stream arrive
// as 0, 1, 2, ... in position order. When a version v arrives:
//   v == next        in order; its prev must be the position of version v-1 (known: the head).
//   v >  next        versions next..v-1 become a hole: a gap, unless they turn up later.
//   v <  next, in a hole   it came after a higher version: version_order (the hole shrinks).
//   v <  next, otherwise   seen before: version_duplicate.
// Holes left at the end are version_gap. Anomalous events get their prev link checked by a
// lookup of the row it points to. Events whose version is a multiple of 64 are looked up in the
// partial "marks" index the read path relies on. Ids are checked with one ordered scan of their
// unique index (adjacent duplicates; entry count = event count). Memory: one small state per
// stream, plus holes only where a stream is damaged (capped).
#include "store/verify.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/filter.hpp"
#include "core/json_text.hpp"
#include "core/names.hpp"
#include "core/signals.hpp"
#include "core/uuid.hpp"
#include "store/sqlite/schema.hpp"
#include "store/sqlite/sqlite.hpp"

namespace esctl {
namespace {

constexpr std::int64_t kMarkEvery = 64;
constexpr std::size_t kMaxHoles = 100000;  // across all streams; beyond it order damage is only summarised
constexpr int kIntegrityMessages = 100;

struct Hole {
  std::int64_t lo, hi;             // versions lo..hi not seen yet
  std::int64_t after_version;      // the version that skipped them ...
  std::int64_t after_position;     // ... and where it is
};

struct StreamState {
  std::int64_t next = 0;           // one above the highest version seen
  std::int64_t head_position = 0;  // position of the first event seen with version next-1
  std::int64_t events = 0;
  bool has_row = false;            // the streams table has this id
  bool has_head = false;           // the stream_heads table has this id
  bool missing_reported = false;
  bool holes_overflow = false;
  std::unique_ptr<std::map<std::int64_t, Hole>> holes;  // by lo; only for damaged streams
};

std::string versions_text(std::int64_t lo, std::int64_t hi) {
  return lo == hi ? fmt::format("version {}", lo) : fmt::format("versions {}..{}", lo, hi);
}

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
  struct stat st {};
  if (::stat(o.location.c_str(), &st) != 0)
    throw Error(Errc::not_found,
                fmt::format("no store at '{}' (pass --store or set ESCTL_STORE to the store to verify)", o.location));
  if (S_ISDIR(st.st_mode)) throw Error(Errc::usage, fmt::format("'{}' is a directory, not a store file", o.location));
  if (st.st_size == 0) throw Error(Errc::not_found, fmt::format("no store at '{}' (the file is empty)", o.location));
  {
    auto header = sql::read_header(o.location);
    if (!header) throw Error(Errc::read_only, fmt::format("cannot read store '{}': permission denied", o.location));
    if (!sql::is_sqlite_header(*header))
      throw Error(Errc::corrupt, fmt::format("'{}' is not an esctl store (not a SQLite database)", o.location));
  }
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
      : db_(db), o_(o), report_(report), progress_(progress) {}

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
        if (has("table", "stream_heads")) guarded("checking stream heads", [&] { check_heads(); });
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

  // ---- per-stream state ----
  StreamState& state(std::int64_t id) {
    if (id >= 0 && static_cast<std::uint64_t>(id) < states_.size()) return states_[static_cast<std::size_t>(id)];
    return other_states_[id];
  }
  StreamState* find_state(std::int64_t id) {
    if (id >= 0 && static_cast<std::uint64_t>(id) < states_.size()) return &states_[static_cast<std::size_t>(id)];
    auto it = other_states_.find(id);
    return it == other_states_.end() ? nullptr : &it->second;
  }

  void load_stream_ids() {
    if (only_stream_) {
      state(*only_stream_).has_row = true;
      return;
    }
    std::int64_t n = db_.query_i64("SELECT count(*) FROM streams");
    std::int64_t max_id = db_.query_i64("SELECT coalesce(max(id), 0) FROM streams");
    // Stream ids are dense in practice; a sparse (damaged or hand-edited) table falls back to a map.
    if (max_id >= 0 && max_id <= 4 * n + 4096) states_.resize(static_cast<std::size_t>(max_id) + 1);
    auto s = db_.prepare_new("SELECT id FROM streams");
    while (s.step()) state(s.i64(0)).has_row = true;
  }

  // ---- the event scan ----
  void scan_events() {
    load_stream_ids();
    head_position_ = db_.query_i64("SELECT coalesce(max(position), 0) FROM events");
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
    std::optional<std::int64_t> ordered_through, claimed_max;
    std::int64_t seen_max = INT64_MIN;
    bool order_reported = false;
    if (!only_stream_ && has("table", "time_order")) {
      auto t = db_.prepare_new("SELECT ordered_through, max_recorded_at FROM time_order");
      if (t.step()) {
        ordered_through = t.i64(0);
        claimed_max = t.i64(1);
      }
    }
    std::int64_t last_position = 0;
    try {
      while (s.step()) {
        const std::int64_t p = s.i64(0), sid = s.i64(1), v = s.i64(2);
        last_position = p;
        if (ordered_through && p <= *ordered_through) {
          const std::int64_t at = s.i64(7);
          if (at < seen_max && !order_reported) {
            order_reported = true;
            report("time_order", sid, v, p,
                   fmt::format("recorded_at goes back here, but time_order says it does not up to position {}; "
                               "--since/--until may miss events",
                               *ordered_through));
          }
          seen_max = std::max(seen_max, at);
        }
        ++counts_.events;
        if ((counts_.events & 0xfff) == 0) {
          check_interrupted();
          if (progress_) progress_(p, head_position_, counts_.events);
        }
        StreamState& st = state(sid);
        ++st.events;
        if (!st.has_row && !st.missing_reported) {
          st.missing_reported = true;
          report("stream_missing", std::nullopt, v, p,
                 fmt::format("the event belongs to stream id {}, which has no row in the streams table", sid));
        }
        check_order(s, st, sid, v, p, mark);
        check_payload(s, sid, v, p, same_id);
      }
      scan_complete_ = true;
    } catch (const Error& e) {
      if (e.code() != Errc::corrupt) throw;
      report("integrity", std::nullopt, std::nullopt, last_position ? std::optional<std::int64_t>(last_position + 1) : std::nullopt,
             fmt::format("reading events stopped after position {}: {}; order, head and id checks that need every "
                         "event were skipped",
                         last_position, sqlite3_errmsg(db_.raw())));
    }
    if (progress_) progress_(head_position_, head_position_, counts_.events);
    if (scan_complete_ && ordered_through && !order_reported &&
        (*ordered_through > last_position || (*ordered_through > 0 && seen_max != *claimed_max)))
      report("time_order", std::nullopt, std::nullopt, std::nullopt,
             fmt::format("time_order says recorded_at is in order through position {} with a largest value of {}, "
                         "but the events say otherwise; --since/--until may miss events",
                         *ordered_through, *claimed_max));
    if (scan_complete_) report_gaps();
  }

  void check_order(sql::Stmt& s, StreamState& st, std::int64_t sid, std::int64_t v, std::int64_t p,
                   std::optional<sql::Stmt>& mark) {
    const bool prev_null = s.is_null(3);
    const std::int64_t prev = s.i64(3);
    if (v == st.next) {
      if (v == 0 ? !prev_null : (prev_null || prev != st.head_position))
        report("prev_link", sid, v, p,
               v == 0 ? fmt::format("prev is {}, but version 0 has no previous event (prev must be NULL)", prev)
                      : fmt::format("prev is {}, but version {} is at position {}", prev_null ? "NULL" : std::to_string(prev),
                                    v - 1, st.head_position));
      advance(st, v, p);
      check_mark(sid, v, p, mark);
      return;
    }
    if (v < 0) {
      report("version_invalid", sid, v, p, fmt::format("version {} is negative; versions start at 0", v));
      return;
    }
    if (v > st.next) {
      if (holes_ < kMaxHoles) {
        if (!st.holes) st.holes = std::make_unique<std::map<std::int64_t, Hole>>();
        st.holes->emplace(st.next, Hole{st.next, v - 1, v, p});
        ++holes_;
      } else {
        st.holes_overflow = true;
      }
      check_prev_slow(sid, v, p, prev_null, prev);
      advance(st, v, p);
      check_mark(sid, v, p, mark);
      return;
    }
    // v < next: a late version (it fills a hole) or a repeat.
    if (st.holes) {
      auto it = st.holes->upper_bound(v);
      if (it != st.holes->begin() && std::prev(it)->second.hi >= v) {
        Hole h = std::prev(it)->second;
        st.holes->erase(std::prev(it));
        --holes_;
        report("version_order", sid, v, p,
               fmt::format("version {} is at position {}, after version {} at position {}: positions must increase "
                           "with version",
                           v, p, h.after_version, h.after_position));
        if (v > h.lo) {
          st.holes->emplace(h.lo, Hole{h.lo, v - 1, h.after_version, h.after_position});
          ++holes_;
        }
        if (v < h.hi) {
          st.holes->emplace(v + 1, Hole{v + 1, h.hi, h.after_version, h.after_position});
          ++holes_;
        }
        check_prev_slow(sid, v, p, prev_null, prev);
        return;
      }
    }
    if (st.holes_overflow) {
      report("version_order", sid, v, p,
             fmt::format("version {} at position {} comes after version {} (out of order or a duplicate; too many "
                         "anomalies to tell which)",
                         v, p, st.next - 1));
    } else {
      report("version_duplicate", sid, v, p,
             v == st.next - 1 ? fmt::format("version {} is stored twice: at position {} and at position {}", v,
                                            st.head_position, p)
                              : fmt::format("version {} is stored twice: here and at a lower position", v));
    }
    check_prev_slow(sid, v, p, prev_null, prev);
  }

  static void advance(StreamState& st, std::int64_t v, std::int64_t p) {
    st.next = v + 1;
    st.head_position = p;
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

  void check_payload(sql::Stmt& s, std::int64_t sid, std::int64_t v, std::int64_t p, std::optional<sql::Stmt>& same_id) {
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
      if (dup)
        report("id_duplicate", sid, v, p, fmt::format("id {} is also the id of the event at position {}", uuid_text(id), other));
    }
    for (int col : {5, 6}) {
      if (auto err = json::validate(s.text(col)))
        report("json_invalid", sid, v, p,
               fmt::format("{} is not valid JSON: {} at byte {}", col == 5 ? "data" : "meta", err->message, err->offset));
    }
  }

  void report_gaps() {
    auto emit = [&](std::int64_t sid, StreamState& st) {
      if (st.holes)
        for (const auto& entry : *st.holes) {
          const Hole& h = entry.second;
          report("version_gap", sid, h.lo, h.after_position,
                 h.lo == 0 ? fmt::format("{} missing: the stream starts at version {} (position {})",
                                         versions_text(h.lo, h.hi), h.after_version, h.after_position)
                           : fmt::format("{} missing: no event holds {}; the stream went on with version {} at "
                                         "position {}",
                                         versions_text(h.lo, h.hi), h.lo == h.hi ? "it" : "them", h.after_version,
                                         h.after_position));
        }
      if (st.holes_overflow)
        report("version_gap", sid, std::nullopt, std::nullopt,
               "versions are too disordered to list every gap; the gaps above are the first ones");
    };
    for (std::size_t i = 0; i < states_.size(); ++i)
      if (states_[i].holes || states_[i].holes_overflow) emit(static_cast<std::int64_t>(i), states_[i]);
    std::map<std::int64_t, StreamState*> others;  // report in id order
    for (auto& [id, st] : other_states_)
      if (st.holes || st.holes_overflow) others.emplace(id, &st);
    for (auto& [id, st] : others) emit(id, *st);
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
    std::string others = count > 2 ? fmt::format(" (and {} more)", count - 2) : std::string();
    report("id_duplicate", sid, v, at,
           fmt::format("id {} is also the id of the event at position {}{}", uuid_text(id), first, others));
  }

  // ---- stream rows and heads ----
  void check_streams() {
    auto s = db_.prepare_new(only_stream_ ? "SELECT id, name, category FROM streams WHERE id = ?1"
                                          : "SELECT id, name, category FROM streams");
    if (only_stream_) s.bind(1, *only_stream_);
    while (s.step()) {
      ++counts_.streams;
      const std::int64_t id = s.i64(0);
      const std::string_view name = s.text(1), category = s.text(2);
      if (category != category_of(name))
        report("stream_category", id, std::nullopt, std::nullopt,
               fmt::format("category is '{}', but the category of '{}' is '{}'", category, name, category_of(name)));
    }
  }

  // Every stream with events has a head row naming its highest version and where it is; no
  // other head rows exist. Judged only after a complete scan of the events.
  void check_heads() {
    if (!scan_complete_) return;
    auto s = db_.prepare_new(only_stream_ ? "SELECT stream_id, head, head_position FROM stream_heads WHERE stream_id = ?1"
                                          : "SELECT stream_id, head, head_position FROM stream_heads");
    if (only_stream_) s.bind(1, *only_stream_);
    while (s.step()) {
      const std::int64_t id = s.i64(0), head = s.i64(1), head_position = s.i64(2);
      StreamState* st = find_state(id);
      if (st) st->has_head = true;
      if (!st || st->events == 0) {
        report("stream_head", id, head, head_position,
               fmt::format("a head row says version {} at position {}, but the stream has no events", head,
                           head_position));
        continue;
      }
      const std::int64_t last = st->next - 1;
      std::vector<std::string> wrong;
      if (head != last) wrong.push_back(fmt::format("head is {}, but the highest version is {}", head, last));
      if (head_position != st->head_position)
        wrong.push_back(fmt::format("head_position is {}, but version {} is at position {}", head_position, last,
                                    st->head_position));
      if (!wrong.empty()) {
        std::string detail = wrong[0];
        for (std::size_t i = 1; i < wrong.size(); ++i) detail.append("; ").append(wrong[i]);
        report("stream_head", id, last, st->head_position, std::move(detail));
      }
    }
    auto headless = [&](std::int64_t id, const StreamState& st) {
      if (st.events > 0 && !st.has_head && (!only_stream_ || *only_stream_ == id))
        report("stream_head", id, st.next - 1, st.head_position,
               fmt::format("the stream has events up to version {}, but no head row", st.next - 1));
    };
    for (std::size_t i = 0; i < states_.size(); ++i) headless(static_cast<std::int64_t>(i), states_[i]);
    for (const auto& [id, st] : other_states_) headless(id, st);
  }

  // ---- queues (kept together: the queue tables may still change) ----
  //
  // Layout (see store/queue.cpp): a queue's cursor; its events in flight (all at or below the
  // cursor) are queue_items rows (one per event; the lowest row of each stream has head = 1) or
  // members of queue_runs rows (first deliveries leased together, packed as varint pairs of
  // position delta and stream id). An event is in flight in one form only.
  void check_queues() {
    const std::int64_t head = db_.query_i64("SELECT coalesce(max(position), 0) FROM events");
    const bool runs_table = has("table", "queue_runs");
    const bool head_flags = db_.query_i64("SELECT count(*) FROM pragma_table_info('queue_items') WHERE name = 'head'") > 0;
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
      // Positions are never taken back, so no cursor can be past the head (create and reset refuse it).
      if (cursor > head)
        report("queue_cursor", std::nullopt, std::nullopt, cursor,
               fmt::format("queue '{}' has cursor {}, past the store's head position {}", name, cursor, head));
      if (cursor < 0)
        report("queue_cursor", std::nullopt, std::nullopt, cursor, fmt::format("queue '{}' has a negative cursor {}", name, cursor));
      const std::optional<EventFilter> filter = queue_filter(name, queues.text(3), queues.text(4), queues.text(5));

      // One event in flight (`what`: "item" or "run member"), checked against the events.
      auto in_flight = [&](const char* what, std::int64_t pos, std::int64_t stream_id) {
        sql::StmtScope e(event_at);
        e->bind(1, pos);
        if (!e->step()) {
          report("queue_item", std::nullopt, std::nullopt, pos,
                 fmt::format("queue '{}' has a {} at position {}, but there is no event at that position", name, what, pos));
          return;
        }
        const std::int64_t sid = e->i64(0), v = e->i64(1);
        const std::string type(e->text(2)), stream(e->text(3));
        auto bad = [&](std::string detail) {
          report("queue_item", sid, v, pos, fmt::format("queue '{}' {}: {}", name, what, detail));
        };
        if (stream_id != sid) bad(fmt::format("says stream id {}, but the event belongs to stream id {}", stream_id, sid));
        if (filter && !filter->matches(stream, type))
          bad(fmt::format("the event (stream '{}', type '{}') does not match the queue's filter", stream, type));
        if (pos > cursor) bad(fmt::format("is past the queue's cursor {}", cursor));
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
      if (head_flags) {  // exactly the lowest row of each stream is marked as its head
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
          ok = varint(members, at, delta) && varint(members, at, sid) && delta > 0 && delta < (1ull << 62);
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

  static bool varint(std::string_view in, std::size_t& at, std::uint64_t& v) {
    v = 0;
    for (int shift = 0; at < in.size() && shift < 64; shift += 7) {
      auto b = static_cast<unsigned char>(in[at++]);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
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
  VerifyCounts counts_;
  std::map<std::string, std::string> schema_;  // "type:name" -> sql
  std::optional<std::int64_t> only_stream_;
  std::vector<std::int64_t> queue_ids_;
  std::vector<StreamState> states_;            // by stream id
  std::unordered_map<std::int64_t, StreamState> other_states_;
  std::unordered_map<std::int64_t, std::optional<std::string>> names_;
  std::size_t holes_ = 0;
  std::int64_t head_position_ = 0;
  bool scan_complete_ = false;
};

}  // namespace

VerifyCounts verify_store(const VerifyOptions& o, const ViolationFn& on_violation, const ProgressFn& on_progress) {
  auto db = open_store_readonly(o);
  Verifier v(*db, o, on_violation, on_progress);
  return v.run();
}

}  // namespace esctl
