// The --exec handler (see exec_handler.hpp): one `/bin/sh -c CMD` per batch, the batch as NDJSON
// on its stdin, its exit status as the batch's outcome.
#include "drain/exec_handler.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "core/error.hpp"
#include "drain/process.hpp"

namespace esctl {
namespace {

class ExecHandler {
 public:
  explicit ExecHandler(ExecOptions o) : o_(std::move(o)) {}

  BatchOutcome operator()(const std::vector<Delivery>& batch) {
    int status = run(batch);
    std::string said = last_stderr_.take();
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return BatchOutcome::ack_all(batch);
    if (WIFEXITED(status) && (WEXITSTATUS(status) == 126 || WEXITSTATUS(status) == 127))
      throw Error(Errc::io, fmt::format("handler '{}' could not be run: /bin/sh exited with status {} ({}); "
                                        "check the command (nothing was acked or counted as an attempt)",
                                        o_.command, WEXITSTATUS(status),
                                        WEXITSTATUS(status) == 127 ? "command not found" : "not executable"));
    std::string reason = WIFSIGNALED(status)
                             ? fmt::format("handler was killed by signal {}", signal_text(WTERMSIG(status)))
                             : fmt::format("handler exited with status {}", WEXITSTATUS(status));
    if (!said.empty()) reason += ": " + said;
    return BatchOutcome::nack_all(batch, reason);
  }

 private:
  // Starts the shell first and formats the batch while it starts up. Then feeds the batch to its stdin while reading its stderr (and, with a relay, its stdout), so
  // neither side can block the other on a full pipe.
  int run(const std::vector<Delivery>& batch) {
    Fd in_r, in_w, err_r, err_w, out_r, out_w;
    make_pipe(in_r, in_w, o_.command);
    make_pipe(err_r, err_w, o_.command);
    const bool relay = static_cast<bool>(o_.relay);
    if (relay) make_pipe(out_r, out_w, o_.command);
    pid_t pid = -1;
    int err = spawn_shell(o_.command, in_r.fd, relay ? out_w.fd : o_.stdout_fd, err_w.fd, false, pid);
    in_r.reset();
    err_w.reset();
    out_w.reset();
    if (err != 0)
      throw Error(Errc::io, fmt::format("cannot start handler '{}': posix_spawn: {}", o_.command, std::strerror(err)));
    try {
      buf_.clear();
      for (const auto& d : batch) {
        o_.format(buf_, d);
        buf_.push_back('\n');
      }
    } catch (...) {
      in_w.reset();
      err_r.reset();
      out_r.reset();
      wait_child(pid, o_.command);
      throw;
    }
    // A pipe that holds the whole batch lets the write finish without waiting for the handler
    // to read (best effort: the system's limits may refuse it).
    if (buf_.size() > kPipeMin) ::fcntl(in_w.fd, F_SETPIPE_SZ, static_cast<int>(std::min(buf_.size(), kPipeMax)));
    ::fcntl(in_w.fd, F_SETFL, O_NONBLOCK);
    std::size_t off = 0;
    if (buf_.empty()) in_w.reset();
    std::optional<int> status;
    char chunk[1 << 16];
    // Returns false at end of file (or a read error).
    auto pass_on = [&](Fd& from, int fd) {
      ssize_t n = ::read(from.fd, chunk, sizeof chunk);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
      if (n <= 0) {
        from.reset();
        return false;
      }
      std::string_view bytes(chunk, static_cast<std::size_t>(n));
      if (fd == 2) last_stderr_.add(bytes);
      if (relay) o_.relay(fd, bytes);
      else write_all_fd(2, bytes);
      return true;
    };
    while (in_w.fd >= 0 || err_r.fd >= 0 || out_r.fd >= 0) {
      pollfd fds[3];
      nfds_t n = 0;
      if (in_w.fd >= 0) fds[n++] = {in_w.fd, POLLOUT, 0};
      if (err_r.fd >= 0) fds[n++] = {err_r.fd, POLLIN, 0};
      if (out_r.fd >= 0) fds[n++] = {out_r.fd, POLLIN, 0};
      // The timeout notices a handler that exited while something it started in the background
      // still holds its stdout or stderr open.
      int ready = ::poll(fds, n, kExitCheckMs);
      if (ready < 0 && errno != EINTR)
        throw Error(Errc::io, fmt::format("lost handler '{}': poll: {}", o_.command, std::strerror(errno)));
      if (ready == 0) {
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid) {
          status = st;
          // Take what it left in the pipes, then stop listening.
          in_w.reset();
          for (Fd* f : {&err_r, &out_r}) {
            if (f->fd < 0) continue;
            ::fcntl(f->fd, F_SETFL, O_NONBLOCK);
            while (f->fd >= 0) {
              ssize_t got = ::read(f->fd, chunk, sizeof chunk);
              if (got <= 0) break;
              std::string_view bytes(chunk, static_cast<std::size_t>(got));
              const int fd = f == &err_r ? 2 : 1;
              if (fd == 2) last_stderr_.add(bytes);
              if (relay) o_.relay(fd, bytes);
              else write_all_fd(2, bytes);
            }
            f->reset();
          }
        }
        continue;
      }
      for (nfds_t i = 0; i < n; ++i) {
        if (!fds[i].revents) continue;
        if (fds[i].fd == in_w.fd) {
          ssize_t w = ::write(in_w.fd, buf_.data() + off, buf_.size() - off);
          if (w > 0) off += static_cast<std::size_t>(w);
          // EPIPE: the handler stopped reading; its exit status decides.
          if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == buf_.size()) in_w.reset();
        } else if (fds[i].fd == err_r.fd) {
          pass_on(err_r, 2);
        } else if (fds[i].fd == out_r.fd) {
          pass_on(out_r, 1);
        }
      }
    }
    return status ? *status : wait_child(pid, o_.command);
  }

  static constexpr std::size_t kPipeMin = 64 << 10, kPipeMax = 1 << 20;
  static constexpr int kExitCheckMs = 200;
  ExecOptions o_;
  std::string buf_;
  LastLine last_stderr_;
};

}  // namespace

BatchHandler make_exec_handler(ExecOptions options) {
  auto h = std::make_shared<ExecHandler>(std::move(options));
  return [h](const std::vector<Delivery>& batch) { return (*h)(batch); };
}


}  // namespace esctl
