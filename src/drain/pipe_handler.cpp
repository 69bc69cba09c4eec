// The --pipe handler (see pipe_handler.hpp).
//
// Protocol: each delivered event is one NDJSON line on the process's stdin; for each line, in
// order, the process writes one line on its stdout: `ack`, or `nack` optionally followed by a
// space and a reason. A whole batch is written ahead of the answers (through a pipe enlarged to
// hold it, written without blocking while the answers are read), so the process never waits for
// esctl between two events of a batch; the drain loop settles the batch's answers in one
// transaction. Answer i belongs to line i: the protocol has no other way to pair them, so an
// answer that comes with no event outstanding (more answers than events) is a protocol error when
// it is seen, and a process that answers twice for one line has had its second answer taken for
// the next line before that.
//
// Attribution: whatever ends the process (exit, signal, stdout closed, a line that is not an
// answer, too many answers, silence for the ack timeout) ends it for the first event it has not
// answered: that event is nacked (an attempt used) and the later unanswered ones are returned
// (never acked, no attempt used), so a crash with 50 events in flight costs one attempt of one
// event, the one most likely to have caused it. Inside a stream no outcome is taken after a nack:
// a stream whose event was nacked has its later events returned, whatever was answered for them.
//
// Watching the process: poll() on its stdout, a pidfd (its exit) and esctl's interrupt
// descriptor, with the ack timeout as the poll timeout, so an idle wait costs no CPU. Without
// pidfd_open (Linux < 5.3) the poll wakes every 200 ms to ask waitpid. Its stderr is read by a
// thread of its own (StderrReader) for as long as it runs: also between batches, when nothing
// here is watching it, so that a handler writing much there while the drain is idle never blocks.
#include "drain/pipe_handler.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_set>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/signals.hpp"
#include "drain/process.hpp"

namespace esctl {
namespace {

using Steady = std::chrono::steady_clock;

constexpr int kExitCheckMs = 200;       // without a pidfd: how often waitpid is asked
constexpr int kExitAfterEofMs = 2000;   // after its stdout closed: how long to wait for the exit status
constexpr std::size_t kPipeMax = 1 << 20;

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);  // close-on-exec by default
  return fd < 0 ? -1 : static_cast<int>(fd);
#else
  (void)pid;
  return -1;
#endif
}

std::string ms_text(std::int64_t ms) {
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000);
}

std::string status_text(int status) {
  if (WIFSIGNALED(status)) return fmt::format("handler was killed by signal {}", signal_text(WTERMSIG(status)));
  return fmt::format("handler exited with status {}", WEXITSTATUS(status));
}

// At most 80 bytes of an answer line, for messages.
std::string quoted_line(std::string_view line) {
  std::string s(line.substr(0, 80));
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  return "'" + s + (line.size() > 80 ? "...'" : "'");
}

class PipeHandler {
 public:
  explicit PipeHandler(PipeOptions o) : o_(std::move(o)), backoff_ms_(o_.first_backoff_ms) {}
  ~PipeHandler() { finish(); }
  PipeHandler(const PipeHandler&) = delete;

  BatchOutcome operator()(const std::vector<Delivery>& batch) {
    Batch b(batch);
    if (!interrupted() && running()) check_idle();
    if (!interrupted() && !running() && wait_backoff()) start();
    if (interrupted() || !running()) return b.finish();  // unanswered: returned
    buf_.clear();
    for (const auto& d : batch) {
      o_.format(buf_, d);
      buf_.push_back('\n');
    }
    exchange(b);
    return b.finish();
  }

 private:
  // The answers to one batch so far.
  struct Batch {
    const std::vector<Delivery>& events;
    std::size_t answered = 0;
    BatchOutcome out;
    std::unordered_set<std::string_view> failed;  // streams with a nacked event in this batch

    explicit Batch(const std::vector<Delivery>& e) : events(e) {
      out.final_answers = true;
      out.results.reserve(e.size());
    }
    bool done() const { return answered == events.size(); }
    void answer(std::optional<std::string> nack) {
      const Delivery& d = events[answered++];
      if (!failed.empty() && failed.count(d.event.stream)) {
        out.returned.push_back(d.event.position);
        return;
      }
      if (nack) failed.insert(d.event.stream);
      out.results.emplace_back(d.event.position, std::move(nack));
    }
    // The process failed: the first unanswered event is nacked with `reason`, the rest returned.
    // Returns how many were nacked (0 or 1).
    int fail(const std::string& reason) {
      if (done()) return 0;
      const bool held = failed.count(events[answered].event.stream) > 0;
      answer(reason);
      return held ? 0 : 1;
    }
    BatchOutcome finish() {
      for (; answered < events.size(); ++answered) out.returned.push_back(events[answered].event.position);
      return std::move(out);
    }
  };

