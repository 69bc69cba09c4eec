// `queue drain`: the loop that pulls batches from a queue, hands them to a handler and settles
// the outcome (ack / nack), with K workers, lease renewal, --follow and SIGINT at batch
// boundaries; plus the --exec handler. Not here: the queue algorithm (queue.hpp), the
// --projection handler (projection.hpp), printing (commands/queue.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/queue.hpp"
#include "store/store.hpp"

namespace esctl {

/// What a handler made of one batch.
struct BatchOutcome {
  /// One entry per delivered event, by position: nullopt acks it, a string nacks it with that
  /// reason. An event the handler leaves out is nacked ("the handler reported no outcome").
  std::vector<std::pair<std::int64_t, std::optional<std::string>>> results;
  /// Positions to give back without using an attempt (they did not fail: an earlier event of
  /// their stream did); they override `results`.
  std::vector<std::int64_t> returned;

  static BatchOutcome ack_all(const std::vector<Delivery>& batch);
  static BatchOutcome nack_all(const std::vector<Delivery>& batch, const std::string& reason);
};

/// Handles one batch (events in position order; a stream's events in version order). Runs on
/// one drain worker's thread. Throwing esctl::Error stops the whole drain: the batch is given
/// back without counting the attempt, and the error ends the command.
using BatchHandler = std::function<BatchOutcome(const std::vector<Delivery>& batch)>;
/// Makes the handler of worker `index` (0 .. parallel-1), called on that worker's thread.
using HandlerFactory = std::function<BatchHandler(int index)>;

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

struct ExecOptions {
  std::string command;  ///< run as `/bin/sh -c command`
  int stdout_fd = 1;    ///< where the handler's stdout goes (its stdin is the batch)
  /// Appends one event's NDJSON line (without the newline) to `out`.
  std::function<void(std::string& out, const Delivery& d)> format;
  /// Unset: the handler's stdout goes straight to stdout_fd, and its stderr is copied to esctl's
  /// stderr as it comes. Set (a progress line is on the terminal): both come through esctl and
  /// are handed here as they arrive, `fd` 1 for its stdout (meant for stdout_fd) and 2 for its
  /// stderr, so that the caller can clear its line first. Called on the worker's thread.
  std::function<void(int fd, std::string_view bytes)> relay;
};

/// The most bytes of a handler's last stderr line that a nack reason quotes.
inline constexpr std::size_t kReasonStderrBytes = 500;

/// The --exec handler: runs the command once per batch with the batch as NDJSON on its stdin.
/// Exit status 0 acks the batch; another status or a signal nacks it ("handler exited with
/// status N", "handler was killed by signal N (NAME)"), followed by ": " and the last line the
/// handler wrote to stderr, if any (at most kReasonStderrBytes). When the command cannot be run
/// at all (/bin/sh cannot be spawned, or it exits 126/127: not executable / not found) it throws
/// Errc::io.
BatchHandler make_exec_handler(ExecOptions options);

}  // namespace esctl
