// LISTEN/NOTIFY waits (see listen.hpp): ppoll on libpq's socket and the hang-up descriptors,
// with SIGINT/SIGTERM unblocked only inside ppoll so that a stop signal is never missed.
#include "store/postgres/listen.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/outage.hpp"
#include "core/signals.hpp"
#include "store/location.hpp"

namespace esctl::pg {
namespace {

constexpr int kMaxBackoffMs = 5000;

std::int64_t ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

}  // namespace

Listener::Listener(std::string uri, int busy_timeout_ms, Report report)
    : uri_(std::move(uri)), busy_timeout_ms_(busy_timeout_ms), report_(std::move(report)) {
  opened_at_ = outage::epoch();
  conn_ = std::make_unique<Conn>(uri_, busy_timeout_ms_);
  conn_->exec_script(fmt::format("LISTEN {}", kEventsChannel).c_str());
}

Listener::~Listener() = default;

void Listener::wake_on_hangup(int fd) { hangup_fds_.push_back(fd); }

int Listener::backend_pid() const { return conn_ ? PQbackendPID(conn_->raw()) : 0; }

bool Listener::try_connect() {
  const auto epoch = outage::epoch();
  try {
    auto c = std::make_unique<Conn>(uri_, busy_timeout_ms_);
    c->exec_script(fmt::format("LISTEN {}", kEventsChannel).c_str());
    conn_ = std::move(c);
    opened_at_ = epoch;
    backoff_ms_ = 100;
    if (report_ && outage::reconnected())
      report_(fmt::format("reconnected to the PostgreSQL server of '{}'", display_location(uri_)));
    return true;
  } catch (const Error& e) {
    if (e.code() != Errc::io) throw;
    if (report_ && outage::lost(epoch))  // back, then gone again before this connection was made
      report_(fmt::format("lost the connection to the PostgreSQL server of '{}'; reconnecting", display_location(uri_)));
    next_attempt_ = Steady::now() + std::chrono::milliseconds(backoff_ms_);
    backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
    return false;
  }
}

bool Listener::drain() {
  PGconn* c = conn_->raw();
  if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
    if (report_ && outage::lost(opened_at_))
      report_(fmt::format("lost the connection to the PostgreSQL server of '{}'; reconnecting", display_location(uri_)));
    conn_.reset();
    next_attempt_ = Steady::now();
    return false;
  }
  bool any = false;
  while (PGnotify* n = PQnotifies(c)) {
    any = true;
    PQfreemem(n);
  }
  return any;
}

Woke Listener::wait(int timeout_ms) {
  const auto start = Steady::now();
  sigset_t stop, old;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  std::vector<pollfd> fds;
  for (;;) {
    if (interrupted()) return Woke::interrupted;
    auto now = Steady::now();
    if (!conn_ && now >= next_attempt_ && try_connect()) {
      last_wake_ = Steady::now();
      return Woke::changed;  // notifications may have been missed while disconnected
    }
    if (conn_ && drain()) {
      last_wake_ = Steady::now();
      return Woke::changed;
    }
    now = Steady::now();
    if (ms_between(last_wake_, now) >= recheck_ms_) {
      last_wake_ = now;
      return Woke::changed;
    }
    std::int64_t left = timeout_ms < 0 ? INT64_MAX : timeout_ms - ms_between(start, now);
    if (left <= 0) return Woke::timeout;
    std::int64_t step = std::min<std::int64_t>(left, recheck_ms_ - ms_between(last_wake_, now));
    if (!conn_) step = std::min<std::int64_t>(step, std::max<std::int64_t>(0, ms_between(now, next_attempt_)));
    step = std::max<std::int64_t>(step, 0);

    fds.clear();
    if (conn_) fds.push_back({PQsocket(conn_->raw()), POLLIN, 0});
    for (int fd : hangup_fds_) fds.push_back({fd, 0, 0});
    timespec ts{static_cast<time_t>(step / 1000), static_cast<long>(step % 1000) * 1000000L};
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    if (interrupted()) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return Woke::interrupted;
    }
    sigset_t during = old;
    sigdelset(&during, SIGINT);
    sigdelset(&during, SIGTERM);
    const int rc = ::ppoll(fds.data(), fds.size(), &ts, &during);
    const int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc < 0) {
      if (err == EINTR) continue;
      throw Error(Errc::io, fmt::format("cannot wait for changes to store '{}': {}", display_location(uri_), std::strerror(err)));
    }
    for (std::size_t i = conn_ ? 1 : 0; i < fds.size(); ++i)
      if (fds[i].revents & (POLLERR | POLLHUP | POLLNVAL)) return Woke::hangup;
  }
}

}  // namespace esctl::pg
