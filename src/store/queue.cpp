// Projector queues: the delivery algorithm. Printing and handlers live elsewhere.
//
// State. A queue is a filter, a start position, a cursor and the delivery state of the events in
// flight. Matching events after the cursor are "new": nothing is written for them, so publication
// is atomic with the append (the queue reads the events table itself) and a queue created
// `--from start` on a big store costs one row. Every matching event after the start and up to the
// cursor is either acked (no trace at all) or in flight, in one of two forms:
// - a queue_items row (state pending / leased / retry / parked, attempts, due time, reason);
//   the lowest row of each stream carries head=1, so the pull can walk streams, not rows;
// - a member of a queue_runs row: a run of first deliveries leased together by one pull
//   (attempt 1, one due time), stored as one row with its members packed in a blob. A drain that
//   acks whole batches thus writes one row per batch instead of one per event. A run is turned
//   into item rows ("materialized") when it expires or when only part of it is settled.
//
// Pull (one BEGIN IMMEDIATE transaction; several if the filter skips very many events):
//  1. Runs whose lease expired are materialized as expired leased rows. The streams of the
//     other runs are blocked.
//  2. Rows, lowest position first: the stream heads in position order, merged with the next row
//     of each stream we moved past. A stream's head decides for the stream: pending, due retry or
//     expired lease -> deliver it (attempt = attempts + 1) and look at the stream's next row;
//     unexpired lease or retry not yet due -> the stream is blocked; parked -> blocked under
//     on-poison block, skipped (look at the next row) under park. An expired lease that used up
//     max-attempts is parked ("lease expired") first. So a later event of a stream is never
//     handed out while an earlier one is unacked, and a batch may hold consecutive events of a
//     stream in order. With isolate_retries a redelivery is handed out alone.
//  3. If the batch is not full, new events after the cursor: an event of a blocked stream is
//     admitted as a pending row (so the cursor can move past it and nothing is lost); any other
//     is leased as a member of this pull's run. The cursor moves to the last event examined.
// Every row is at or below the cursor and every new event above it, so steps 2 and 3 together
// hand out events lowest position first.
//
// Fencing. Each pull draws a lease token from the store-wide counter (never reused, not even
// after its queue is deleted) and writes it on every row and run it leases. An outcome (ack,
// nack, release) or a renewal names the token it answers; it may change a row only while the row
// is leased under that token and its lease has not expired (Session::current: the one place of
// the rule). A paused drainer that comes back past its lease, a reset (which drops the rows), a
// redelivery to someone else (a new token), a queue deleted and created again (other rows, other
// tokens; its id is never reused either): all make the outcome stale, counted and not applied. So
// an outcome is accepted only from the consumer that holds the event now, which is why a later
// event of a stream never starts while an earlier one is held: the holder's own ack is the only
// one that frees the stream. Two refinements keep that true: leases are judged by the time after
// the write lock was obtained, not when the caller asked (Clock::pinned); and when, in one call,
// the outcome of S@v is stale while S@v is still unsettled, the outcomes of S@v+1.. in that call
// are not applied either (they are put back without using an attempt, and counted stale): one
// batch's deliveries of a stream are settled in order or not at all. A bare position
// (`queue ack NAME 7`) is an operator's override and settles whatever delivery is current.
//
// Expiry. An expired lease with attempts left is waiting for its redelivery; one whose attempts
// are used up is parked from the moment it expired: readers (status, parked) count it so at
// once, and the next write (pull, retry) records it, with the expiry as its parked time.
//
// Clocks: due times are CLOCK_BOOTTIME µs plus the boot they were taken on; a due time from
// another boot has passed (see Clock). Wall times are kept for display only.
#include "store/queue.hpp"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/varint.hpp"
#include "core/names.hpp"
#include "core/time.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/sqlite/event_store.hpp"
#include "store/store.hpp"

namespace esctl {
namespace {

enum State : int { kPending = 0, kLeased = 1, kRetry = 2, kParked = 3 };

// Events examined per transaction before a pull commits what it has and starts another, so a
// filter that skips many events never holds the write lock for long.
constexpr std::int64_t kScanBudget = 20000;

constexpr const char* kSelectQueue =
    "SELECT id, name, filter_streams, filter_categories, filter_types, start_position, cursor, max_attempts, "
    "ack_timeout_ms, on_poison, generation, created_at, deliverable_since FROM queues WHERE name = ?1";
constexpr const char* kSelectEventAt =
    "SELECT position, stream_id, version, id, type, data, meta, recorded_at FROM events WHERE position = ?1";
constexpr const char* kSelectEventsAfter =
    "SELECT position, stream_id, version, id, type, data, meta, recorded_at FROM events WHERE position > ?1 "
    "ORDER BY position";
constexpr const char* kRowColumns = "position, stream_id, state, attempts, due_mono, due_boot, coalesce(lease, 0)";

std::int64_t boot_number() {
  static const std::int64_t n = [] {
    std::int64_t v = 0;
    int digits = 0;
    for (char c : boot_id()) {
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) continue;
      v = v * 16 + d;
      if (++digits == 15) break;  // 60 bits: fits a positive int64
    }
    return v;
  }();
  return n;
}

bool due_passed(std::int64_t due_mono, std::int64_t due_boot, const Clock& c) {
  return due_boot != c.boot || due_mono <= c.mono_us;
}

// The time a transaction judges leases by, read once it holds its lock (see Clock::pinned).
Clock decision_clock(const Clock& given) { return given.pinned ? given : Clock::now(); }

std::string json_array(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out.push_back(',');
    json::append_quoted(out, v[i]);
  }
  out.push_back(']');
  return out;
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

// Packed run members: per member, varint(position - previous position) then varint(stream id)
// (core/varint.hpp).
struct Row {
  std::int64_t position = 0, stream = 0, state = 0, attempts = 0, due_mono = 0, due_boot = 0, lease = 0;
};

Row read_row(sql::Stmt& s) {
  return Row{s.i64(0), s.i64(1), s.i64(2), s.i64(3), s.i64(4), s.i64(5), s.i64(6)};
}

struct Run {
  std::int64_t first = 0, last = 0;
  std::vector<std::int64_t> positions, streams;
  std::int64_t due_mono = 0, due_boot = 0, due_wall = 0, lease = 0;

  std::string encode() const {
    std::string out;
    std::int64_t prev = 0;
    for (std::size_t i = 0; i < positions.size(); ++i) {
      put_varint(out, static_cast<std::uint64_t>(positions[i] - prev));
      put_varint(out, static_cast<std::uint64_t>(streams[i]));
      prev = positions[i];
    }
    return out;
  }
  bool contains(std::int64_t p) const {
    return p >= first && p <= last && std::binary_search(positions.begin(), positions.end(), p);
  }
  // The stream of member `p` (which contains(p)).
  std::int64_t stream_of(std::int64_t p) const {
    return streams[static_cast<std::size_t>(std::lower_bound(positions.begin(), positions.end(), p) - positions.begin())];
  }
};

// Whether events match a queue's filter, with the per-stream answer cached.
class Matcher {
 public:
  Matcher(Store& store, const EventFilter& filter)
      : store_(store), filter_(filter), by_stream_(!filter.stream_globs.empty() || !filter.categories.empty()) {}
  bool operator()(std::int64_t stream_id, std::string_view type) {
    if (by_stream_) {
      auto i = static_cast<std::size_t>(stream_id);
      if (i >= ok_.size()) ok_.resize(std::max(i + 1, ok_.size() * 2), 0);
      if (ok_[i] == 0) ok_[i] = filter_.matches_stream(store_.stream_name(stream_id)) ? 1 : -1;
      if (ok_[i] < 0) return false;
    }
    return filter_.matches_type(type);
  }

