// Following a PostgreSQL store: a Listener sleeps until an append commits, woken by
// LISTEN/NOTIFY on a connection of its own. A notification is only a hint to read again from
// the caller's own position; the Listener also wakes periodically, and after it re-established
// a lost connection (notifications sent meanwhile are lost, so the caller must read again).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/postgres/pg.hpp"

namespace esctl::pg {

/// The channel appends notify, with their new head position as payload.
inline constexpr const char* kEventsChannel = "esctl_events";

/// Why Listener::wait returned (as the SQLite store's ChangeWaiter).
enum class Woke {
  changed,      ///< an append was notified, the periodic re-check is due, or the connection was re-established
  timeout,      ///< `timeout_ms` passed without any of those
  interrupted,  ///< SIGINT/SIGTERM arrived
  hangup,       ///< a descriptor given to wake_on_hangup() reported an error or hang-up
};

class Listener {
 public:
  /// Told about a lost connection and the reconnection (a line for stderr), once per outage of
  /// the server however many of the process's connections find out (core/outage.hpp).
  using Report = std::function<void(const std::string&)>;

  /// Connects and LISTENs (Errc::io if the server cannot be reached). Construct it BEFORE the
  /// catch-up read: an append committed after the LISTEN wakes the next wait().
  Listener(std::string uri, int busy_timeout_ms, Report report = {});
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  void wake_on_hangup(int fd);
  /// Blocks until a notification, the periodic re-check (every `recheck_ms`), `timeout_ms`
  /// (negative: no limit), a stop signal or a hang-up. A lost connection is re-established
  /// with back-off (100 ms doubling to 5 s) during waits, reported through `report`; the wait
  /// that re-establishes it returns `changed`.
  Woke wait(int timeout_ms);
  /// The period of the fallback re-check (default 2 s).
  void set_recheck_ms(int ms) { recheck_ms_ = ms; }
  /// The server process of the listening connection (0 while disconnected): for tests.
  int backend_pid() const;

 private:
  using Steady = std::chrono::steady_clock;  // not queue.hpp's Clock: durations here only
  bool try_connect();
  bool drain();  // consumes input; true if a notification arrived; resets conn_ when lost

  std::string uri_;
  int busy_timeout_ms_;
  Report report_;
  std::unique_ptr<Conn> conn_;
  std::vector<int> hangup_fds_;
  int recheck_ms_ = 2000;
  int backoff_ms_ = 100;
  std::uint64_t opened_at_ = 0;  // outage::epoch() when the connection was opened
  Steady::time_point next_attempt_{};
  Steady::time_point last_wake_ = Steady::now();
};

}  // namespace esctl::pg
