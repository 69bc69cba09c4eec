// verify_store for PostgreSQL stores (see verify.hpp). One REPEATABLE READ, READ ONLY
// transaction, so concurrent appends cause no findings and nothing is written. The events are
// read once in position order through a server-side cursor (bounded memory); per stream the
// checker keeps the next expected version, where the highest version is, and the "holes":
// versions skipped when a higher one appeared, which are a version_order finding if they turn up
// later and a version_gap at the end if they never do. Positions must be dense from 1 up to the
// store's position counter, since appends take them from it one transaction at a time.
#include "store/postgres/verify.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/names.hpp"
#include "core/signals.hpp"
#include "store/postgres/store.hpp"

namespace esctl::pg {
namespace {

constexpr int kFetch = 2000;
constexpr std::size_t kMaxHoles = 100000;  // across all streams; beyond it order damage is only summarised

struct StreamState {
  std::int64_t next = 0;           // one above the highest version seen
  std::int64_t head_position = 0;  // position of version next-1
  std::int64_t events = 0;
  bool missing_reported = false;
  std::unique_ptr<std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>>> holes;  // lo -> (hi, after_position)
};

struct StreamRow {
  std::string name, category;
};

class Verifier {
 public:
  Verifier(PgStore& store, const VerifyOptions& o, const ViolationFn& report, const ProgressFn& progress)
      : conn_(store.conn()), o_(o), report_(report), progress_(progress) {}

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
      check_heads();
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
    for (int i = 0; i < r.rows(); ++i)
      streams_.emplace(r.i64(i, 0), StreamRow{std::string(r.text(i, 1)), std::string(r.text(i, 2))});
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

  StreamState& state(std::int64_t sid) { return states_[sid]; }

  void scan_events() {
    head_position_ = conn_.exec("SELECT coalesce(max(position), 0) FROM esctl.events").i64(0, 0);
    std::optional<std::int64_t> ordered_through, claimed_max;
    if (!only_stream_) {
      auto t = conn_.exec("SELECT ordered_through, max_recorded_at FROM esctl.time_order WHERE id = 1");
      if (t.rows() == 1) {
        ordered_through = t.i64(0, 0);
        claimed_max = t.i64(0, 1);
      }
    }
    if (only_stream_)
      conn_.exec("DECLARE esctl_verify NO SCROLL CURSOR FOR SELECT position, stream_id, version, data, meta, recorded_at "
                 "FROM esctl.events WHERE stream_id = $1 ORDER BY position",
                 {*only_stream_});
    else
      conn_.exec("DECLARE esctl_verify NO SCROLL CURSOR FOR SELECT position, stream_id, version, data, meta, recorded_at "
                 "FROM esctl.events ORDER BY position");
    const std::string fetch = fmt::format("FETCH {} FROM esctl_verify", kFetch);
    std::int64_t last = 0, seen_max = INT64_MIN;
    bool order_reported = false;
    for (;;) {
      auto r = conn_.exec(fetch.c_str());
      if (r.rows() == 0) break;
      for (int i = 0; i < r.rows(); ++i) {
        const std::int64_t p = r.i64(i, 0), sid = r.i64(i, 1), v = r.i64(i, 2), at = r.i64(i, 5);
        ++counts_.events;
        if (!only_stream_ && p != last + 1)
          report("position_gap", sid, v, p,
                 p == last + 2 ? fmt::format("position {} is missing: positions are dense from 1", last + 1)
                 : p > last + 2 ? fmt::format("positions {}..{} are missing: positions are dense from 1", last + 1, p - 1)
                              : fmt::format("position {} is not above the previous one, {}", p, last));
        last = p;
        if (ordered_through && p <= *ordered_through) {
          if (at < seen_max && !order_reported) {
            order_reported = true;
            report("time_order", sid, v, p,
                   fmt::format("recorded_at goes back here, but time_order says it does not up to position {}; "
                               "--since/--until may miss events",
                               *ordered_through));
          }
          seen_max = std::max(seen_max, at);
        }
        StreamState& st = state(sid);
        ++st.events;
        if (!streams_.count(sid) && !st.missing_reported) {
          st.missing_reported = true;
          report("stream_missing", std::nullopt, v, p,
                 fmt::format("the event belongs to stream id {}, which has no row in esctl.streams", sid));
        }
        check_order(st, sid, v, p);
        for (int col : {3, 4})
          if (auto err = json::validate(r.text(i, col)))
            report("json_invalid", sid, v, p,
                   fmt::format("{} is not valid JSON: {} at byte {}", col == 3 ? "data" : "meta", err->message, err->offset));
      }
      check_interrupted();
      if (progress_) progress_(last, head_position_, counts_.events);
    }
    conn_.exec("CLOSE esctl_verify");
    if (progress_) progress_(head_position_, head_position_, counts_.events);
    if (ordered_through && !order_reported &&
        (*ordered_through > last || (*ordered_through > 0 && seen_max != *claimed_max)))
      report("time_order", std::nullopt, std::nullopt, std::nullopt,
             fmt::format("time_order says recorded_at is in order through position {} with a largest value of {}, "
                         "but the events say otherwise; --since/--until may miss events",
                         *ordered_through, *claimed_max));
    if (!only_stream_) {
      auto c = conn_.exec("SELECT value FROM esctl.counters WHERE name = 'position'");
      if (c.rows() != 1)
        report("position_counter", std::nullopt, std::nullopt, std::nullopt,
               "the position counter row is missing: appends cannot take positions");
      else if (c.i64(0, 0) != last)
        report("position_counter", std::nullopt, std::nullopt, std::nullopt,
               fmt::format("the position counter says {}, but the last event is at position {}", c.i64(0, 0), last));
    }
    report_gaps();
  }