  bool running() const { return pid_ > 0; }

  void say(const std::string& line) {
    std::string text = "esctl: " + line + "\n";
    if (o_.relay) o_.relay(2, text);
    else write_all_fd(2, text);
  }


  // Reads what the process wrote to stdout into rbuf_; false at end of file.
  bool read_stdout() {
    char chunk[1 << 16];
    ssize_t n = ::read(out_.fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
      out_.reset();
      return false;
    }
    rbuf_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  // Takes what is left in the process's stdout without waiting (it has exited, or is being
  // ended); what something it started in the background keeps open is not waited for.
  void drain_stdout() {
    while (out_.fd >= 0 && read_stdout()) {
      pollfd p{out_.fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
    }
  }

  // Reaps the process if it has exited; true then (status_ set).
  bool reap_if_exited() {
    if (exited_) return true;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = st;
    }
    return exited_;
  }

  // Waits up to `ms` for the process to exit, keeping its stdout.
  bool wait_exit(std::int64_t ms) {
    const auto until = Steady::now() + std::chrono::milliseconds(ms);
    while (!reap_if_exited()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Steady::now()).count();
      if (left <= 0) return false;
      pollfd fds[2];
      nfds_t n = 0;
      if (pidfd_.fd >= 0) fds[n++] = {pidfd_.fd, POLLIN, 0};
      if (out_.fd >= 0) fds[n++] = {out_.fd, POLLIN, 0};
      int wait = static_cast<int>(pidfd_.fd >= 0 ? left : std::min<std::int64_t>(left, 20));
      if (::poll(fds, n, wait) <= 0) continue;
      for (nfds_t i = 0; i < n; ++i)
        if (fds[i].revents && fds[i].fd == out_.fd) read_stdout();
    }
    return true;
  }

  void signal_group(int sig) {
    if (::kill(-pid_, sig) != 0 && !exited_) ::kill(pid_, sig);
  }

  // Ends the process: stdin closed, then (unless it exits within `grace_ms`) SIGTERM to its
  // process group and SIGKILL after term_wait_ms. Its group gets SIGTERM even when it has exited,
  // for what it started. Returns its wait status.
  int end_process(std::int64_t grace_ms) {
    in_.reset();
    if (!wait_exit(grace_ms)) {
      signal_group(SIGTERM);
      if (!wait_exit(o_.term_wait_ms)) {
        signal_group(SIGKILL);
        status_ = wait_child(pid_, o_.command);
        exited_ = true;
      }
    } else {
      ::kill(-pid_, SIGTERM);  // stragglers it started (ESRCH when there are none)
    }
    drain_stdout();
    if (err_) {
      err_->stop();
      last_said_ = err_->take_last_line();
      err_.reset();
    }
    int status = status_;
    out_.reset();
    pidfd_.reset();
    rbuf_.clear();
    pid_ = -1;
    exited_ = false;
    return status;
  }

  void start() {
    Fd in_r, in_w, out_r, out_w, err_r, err_w;
    make_pipe(in_r, in_w, o_.command);
    make_pipe(out_r, out_w, o_.command);
    make_pipe(err_r, err_w, o_.command);
    pid_t pid = -1;
    int err = spawn_shell(o_.command, in_r.fd, out_w.fd, err_w.fd, true, pid);
    if (err != 0)
      throw Error(Errc::io, fmt::format("cannot start handler '{}': posix_spawn: {}", o_.command, std::strerror(err)));
    pid_ = pid;
    exited_ = false;
    answers_ = 0;
    in_.fd = std::exchange(in_w.fd, -1);
    out_.fd = std::exchange(out_r.fd, -1);
    pidfd_.fd = open_pidfd(pid);
    last_said_.clear();
    err_ = std::make_unique<StderrReader>(
        std::move(err_r),
        [this](std::string_view bytes) {
          if (o_.relay) o_.relay(2, bytes);
          else write_all_fd(2, bytes);
        },
        o_.command);
    // Room for a whole batch, so that writing it rarely waits (best effort: limits may refuse).
    ::fcntl(in_.fd, F_SETPIPE_SZ, static_cast<int>(kPipeMax));
    for (int fd : {in_.fd, out_.fd}) ::fcntl(fd, F_SETFL, O_NONBLOCK);
  }

