// core/signals: SIGINT and SIGTERM set the interrupted flag and make interrupt_fd() readable
// (for a poll() in any thread), SIGPIPE is ignored (a write to a closed pipe fails with EPIPE).
// Each case runs in a forked child, since the flag cannot be cleared in this process.
#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <initializer_list>

#include "core/signals.hpp"

using namespace esctl;

namespace {

// Runs `body` in a forked child; returns its exit status (0 when body returned true).
template <class F>
int in_child(F body) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(body() ? 0 : 1);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

}  // namespace

TEST_SUITE("core/signals") {
  TEST_CASE("SIGINT and SIGTERM set interrupted() and make interrupt_fd() readable, and do not kill") {
    for (int sig : {SIGINT, SIGTERM}) {
      CAPTURE(sig);
      CHECK(in_child([sig] {
              install_signal_handlers();
              int fd = interrupt_fd();
              if (fd < 0 || interrupted() || readable(fd)) return false;
              ::raise(sig);
              return interrupted() && readable(fd) && readable(fd);  // stays readable
            }) == 0);
    }
  }

  TEST_CASE("check_interrupted throws only after the signal") {
    CHECK(in_child([] {
            install_signal_handlers();
            try {
              check_interrupted();
            } catch (...) {
              return false;
            }
            ::raise(SIGINT);
            try {
              check_interrupted();
              return false;
            } catch (...) {
              return true;
            }
          }) == 0);
  }

  TEST_CASE("SIGPIPE is ignored: writing to a closed pipe fails with EPIPE") {
    CHECK(in_child([] {
            install_signal_handlers();
            int p[2];
            if (::pipe(p) != 0) return false;
            ::close(p[0]);
            return ::write(p[1], "x", 1) == -1 && errno == EPIPE;
          }) == 0);
  }
}
