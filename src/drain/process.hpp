// Child processes for the drain handlers: starting `/bin/sh -c CMD` on given descriptors,
// waiting for it, describing how it ended, and keeping the last line it wrote to stderr. Shared
// by the --exec and --pipe handlers; nothing here knows about queues.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace esctl {

/// The most bytes of a handler's last stderr line that a nack reason quotes.
inline constexpr std::size_t kReasonStderrBytes = 500;

/// A descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset();
};

/// Makes a close-on-exec pipe into `r` (read end) and `w` (write end). Throws Errc::io naming
/// `command` ("cannot start handler ...") on failure.
void make_pipe(Fd& r, Fd& w, const std::string& command);

/// Starts `/bin/sh -c command` with stdin from `in`, stdout to `out`, stderr to `err`, the default
/// disposition for the signals esctl handles or ignores, and no signal blocked. With
/// `own_group` the child leads a new process group (so that the whole group can be signalled).
/// posix_spawn (a vfork-style clone in glibc) copies no page tables, which fork() would for the
/// whole store cache. Returns posix_spawn's error number (0: started, `pid` set).
int spawn_shell(const std::string& command, int in, int out, int err, bool own_group, pid_t& pid);

/// Waits for `pid` and returns its wait status. Throws Errc::io naming `command` if waitpid fails.
int wait_child(pid_t pid, const std::string& command);

/// "N (SIGNAME)" for a signal number, or "N" when it has no name.
std::string signal_text(int sig);

/// Writes all of `s` to `fd`, retrying on EINTR; gives up silently when `fd` is gone (the user's
/// stderr closed: the handler's output is lost, the drain goes on).
void write_all_fd(int fd, std::string_view s);

/// The last non-empty line a handler wrote to stderr, trailing blanks trimmed, at most
/// kReasonStderrBytes of it (cut at a UTF-8 character boundary).
class LastLine {
 public:
  /// Feeds bytes as they arrive (lines may be split across calls).
  void add(std::string_view bytes);
  /// The last complete or partial line so far; clears it.
  std::string take();

 private:
  void end_line();
  std::string partial_, last_;
};

/// Reads a long-lived handler's stderr on a thread of its own for as long as the handler runs,
/// so that the handler never blocks on a full pipe, whatever it writes and whenever (also while
/// the drain is idle), and its output shows as it comes. Each chunk goes to `sink` (called on the
/// reader's thread) and into the last line kept for nack reasons.
class StderrReader {
 public:
  /// Takes `fd` (the read end of the handler's stderr) and starts reading it. Throws Errc::io
  /// naming `command` when it cannot.
  StderrReader(Fd&& fd, std::function<void(std::string_view)> sink, const std::string& command);
  ~StderrReader() { stop(); }
  StderrReader(const StderrReader&) = delete;
  StderrReader& operator=(const StderrReader&) = delete;
  /// Takes what is in the pipe now, without waiting for more (something the handler started in
  /// the background may hold it open), and ends the thread. Idempotent.
  void stop();
  /// The last line the handler wrote so far (see LastLine::take); clears it.
  std::string take_last_line();

 private:
  void run();
  void pass(std::string_view bytes);

  Fd fd_, wake_r_, wake_w_;
  std::function<void(std::string_view)> sink_;
  std::mutex m_;
  LastLine last_;
  std::thread thread_;
};

}  // namespace esctl