  void check_order(StreamState& st, std::int64_t sid, std::int64_t v, std::int64_t p) {
    if (v == st.next) {
      st.next = v + 1;
      st.head_position = p;
      return;
    }
    if (v < 0) {
      report("version_invalid", sid, v, p, fmt::format("version {} is negative; versions start at 0", v));
      return;
    }
    if (v > st.next) {
      if (holes_ < kMaxHoles) {
        if (!st.holes) st.holes = std::make_unique<std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>>>();
        st.holes->emplace(st.next, std::make_pair(v - 1, p));
        ++holes_;
      } else {
        report("version_gap", sid, st.next, p, fmt::format("versions {}..{} are missing before this event", st.next, v - 1));
      }
      st.next = v + 1;
      st.head_position = p;
      return;
    }
    // v < next: either it fills (part of) a hole, arriving after a higher version, or it is a repeat.
    if (st.holes) {
      auto it = st.holes->upper_bound(v);
      if (it != st.holes->begin()) {
        --it;
        const std::int64_t lo = it->first, hi = it->second.first, after = it->second.second;
        if (v <= hi) {
          report("version_order", sid, v, p,
                 fmt::format("version {} is at position {}, after a higher version at position {}", v, p, after));
          st.holes->erase(it);
          --holes_;
          if (lo < v) {
            st.holes->emplace(lo, std::make_pair(v - 1, after));
            ++holes_;
          }
          if (v < hi) {
            st.holes->emplace(v + 1, std::make_pair(hi, after));
            ++holes_;
          }
          return;
        }
      }
    }
    report("version_duplicate", sid, v, p, fmt::format("version {} of the stream is stored more than once", v));
  }

  void report_gaps() {
    for (auto& [sid, st] : states_)
      if (st.holes)
        for (const auto& [lo, h] : *st.holes)
          report("version_gap", sid, lo, h.second,
                 lo == h.first ? fmt::format("version {} is missing", lo)
                               : fmt::format("versions {}..{} are missing", lo, h.first));
  }

  void check_streams() {
    for (const auto& [id, row] : streams_) {
      if (only_stream_ && id != *only_stream_) continue;
      ++counts_.streams;
      if (row.category != category_of(row.name))
        report("stream_category", id, std::nullopt, std::nullopt,
               fmt::format("category is '{}', but the category of '{}' is '{}'", row.category, row.name,
                           category_of(row.name)));
    }
  }