  // Before the next batch is written: a process that exited, or wrote something, while it had
  // nothing to answer has failed (no event to blame).
  void check_idle() {
    pollfd p{out_.fd, POLLIN, 0};
    if (out_.fd >= 0 && ::poll(&p, 1, 0) > 0) read_stdout();
    if (!rbuf_.empty()) {
      std::string_view first(rbuf_);
      first = first.substr(0, first.find('\n'));
      failed(fmt::format("protocol error: the handler wrote {} with no event outstanding (more answers than events)",
                         quoted_line(first)),
             nullptr);
    } else if (out_.fd < 0 || reap_if_exited()) {
      std::string what = "handler closed its stdout";
      if (wait_exit(kExitAfterEofMs)) what = status_text(status_);
      failed(what + " between batches", nullptr);
    }
  }

  // Waits out the back-off before a restart. False if SIGINT came first.
  bool wait_backoff() {
    if (!restart_at_) return true;
    const int ifd = interrupt_fd();
    for (;;) {
      if (interrupted()) return false;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*restart_at_ - Steady::now()).count();
      if (left <= 0) break;
      pollfd p{ifd, POLLIN, 0};
      ::poll(&p, ifd >= 0 ? 1 : 0, static_cast<int>(std::min<std::int64_t>(left, ifd >= 0 ? left : 100)));
    }
    restart_at_.reset();
    return true;
  }

  // The process failed with `what`: the batch (if any) is told, the process is ended, the
  // restart is scheduled after the back-off, and all of it is said on stderr.
  void failed(const std::string& what, Batch* b) {
    const int status = end_process(0);
    std::string said = std::move(last_said_);
    last_said_.clear();
    std::string reason = what;
    if (!said.empty()) reason += ": " + said;
    if (answers_ == 0 && WIFEXITED(status) && (WEXITSTATUS(status) == 126 || WEXITSTATUS(status) == 127))
      throw Error(Errc::io, fmt::format("handler '{}' could not be run: /bin/sh exited with status {} ({}); "
                                        "check the command (nothing was acked or counted as an attempt)",
                                        o_.command, WEXITSTATUS(status),
                                        WEXITSTATUS(status) == 127 ? "command not found" : "not executable"));
    std::string outcome;
    if (b) {
      std::size_t unanswered = b->events.size() - b->answered;
      int nacked = b->fail(reason);
      if (unanswered > 0)
        outcome = fmt::format(" ({} unanswered: {} nacked, {} returned)", unanswered, nacked,
                              unanswered - static_cast<std::size_t>(nacked));
    }
    restart_at_ = Steady::now() + std::chrono::milliseconds(backoff_ms_);
    say(fmt::format("--pipe handler: {}{}; starting it again in {}", reason, outcome, ms_text(backoff_ms_)));
    backoff_ms_ = std::min(backoff_ms_ * 2, o_.max_backoff_ms);
  }

  // Takes the complete answer lines in rbuf_. False after a protocol error (the process failed).
  bool take_answers(Batch& b) {
    std::size_t at = 0;
    for (;;) {
      const void* found = std::memchr(rbuf_.data() + at, '\n', rbuf_.size() - at);
      if (!found) break;
      const std::size_t nl = static_cast<std::size_t>(static_cast<const char*>(found) - rbuf_.data());
      std::string_view line(rbuf_.data() + at, nl - at);
      if (b.done()) {
        std::string what = fmt::format(
            "protocol error: the handler wrote {} with no event outstanding (more answers than events)", quoted_line(line));
        rbuf_.erase(0, at);
        failed(what, &b);
        return false;
      }
      if (line == "ack") {
        b.answer(std::nullopt);
      } else if (line == "nack") {
        b.answer(std::string("nacked by the handler"));
      } else if (line.size() > 5 && line.substr(0, 5) == "nack ") {
        b.answer(std::string(line.substr(5)));
      } else {
        std::string what = fmt::format("protocol error: the handler answered {} (expected 'ack', 'nack' or 'nack REASON')",
                                       quoted_line(line));
        rbuf_.erase(0, at);  // `line` points into rbuf_: quoted first
        failed(what, &b);
        return false;
      }
      ++answers_;
      backoff_ms_ = o_.first_backoff_ms;
      at = nl + 1;
    }
    rbuf_.erase(0, at);
    if (b.done() && !rbuf_.empty()) {
      failed(fmt::format("protocol error: the handler wrote {} with no event outstanding (more answers than events)",
                         quoted_line(rbuf_)),
             &b);
      return false;
    }
    return true;
  }

  // Writes buf_ to the process while reading its answers, until every event of `b` is answered,
  // the process fails, or SIGINT.
  void exchange(Batch& b) {
    std::size_t off = 0;
    auto deadline = Steady::now() + std::chrono::milliseconds(o_.ack_timeout_ms);
    const int ifd = interrupt_fd();
    if (!take_answers(b)) return;  // rbuf_ is empty here unless check_idle was skipped
    while (!b.done()) {
      if (interrupted()) {
        // The answers already written count: take them, without waiting for more.
        pollfd p{out_.fd, POLLIN, 0};
        while (out_.fd >= 0 && ::poll(&p, 1, 0) > 0 && read_stdout()) {
        }
        take_answers(b);
        return;
      }
      pollfd fds[4];
      nfds_t n = 0;
      const bool writing = in_.fd >= 0 && off < buf_.size();
      if (writing) fds[n++] = {in_.fd, POLLOUT, 0};
      if (out_.fd >= 0) fds[n++] = {out_.fd, POLLIN, 0};
      if (pidfd_.fd >= 0) fds[n++] = {pidfd_.fd, POLLIN, 0};
      if (ifd >= 0) fds[n++] = {ifd, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count();
      if (left <= 0) {
        failed(fmt::format("handler answered nothing for {} (the queue's --ack-timeout)", ms_text(o_.ack_timeout_ms)),
               &b);
        return;
      }
      int wait = static_cast<int>(std::min<std::int64_t>(left + 1, pidfd_.fd >= 0 ? left + 1 : kExitCheckMs));
      int ready = ::poll(fds, n, wait);
      if (ready < 0 && errno != EINTR)
        throw Error(Errc::io, fmt::format("lost handler '{}': poll: {}", o_.command, std::strerror(errno)));
      bool gone = pidfd_.fd < 0 && ready == 0 && reap_if_exited();
      bool eof = false;
      for (nfds_t i = 0; ready > 0 && i < n; ++i) {
        if (!fds[i].revents) continue;
        const int fd = fds[i].fd;
        if (fd == in_.fd) {
          ssize_t w = ::write(in_.fd, buf_.data() + off, buf_.size() - off);
          if (w > 0) off += static_cast<std::size_t>(w);
          // EPIPE: it closed its stdin; its answers (or its silence) decide.
          else if (w < 0 && errno != EAGAIN && errno != EINTR) in_.reset();
        } else if (fd == out_.fd) {
          const std::size_t before = b.answered;
          if (!read_stdout()) eof = true;
          if (!take_answers(b)) return;
          if (b.answered != before) deadline = Steady::now() + std::chrono::milliseconds(o_.ack_timeout_ms);
        } else if (fd == pidfd_.fd) {
          gone = reap_if_exited();
        }
      }
      if (gone) {
        // Answers it wrote before it exited still count.
        drain_stdout();
        if (!take_answers(b)) return;
        if (b.done()) {
          failed(status_text(status_), nullptr);
          return;
        }
        failed(status_text(status_), &b);
        return;
      }
      if (eof && !b.done()) {
        std::string what = "handler closed its stdout";
        if (wait_exit(kExitAfterEofMs)) what = status_text(status_);
        failed(what, &b);
        return;
      }
    }
  }

  // At the end of the drain: stdin closed, the process waited for (then ended).
  void finish() noexcept {
    if (!running()) return;
    try {
      end_process(o_.exit_wait_ms);
    } catch (...) {
    }
  }

  PipeOptions o_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  Fd in_, out_, pidfd_;
  std::unique_ptr<StderrReader> err_;  // while the process runs
  std::string last_said_;               // its last stderr line, once it has ended
  std::string buf_, rbuf_;
  std::int64_t answers_ = 0;  // since the process started
  std::int64_t backoff_ms_;
  std::optional<Steady::time_point> restart_at_;
};

}  // namespace

BatchHandler make_pipe_handler(PipeOptions options) {
  auto h = std::make_shared<PipeHandler>(std::move(options));
  return [h](const std::vector<Delivery>& batch) { return (*h)(batch); };
}

}  // namespace esctl
