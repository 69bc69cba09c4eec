// `queue drain`: the loop that pulls batches from a queue, hands them to a handler and settles
// the outcome (ack / nack), with K workers, lease renewal, --follow and SIGINT at batch
// boundaries. Not here: the queue algorithm (store/queue.hpp), the handlers (exec_handler.hpp,
// projection_handler.hpp), printing (commands/queue.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "drain/batch_handler.hpp"
#include "store/queue.hpp"
#include "store/store.hpp"

namespace esctl {

struct DrainTotals {
  std::int64_t delivered = 0;  ///< events handed to the handler (redeliveries count again)
  std::int64_t acked = 0;
  std::int64_t retried = 0;   ///< nacked and to be delivered again (an attempt used)
  std::int64_t returned = 0;  ///< given back without using an attempt (SIGINT, held behind a failed event)
  std::int64_t parked = 0;    ///< parked by this run (nacked for the last time, or lease expired for the last time)
  std::int64_t stale = 0;     ///< outcomes not applied: the lease had expired or passed to another delivery
};

struct DrainOptions {
  std::string queue;
  std::int64_t batch = 1000;  ///< events per batch, at most
  int parallel = 1;          ///< workers, each with its own connection, pulling its own batches
  bool follow = false;       ///< wait for new events instead of stopping when nothing is deliverable
  std::optional<std::int64_t> max_events;  ///< stop after delivering this many
  /// Called after each batch with running totals (serialized; from worker threads).
  std::function<void(const DrainTotals&)> progress;
  /// Called (serialized) once for each settlement that had stale outcomes, with their number.
  std::function<void(std::int64_t stale)> on_stale;
  /// Called (serialized) with a line for the user: the connection to the store's server was lost
  /// and is being made again, or was made again (the drain goes on after it).
  std::function<void(const std::string& line)> notice;
};

struct DrainSummary {
  DrainTotals totals;
  double elapsed_s = 0;
  bool interrupted = false;  ///< stopped by SIGINT/SIGTERM (after settling the batches in hand)
  /// The queue was deleted (and maybe created again under its name) while the drain ran: it
  /// stopped at the next batch boundary; its outcomes since then were stale.
  bool queue_deleted = false;
};

/// Drains `options.queue` until nothing is deliverable to this drainer (or forever with
/// `follow`), `max_events`, or SIGINT. Per-stream order holds across workers because a pull
/// never hands out a stream that another lease holds. A failed batch is retried one event at a
/// time (PullOptions::isolate_retries), at once. While a handler works, its lease is renewed
/// every third of the queue's ack timeout, so only a dead or paused drainer's leases expire; the
/// outcomes of a lease that expired are stale (counted, not applied). Throws Errc::not_found for
/// an unknown queue, and the first error a worker hit.
DrainSummary drain(const StoreOptions& store, const DrainOptions& options, const HandlerFactory& make_handler);

}  // namespace esctl