  // Every stream with events has a head row naming its highest version and where it is; no
  // other head rows exist.
  void check_heads() {
    auto r = only_stream_
                 ? conn_.exec("SELECT stream_id, head, head_position FROM esctl.stream_heads WHERE stream_id = $1",
                              {*only_stream_})
                 : conn_.exec("SELECT stream_id, head, head_position FROM esctl.stream_heads");
    std::unordered_map<std::int64_t, bool> has_head;
    for (int i = 0; i < r.rows(); ++i) {
      const std::int64_t id = r.i64(i, 0), head = r.i64(i, 1), head_position = r.i64(i, 2);
      has_head[id] = true;
      auto it = states_.find(id);
      if (it == states_.end() || it->second.events == 0) {
        report("stream_head", id, head, head_position,
               fmt::format("a head row says version {} at position {}, but the stream has no events", head, head_position));
        continue;
      }
      const StreamState& st = it->second;
      const std::int64_t last = st.next - 1;
      std::string detail;
      if (head != last) detail = fmt::format("head is {}, but the highest version is {}", head, last);
      if (head_position != st.head_position)
        detail += fmt::format("{}head_position is {}, but version {} is at position {}", detail.empty() ? "" : "; ",
                              head_position, last, st.head_position);
      if (!detail.empty()) report("stream_head", id, last, st.head_position, std::move(detail));
    }
    for (const auto& [id, st] : states_)
      if (st.events > 0 && !has_head.count(id))
        report("stream_head", id, st.next - 1, st.head_position,
               fmt::format("the stream has events up to version {}, but no head row", st.next - 1));
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
      report("id_duplicate", r.i64(i, 1), r.i64(i, 2), r.i64(i, 0),
             fmt::format("id {} is also the id of the event at position {}", r.text(i, 3), r.text(i, 4)));
  }

  // Queues: the cursor is within the store, and every event in flight (item rows) exists, in the
  // stream the row says, at or below the cursor.
  void check_queues() {
    const std::int64_t head = conn_.exec("SELECT coalesce(max(position), 0) FROM esctl.events").i64(0, 0);
    auto q = conn_.exec("SELECT id, name, cursor FROM esctl.queues ORDER BY name");
    for (int i = 0; i < q.rows(); ++i) {
      const std::int64_t qid = q.i64(i, 0), cursor = q.i64(i, 2);
      if (!queue_ids_.empty() && std::find(queue_ids_.begin(), queue_ids_.end(), qid) == queue_ids_.end()) continue;
      ++counts_.queues;
      const std::string name(q.text(i, 1));
      if (cursor > head)
        report("queue_cursor", std::nullopt, std::nullopt, cursor,
               fmt::format("queue '{}' has cursor {}, past the store's head position {}", name, cursor, head));
      if (cursor < 0)
        report("queue_cursor", std::nullopt, std::nullopt, cursor, fmt::format("queue '{}' has a negative cursor {}", name, cursor));
      auto items = conn_.exec(
          "SELECT qi.position, qi.stream_id, e.stream_id, e.version FROM esctl.queue_items qi "
          "LEFT JOIN esctl.events e ON e.position = qi.position WHERE qi.queue_id = $1 ORDER BY qi.position",
          {qid});
      for (int j = 0; j < items.rows(); ++j) {
        ++counts_.queue_items;
        const std::int64_t pos = items.i64(j, 0), sid = items.i64(j, 1);
        if (items.is_null(j, 2)) {
          report("queue_item", std::nullopt, std::nullopt, pos,
                 fmt::format("queue '{}' has an item at position {}, but there is no event at that position", name, pos));
          continue;
        }
        const std::int64_t esid = items.i64(j, 2), v = items.i64(j, 3);
        if (sid != esid)
          report("queue_item", esid, v, pos,
                 fmt::format("queue '{}' item: says stream id {}, but the event belongs to stream id {}", name, sid, esid));
        if (pos > cursor)
          report("queue_item", esid, v, pos, fmt::format("queue '{}' item: is past the queue's cursor {}", name, cursor));
      }
    }
  }

  Conn& conn_;
  const VerifyOptions& o_;
  const ViolationFn& report_;
  const ProgressFn& progress_;
  VerifyCounts counts_;
  std::unordered_map<std::int64_t, StreamRow> streams_;
  std::optional<std::int64_t> only_stream_;
  std::vector<std::int64_t> queue_ids_;
  std::map<std::int64_t, StreamState> states_;  // ordered: findings come out in stream id order
  std::size_t holes_ = 0;
  std::int64_t head_position_ = 0;
};

}  // namespace

VerifyCounts verify_store(const VerifyOptions& o, const ViolationFn& on_violation, const ProgressFn& on_progress) {
  PgStore store(o.location, o.busy_timeout_ms, Intent::read);
  Verifier v(store, o, on_violation, on_progress);
  return v.run();
}

}  // namespace esctl::pg
