// Projector queues (esctl-queue(1)): durable subscriptions with at-least-once delivery, per-stream
// order, fenced leases, retries and parking. The algorithm and the table layout are explained at the
// top of queue.cpp. Not here: running handlers (drain.hpp) and printing (commands/queue.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.hpp"
#include "core/filter.hpp"

namespace esctl {

class Store;

/// The clocks a queue operation runs on. Lease expiry and retry delays are measured on the
/// monotonic clock of the boot that set them; a deadline set on another boot counts as past
/// (whoever held the lease died with that boot). Wall time is kept for display only.
struct Clock {
  std::int64_t mono_us = 0;  ///< CLOCK_BOOTTIME, µs
  std::int64_t boot = 0;     ///< this boot, as a number derived from its boot id
  std::int64_t wall_us = 0;  ///< µs since the epoch
  /// Whether queue operations take this time as given (tests that move time by hand). An
  /// unpinned clock only says "now": a write reads the clocks again once its transaction holds
  /// the write lock, because the caller's reading may be seconds old by then, and a lease that
  /// expired meanwhile must count as expired.
  bool pinned = false;
  /// The real clocks, now.
  static Clock now();
  /// The real clocks now, pinned.
  static Clock pinned_now();
  Clock plus_ms(std::int64_t ms) const { return Clock{mono_us + ms * 1000, boot, wall_us + ms * 1000, pinned}; }
};

/// What a parked event does to the rest of its stream.
enum class Poison {
  block,  ///< the stream is held until the event is retried and acked
  park,   ///< the stream moves on past it
};

/// How a queue is created.
struct QueueSpec {
  std::string name;
  EventFilter filter;
  std::int64_t max_attempts = 5;
  std::int64_t ack_timeout_ms = 30000;
  Poison on_poison = Poison::block;
};

/// A point in the store's history: where a queue starts (create --from) or restarts (reset --to).
struct StartPoint {
  enum Kind { start, end, at } kind = end;
  std::int64_t position = 0;  ///< for Kind::at: the queue holds the matching events after it
};

/// One queue's definition and cursor.
struct QueueInfo {
  std::int64_t id = 0;  ///< never reused in a store: a queue created again under a name is another queue
  std::string name;
  EventFilter filter;
  std::int64_t start_position = 0;  ///< the queue holds the matching events after this position
  std::int64_t cursor = 0;          ///< matching events up to here are acked or in flight
  std::int64_t max_attempts = 5;
  std::int64_t ack_timeout_ms = 30000;
  Poison on_poison = Poison::block;
  std::int64_t generation = 0;  ///< bumped by reset
  std::int64_t created_at_us = 0;
  /// Wall µs of its creation, last reset or rebuild handover: its events became deliverable to
  /// it no earlier than this.
  std::int64_t deliverable_since_us = 0;
};

/// `queue status`: counts of the matching events after the queue's start that are not acked.
/// lag = pending + leased + retrying + parked.
struct QueueStatus {
  QueueInfo queue;
  std::int64_t head_position = 0;  ///< the store's head position
  std::int64_t lag = 0;            ///< not acked, whatever their state
  std::int64_t pending = 0;        ///< never delivered (or put back by retry): new, or held behind their stream
  std::int64_t leased = 0;         ///< handed out, lease not expired
  std::int64_t retrying = 0;       ///< nacked or lease expired with attempts left: will be delivered again
  std::int64_t parked = 0;         ///< parked, or its last allowed lease expired (see Queues::parked)
  std::optional<std::int64_t> oldest_position;        ///< the lowest unacked position
  std::optional<std::int64_t> oldest_recorded_at_us;  ///< its recorded_at
  /// Since when the oldest unacked event has been deliverable to this queue: its recorded_at, or
  /// the queue's deliverable_since if later. Its age is now minus this.
  std::optional<std::int64_t> oldest_since_us;
};

/// One event handed out by pull, with its delivery number (1 for the first delivery) and the
/// token of its lease: (position, lease) names this delivery and no other.
struct Delivery {
  Event event;
  std::int64_t attempt = 1;
  std::int64_t lease = 0;
};

/// What a pull leased, so that it can be renewed while a handler works (Queues::renew). Every
/// delivery of one pull carries the same token; tokens are never reused in a store.
struct Lease {
  std::int64_t queue_id = 0;
  std::int64_t token = 0;
  std::optional<std::int64_t> run;  ///< id of the run of first deliveries, if any (see queue.cpp)
  std::vector<std::int64_t> rows;   ///< positions leased one by one (redeliveries)
};

struct PullOptions {
  std::int64_t max = 1;                 ///< lease at most this many events
  std::optional<std::int64_t> lease_ms;  ///< default: the queue's ack timeout
  /// A redelivery is handed out alone: a batch that failed as a whole is retried one event at a
  /// time, so one poison event does not use up its batch-mates' attempts (drain).
  bool isolate_retries = false;
  /// Lease a full batch (or every deliverable event up to the head) or nothing: when the batch
  /// could only be filled by admitting new events of blocked streams (see queue.cpp), lease
  /// nothing and leave the cursor where it is. A drain pulls its next batch this way while the
  /// current batch's handler still holds its streams.
  bool whole_batch_only = false;
  /// The queue's id as the caller knows it: if the queue of that name is now another one (it was
  /// deleted, and maybe created again), the pull fails with Errc::not_found and leases nothing.
  std::optional<std::int64_t> queue_id;
  /// A spent batch (the deliveries of an earlier pull, no longer needed) whose storage this
  /// pull takes over: its events are overwritten in place, keeping their strings' buffers, so a
  /// drain's steady state allocates nothing per event. Left empty.
  std::vector<Delivery>* recycle = nullptr;
};

struct PullResult {
  std::vector<Delivery> deliveries;  ///< in position order; empty: nothing deliverable now
  Lease lease;
  std::int64_t lease_expires_at_us = 0;  ///< wall clock, for display
  std::int64_t parked = 0;               ///< events whose lease had expired for the last time, parked by this pull
};

/// The outcome of a delivered batch (drain), applied by Queues::settle or by the next pull.
/// Fenced (see "Fencing" in queue.cpp): an item changes its event only while the delivery it
/// answers is current; any other item is counted as stale and changes nothing.
struct Settlement {
  enum Kind { ack, nack, release };  ///< release: give it back without counting the attempt
  struct Item {
    std::int64_t position = 0;
    Kind kind = ack;
    std::string reason;  ///< for nack
  };
  std::int64_t queue_id = 0;  ///< Lease::queue_id of the deliveries it answers
  std::int64_t token = 0;     ///< Lease::token of the deliveries it answers
  std::vector<Item> items;
  /// An empty settlement answering the deliveries of `lease`.
  static Settlement of(const Lease& lease) { return Settlement{lease.queue_id, lease.token, {}}; }
};

/// What a settlement did.
struct SettleCounts {
  std::int64_t acked = 0, retried = 0, parked = 0, released = 0;
  std::int64_t stale = 0;  ///< items not applied: their delivery's lease was no longer current
  void add(const SettleCounts& o) {
    acked += o.acked, retried += o.retried, parked += o.parked, released += o.released, stale += o.stale;
  }
};

/// One position given to `queue ack|nack`: fenced with the token of the delivery it answers,
/// or bare (an operator's override: it settles whatever delivery is current).
struct Target {
  std::int64_t position = 0;
  std::optional<std::int64_t> lease;
};

/// A parked event with its last failure.
struct ParkedEvent {
  Event event;
  std::int64_t attempts = 0;
  std::string reason;
  std::int64_t parked_at_us = 0;
};

/// Queue operations on one store connection, on any backend (the rows are the backend's
/// QueueRows, queue_rows.hpp). Every mutating call is one write transaction that holds its queue
/// against every other connection (pull may use several short ones when its filter skips many
/// events). Queue names are checked (Errc::usage); an unknown queue is Errc::not_found.
///
/// Durability: create/reset/delete/retry commit durably (SQLite: the store's fsync); pull, ack,
/// nack, settle and renew commit relaxed (SQLite: synchronous=NORMAL; PostgreSQL:
/// synchronous_commit off): atomic, they survive a crash of the process, but the last ones may
/// be lost in a power failure or server crash — which at-least-once tolerates: a lost ack or
/// lease means a redelivery.
class Queues {
 public:
  explicit Queues(Store& store);