 private:
  Store& store_;
  const EventFilter& filter_;
  bool by_stream_;
  std::vector<signed char> ok_;
};

Event read_event(Store& store, sql::Stmt& s) {
  return Event{s.i64(0),           std::string(store.stream_name(s.i64(1))), s.i64(2), std::string(s.blob(3)),
               std::string(s.text(4)), std::string(s.text(5)),              std::string(s.text(6)), s.i64(7)};
}

std::vector<std::string> json_strings(sql::Db& db, const std::string& text) {
  std::vector<std::string> out;
  sql::StmtScope s(db.prepare("SELECT value FROM json_each(?1)"));
  s->bind(1, text);
  while (s->step()) out.emplace_back(s->text(0));
  return out;
}

QueueInfo load_queue(sql::Db& db, std::string_view name) {
  check_queue_name(name);
  QueueInfo q;
  std::string streams, categories, types;
  {
    sql::StmtScope s(db.prepare(kSelectQueue));
    s->bind(1, name);
    if (!s->step()) throw Error(Errc::not_found, fmt::format("queue '{}' not found (see 'esctl queue ls')", name));
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
  q.filter.stream_globs = json_strings(db, streams);
  q.filter.categories = json_strings(db, categories);
  q.filter.types = json_strings(db, types);
  return q;
}

std::int64_t resolve(StartPoint p, std::int64_t head, const char* option) {
  switch (p.kind) {
    case StartPoint::start: return 0;
    case StartPoint::end: return head;
    case StartPoint::at:
      if (p.position < 0) throw Error(Errc::usage, fmt::format("invalid {} position {}", option, p.position));
      if (p.position > head)
        throw Error(Errc::usage, fmt::format("{} position {} is beyond the store's head position {} "
                                             "(use '{} end' to start after the last event)",
                                             option, p.position, head, option));
      return p.position;
  }
  return head;
}

// The queue work of one transaction on one queue.
class Session {
 public:
  // Constructed inside the transaction, after its lock was obtained: see decision_clock.
  Session(Store& store, QueueInfo q, const Clock& clock)
      : store_(store), db_(sqlite::connection(store)), q_(std::move(q)), clock_(decision_clock(clock)) {}

  const QueueInfo& queue() const { return q_; }
  const Clock& clock() const { return clock_; }

  // ---- rows ----
  std::optional<Row> item(std::int64_t position) {
    static const std::string sql =
        fmt::format("SELECT {} FROM queue_items WHERE queue_id = ?1 AND position = ?2", kRowColumns);
    sql::StmtScope s(db_.prepare(sql.c_str()));
    s->bind(1, q_.id).bind(2, position);
    if (!s->step()) return std::nullopt;
    return read_row(*s);
  }

  // ---- fencing: the one place of the rule (see the top of this file) ----
  bool current(const Row& r, std::int64_t token) const {
    return r.state == kLeased && token != 0 && r.lease == token && !due_passed(r.due_mono, r.due_boot, clock_);
  }
  bool current(const Run& r, std::int64_t token) const {
    return token != 0 && r.lease == token && !due_passed(r.due_mono, r.due_boot, clock_);
  }
  // Whether a leased row's last allowed lease has expired: it counts as parked from then on.
  bool expired_for_good(const Row& r) const {
    return r.state == kLeased && r.attempts >= q_.max_attempts && due_passed(r.due_mono, r.due_boot, clock_);
  }

  // Records what expired for good as parked (reason "lease expired", parked when it expired):
  // expired runs become rows first. Returns how many it parked. Runs on every pull: the index of
  // leased rows keeps it from reading the pending rows of blocked streams.
  std::int64_t park_expired() {
    for (const Run& r : runs())
      if (due_passed(r.due_mono, r.due_boot, clock_)) materialize(r);
    sql::StmtScope s(db_.prepare(
        "UPDATE queue_items INDEXED BY queue_items_leased SET state = 3, lease = NULL, reason = 'lease expired', "
        "due_mono = NULL, due_boot = NULL WHERE queue_id = ?1 AND state = 1 AND attempts >= ?2 AND (due_boot <> ?3 OR due_mono <= ?4)"));
    s->bind(1, q_.id).bind(2, q_.max_attempts).bind(3, clock_.boot).bind(4, clock_.mono_us);
    s->run();
    return db_.changes();
  }

  // What park_expired would park, as parked events (positions only), for readers.
  void expired_for_good(std::vector<ParkedEvent>& out) {
    static const std::string sql = fmt::format("SELECT {}, coalesce(due_wall, 0) FROM queue_items WHERE queue_id = ?1 AND state = 1", kRowColumns);
    sql::StmtScope s(db_.prepare(sql.c_str()));
    s->bind(1, q_.id);
    while (s->step()) {
      Row r = read_row(*s);
      if (expired_for_good(r)) out.push_back(ParkedEvent{Event{r.position}, r.attempts, "lease expired", s->i64(7)});
    }
    if (q_.max_attempts > 1) return;
    for (const Run& r : runs())
      if (due_passed(r.due_mono, r.due_boot, clock_))
        for (auto p : r.positions) out.push_back(ParkedEvent{Event{p}, 1, "lease expired", r.due_wall});
  }

  // A new lease token, from the store-wide counter.
  std::int64_t new_token() {
    sql::StmtScope s(db_.prepare("UPDATE counters SET value = value + 1 WHERE name = 'lease' RETURNING value"));
    if (!s->step()) throw Error(Errc::corrupt, fmt::format("store '{}' has no lease counter; run 'esctl verify'", store_.location()));
    return s->i64(0);
  }

  std::optional<Row> next_in_stream(const Row& r) {
    static const std::string sql = fmt::format(
        "SELECT {} FROM queue_items WHERE queue_id = ?1 AND stream_id = ?2 AND position > ?3 ORDER BY position LIMIT 1",
        kRowColumns);
    sql::StmtScope s(db_.prepare(sql.c_str()));
    s->bind(1, q_.id).bind(2, r.stream).bind(3, r.position);
    if (!s->step()) return std::nullopt;
    return read_row(*s);
  }

  // Inserts a row, keeping head right. `known_head`: the caller knows whether the stream has a
  // lower row (true: this is the head; false: it is not); nullopt: look it up.
  void insert_item(std::int64_t position, std::int64_t stream, int state, std::int64_t attempts,
                   std::optional<Clock> due, std::optional<bool> known_head = std::nullopt, std::int64_t lease = 0) {
    bool head;
    if (known_head) {
      head = *known_head;
    } else {
      std::optional<std::int64_t> first;
      {
        sql::StmtScope s(db_.prepare(
            "SELECT position FROM queue_items WHERE queue_id = ?1 AND stream_id = ?2 ORDER BY position LIMIT 1"));
        s->bind(1, q_.id).bind(2, stream);
        if (s->step()) first = s->i64(0);
      }
      head = !first || *first > position;
      if (head && first) {
        sql::StmtScope u(db_.prepare("UPDATE queue_items SET head = 0 WHERE queue_id = ?1 AND position = ?2"));
        u->bind(1, q_.id).bind(2, *first);
        u->run();
      }
    }
    sql::StmtScope s(db_.prepare(
        "INSERT INTO queue_items (queue_id, position, stream_id, state, attempts, due_mono, due_boot, due_wall, head, lease) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
    s->bind(1, q_.id).bind(2, position).bind(3, stream).bind(4, state).bind(5, attempts);
    if (due) s->bind(6, due->mono_us).bind(7, due->boot).bind(8, due->wall_us);
    else s->bind_null(6).bind_null(7).bind_null(8);
    s->bind(9, head ? 1 : 0);
    if (lease) s->bind(10, lease);
    else s->bind_null(10);
    s->run();
  }

  // Deletes a row if it exists; the stream's next row becomes its head. Returns whether it existed.
  bool delete_item(std::int64_t position) {
    std::int64_t stream = 0;
    bool head = false;
    {
      sql::StmtScope s(
          db_.prepare("DELETE FROM queue_items WHERE queue_id = ?1 AND position = ?2 RETURNING stream_id, head"));
      s->bind(1, q_.id).bind(2, position);
      if (!s->step()) return false;
      stream = s->i64(0);
      head = s->i64(1) != 0;
    }
    if (head) {
      sql::StmtScope u(db_.prepare(
          "UPDATE queue_items SET head = 1 WHERE queue_id = ?1 AND position = "
          "(SELECT position FROM queue_items WHERE queue_id = ?1 AND stream_id = ?2 ORDER BY position LIMIT 1)"));
      u->bind(1, q_.id).bind(2, stream);
      u->run();
    }
    return true;
  }

  void set_state(std::int64_t position, int state, std::int64_t attempts, std::optional<Clock> due,
                 std::optional<std::int64_t> wall, const std::string* reason) {
    sql::StmtScope s(db_.prepare(
        "UPDATE queue_items SET state = ?3, attempts = ?4, due_mono = ?5, due_boot = ?6, due_wall = ?7, lease = NULL, "
        "reason = CASE WHEN ?9 THEN ?8 ELSE reason END WHERE queue_id = ?1 AND position = ?2"));
    s->bind(1, q_.id).bind(2, position).bind(3, state).bind(4, attempts);
    if (due) s->bind(5, due->mono_us).bind(6, due->boot);
    else s->bind_null(5).bind_null(6);
    if (wall) s->bind(7, *wall);
    else s->bind_null(7);
    if (reason) s->bind(8, *reason).bind(9, 1);
    else s->bind_null(8).bind(9, 0);
    s->run();
  }

  void lease_item(std::int64_t position, const Clock& due, std::int64_t token) {
    sql::StmtScope s(db_.prepare(
        "UPDATE queue_items SET state = 1, attempts = attempts + 1, due_mono = ?3, due_boot = ?4, due_wall = ?5, "
        "lease = ?6 WHERE queue_id = ?1 AND position = ?2"));
    s->bind(1, q_.id).bind(2, position).bind(3, due.mono_us).bind(4, due.boot).bind(5, due.wall_us).bind(6, token);
    s->run();
  }

  // A delivery of `r` failed: park it if it has used up its attempts, else retry after `delay_ms`.
  // Returns true if parked.
  bool fail_item(const Row& r, std::int64_t delay_ms, const std::string& reason) {
    if (r.attempts >= q_.max_attempts) {
      set_state(r.position, kParked, r.attempts, std::nullopt, clock_.wall_us, &reason);
      return true;
    }
    Clock due = clock_.plus_ms(delay_ms);
    set_state(r.position, kRetry, r.attempts, due, due.wall_us, &reason);
    return false;
  }

  // ---- runs ----
  std::vector<Run> runs() {
    std::vector<Run> out;
    sql::StmtScope s(db_.prepare(
        "SELECT first, last, members, due_mono, due_boot, due_wall, lease FROM queue_runs WHERE queue_id = ?1 ORDER BY first"));
    s->bind(1, q_.id);
    while (s->step()) {
      Run r;
      r.first = s->i64(0);
      r.last = s->i64(1);
      std::string_view blob = s->blob(2);
      std::size_t at = 0;
      std::int64_t pos = 0;
      while (at < blob.size()) {
        std::uint64_t d, sid;
        if (!get_varint(blob, at, d) || !get_varint(blob, at, sid))
          throw Error(Errc::corrupt, fmt::format("store '{}': queue '{}' has a damaged lease run at position {}; "
                                                 "'esctl queue reset {} --to POSITION' clears it",
                                                 store_.location(), q_.name, r.first, q_.name));
        pos += static_cast<std::int64_t>(d);
        r.positions.push_back(pos);
        r.streams.push_back(static_cast<std::int64_t>(sid));
      }
      r.due_mono = s->i64(3);
      r.due_boot = s->i64(4);
      r.due_wall = s->i64(5);
      r.lease = s->i64(6);
      out.push_back(std::move(r));
    }
    return out;
  }

  void insert_run(const Run& r) {
    sql::StmtScope s(db_.prepare(
        "INSERT INTO queue_runs (queue_id, first, last, count, members, due_mono, due_boot, due_wall, lease) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    s->bind(1, q_.id).bind(2, r.first).bind(3, r.last).bind(4, static_cast<std::int64_t>(r.positions.size()));
    s->bind_blob(5, r.encode()).bind(6, r.due_mono).bind(7, r.due_boot).bind(8, r.due_wall).bind(9, r.lease);
    s->run();
  }

  void delete_run(const Run& r) {
    sql::StmtScope s(db_.prepare("DELETE FROM queue_runs WHERE queue_id = ?1 AND first = ?2"));
    s->bind(1, q_.id).bind(2, r.first);
    s->run();
  }

  // Turns a run into leased rows (attempt 1, the run's due time and token).
  void materialize(const Run& r) {
    Clock due{r.due_mono, r.due_boot, r.due_wall};
    for (std::size_t i = 0; i < r.positions.size(); ++i)
      insert_item(r.positions[i], r.streams[i], kLeased, 1, due, std::nullopt, r.lease);
    delete_run(r);
  }

  // ---- events ----
  Event event_at(std::int64_t position) {
    sql::StmtScope s(db_.prepare(kSelectEventAt));
    s->bind(1, position);
    if (!s->step())
      throw Error(Errc::corrupt, fmt::format("store '{}': queue '{}' refers to position {}, which holds no event; "
                                             "run 'esctl verify'",
                                             store_.location(), q_.name, position));
    return read_event(store_, *s);
  }

  // Whether `position` is one of this queue's events (after its start, matching its filter).
  bool in_queue(std::int64_t position, Matcher& match) {
    if (position <= q_.start_position) return false;
    sql::StmtScope s(db_.prepare("SELECT stream_id, type FROM events WHERE position = ?1"));
    s->bind(1, position);
    return s->step() && match(s->i64(0), s->text(1));
  }

  void set_cursor(std::int64_t cursor) {
    sql::StmtScope s(db_.prepare("UPDATE queues SET cursor = ?2 WHERE id = ?1"));
    s->bind(1, q_.id).bind(2, cursor);
    s->run();
    q_.cursor = cursor;
  }

  // ---- the pull ----
  struct Pass {
    PullResult result;
    bool more = false;  // stopped at the scan budget with nothing picked: try again
  };

  Pass pull(const PullOptions& o) {
    Pass pass;
    PullResult& out = pass.result;
    const std::int64_t lease_ms = o.lease_ms.value_or(q_.ack_timeout_ms);
    const Clock due = clock_.plus_ms(lease_ms);
    out.lease.queue_id = q_.id;
    out.lease_expires_at_us = due.wall_us;

    // 1. Runs: expired ones become rows, and what expired for good is parked.
    out.parked += park_expired();
    std::unordered_set<std::int64_t> run_blocked;
    for (const Run& r : runs()) run_blocked.insert(r.streams.begin(), r.streams.end());

    // 2. Rows. `has_rows`: streams with rows -> blocked?
    std::unordered_map<std::int64_t, bool> has_rows;
    std::vector<Row> picked;
    bool rows_done = false, full = false;
    {
      static const std::string heads_sql =
          fmt::format("SELECT {} FROM queue_items WHERE queue_id = ?1 AND head ORDER BY position", kRowColumns);
      sql::StmtScope heads(db_.prepare(heads_sql.c_str()));
      heads->bind(1, q_.id);
      std::optional<Row> head;
      if (heads->step()) head = read_row(*heads);
      auto later = [](const Row& a, const Row& b) { return a.position > b.position; };
      std::priority_queue<Row, std::vector<Row>, decltype(later)> next(later);
      for (;;) {
        if (static_cast<std::int64_t>(picked.size()) >= o.max) {
          full = true;
          break;
        }
        Row r;
        if (!next.empty() && (!head || next.top().position < head->position)) {
          r = next.top();
          next.pop();
        } else if (head) {
          r = *head;
          head.reset();
          if (heads->step()) head = read_row(*heads);
        } else {
          rows_done = true;
          break;
        }
        bool& blocked = has_rows.try_emplace(r.stream, false).first->second;
        if (blocked) continue;
        if (run_blocked.count(r.stream)) {
          blocked = true;
          continue;
        }
        enum { deliver, skip, block } verdict = block;
        switch (r.state) {
          case kPending: verdict = deliver; break;
          case kLeased:  // expired with attempts left (park_expired took the others)
            verdict = due_passed(r.due_mono, r.due_boot, clock_) && r.attempts < q_.max_attempts ? deliver : block;
            break;
          case kRetry: verdict = due_passed(r.due_mono, r.due_boot, clock_) ? deliver : block; break;
          case kParked: verdict = q_.on_poison == Poison::park ? skip : block; break;
          default: verdict = block;
        }
        if (verdict == block) {
          blocked = true;
          continue;
        }
        if (verdict == deliver) {
          if (o.isolate_retries && r.attempts > 0) {
            if (picked.empty()) picked.push_back(r);
            full = true;
            break;
          }
          picked.push_back(r);
        }
        if (auto n = next_in_stream(r)) next.push(*n);
      }
    }

    // 3. New events after the cursor.
    Run run;
    std::vector<Event> run_events;
    std::vector<std::pair<std::int64_t, std::int64_t>> admitted;  // position, stream
    std::int64_t cursor = q_.cursor;
    if (rows_done && !full) {
      Matcher match(store_, q_.filter);
      sql::StmtScope s(db_.prepare(kSelectEventsAfter));
      s->bind(1, q_.cursor);
      std::int64_t budget = kScanBudget;
      for (;;) {
        if (static_cast<std::int64_t>(picked.size() + run_events.size()) >= o.max) break;
        if (budget-- <= 0) {
          pass.more = picked.empty() && run_events.empty();
          break;
        }
        if (!s->step()) break;
        std::int64_t pos = s->i64(0), sid = s->i64(1);
        if (!match(sid, s->text(4))) {
          cursor = pos;
          continue;
        }
        auto it = has_rows.find(sid);
        if ((it != has_rows.end() && it->second) || run_blocked.count(sid)) {
          if (o.whole_batch_only) {
            // The batch cannot be filled without admitting: lease nothing, move nothing.
            picked.clear();
            run.positions.clear();
            run.streams.clear();
            run_events.clear();
            cursor = q_.cursor;
            break;
          }
          cursor = pos;
          admitted.emplace_back(pos, sid);
          continue;
        }
        cursor = pos;
        run.positions.push_back(pos);
        run.streams.push_back(sid);
        run_events.push_back(read_event(store_, *s));
      }
    }

    // Writes.
    if (!picked.empty() || !run.positions.empty()) out.lease.token = new_token();
    for (const Row& r : picked) lease_item(r.position, due, out.lease.token);
    for (auto [pos, sid] : admitted) {
      auto [it, fresh] = has_rows.try_emplace(sid, true);
      it->second = true;
      insert_item(pos, sid, kPending, 0, std::nullopt, fresh);
    }
    if (!run.positions.empty()) {
      run.first = run.positions.front();
      run.last = run.positions.back();
      run.due_mono = due.mono_us;
      run.due_boot = due.boot;
      run.due_wall = due.wall_us;
      run.lease = out.lease.token;
      insert_run(run);
      out.lease.run = run.first;
    }
    if (cursor != q_.cursor) set_cursor(cursor);

    out.deliveries.reserve(picked.size() + run_events.size());
    for (const Row& r : picked) {
      out.deliveries.push_back(Delivery{event_at(r.position), r.attempts + 1, out.lease.token});
      out.lease.rows.push_back(r.position);
    }
    for (auto& e : run_events) out.deliveries.push_back(Delivery{std::move(e), 1, out.lease.token});
    return pass;
  }

  // ---- fenced outcomes, per stream ----
  // Lowest position per stream whose fenced outcome (position, token) in one call is stale while
  // the event is still unsettled (in a run, or a row: expired and redelivered, nacked by an
  // operator). The later events of that stream answered in the same call are held back: applying
  // their outcomes would settle them before their predecessor. Runs: the current `runs()`.
  using FirstStale = std::unordered_map<std::int64_t, std::int64_t>;
  FirstStale first_stale(const std::vector<std::pair<std::int64_t, std::int64_t>>& fenced, const std::vector<Run>& all) {
    FirstStale out;
    auto note = [&](std::int64_t stream, std::int64_t position) {
      auto [it, fresh] = out.try_emplace(stream, position);
      if (!fresh) it->second = std::min(it->second, position);
    };
    for (auto [position, token] : fenced) {
      auto r = std::upper_bound(all.begin(), all.end(), position,
                                [](std::int64_t p, const Run& run) { return p < run.first; });
      if (r != all.begin() && std::prev(r)->contains(position)) {
        const Run& run = *std::prev(r);
        if (!current(run, token)) note(run.stream_of(position), position);
      } else if (auto row = item(position); row && !current(*row, token)) {
        note(row->stream, position);
      }
    }
    return out;
  }
  static bool held_back(const FirstStale& first, std::int64_t stream, std::int64_t position) {
    auto it = first.find(stream);
    return it != first.end() && it->second < position;
  }

  // Puts a leased row back without using its attempt.
  void release_item(const Row& r) {
    std::int64_t attempts = std::max<std::int64_t>(r.attempts - 1, 0);
    if (attempts == 0) set_state(r.position, kPending, 0, std::nullopt, std::nullopt, nullptr);
    else set_state(r.position, kRetry, attempts, clock_, clock_.wall_us, nullptr);
  }

  // ---- settling a batch (drain) ----
  void settle(const Settlement& st, SettleCounts& counts) {
    if (st.queue_id != q_.id) {  // another queue now goes by this name
      counts.stale += static_cast<std::int64_t>(st.items.size());
      return;
    }
    std::vector<Run> all = runs();
    std::vector<std::pair<std::int64_t, std::int64_t>> fenced;
    for (const auto& it : st.items) fenced.emplace_back(it.position, st.token);
    const FirstStale first = first_stale(fenced, all);
    std::vector<std::vector<const Settlement::Item*>> by_run(all.size());
    std::vector<const Settlement::Item*> rows;
    for (const auto& it : st.items) {
      auto r = std::upper_bound(all.begin(), all.end(), it.position,
                                [](std::int64_t p, const Run& run) { return p < run.first; });
      if (r != all.begin() && std::prev(r)->contains(it.position))
        by_run[static_cast<std::size_t>(std::prev(r) - all.begin())].push_back(&it);
      else
        rows.push_back(&it);
    }
    for (std::size_t i = 0; i < all.size(); ++i) {
      auto& items = by_run[i];
      if (items.empty()) continue;
      if (!current(all[i], st.token)) {
        counts.stale += static_cast<std::int64_t>(items.size());
        continue;
      }
      bool all_acked = items.size() == all[i].positions.size() &&
                       std::all_of(items.begin(), items.end(), [&](auto* it) {
                         return it->kind == Settlement::ack && !held_back(first, all[i].stream_of(it->position), it->position);
                       });
      if (all_acked) {
        delete_run(all[i]);
        counts.acked += static_cast<std::int64_t>(items.size());
        continue;
      }
      materialize(all[i]);
      rows.insert(rows.end(), items.begin(), items.end());
    }
    // Highest position first: deleting a stream's rows from the top promotes a head only once.
    std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->position > b->position; });
    for (const auto* it : rows) {
      auto r = item(it->position);
      if (!r || !current(*r, st.token)) {
        ++counts.stale;
        continue;
      }
      if (held_back(first, r->stream, r->position)) {
        release_item(*r);
        ++counts.stale;
        continue;
      }
      if (it->kind == Settlement::ack) {
        delete_item(it->position);
        ++counts.acked;
      } else if (it->kind == Settlement::nack) {
        if (fail_item(*r, 0, it->reason)) ++counts.parked;
        else ++counts.retried;
      } else {
        release_item(*r);
        ++counts.released;
      }
    }
  }

  // Extends the deliveries of `lease` that are still current to `due`.
  void renew(const Lease& lease, const Clock& due) {
    if (lease.queue_id != q_.id) return;
    if (lease.run) {
      for (const Run& r : runs()) {
        if (r.first != *lease.run || !current(r, lease.token)) continue;
        sql::StmtScope s(db_.prepare(
            "UPDATE queue_runs SET due_mono = ?3, due_boot = ?4, due_wall = ?5 WHERE queue_id = ?1 AND first = ?2"));
        s->bind(1, q_.id).bind(2, r.first).bind(3, due.mono_us).bind(4, due.boot).bind(5, due.wall_us);
        s->run();
      }
    }
    for (auto p : lease.rows) {
      auto r = item(p);
      if (!r || !current(*r, lease.token)) continue;
      sql::StmtScope s(db_.prepare(
          "UPDATE queue_items SET due_mono = ?3, due_boot = ?4, due_wall = ?5 WHERE queue_id = ?1 AND position = ?2"));
      s->bind(1, q_.id).bind(2, p).bind(3, due.mono_us).bind(4, due.boot).bind(5, due.wall_us);
      s->run();
    }
  }

  // `queue ack|nack` targets in runs: a fenced target whose run is not current under its token is
  // stale (set aside in `stale`); a run whose every member is acked by the rest is dropped whole
  // (when `whole` is set); other runs touched are turned into rows. Returns the targets left,
  // for the rows.
  std::vector<Target> open_runs(const std::vector<Target>& targets, bool whole, const std::vector<Run>& all,
                                const FirstStale& first, std::vector<Target>& stale) {
    std::vector<Target> rest;
    std::vector<std::vector<Target>> in_run(all.size());
    for (const auto& t : targets) {
      auto r = std::upper_bound(all.begin(), all.end(), t.position,
                                [](std::int64_t p, const Run& run) { return p < run.first; });
      if (r != all.begin() && std::prev(r)->contains(t.position))
        in_run[static_cast<std::size_t>(std::prev(r) - all.begin())].push_back(t);
      else
        rest.push_back(t);
    }
    for (std::size_t i = 0; i < all.size(); ++i) {
      std::vector<Target> live;
      for (const auto& t : in_run[i]) {
        if (t.lease && !current(all[i], *t.lease)) stale.push_back(t);
        else live.push_back(t);
      }
      if (live.empty()) continue;
      std::vector<std::int64_t> covered;
      for (const auto& t : live) covered.push_back(t.position);
      std::sort(covered.begin(), covered.end());
      covered.erase(std::unique(covered.begin(), covered.end()), covered.end());
      bool any_held = std::any_of(live.begin(), live.end(), [&](const Target& t) {
        return t.lease && held_back(first, all[i].stream_of(t.position), t.position);
      });
      if (whole && !any_held && covered.size() == all[i].positions.size()) {
        delete_run(all[i]);
        continue;
      }
      materialize(all[i]);
      rest.insert(rest.end(), live.begin(), live.end());
    }
    return rest;
  }

  // Why `p` (no row, in no run) cannot be acked or nacked, or nullopt if it is acked.
  std::optional<std::string> problem(std::int64_t p, Matcher& match) {
    if (p > q_.cursor)
      return fmt::format("queue '{}' has not delivered position {} (its cursor is at {}); pull it first", q_.name, p,
                         q_.cursor);
    if (!in_queue(p, match))
      return fmt::format("position {} is not an event of queue '{}' (no such event, before the queue's start {}, or "
                         "not matching its filter)",
                         p, q_.name, q_.start_position);
    return std::nullopt;
  }

 private:
  Store& store_;
  sql::Db& db_;
  QueueInfo q_;
  Clock clock_;
};

std::vector<std::int64_t> unique_sorted(std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

void check_positions(const std::vector<std::int64_t>& positions) {
  if (positions.empty()) throw Error(Errc::usage, "no positions given");
  for (auto p : positions)
    if (p < 1) throw Error(Errc::usage, fmt::format("invalid position {}: positions start at 1", p));
}

}  // namespace

Clock Clock::now() { return Clock{esctl::mono_us(), boot_number(), now_us()}; }
Clock Clock::pinned_now() {
  Clock c = now();
  c.pinned = true;
  return c;
}

const char* poison_name(Poison p) { return p == Poison::park ? "park" : "block"; }

Queues::Queues(Store& store) : store_(store) {}

QueueInfo Queues::create(const QueueSpec& spec, StartPoint from) {
  check_queue_name(spec.name);
  if (spec.max_attempts < 1)
    throw Error(Errc::usage, fmt::format("invalid --max-attempts {}: a queue needs at least 1 attempt", spec.max_attempts));
  if (spec.ack_timeout_ms < 1)
    throw Error(Errc::usage, "invalid --ack-timeout: it must be longer than 0ms");
  for (const auto* list : {&spec.filter.stream_globs, &spec.filter.categories, &spec.filter.types})
    for (const auto& s : *list)
      if (s.empty()) throw Error(Errc::usage, "empty --stream, --category or --type value: give a glob, category or type");
  auto& db = sqlite::connection(store_);
  sql::Txn txn(db);
  {
    sql::StmtScope s(db.prepare("SELECT 1 FROM queues WHERE name = ?1"));
    s->bind(1, spec.name);
    if (s->step())
      throw Error(Errc::conflict, fmt::format("queue '{}' already exists (see 'esctl queue status {}'; "
                                              "'esctl queue reset' moves it, 'esctl queue delete' removes it)",
                                              spec.name, spec.name));
  }
  std::int64_t start = resolve(from, sqlite::last_position(db), "--from");
  std::int64_t id = 0;
  {
    // Ids come from a store-wide counter, not max(id) + 1: never reused, even after a delete.
    sql::StmtScope s(db.prepare("UPDATE counters SET value = value + 1 WHERE name = 'queue' RETURNING value"));
    if (!s->step()) throw Error(Errc::corrupt, fmt::format("store '{}' has no queue counter; run 'esctl verify'", store_.location()));
    id = s->i64(0);
  }
  {
    sql::StmtScope s(db.prepare(
        "INSERT INTO queues (name, filter_streams, filter_categories, filter_types, start_position, cursor, max_attempts, "
        "ack_timeout_ms, on_poison, generation, created_at, deliverable_since, id) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, 0, ?9, ?9, ?10)"));
    s->bind(1, spec.name)
        .bind(2, json_array(spec.filter.stream_globs))
        .bind(3, json_array(spec.filter.categories))
        .bind(4, json_array(spec.filter.types))
        .bind(5, start)
        .bind(6, spec.max_attempts)
        .bind(7, spec.ack_timeout_ms)
        .bind(8, poison_name(spec.on_poison))
        .bind(9, now_us())
        .bind(10, id);
    s->run();
  }
  QueueInfo q = load_queue(db, spec.name);
  txn.commit();
  return q;
}

std::vector<std::string> Queues::names(std::string_view prefix) {
  std::vector<std::string> out;
  sql::StmtScope s(sqlite::connection(store_).prepare("SELECT name FROM queues WHERE name >= ?1 ORDER BY name"));
  s->bind(1, prefix);
  while (s->step()) {
    std::string_view n = s->text(0);
    if (n.substr(0, prefix.size()) != prefix) break;
    out.emplace_back(n);
  }
  return out;
}

QueueInfo Queues::get(std::string_view name) { return load_queue(sqlite::connection(store_), name); }

QueueStatus Queues::status(std::string_view name, const Clock& clock) {
  auto& db = sqlite::connection(store_);
  sql::Txn snapshot(db, sql::Txn::deferred);
  QueueStatus st;
  st.queue = load_queue(db, name);
  const QueueInfo& q = st.queue;
  st.head = sqlite::last_position(db);
  std::optional<std::int64_t> oldest;
  auto lower = [&](std::int64_t p) { oldest = oldest ? std::min(*oldest, p) : p; };
  {
    sql::StmtScope s(db.prepare(
        "SELECT state, count(*), min(position) FROM queue_items WHERE queue_id = ?1 AND state <> 1 GROUP BY state"));
    s->bind(1, q.id);
    while (s->step()) {
      std::int64_t n = s->i64(1);
      switch (s->i64(0)) {
        case kPending: st.pending += n; break;
        case kRetry: st.retrying += n; break;
        case kParked: st.parked += n; break;
      }
      lower(s->i64(2));
    }
  }
  {
    // An expired lease is waiting for its redelivery, or parked if it was the last allowed one.
    sql::StmtScope s(
        db.prepare("SELECT due_mono, due_boot, position, attempts FROM queue_items WHERE queue_id = ?1 AND state = 1"));
    s->bind(1, q.id);
    while (s->step()) {
      if (!due_passed(s->i64(0), s->i64(1), clock)) ++st.leased;
      else if (s->i64(3) >= q.max_attempts) ++st.parked;
      else ++st.retrying;
      lower(s->i64(2));
    }
  }
  {
    sql::StmtScope s(db.prepare("SELECT count, due_mono, due_boot, first FROM queue_runs WHERE queue_id = ?1"));
    s->bind(1, q.id);
    while (s->step()) {
      if (!due_passed(s->i64(1), s->i64(2), clock)) st.leased += s->i64(0);
      else (q.max_attempts <= 1 ? st.parked : st.retrying) += s->i64(0);
      lower(s->i64(3));
    }
  }
  // New events: matching events after the cursor. Positions are contiguous (AUTOINCREMENT inside
  // the write transaction, events never deleted), so without a filter this is a difference.
  if (q.filter.empty()) {
    if (st.head > q.cursor) {
      st.pending += st.head - q.cursor;
      lower(q.cursor + 1);
    }
  } else if (st.head > q.cursor) {
    Matcher match(store_, q.filter);
    auto s = db.prepare_new("SELECT position, stream_id, type FROM events WHERE position > ?1 ORDER BY position");
    s.bind(1, q.cursor);
    std::optional<std::int64_t> first;
    while (s.step()) {
      if (!match(s.i64(1), s.text(2))) continue;
      if (!first) first = s.i64(0);
      ++st.pending;
    }
    if (first) lower(*first);
  }
  st.lag = st.pending + st.leased + st.retrying + st.parked;
  if (oldest) {
    st.oldest_position = oldest;
    sql::StmtScope s(db.prepare("SELECT recorded_at FROM events WHERE position = ?1"));
    s->bind(1, *oldest);
    if (s->step()) {
      st.oldest_recorded_at_us = s->i64(0);
      st.oldest_since_us = std::max(s->i64(0), q.deliverable_since_us);
    }
  }
  snapshot.commit();
  return st;
}

std::vector<QueueStatus> Queues::statuses(const Clock& clock) {
  std::vector<QueueStatus> out;
  for (const auto& n : names()) {
    try {
      out.push_back(status(n, clock));
    } catch (const Error& e) {
      if (e.code() != Errc::not_found) throw;  // deleted meanwhile
    }
  }
  return out;
}

PullResult Queues::pull(std::string_view name, const PullOptions& options, const Clock& clock,
                        const Settlement* settle_first, SettleCounts* counts) {
  if (options.max < 1) throw Error(Errc::usage, fmt::format("invalid --max {}: pull at least 1 event", options.max));
  if (options.lease_ms && *options.lease_ms < 1) throw Error(Errc::usage, "invalid --lease: it must be longer than 0ms");
  auto& db = sqlite::connection(store_);
  RelaxedSync relaxed(db);
  for (;;) {
    sql::Txn txn(db);
    Session session(store_, load_queue(db, name), clock);
    if (options.queue_id && *options.queue_id != session.queue().id)
      throw Error(Errc::not_found, fmt::format("queue '{}' was deleted (a queue created since under that name is another "
                                               "queue)",
                                               name));
    if (settle_first) {
      SettleCounts c;
      session.settle(*settle_first, c);
      if (counts) counts->add(c);
      settle_first = nullptr;
    }
    auto pass = session.pull(options);
    txn.commit();
    if (!pass.more) return std::move(pass.result);
  }
}

SettleCounts Queues::settle(std::string_view name, const Settlement& settlement, const Clock& clock) {
  auto& db = sqlite::connection(store_);
  RelaxedSync relaxed(db);
  sql::Txn txn(db);
  SettleCounts c;
  std::optional<QueueInfo> q;
  try {
    q = load_queue(db, name);
  } catch (const Error& e) {
    if (e.code() != Errc::not_found || settlement.queue_id == 0) throw;
    c.stale = static_cast<std::int64_t>(settlement.items.size());  // deleted: nothing to settle
    return c;
  }
  Session session(store_, std::move(*q), clock);
  session.settle(settlement, c);
  txn.commit();
  return c;
}

void Queues::renew(std::string_view name, const Lease& lease, std::int64_t lease_ms, const Clock& clock) {
  auto& db = sqlite::connection(store_);
  RelaxedSync relaxed(db);
  sql::Txn txn(db);
  Session session(store_, load_queue(db, name), clock);
  session.renew(lease, session.clock().plus_ms(lease_ms));
  txn.commit();
}

namespace {

std::vector<Target> checked_targets(std::vector<Target> targets) {
  if (targets.empty()) throw Error(Errc::usage, "no positions given");
  for (const auto& t : targets)
    if (t.position < 1) throw Error(Errc::usage, fmt::format("invalid position {}: positions start at 1", t.position));
  auto key = [](const Target& t) { return std::make_pair(t.position, t.lease.value_or(-1)); };
  std::sort(targets.begin(), targets.end(), [&](const Target& a, const Target& b) { return key(a) < key(b); });
  targets.erase(std::unique(targets.begin(), targets.end(), [&](const Target& a, const Target& b) { return key(a) == key(b); }),
                targets.end());
  return targets;
}

// The fenced targets, as (position, lease token).
std::vector<std::pair<std::int64_t, std::int64_t>> fenced_of(const std::vector<Target>& targets) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (const auto& t : targets)
    if (t.lease) out.emplace_back(t.position, *t.lease);
  return out;
}

std::vector<Target> bare(const std::vector<std::int64_t>& positions) {
  std::vector<Target> out;
  for (auto p : positions) out.push_back(Target{p, std::nullopt});
  return out;
}

}  // namespace

std::vector<Target> Queues::ack_targets(std::string_view name, const std::vector<Target>& targets_in, const Clock& clock) {
  auto targets = checked_targets(targets_in);
  auto& db = sqlite::connection(store_);
  RelaxedSync relaxed(db);
  sql::Txn txn(db);
  Session session(store_, load_queue(db, name), clock);
  Matcher match(store_, session.queue().filter);
  std::vector<Target> stale;
  const std::vector<Run> all = session.runs();
  const auto first = session.first_stale(fenced_of(targets), all);
  auto rest = session.open_runs(targets, true, all, first, stale);
  // Highest position first: deleting a stream's rows from the top promotes a head only once.
  std::sort(rest.begin(), rest.end(), [](const Target& a, const Target& b) { return a.position > b.position; });
  std::vector<std::int64_t> done;
  for (const auto& t : rest) {
    auto r = session.item(t.position);
    if (!r) {
      if (auto why = session.problem(t.position, match)) throw Error(Errc::usage, *why);
      continue;  // acked already: a no-op
    }
    if (t.lease && !session.current(*r, *t.lease)) {
      stale.push_back(t);
    } else if (t.lease && Session::held_back(first, r->stream, r->position)) {
      session.release_item(*r);
      stale.push_back(t);
    } else {
      session.delete_item(t.position);
    }
  }
  txn.commit();
  std::sort(stale.begin(), stale.end(), [](const Target& a, const Target& b) { return a.position < b.position; });
  return stale;
}

std::vector<Target> Queues::nack_targets(std::string_view name, const std::vector<Target>& targets_in,
                                         std::int64_t delay_ms, const std::string& reason, const Clock& clock) {
  auto targets = checked_targets(targets_in);
  if (delay_ms < 0) throw Error(Errc::usage, "invalid --delay: it must not be negative");
  auto& db = sqlite::connection(store_);
  RelaxedSync relaxed(db);
  sql::Txn txn(db);
  Session session(store_, load_queue(db, name), clock);
  const QueueInfo& q = session.queue();
  Matcher match(store_, q.filter);
  std::vector<Target> stale;
  const std::vector<Run> all = session.runs();
  const auto first = session.first_stale(fenced_of(targets), all);
  auto rest = session.open_runs(targets, false, all, first, stale);
  for (const auto& t : rest) {
    const std::int64_t p = t.position;
    auto r = session.item(p);
    if (!r) {
      if (auto why = session.problem(p, match)) throw Error(Errc::usage, *why);
      if (t.lease) {
        stale.push_back(t);  // settled since: not this delivery's to fail
        continue;
      }
      throw Error(Errc::usage, fmt::format("position {} of queue '{}' is already acked; it cannot be nacked", p, q.name));
    }
    if (t.lease) {
      if (!session.current(*r, *t.lease)) {
        stale.push_back(t);
      } else if (Session::held_back(first, r->stream, r->position)) {
        session.release_item(*r);
        stale.push_back(t);
      } else {
        session.fail_item(*r, delay_ms, reason);
      }
      continue;
    }
    switch (r->state) {
      case kPending:
        throw Error(Errc::usage, fmt::format("position {} of queue '{}' has not been delivered yet (it is pending); "
                                             "pull it first",
                                             p, q.name));
      case kLeased: session.fail_item(*r, delay_ms, reason); break;
      case kRetry: {
        Clock due = session.clock().plus_ms(delay_ms);
        session.set_state(p, kRetry, r->attempts, due, due.wall_us, &reason);
        break;
      }
      default: break;  // parked: stays parked
    }
  }
  txn.commit();
  std::sort(stale.begin(), stale.end(), [](const Target& a, const Target& b) { return a.position < b.position; });
  return stale;
}

void Queues::ack(std::string_view name, const std::vector<std::int64_t>& positions) {
  ack_targets(name, bare(positions), Clock::now());
}

void Queues::nack(std::string_view name, const std::vector<std::int64_t>& positions, std::int64_t delay_ms,
                  const std::string& reason, const Clock& clock) {
  nack_targets(name, bare(positions), delay_ms, reason, clock);
}

std::vector<ParkedEvent> Queues::parked(std::string_view name, const Clock& clock) {
  auto& db = sqlite::connection(store_);
  sql::Txn snapshot(db, sql::Txn::deferred);
  Session session(store_, load_queue(db, name), clock);
  std::vector<ParkedEvent> out;
  {
    auto s = db.prepare_new(
        "SELECT position, attempts, coalesce(reason, ''), coalesce(due_wall, 0) FROM queue_items "
        "WHERE queue_id = ?1 AND state = 3 ORDER BY position");
    s.bind(1, session.queue().id);
    while (s.step()) out.push_back(ParkedEvent{Event{s.i64(0)}, s.i64(1), std::string(s.text(2)), s.i64(3)});
  }
  session.expired_for_good(out);
  std::sort(out.begin(), out.end(), [](const ParkedEvent& a, const ParkedEvent& b) { return a.event.position < b.event.position; });
  for (auto& p : out) p.event = session.event_at(p.event.position);
  snapshot.commit();
  return out;
}

std::int64_t Queues::retry(std::string_view name, const std::vector<std::int64_t>& positions_in, const Clock& clock) {
  check_positions(positions_in);
  auto positions = unique_sorted(positions_in);
  auto& db = sqlite::connection(store_);
  sql::Txn txn(db);
  Session session(store_, load_queue(db, name), clock);
  session.park_expired();
  for (auto p : positions) {
    auto r = session.item(p);
    if (!r || r->state != kParked)
      throw Error(Errc::usage, fmt::format("position {} is not parked in queue '{}' (see 'esctl queue parked {}')", p,
                                           session.queue().name, session.queue().name));
    session.set_state(p, kPending, 0, std::nullopt, std::nullopt, nullptr);
  }
  txn.commit();
  return static_cast<std::int64_t>(positions.size());
}

std::int64_t Queues::retry_all(std::string_view name, const Clock& clock) {
  auto& db = sqlite::connection(store_);
  sql::Txn txn(db);
  Session session(store_, load_queue(db, name), clock);
  session.park_expired();
  sql::StmtScope s(db.prepare(
      "UPDATE queue_items SET state = 0, attempts = 0, due_mono = NULL, due_boot = NULL, due_wall = NULL "
      "WHERE queue_id = ?1 AND state = 3"));
  s->bind(1, session.queue().id);
  s->run();
  std::int64_t n = db.changes();
  txn.commit();
  return n;
}

QueueInfo Queues::reset(std::string_view name, StartPoint to) {
  auto& db = sqlite::connection(store_);
  sql::Txn txn(db);
  QueueInfo q = load_queue(db, name);
  std::int64_t point = resolve(to, sqlite::last_position(db), "--to");
  for (const char* sql : {"DELETE FROM queue_items WHERE queue_id = ?1", "DELETE FROM queue_runs WHERE queue_id = ?1"}) {
    sql::StmtScope s(db.prepare(sql));
    s->bind(1, q.id);
    s->run();
  }
  {
    sql::StmtScope s(db.prepare(
        "UPDATE queues SET start_position = ?2, cursor = ?2, generation = generation + 1, deliverable_since = ?3 "
        "WHERE id = ?1"));
    s->bind(1, q.id).bind(2, point).bind(3, now_us());
    s->run();
  }
  q = load_queue(db, name);
  txn.commit();
  return q;
}

void Queues::remove(std::string_view name) {
  auto& db = sqlite::connection(store_);
  sql::Txn txn(db);
  QueueInfo q = load_queue(db, name);
  for (const char* sql : {"DELETE FROM queue_items WHERE queue_id = ?1", "DELETE FROM queue_runs WHERE queue_id = ?1",
                          "DELETE FROM queues WHERE id = ?1"}) {
    sql::StmtScope s(db.prepare(sql));
    s->bind(1, q.id);
    s->run();
  }
  txn.commit();
}

// ---- impact previews (queue reset/delete/retry --dry-run and --force, verify --log --queue) ----

namespace {

// Positions of the queue's events in flight (item rows and run members), sorted.
std::vector<std::int64_t> in_flight_positions(Session& session, sql::Db& db) {
  std::vector<std::int64_t> out;
  {
    auto s = db.prepare_new("SELECT position FROM queue_items WHERE queue_id = ?1");
    s.bind(1, session.queue().id);
    while (s.step()) out.push_back(s.i64(0));
  }
  for (const Run& r : session.runs()) out.insert(out.end(), r.positions.begin(), r.positions.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::int64_t count_between(const std::vector<std::int64_t>& sorted, std::int64_t after, std::int64_t upto) {
  if (upto <= after) return 0;
  return std::upper_bound(sorted.begin(), sorted.end(), upto) - std::upper_bound(sorted.begin(), sorted.end(), after);
}

// Matching events with after < position <= upto.
std::int64_t count_matching(Store& store, const QueueInfo& q, std::int64_t after, std::int64_t upto) {
  if (upto <= after) return 0;
  auto& db = sqlite::connection(store);
  if (q.filter.empty()) {
    sql::StmtScope s(db.prepare("SELECT count(*) FROM events WHERE position > ?1 AND position <= ?2"));
    s->bind(1, after).bind(2, upto);
    s->step();
    return s->i64(0);
  }
  Matcher match(store, q.filter);
  auto s = db.prepare_new("SELECT stream_id, type FROM events WHERE position > ?1 AND position <= ?2 ORDER BY position");
  s.bind(1, after).bind(2, upto);
  std::int64_t n = 0;
  while (s.step()) n += match(s.i64(0), s.text(1)) ? 1 : 0;
  return n;
}

}  // namespace

namespace queue_admin {

void atomically(Store& store, const std::function<bool()>& work) {
  sql::Txn txn(sqlite::connection(store));
  if (work()) txn.commit();
}

ResetImpact reset_impact(Store& store, std::string_view name, StartPoint to) {
  auto& db = sqlite::connection(store);
  sql::Txn snapshot(db, sql::Txn::deferred);
  Session session(store, load_queue(db, name), Clock::now());
  const QueueInfo& q = session.queue();
  const std::int64_t head = sqlite::last_position(db);
  ResetImpact r;
  r.point = resolve(to, head, "--to");
  auto flying = in_flight_positions(session, db);
  // Unacked: in flight (all at or below the cursor) or new (matching, after the cursor).
  r.skipped = count_between(flying, INT64_MIN, r.point) + count_matching(store, q, q.cursor, r.point);
  r.deliverable = count_matching(store, q, r.point, head);
  r.redelivered = count_matching(store, q, r.point, q.cursor) - count_between(flying, r.point, q.cursor);
  snapshot.commit();
  return r;
}

std::int64_t for_each_acked(Store& store, std::string_view name, const std::function<void(const AckedEvent&)>& fn,
                            const std::function<void()>& first) {
  auto& db = sqlite::connection(store);
  sql::Txn snapshot(db, sql::Txn::deferred);
  Session session(store, load_queue(db, name), Clock::now());
  const QueueInfo& q = session.queue();
  auto flying = in_flight_positions(session, db);
  if (first) first();
  Matcher match(store, q.filter);
  auto s = db.prepare_new(
      "SELECT position, stream_id, version, type FROM events WHERE position > ?1 AND position <= ?2 ORDER BY position");
  s.bind(1, q.start_position).bind(2, q.cursor);
  std::int64_t n = 0;
  auto next_flying = flying.begin();
  while (s.step()) {
    const std::int64_t p = s.i64(0);
    while (next_flying != flying.end() && *next_flying < p) ++next_flying;
    if (next_flying != flying.end() && *next_flying == p) continue;
    if (!match(s.i64(1), s.text(3))) continue;
    fn(AckedEvent{p, store.stream_name(s.i64(1)), s.i64(2)});
    ++n;
  }
  snapshot.commit();
  return n;
}

}  // namespace queue_admin

}  // namespace esctl
