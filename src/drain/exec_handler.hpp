// The --exec handler of `queue drain`: runs a shell command once per batch with the batch as
// NDJSON on its stdin; its exit status acks or nacks the whole batch.
#pragma once
#include <functional>
#include <string>
#include <string_view>

#include "drain/batch_handler.hpp"
#include "drain/process.hpp"

namespace esctl {

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

/// The --exec handler: runs the command once per batch with the batch as NDJSON on its stdin.
/// Exit status 0 acks the batch; another status or a signal nacks it ("handler exited with
/// status N", "handler was killed by signal N (NAME)"), followed by ": " and the last line the
/// handler wrote to stderr, if any (at most kReasonStderrBytes). When the command cannot be run
/// at all (/bin/sh cannot be spawned, or it exits 126/127: not executable / not found) it throws
/// Errc::io.
BatchHandler make_exec_handler(ExecOptions options);

}  // namespace esctl
