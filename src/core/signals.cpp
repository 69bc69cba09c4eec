#include "core/signals.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "core/error.hpp"

namespace esctl {
namespace {

std::atomic<bool> g_interrupted{false};
int g_wake[2] = {-1, -1};  // a pipe: the handler writes a byte to [1], poll() waits on [0]

extern "C" void on_stop_signal(int) {
  g_interrupted.store(true);
  if (g_wake[1] >= 0) {
    int saved = errno;
    [[maybe_unused]] ssize_t n = ::write(g_wake[1], "x", 1);  // async-signal-safe; a full pipe is fine
    errno = saved;
  }
}

}  // namespace

void install_signal_handlers() {
  if (g_wake[0] < 0 && ::pipe2(g_wake, O_CLOEXEC | O_NONBLOCK) != 0) g_wake[0] = g_wake[1] = -1;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking wait returns EINTR and sees the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);  // a write past `ulimit -f` fails with EFBIG (exit 1), not a kill
}

void restore_default_signals() {
  signal(SIGPIPE, SIG_DFL);
  signal(SIGXFSZ, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
}

bool interrupted() { return g_interrupted.load(std::memory_order_relaxed); }

int interrupt_fd() { return g_wake[0]; }

void check_interrupted() {
  if (interrupted()) throw Error(Errc::interrupted, "interrupted");
}

}  // namespace esctl