  /// Creates a queue. Errc::conflict if the name is taken; Errc::usage for a bad spec or a
  /// start position beyond the head. Costs nothing per stored event.
  QueueInfo create(const QueueSpec& spec, StartPoint from);
  QueueInfo get(std::string_view name);
  /// Names starting with `prefix`, sorted (completion).
  std::vector<std::string> names(std::string_view prefix = {});
  /// Counts for one queue, from one read snapshot. Counting the new events costs a scan of the
  /// events after the cursor when the queue has a filter.
  QueueStatus status(std::string_view name, const Clock& clock);
  std::vector<QueueStatus> statuses(const Clock& clock);

  /// Leases up to `max` deliverable events, lowest position first, keeping per-stream order
  /// (see queue.cpp). With `settle_first`, applies it in the same transaction first (adding to
  /// `counts`). Empty when nothing is deliverable now.
  PullResult pull(std::string_view name, const PullOptions& options, const Clock& clock,
                  const Settlement* settle_first = nullptr, SettleCounts* counts = nullptr);
  /// Applies a settlement on its own.
  SettleCounts settle(std::string_view name, const Settlement& settlement, const Clock& clock);
  /// Extends a lease to `lease_ms` from now (a handler is still working). Fenced: only the
  /// deliveries of `lease` that are still current are extended; an expired lease stays expired.
  void renew(std::string_view name, const Lease& lease, std::int64_t lease_ms, const Clock& clock);

