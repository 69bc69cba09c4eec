// The --pipe handler of `queue drain`: one long-lived `/bin/sh -c CMD` per worker, fed events as
// NDJSON lines on its stdin and answering one `ack` / `nack [reason]` line per event on its stdout.
// The line protocol, the failure modes and how they are attributed are described at the top of
// pipe_handler.cpp.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "drain/batch_handler.hpp"

namespace esctl {

struct PipeOptions {
  std::string command;  ///< run as `/bin/sh -c command`, in its own process group
  /// Appends one event's NDJSON line (without the newline) to `out`.
  std::function<void(std::string& out, const Delivery& d)> format;
  /// A handler that answers nothing for this long while events are outstanding has failed (the
  /// queue's --ack-timeout).
  std::int64_t ack_timeout_ms = 30000;
  /// The wait before the first restart after a failure; it doubles after each failure up to
  /// max_backoff_ms, and is back at first_backoff_ms after an answer.
  std::int64_t first_backoff_ms = 100;
  std::int64_t max_backoff_ms = 30000;
  /// At the end of the drain: how long the handler may take to exit after its stdin is closed,
  /// and then after SIGTERM (before SIGKILL).
  std::int64_t exit_wait_ms = 10000;
  std::int64_t term_wait_ms = 5000;
  /// Unset: the handler's stderr, and esctl's notices about it (restarts), go to esctl's stderr
  /// as they come. Set (a progress line is on the terminal): they are handed here (`fd` 2) so
  /// that the caller can clear its line first. Called on the worker's thread, and for the
  /// handler's stderr on a thread that reads it (so it must be safe to call from both at once).
  std::function<void(int fd, std::string_view bytes)> relay;
};

/// The --pipe handler of one drain worker. The process starts at the first batch and is kept for
/// the next ones; the handler (the returned function and its copies) ends it when the last copy
/// goes away: its stdin is closed and it is waited for (SIGTERM to its process group after
/// exit_wait_ms, SIGKILL after term_wait_ms more).
///
/// Each batch is written to the process as NDJSON lines while its answers are read, one per
/// event, in order: `ack` acks the event, `nack` or `nack REASON` nacks it (reason "nacked by the
/// handler" or REASON). After a nack of an event of stream S, the answers for later events of S
/// in the batch are discarded and those events are returned (no attempt used). When the process
/// fails (it exits or is killed, closes its stdout, writes a line that is not an answer, writes
/// more answers than it was given events, or answers nothing for ack_timeout_ms while events are
/// outstanding) the first unanswered event is nacked with the reason (with the last line the
/// process wrote to stderr, at most kReasonStderrBytes) unless an earlier event of its stream
/// was nacked, and the other unanswered events are returned; the process is ended and started
/// again at the next batch, after the back-off (announced on stderr). SIGINT/SIGTERM: answers
/// received so far stand (BatchOutcome::final_answers), the unanswered events are returned.
/// When the process cannot be run at all (/bin/sh cannot be spawned, or exits 126/127 before any
/// answer: not executable / not found) it throws Errc::io.
BatchHandler make_pipe_handler(PipeOptions options);

}  // namespace esctl
