// Process-wide signal policy: SIGINT asks long commands to stop at the next transaction
// boundary; SIGPIPE is ignored so a closed stdout surfaces as EPIPE (handled as BrokenPipe);
// SIGXFSZ is ignored so a write past the file size limit (ulimit -f) fails with EFBIG, reported
// as an error, instead of killing the process in the middle of a write.
#pragma once

namespace esctl {

/// Installs the handlers (idempotent). Child processes must call restore_default_signals().
void install_signal_handlers();
/// Resets SIGPIPE/SIGINT/SIGTERM/SIGXFSZ to default; for use between fork() and exec().
void restore_default_signals();
/// True once SIGINT (or SIGTERM) arrived.
bool interrupted();
/// A descriptor that becomes readable (and stays so) when SIGINT or SIGTERM arrives, for a
/// poll() that must wake up at once whichever thread the signal went to; -1 before
/// install_signal_handlers(). Never read it.
int interrupt_fd();
/// Throws Error(Errc::interrupted) if interrupted(); call at transaction boundaries.
void check_interrupted();

}  // namespace esctl