  /// Acks events: they are done. Returns the fenced targets that were stale (not applied; the
  /// others are). Acking an acked event is a no-op. Errc::usage (nothing acked) for a position
  /// the queue has not reached yet (after its cursor: never delivered) or that is not one of its
  /// events (before its start, not matching its filter, no such event).
  std::vector<Target> ack_targets(std::string_view name, const std::vector<Target>& targets, const Clock& clock);
  /// Nacks delivered events: each is delivered again after `delay_ms`, or parked with `reason`
  /// when it has had max-attempts deliveries. Returns the fenced targets that were stale. A bare
  /// nack of an event already waiting for retry updates its delay and reason; of a parked event,
  /// nothing. Errc::usage (nothing changed) for an event that is acked, never delivered, or not
  /// in the queue.
  std::vector<Target> nack_targets(std::string_view name, const std::vector<Target>& targets, std::int64_t delay_ms,
                                   const std::string& reason, const Clock& clock);
  /// Bare ack / nack of positions (operator's override; tests).
  void ack(std::string_view name, const std::vector<std::int64_t>& positions);
  void nack(std::string_view name, const std::vector<std::int64_t>& positions, std::int64_t delay_ms,
            const std::string& reason, const Clock& clock);

  /// Parked events in position order, including those whose last allowed lease has expired
  /// (reason "lease expired", parked when it expired) though no pull has recorded it yet.
  std::vector<ParkedEvent> parked(std::string_view name, const Clock& clock = Clock::now());
  /// Puts parked events back (next delivery: attempt 1). Errc::usage (nothing changed) if a
  /// position is not parked. Returns how many.
  std::int64_t retry(std::string_view name, const std::vector<std::int64_t>& positions, const Clock& clock = Clock::now());
  std::int64_t retry_all(std::string_view name, const Clock& clock = Clock::now());

  /// Clears the queue's delivery state and moves its start and cursor to `to`: every matching
  /// event after it becomes deliverable. Other queues are untouched.
  QueueInfo reset(std::string_view name, StartPoint to);
  /// Deletes the queue and its delivery state.
  void remove(std::string_view name);

 private:
  Store& store_;
};

/// What `reset --to` would do to a queue, before it does it (--dry-run, and the --force guard).
struct ResetImpact {
  std::int64_t point = 0;        ///< the queue's new start: it holds the matching events after it
  std::int64_t skipped = 0;      ///< unacked events (pending, leased, retrying or parked) at or before the point: dropped
  std::int64_t redelivered = 0;  ///< matching events after the point that are not unacked now: delivered again
  std::int64_t deliverable = 0;  ///< matching events after the point: every one deliverable after the reset
};

/// One event a queue has acked (Queues::for_each_acked).
struct AckedEvent {
  std::int64_t position = 0;
  std::string_view stream;
  std::int64_t version = 0;
};

/// Impact previews and checks over Queues (kept apart from the delivery algorithm).
namespace queue_admin {

/// Runs `work` as one write transaction on `store`'s connection: committed if it returns true,
/// rolled back if it returns false or throws. Queue operations called inside join it, so a
/// check and the change it guards see one state, and a --dry-run can run the real operation
/// and roll it back.
void atomically(Store& store, const std::function<bool()>& work);

/// What Queues::reset(name, to) would do now. Changes nothing. Costs a scan of the events from
/// the lower of the point and the cursor up to the higher (the head, for the deliverable count)
/// when the queue has a filter, else a count.
ResetImpact reset_impact(Store& store, std::string_view name, StartPoint to);

/// Calls `fn` for every event queue `name` has acked, in position order, from one snapshot: the
/// matching events after its start (its creation, last reset or rebuild handover) up to its
/// cursor that are not in flight (pending, leased, retrying or parked). Returns how many.
/// `first`, if given, runs once the snapshot is taken and before the first event (verify reads
/// its log there: a handler's log is written before the ack, so it holds whatever the snapshot
/// shows as acked). Errc::not_found for an unknown queue, before `first` runs.
std::int64_t for_each_acked(Store& store, std::string_view name, const std::function<void(const AckedEvent&)>& fn,
                            const std::function<void()>& first = {});

}  // namespace queue_admin

/// The text of a Poison value: "block" or "park".
const char* poison_name(Poison p);

}  // namespace esctl
