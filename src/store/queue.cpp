// Projector queues: the delivery algorithm. Printing and handlers live elsewhere.
//
// State. A queue is a filter, a start position, a cursor and the delivery state of the events in
// flight. Matching events after the cursor are "new": nothing is written for them, so publication
// is atomic with the append (the queue reads the events table itself) and a queue created
// `--from start` on a big store costs one row. Every matching event after the start and up to the
// cursor is either acked (no trace at all) or in flight, in one of two forms:
// - a queue_items row (state pending / leased / retry / parked, attempts, due time, reason);
//   the lowest row of each stream is flagged as its stream's front (the row that decides for
//   the stream: the next of it to deliver, or what blocks it), so the pull can walk streams,
//   not rows;
// - a member of a queue_runs row: a run of first deliveries leased together by one pull
//   (attempt 1, one due time), stored as one row with its members packed in a blob. A drain that
//   acks whole batches thus writes one row per batch instead of one per event. A run is turned
//   into item rows ("materialized") when it expires or when only part of it is settled.
//
// Rows. The rows are kept by the backend behind QueueRows (queue_rows.hpp), which holds the SQL;
// every decision about them is made here, once for every backend.
//
// Pull (one write transaction; several if the filter skips very many events):
//  1. Runs whose lease expired are materialized as expired leased rows. The streams of the
//     other runs are blocked.
//  2. Rows, lowest position first: the front rows in position order, merged with the next row
//     of each stream we moved past. A stream's front row decides for the stream: pending, due
//     retry or expired lease -> deliver it (attempt = attempts + 1) and look at the stream's next
//     row; unexpired lease or retry not yet due -> the stream is blocked; parked -> blocked under
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
// Clocks: due times are in the clock of QueueRows::clock: on SQLite CLOCK_BOOTTIME µs plus the
// boot they were taken on (a due time from another boot has passed, see Clock); on a server, the
// server's clock, which every drainer on every machine shares. Wall times are for display only.
#include "store/queue.hpp"

#include <algorithm>
#include <queue>
#include <unordered_map>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/varint.hpp"
#include "core/names.hpp"
#include "core/time.hpp"
#include "store/queue_rows.hpp"
#include "store/store.hpp"

namespace esctl {
namespace {

using State = QueueState;
constexpr State kPending = State::pending, kLeased = State::leased, kRetry = State::retry, kParked = State::parked;
using Row = QueueRow;
using Kind = QueueRows::TxnKind;

// Events examined per transaction before a pull commits what it has and starts another, so a
// filter that skips many events never holds the write lock for long.
constexpr std::int64_t kScanBudget = 20000;

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

QueueRows& rows_of(Store& store) { return store.backend().queue_rows(); }

// A run of first deliveries, decoded. Packed members: per member, varint(position - previous
// position) then varint(stream id) (core/varint.hpp).
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

// Makes `e` the event of `r`. An event that held another keeps its strings' buffers (see
// PullOptions::recycle).
void set_event(Event& e, Store& store, const EventRow& r) {
  // clear() and append() copy into the buffer there is, where assign() takes a slower path that
  // allows for overlap.
  auto set = [](std::string& to, std::string_view from) {
    to.clear();
    to.append(from);
  };
  e.position = r.position;
  set(e.stream, store.stream_name(r.stream_id));
  e.version = r.version;
  set(e.id, r.id);
  set(e.type, r.type);
  set(e.data, r.data);
  set(e.meta, r.meta);
  e.recorded_at_us = r.recorded_at_us;
}

QueueInfo load_queue(QueueRows& rows, std::string_view name, bool lock = false) {
  check_queue_name(name);
  auto q = rows.find_queue(name, lock);
  if (!q) throw Error(Errc::not_found, fmt::format("queue '{}' not found (see 'esctl queue ls')", name));
  return std::move(*q);
}

// `setting` names the start point in messages: "from" (create) or "to" (reset).
std::int64_t resolve(StartPoint p, std::int64_t head, const char* setting) {
  switch (p.kind) {
    case StartPoint::start: return 0;
    case StartPoint::end: return head;
    case StartPoint::at:
      if (p.position < 0) throw SettingError(Errc::usage, setting, {"invalid ", fmt::format(" position {}", p.position)});
      if (p.position > head)
        throw SettingError(Errc::usage, setting,
                           {"", fmt::format(" position {} is beyond the store's head position {} (use '", p.position, head),
                            " end' to start after the last event)"});
      return p.position;
  }
  return head;
}

// A set of stream ids (positive), by open addressing: the pull asks it about every new event,
// and fills it with the streams of the runs in flight, so it must be cheaper than a node set.
class StreamSet {
 public:
  void insert(std::int64_t id) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    std::size_t i = slot(id);
    if (slots_[i] == 0) {
      slots_[i] = id;
      ++size_;
    }
  }
  bool contains(std::int64_t id) const { return size_ != 0 && slots_[slot(id)] == id; }

