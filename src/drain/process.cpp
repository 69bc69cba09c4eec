// Child processes for the drain handlers (see process.hpp).
#include "drain/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "core/error.hpp"

extern char** environ;

namespace esctl {

void Fd::reset() {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void make_pipe(Fd& r, Fd& w, const std::string& command) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0)
    throw Error(Errc::io, fmt::format("cannot start handler '{}': pipe: {}", command, std::strerror(errno)));
  r.reset();
  w.reset();
  r.fd = p[0];
  w.fd = p[1];
}

int spawn_shell(const std::string& command, int in, int out, int err, bool own_group, pid_t& pid) {
  const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  // dup2 onto the same descriptor clears its close-on-exec flag (glibc >= 2.29).
  posix_spawn_file_actions_adddup2(&fa, in, 0);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  posix_spawn_file_actions_adddup2(&fa, err, 2);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGXFSZ}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (own_group) {
    posix_spawnattr_setpgroup(&attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attr, flags);
  int rc = ::posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

int wait_child(pid_t pid, const std::string& command) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      throw Error(Errc::io, fmt::format("lost handler '{}': waitpid: {}", command, std::strerror(errno)));
  }
  return status;
}

std::string signal_text(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? fmt::format("{} (SIG{})", sig, abbrev) : std::to_string(sig);
}

void write_all_fd(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n > 0) s.remove_prefix(static_cast<std::size_t>(n));
    else if (n < 0 && errno == EINTR) continue;
    else return;  // the user's stderr is gone: the handler's output is lost, the drain goes on
  }
}

void LastLine::add(std::string_view bytes) {
  for (char c : bytes) {
    if (c == '\n') {
      end_line();
    } else if (partial_.size() < kReasonStderrBytes + 4) {  // room to cut at a character boundary
      partial_.push_back(c);
    }
  }
}

std::string LastLine::take() {
  end_line();
  std::string out = std::move(last_);
  last_.clear();
  return out;
}

void LastLine::end_line() {
  while (!partial_.empty() && (partial_.back() == '\r' || partial_.back() == ' ' || partial_.back() == '\t'))
    partial_.pop_back();
  if (!partial_.empty()) {
    if (partial_.size() > kReasonStderrBytes) {
      std::size_t n = kReasonStderrBytes;
      while (n > 0 && (static_cast<unsigned char>(partial_[n]) & 0xC0) == 0x80) --n;  // not inside a UTF-8 character
      partial_.resize(n);
    }
    last_ = std::move(partial_);
  }
  partial_.clear();
}

StderrReader::StderrReader(Fd&& fd, std::function<void(std::string_view)> sink, const std::string& command)
    : sink_(std::move(sink)) {
  fd_.fd = std::exchange(fd.fd, -1);
  make_pipe(wake_r_, wake_w_, command);
  thread_ = std::thread([this] { run(); });
}

void StderrReader::stop() {
  if (!thread_.joinable()) return;
  const char c = 0;
  while (::write(wake_w_.fd, &c, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  fd_.reset();
}

std::string StderrReader::take_last_line() {
  std::lock_guard<std::mutex> lock(m_);
  return last_.take();
}

void StderrReader::pass(std::string_view bytes) {
  {
    std::lock_guard<std::mutex> lock(m_);
    last_.add(bytes);
  }
  sink_(bytes);
}

void StderrReader::run() {
  constexpr std::size_t kStopReadMax = 4 << 20;
  char chunk[1 << 14];
  for (;;) {
    pollfd fds[2] = {{fd_.fd, POLLIN, 0}, {wake_r_.fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) {
      // Stopping (checked first, so that a handler that keeps writing cannot hold it off): what
      // is in the pipe now, then no more (at most 4 MiB, should something it started keep writing).
      ::fcntl(fd_.fd, F_SETFL, O_NONBLOCK);
      for (std::size_t taken = 0; taken < kStopReadMax;) {
        ssize_t n = ::read(fd_.fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        taken += static_cast<std::size_t>(n);
        pass(std::string_view(chunk, static_cast<std::size_t>(n)));
      }
      return;
    }
    if (fds[0].revents) {
      ssize_t n = ::read(fd_.fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // end of file: everything that could hold it open has closed it
      pass(std::string_view(chunk, static_cast<std::size_t>(n)));
    }
  }
}

}  // namespace esctl
