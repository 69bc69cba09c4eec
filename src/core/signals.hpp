// Process-wide signal policy: SIGINT asks long commands to stop at the next transaction
// boundary; SIGPIPE is ignored so a closed stdout surfaces as EPIPE (handled as BrokenPipe).
#pragma once

namespace esctl {

/// Installs the handlers (idempotent). Child processes must call restore_default_signals().
void install_signal_handlers();
/// Resets SIGPIPE/SIGINT to default; for use between fork() and exec().
void restore_default_signals();
/// True once SIGINT (or SIGTERM) arrived.
bool interrupted();
/// Throws Error(Errc::interrupted) if interrupted(); call at transaction boundaries.
void check_interrupted();

}  // namespace esctl