 private:
  // The slot that holds `id`, or the empty one where it would go.
  std::size_t slot(std::int64_t id) const {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = static_cast<std::size_t>((static_cast<std::uint64_t>(id) * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    while (slots_[i] != 0 && slots_[i] != id) i = (i + 1) & mask;
    return i;
  }
  void grow() {
    std::vector<std::int64_t> old = std::move(slots_);
    slots_.assign(std::max<std::size_t>(16, old.size() * 2), 0);
    size_ = 0;
    for (auto id : old)
      if (id != 0) insert(id);
  }
  std::vector<std::int64_t> slots_;  // 0: empty
  std::size_t size_ = 0;
};

// The queue work of one transaction on one queue: the delivery algorithm over the rows.
class Session {
 public:
  // Constructed inside the transaction, after its lock was obtained, with the clock the rows give
  // then (QueueRows::clock: the time leases are judged by).
  Session(Store& store, QueueRows& rows, QueueInfo q, const Clock& clock)
      : store_(store), rows_(rows), q_(std::move(q)), clock_(clock) {}

  const QueueInfo& queue() const { return q_; }
  const Clock& clock() const { return clock_; }

  // ---- rows ----
  std::optional<Row> item(std::int64_t position) { return rows_.item(q_.id, position); }

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
    std::vector<Run> expired;
    for (const Run& r : runs())
      if (due_passed(r.due_mono, r.due_boot, clock_)) expired.push_back(r);
    for (const Run& r : expired) materialize(r);
    return rows_.park_expired(q_.id, q_.max_attempts, clock_);
  }

  // What park_expired would park, as parked events (positions only), for readers.
  void expired_for_good(std::vector<ParkedEvent>& out) {
    rows_.leased_items(q_.id, [&](const Row& r, std::int64_t wall) {
      if (expired_for_good(r)) out.push_back(ParkedEvent{Event{r.position}, r.attempts, "lease expired", wall});
    });
    if (q_.max_attempts > 1) return;
    for (const Run& r : runs())
      if (due_passed(r.due_mono, r.due_boot, clock_))
        for (auto p : r.positions) out.push_back(ParkedEvent{Event{p}, 1, "lease expired", r.due_wall});
  }

  // A new lease token, from the store-wide counter.
  std::int64_t new_token() {
    auto t = rows_.next_counter("lease");
    if (!t) throw Error(Errc::corrupt, fmt::format("store '{}' has no lease counter; run 'esctl verify'", rows_.display()));
    return *t;
  }

  std::optional<Row> next_in_stream(const Row& r) { return rows_.next_in_stream(q_.id, r.stream, r.position); }

  // Inserts a row, keeping the front flags right. `known_front`: the caller knows whether the
  // stream has a lower row (true: this is its front; false: it is not); nullopt: look it up.
  void insert_item(std::int64_t position, std::int64_t stream, State state, std::int64_t attempts,
                   std::optional<Clock> due, std::optional<bool> known_front = std::nullopt, std::int64_t lease = 0) {
    bool front;
    if (known_front) {
      front = *known_front;
    } else {
      std::optional<std::int64_t> first = rows_.first_in_stream(q_.id, stream);
      front = !first || *first > position;
      if (front && first) rows_.set_front(q_.id, *first, false);
    }
    rows_.insert_item(q_.id, Row{position, stream, state, attempts, 0, 0, lease}, due, front);
  }

  // Deletes a row if it exists; the stream's next row becomes its front. Returns whether it existed.
  bool delete_item(std::int64_t position) {
    auto gone = rows_.delete_item(q_.id, position);
    if (!gone) return false;
    if (gone->second) rows_.promote_front(q_.id, gone->first);
    return true;
  }

  void set_state(std::int64_t position, State state, std::int64_t attempts, std::optional<Clock> due,
                 std::optional<std::int64_t> wall, const std::string* reason) {
    rows_.set_state(q_.id, position, state, attempts, due, wall, reason);
  }

  void lease_item(std::int64_t position, const Clock& due, std::int64_t token) {
    rows_.lease_item(q_.id, position, due, token);
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
  // The queue's runs, lowest first: read once per session, then kept in step with its writes
  // (a settle and the pull after it in one transaction read and decode them once).
  const std::vector<Run>& runs() {
    if (!runs_) runs_ = read_runs();
    return *runs_;
  }
  std::vector<Run> read_runs() {
    std::vector<Run> out;
    rows_.runs(q_.id, [&](const RunRow& row) {
      Run r;
      r.first = row.first;
      r.last = row.last;
      r.positions.reserve(static_cast<std::size_t>(std::max<std::int64_t>(row.count, 0)));
      r.streams.reserve(static_cast<std::size_t>(std::max<std::int64_t>(row.count, 0)));
      std::string_view blob = row.members;
      std::size_t at = 0;
      std::int64_t pos = 0;
      while (at < blob.size()) {
        std::uint64_t d, sid;
        if (!get_varint(blob, at, d) || !get_varint(blob, at, sid))
          throw Error(Errc::corrupt, fmt::format("store '{}': queue '{}' has a damaged lease run at position {}; "
                                                 "'esctl queue reset {} --to POSITION' clears it",
                                                 rows_.display(), q_.name, r.first, q_.name));
        pos += static_cast<std::int64_t>(d);
        r.positions.push_back(pos);
        r.streams.push_back(static_cast<std::int64_t>(sid));
      }
      r.due_mono = row.due_mono;
      r.due_boot = row.due_boot;
      r.due_wall = row.due_wall;
      r.lease = row.lease;
      out.push_back(std::move(r));
    });
    return out;
  }

  void insert_run(const Run& r) {
    const std::string members = r.encode();
    rows_.insert_run(q_.id, RunRow{r.first, r.last, static_cast<std::int64_t>(r.positions.size()), members, r.due_mono,
                                   r.due_boot, r.due_wall, r.lease});
    runs_.reset();
  }

  // `r` may be one of runs(): it is gone once this returns.
  void delete_run(const Run& r) {
    const std::int64_t first = r.first;
    rows_.delete_run(q_.id, first);
    if (runs_) std::erase_if(*runs_, [&](const Run& x) { return x.first == first; });
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
    Event e;
    read_event(position, e);
    return e;
  }
  void read_event(std::int64_t position, Event& e) {
    if (!rows_.event_at(position, [&](const EventRow& r) {
          set_event(e, store_, r);
          return true;
        }))
      throw Error(Errc::corrupt, fmt::format("store '{}': queue '{}' refers to position {}, which holds no event; "
                                             "run 'esctl verify'",
                                             rows_.display(), q_.name, position));
  }

  // Whether `position` is one of this queue's events (after its start, matching its filter).
  bool in_queue(std::int64_t position, StreamFilter& match) {
    if (position <= q_.start_position) return false;
    bool in = false;
    rows_.event_at(position, [&](const EventRow& r) {
      in = match.matches(r.stream_id, r.type);
      return true;
    });
    return in;
  }

  void set_cursor(std::int64_t cursor) {
    rows_.set_cursor(q_.id, cursor);
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
    // The streams of the runs in flight; after step 2, also the streams whose rows hold them.
    StreamSet held;
    for (const Run& r : runs())
      for (auto sid : r.streams) held.insert(sid);

    // 2. Rows, lowest position first: the front rows in position order merged with `next`, the next
    // row of each stream we moved past. `has_rows`: streams with rows -> blocked?
    std::unordered_map<std::int64_t, bool> has_rows;
    std::vector<Row> picked;
    bool rows_done = false, full = false;
    {
      auto later = [](const Row& a, const Row& b) { return a.position > b.position; };
      std::priority_queue<Row, std::vector<Row>, decltype(later)> next(later);
      // Decides for one row; false when the batch is full.
      auto visit = [&](const Row& r) {
        if (static_cast<std::int64_t>(picked.size()) >= o.max) {
          full = true;
          return false;
        }
        bool& blocked = has_rows.try_emplace(r.stream, false).first->second;
        if (blocked) return true;
        if (held.contains(r.stream)) {
          blocked = true;
          return true;
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
          return true;
        }
        if (verdict == deliver) {
          if (o.isolate_retries && r.attempts > 0) {
            if (picked.empty()) picked.push_back(r);
            full = true;
            return false;
          }
          picked.push_back(r);
        }
        if (auto n = next_in_stream(r)) next.push(*n);
        return true;
      };
      // The rows of `next` below `bound`, in order; false when the batch is full.
      auto drain_next = [&](std::int64_t bound) {
        while (!next.empty() && next.top().position < bound) {
          Row r = next.top();
          next.pop();
          if (!visit(r)) return false;
        }
        return true;
      };
      bool go = true;
      rows_.fronts(q_.id, [&](const Row& front) {
        go = drain_next(front.position) && visit(front);
        return go;
      });
      if (go && drain_next(INT64_MAX)) {
        if (static_cast<std::int64_t>(picked.size()) >= o.max) full = true;
        else rows_done = true;
      }
    }

    // 3. New events after the cursor. The deliveries are written in place, in position order:
    // slots 0..picked-1 for the rows picked (their events are read once the rows are written),
    // then the new events leased in this pull's run.
    std::vector<Delivery>& ds = out.deliveries;
    if (o.recycle) {
      ds.swap(*o.recycle);
      o.recycle->clear();
    }
    std::size_t n = picked.size();
    if (ds.size() < n) ds.resize(n);
    Run run;
    std::vector<std::pair<std::int64_t, std::int64_t>> admitted;  // position, stream
    std::int64_t cursor = q_.cursor;
    if (rows_done && !full) {
      for (const auto& [sid, row_blocked] : has_rows)
        if (row_blocked) held.insert(sid);
      StreamFilter match(store_, q_.filter);
      std::int64_t budget = kScanBudget;
      rows_.events(q_.cursor, INT64_MAX, true, o.max - static_cast<std::int64_t>(picked.size()), [&](const EventRow& e) {
        if (budget-- <= 0) {
          pass.more = n == 0;
          return false;
        }
        const std::int64_t pos = e.position, sid = e.stream_id;
        if (!match.matches(sid, e.type)) {
          cursor = pos;
          return true;
        }
        if (held.contains(sid)) {
          if (o.whole_batch_only) {
            // The batch cannot be filled without admitting: lease nothing, move nothing.
            picked.clear();
            run.positions.clear();
            run.streams.clear();
            n = 0;
            admitted.clear();
            cursor = q_.cursor;
            return false;
          }
          cursor = pos;
          admitted.emplace_back(pos, sid);
          return true;
        }
        cursor = pos;
        run.positions.push_back(pos);
        run.streams.push_back(sid);
        if (n == ds.size()) ds.emplace_back();
        Delivery& d = ds[n++];
        set_event(d.event, store_, e);
        d.attempt = 1;
        return static_cast<std::int64_t>(n) < o.max;
      });
    }
    ds.resize(n);
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

    for (std::size_t i = 0; i < picked.size(); ++i) {
      read_event(picked[i].position, ds[i].event);
      ds[i].attempt = picked[i].attempts + 1;
      out.lease.rows.push_back(picked[i].position);
    }
    for (Delivery& d : ds) d.lease = out.lease.token;
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
  // The common case of a drain, settled without the general walk below (which would do the
  // same): the items are the members of one current run, in order, every one acked. Then no
  // outcome is stale and the run goes as a whole. False, having changed nothing, otherwise.
  bool settle_whole_run(const Settlement& st, SettleCounts& counts) {
    if (st.items.empty()) return false;
    const std::vector<Run>& all = runs();
    auto r = std::upper_bound(all.begin(), all.end(), st.items.front().position,
                              [](std::int64_t p, const Run& run) { return p < run.first; });
    if (r == all.begin()) return false;
    const Run& run = *std::prev(r);
    if (run.positions.size() != st.items.size() || !current(run, st.token)) return false;
    for (std::size_t i = 0; i < st.items.size(); ++i)
      if (st.items[i].kind != Settlement::ack || st.items[i].position != run.positions[i]) return false;
    delete_run(run);
    counts.acked += static_cast<std::int64_t>(st.items.size());
    return true;
  }

  void settle(const Settlement& st, SettleCounts& counts) {
    if (st.queue_id != q_.id) {  // another queue now goes by this name
      counts.stale += static_cast<std::int64_t>(st.items.size());
      return;
    }
    if (settle_whole_run(st, counts)) return;
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
                         if (it->kind != Settlement::ack) return false;
                         return first.empty() || !held_back(first, all[i].stream_of(it->position), it->position);
                       });
      if (all_acked) {
        delete_run(all[i]);
        counts.acked += static_cast<std::int64_t>(items.size());
        continue;
      }
      materialize(all[i]);
      rows.insert(rows.end(), items.begin(), items.end());
    }
    // Highest position first: deleting a stream's rows from the top promotes a front only once.
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
      for (const Run& r : runs())
        if (r.first == *lease.run && current(r, lease.token)) rows_.renew_run(q_.id, r.first, due);
      runs_.reset();  // due times changed
    }
    for (auto p : lease.rows) {
      auto r = item(p);
      if (r && current(*r, lease.token)) rows_.renew_item(q_.id, p, due);
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
  std::optional<std::string> problem(std::int64_t p, StreamFilter& match) {
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
  QueueRows& rows_;
  QueueInfo q_;
  Clock clock_;
  std::optional<std::vector<Run>> runs_;  // runs(), once read
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

// A transaction on a store's queue rows, with the queue it works on loaded (and, for writes,
// held) and the clock its leases run on.
struct Work {
  Work(Store& store, Kind kind, std::string_view name, const Clock& local)
      : rows(rows_of(store)),
        txn(rows.begin(kind)),
        session(store, rows, load_queue(rows, name, kind != Kind::read), rows.clock(local)) {}
  QueueRows& rows;
  std::unique_ptr<QueueRows::Txn> txn;
  Session session;
};

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
    throw SettingError(Errc::usage, "max attempts",
                       {"invalid ", fmt::format(" {}: a queue needs at least 1 attempt", spec.max_attempts)});
  if (spec.ack_timeout_ms < 1)
    throw SettingError(Errc::usage, "ack timeout", {"invalid ", ": it must be longer than 0ms"});
  for (const auto* list : {&spec.filter.stream_globs, &spec.filter.categories, &spec.filter.types})
    for (const auto& s : *list)
      if (s.empty()) throw SettingError(Errc::usage, "filter", {"empty ", " value: give a glob, category or type"});
  auto& rows = rows_of(store_);
  auto txn = rows.begin(Kind::write);
  auto taken = [&] {
    return Error(Errc::conflict, fmt::format("queue '{}' already exists (see 'esctl queue status {}'; "
                                             "'esctl queue reset' moves it, 'esctl queue delete' removes it)",
                                             spec.name, spec.name));
  };
  if (rows.queue_exists(spec.name)) throw taken();
  QueueInfo q;
  q.name = spec.name;
  q.start_position = resolve(from, rows.last_position(), "from");
  // Ids come from a store-wide counter, not max(id) + 1: never reused, even after a delete.
  auto id = rows.next_counter("queue");
  if (!id) throw Error(Errc::corrupt, fmt::format("store '{}' has no queue counter; run 'esctl verify'", rows.display()));
  q.id = *id;
  q.cursor = q.start_position;
  q.max_attempts = spec.max_attempts;
  q.ack_timeout_ms = spec.ack_timeout_ms;
  q.on_poison = spec.on_poison;
  q.created_at_us = q.deliverable_since_us = rows.clock(Clock::now()).wall_us;
  if (!rows.insert_queue(q, json::string_array(spec.filter.stream_globs), json::string_array(spec.filter.categories),
                         json::string_array(spec.filter.types)))
    throw taken();
  q = load_queue(rows, spec.name);
  txn->commit();
  return q;
}

std::vector<std::string> Queues::names(std::string_view prefix) { return rows_of(store_).queue_names(prefix); }

QueueInfo Queues::get(std::string_view name) { return load_queue(rows_of(store_), name); }

QueueStatus Queues::status(std::string_view name, const Clock& local) {
  Work w(store_, Kind::read, name, local);
  QueueRows& rows = w.rows;
  const Clock& clock = w.session.clock();
  QueueStatus st;
  st.queue = w.session.queue();
  const QueueInfo& q = st.queue;
  st.head_position = rows.last_position();
  std::optional<std::int64_t> oldest;
  auto lower = [&](std::int64_t p) { oldest = oldest ? std::min(*oldest, p) : p; };
  rows.state_counts(q.id, [&](State state, std::int64_t n, std::int64_t min_position) {
    switch (state) {
      case kPending: st.pending += n; break;
      case kRetry: st.retrying += n; break;
      case kParked: st.parked += n; break;
      default: break;
    }
    lower(min_position);
  });
  // An expired lease is waiting for its redelivery, or parked if it was the last allowed one.
  rows.leased_items(q.id, [&](const Row& r, std::int64_t) {
    if (!due_passed(r.due_mono, r.due_boot, clock)) ++st.leased;
    else if (r.attempts >= q.max_attempts) ++st.parked;
    else ++st.retrying;
    lower(r.position);
  });
  rows.runs(q.id, [&](const RunRow& r) {
    if (!due_passed(r.due_mono, r.due_boot, clock)) st.leased += r.count;
    else (q.max_attempts <= 1 ? st.parked : st.retrying) += r.count;
    lower(r.first);
  });
  // New events: matching events after the cursor. Positions are dense (assigned in the write
  // transaction, events never deleted), so without a filter this is a difference.
  if (q.filter.empty()) {
    if (st.head_position > q.cursor) {
      st.pending += st.head_position - q.cursor;
      lower(q.cursor + 1);
    }
  } else if (st.head_position > q.cursor) {
    StreamFilter match(store_, q.filter);
    std::optional<std::int64_t> first;
    rows.events(q.cursor, INT64_MAX, false, INT64_MAX, [&](const EventRow& e) {
      if (!match.matches(e.stream_id, e.type)) return true;
      if (!first) first = e.position;
      ++st.pending;
      return true;
    });
    if (first) lower(*first);
  }
  st.lag = st.pending + st.leased + st.retrying + st.parked;
  if (oldest) {
    st.oldest_position = oldest;
    rows.event_at(*oldest, [&](const EventRow& e) {
      st.oldest_recorded_at_us = e.recorded_at_us;
      st.oldest_since_us = std::max(e.recorded_at_us, q.deliverable_since_us);
      return true;
    });
  }
  w.txn->commit();
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
  if (options.max < 1)
    throw SettingError(Errc::usage, "max", {"invalid ", fmt::format(" {}: pull at least 1 event", options.max)});
  if (options.lease_ms && *options.lease_ms < 1)
    throw SettingError(Errc::usage, "lease", {"invalid ", ": it must be longer than 0ms"});
  for (;;) {
    Work w(store_, Kind::write_relaxed, name, clock);
    Session& session = w.session;
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
    w.txn->commit();
    if (!pass.more) return std::move(pass.result);
  }
}

SettleCounts Queues::settle(std::string_view name, const Settlement& settlement, const Clock& clock) {
  auto& rows = rows_of(store_);
  auto txn = rows.begin(Kind::write_relaxed);
  SettleCounts c;
  std::optional<QueueInfo> q;
  try {
    q = load_queue(rows, name, true);
  } catch (const Error& e) {
    if (e.code() != Errc::not_found || settlement.queue_id == 0) throw;
    c.stale = static_cast<std::int64_t>(settlement.items.size());  // deleted: nothing to settle
    return c;
  }
  Session session(store_, rows, std::move(*q), rows.clock(clock));
  session.settle(settlement, c);
  txn->commit();
  return c;
}

void Queues::renew(std::string_view name, const Lease& lease, std::int64_t lease_ms, const Clock& clock) {
  Work w(store_, Kind::write_relaxed, name, clock);
  w.session.renew(lease, w.session.clock().plus_ms(lease_ms));
  w.txn->commit();
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
  Work w(store_, Kind::write_relaxed, name, clock);
  Session& session = w.session;
  StreamFilter match(store_, session.queue().filter);
  std::vector<Target> stale;
  const std::vector<Run> all = session.runs();
  const auto first = session.first_stale(fenced_of(targets), all);
  auto rest = session.open_runs(targets, true, all, first, stale);
  // Highest position first: deleting a stream's rows from the top promotes a front only once.
  std::sort(rest.begin(), rest.end(), [](const Target& a, const Target& b) { return a.position > b.position; });
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
  w.txn->commit();
  std::sort(stale.begin(), stale.end(), [](const Target& a, const Target& b) { return a.position < b.position; });
  return stale;
}

std::vector<Target> Queues::nack_targets(std::string_view name, const std::vector<Target>& targets_in,
                                         std::int64_t delay_ms, const std::string& reason, const Clock& clock) {
  auto targets = checked_targets(targets_in);
  if (delay_ms < 0) throw SettingError(Errc::usage, "delay", {"invalid ", ": it must not be negative"});
  Work w(store_, Kind::write_relaxed, name, clock);
  Session& session = w.session;
  const QueueInfo& q = session.queue();
  StreamFilter match(store_, q.filter);
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
  w.txn->commit();
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
  Work w(store_, Kind::read, name, clock);
  Session& session = w.session;
  std::vector<ParkedEvent> out;
  w.rows.parked_items(session.queue().id,
                      [&](std::int64_t position, std::int64_t attempts, std::string_view reason, std::int64_t wall) {
                        out.push_back(ParkedEvent{Event{position}, attempts, std::string(reason), wall});
                      });
  session.expired_for_good(out);
  std::sort(out.begin(), out.end(), [](const ParkedEvent& a, const ParkedEvent& b) { return a.event.position < b.event.position; });
  for (auto& p : out) p.event = session.event_at(p.event.position);
  w.txn->commit();
  return out;
}

std::int64_t Queues::retry(std::string_view name, const std::vector<std::int64_t>& positions_in, const Clock& clock) {
  check_positions(positions_in);
  auto positions = unique_sorted(positions_in);
  Work w(store_, Kind::write, name, clock);
  Session& session = w.session;
  session.park_expired();
  for (auto p : positions) {
    auto r = session.item(p);
    if (!r || r->state != kParked)
      throw Error(Errc::usage, fmt::format("position {} is not parked in queue '{}' (see 'esctl queue parked {}')", p,
                                           session.queue().name, session.queue().name));
    session.set_state(p, kPending, 0, std::nullopt, std::nullopt, nullptr);
  }
  w.txn->commit();
  return static_cast<std::int64_t>(positions.size());
}

std::int64_t Queues::retry_all(std::string_view name, const Clock& clock) {
  Work w(store_, Kind::write, name, clock);
  w.session.park_expired();
  std::int64_t n = w.rows.unpark_all(w.session.queue().id);
  w.txn->commit();
  return n;
}

QueueInfo Queues::reset(std::string_view name, StartPoint to) {
  auto& rows = rows_of(store_);
  auto txn = rows.begin(Kind::write);
  QueueInfo q = load_queue(rows, name, true);
  std::int64_t point = resolve(to, rows.last_position(), "to");
  rows.clear_queue(q.id, false);
  rows.restart_queue(q.id, point, rows.clock(Clock::now()).wall_us);
  q = load_queue(rows, name);
  txn->commit();
  return q;
}

void Queues::remove(std::string_view name) {
  auto& rows = rows_of(store_);
  auto txn = rows.begin(Kind::write);
  QueueInfo q = load_queue(rows, name, true);
  rows.clear_queue(q.id, true);
  txn->commit();
}

// ---- impact previews (queue reset/delete/retry --dry-run and --force, verify --log --queue) ----

namespace {

// Positions of the queue's events in flight (item rows and run members), sorted.
std::vector<std::int64_t> in_flight_positions(Session& session, QueueRows& rows) {
  std::vector<std::int64_t> out;
  rows.item_positions(session.queue().id, [&](std::int64_t p) { out.push_back(p); });
  for (const Run& r : session.runs()) out.insert(out.end(), r.positions.begin(), r.positions.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::int64_t count_between(const std::vector<std::int64_t>& sorted, std::int64_t after, std::int64_t upto) {
  if (upto <= after) return 0;
  return std::upper_bound(sorted.begin(), sorted.end(), upto) - std::upper_bound(sorted.begin(), sorted.end(), after);
}

// Matching events with after < position <= upto.
std::int64_t count_matching(Store& store, QueueRows& rows, const QueueInfo& q, std::int64_t after, std::int64_t upto) {
  if (upto <= after) return 0;
  StreamFilter match(store, q.filter);
  std::int64_t n = 0;
  rows.events(after, upto, false, INT64_MAX, [&](const EventRow& e) {
    n += q.filter.empty() || match.matches(e.stream_id, e.type) ? 1 : 0;
    return true;
  });
  return n;
}

}  // namespace

namespace queue_admin {

void atomically(Store& store, const std::function<bool()>& work) {
  auto txn = rows_of(store).begin(Kind::write);
  if (work()) txn->commit();
}

ResetImpact reset_impact(Store& store, std::string_view name, StartPoint to) {
  Work w(store, Kind::read, name, Clock::now());
  const QueueInfo& q = w.session.queue();
  const std::int64_t head = w.rows.last_position();
  ResetImpact r;
  r.point = resolve(to, head, "to");
  auto flying = in_flight_positions(w.session, w.rows);
  // Unacked: in flight (all at or below the cursor) or new (matching, after the cursor).
  r.skipped = count_between(flying, INT64_MIN, r.point) + count_matching(store, w.rows, q, q.cursor, r.point);
  r.deliverable = count_matching(store, w.rows, q, r.point, head);
  r.redelivered = count_matching(store, w.rows, q, r.point, q.cursor) - count_between(flying, r.point, q.cursor);
  w.txn->commit();
  return r;
}

std::int64_t for_each_acked(Store& store, std::string_view name, const std::function<void(const AckedEvent&)>& fn,
                            const std::function<void()>& first) {
  Work w(store, Kind::read, name, Clock::now());
  const QueueInfo& q = w.session.queue();
  auto flying = in_flight_positions(w.session, w.rows);
  if (first) first();
  StreamFilter match(store, q.filter);
  std::int64_t n = 0;
  auto next_flying = flying.begin();
  w.rows.events(q.start_position, q.cursor, false, INT64_MAX, [&](const EventRow& e) {
    const std::int64_t p = e.position;
    while (next_flying != flying.end() && *next_flying < p) ++next_flying;
    if (next_flying != flying.end() && *next_flying == p) return true;
    if (!match.matches(e.stream_id, e.type)) return true;
    fn(AckedEvent{p, store.stream_name(e.stream_id), e.version});
    ++n;
    return true;
  });
  w.txn->commit();
  return n;
}

}  // namespace queue_admin

}  // namespace esctl
