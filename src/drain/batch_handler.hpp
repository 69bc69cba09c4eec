// The interface between the drain loop and its handlers (--exec, --pipe, --projection): a handler
// takes a batch of deliveries and says what became of each. Kept apart from the loop so that a
// handler needs only this and the queue's Delivery.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/queue.hpp"

namespace esctl {

/// What a handler made of one batch.
struct BatchOutcome {
  /// One entry per delivered event, by position: nullopt acks it, a string nacks it with that
  /// reason. An event the handler leaves out is nacked ("the handler reported no outcome").
  std::vector<std::pair<std::int64_t, std::optional<std::string>>> results;
  /// Positions to give back without using an attempt (they did not fail: an earlier event of
  /// their stream did); they override `results`.
  std::vector<std::int64_t> returned;
  /// The nacks are the handler's own answers, each about its event: under SIGINT they stay nacks.
  /// False (a whole-batch outcome, as --exec's exit status): under SIGINT a nack is most likely
  /// the interrupt itself, and the event is returned instead.
  bool final_answers = false;

  static BatchOutcome ack_all(const std::vector<Delivery>& batch);
  static BatchOutcome nack_all(const std::vector<Delivery>& batch, const std::string& reason);
};

/// Handles one batch (events in position order; a stream's events in version order). Runs on
/// one drain worker's thread. Throwing esctl::Error stops the whole drain: the batch is given
/// back without counting the attempt, and the error ends the command.
using BatchHandler = std::function<BatchOutcome(const std::vector<Delivery>& batch)>;
/// Makes the handler of worker `index` (0 .. parallel-1), called on that worker's thread.
using HandlerFactory = std::function<BatchHandler(int index)>;

}  // namespace esctl
