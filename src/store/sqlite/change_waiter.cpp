// How the SQLite backend's ChangeSource (ChangeWaiter, store/follow.hpp) notices commits. SQLite in WAL mode publishes a commit in two steps: it
// write()s the frames to <store>-wal (which raises inotify IN_MODIFY), syncs, and only then
// updates the wal-index header in the mmap'ed -shm file (which raises nothing). So a
// notification means "a commit is on its way"; PRAGMA data_version on our connection says
// whether one is visible yet. After a notification we re-check data_version after 1 ms, then
// every 2 ms for 100 ms, then every 8 ms up to a second, then every 250 ms as a fallback.
// The WAL file keeps its inode while any connection has the store open (the last connection
// to close is the one that deletes it, and ours is open), so one watch normally lasts;
// should it go away (IN_IGNORED), the watch is re-added on the next slow tick.
#include "store/sqlite/change_waiter.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/signals.hpp"
#include "store/sqlite/sqlite.hpp"

namespace esctl::sqlite {
namespace {

constexpr int kSlowPollMs = 250;      // fallback check while the WAL is quiet
constexpr int kNoNotifyPollMs = 10;   // without inotify
constexpr int kHotEarlyStepMs = 2;    // check interval just after a WAL write ...
constexpr int kHotEarlyMs = 100;      // ... for this long
constexpr int kHotMaxStepMs = 8;      // then this, until the window ends
constexpr int kHotWindowMs = 1000;    // how long after a WAL write to keep checking quickly

using Clock = std::chrono::steady_clock;

std::int64_t ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

}  // namespace

class WalWaiter final : public ChangeSource {
 public:
  WalWaiter(sql::Db& db, std::string location);
  ~WalWaiter() override;
  void wake_on_hangup(int fd) override { hangup_fds_.push_back(fd); }
  Wake wait(int timeout_ms) override;

 private:
  bool version_changed();
  void try_watch();
  void drain_notifications();

  sql::Db& db_;
  std::string location_;
  std::int64_t version_ = 0;  // PRAGMA data_version at the last `changed` (or construction)
  int inotify_fd_ = -1;
  int wd_ = -1;
  // After a WAL write: check quickly until then (kept across calls: the writes of the next
  // commit may have been read from inotify before the previous commit became visible).
  Clock::time_point hot_until_{};
  int hot_step_ = 0;
  std::vector<int> hangup_fds_;
};

WalWaiter::WalWaiter(sql::Db& db, std::string location) : db_(db), location_(std::move(location)) {
  // A store we may not write, opened while no writer had it open, is read as an immutable
  // snapshot (sql::Db): it can never change, so waiting on it would wait forever.
  sqlite3_filename db_file = sqlite3_db_filename(db_.raw(), "main");
  if (db_file && sqlite3_uri_boolean(db_file, "immutable", 0))
    throw Error(Errc::read_only,
                fmt::format("cannot follow store '{}': it was opened as a read-only snapshot because neither it nor "
                            "its folder is writable by you and no writer has it open; start following while a "
                            "writer has it open, or get write access to its folder",
                            location_));
  version_ = db_.query_i64("PRAGMA data_version");
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  try_watch();
}

WalWaiter::~WalWaiter() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

void WalWaiter::try_watch() {
  if (inotify_fd_ < 0 || wd_ >= 0) return;
  // SQLite's own name for the WAL (it resolves symlinks, so `path + "-wal"` could be wrong).
  sqlite3_filename db_file = sqlite3_db_filename(db_.raw(), "main");
  const char* wal = db_file ? sqlite3_filename_wal(db_file) : nullptr;
  if (!wal || !*wal) return;
  wd_ = ::inotify_add_watch(inotify_fd_, wal, IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF);
}

void WalWaiter::drain_notifications() {
  alignas(inotify_event) char buf[4096];
  for (;;) {
    ssize_t n = ::read(inotify_fd_, buf, sizeof buf);
    if (n <= 0) return;  // EAGAIN: drained
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        if (wd_ >= 0 && !(ev->mask & IN_IGNORED)) ::inotify_rm_watch(inotify_fd_, wd_);
        wd_ = -1;
      }
      p += sizeof(inotify_event) + ev->len;
    }
  }
}

bool WalWaiter::version_changed() {
  // A cached statement, reset at once by StmtScope: the read transaction it opens ends here.
  std::int64_t v;
  {
    sql::StmtScope s(db_.prepare("PRAGMA data_version"));
    v = s->step() ? s->i64(0) : version_;
  }
  if (v == version_) return false;
  version_ = v;
  return true;
}

Wake WalWaiter::wait(int timeout_ms) {
  const auto start = Clock::now();
  std::vector<pollfd> fds;

  sigset_t stop, old;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);

  for (;;) {
    if (interrupted()) return Wake::interrupted;
    if (version_changed()) return Wake::changed;
    auto now = Clock::now();
    std::int64_t left = timeout_ms < 0 ? INT64_MAX : timeout_ms - ms_between(start, now);
    if (left <= 0) return Wake::timeout;

    if (wd_ < 0) try_watch();
    int step;
    if (now < hot_until_) {
      // Most commits become visible within a few ms of their WAL write (one fsync): check
      // every 2 ms at first, then back off to every 8 ms.
      bool early = ms_between(now, hot_until_) > kHotWindowMs - kHotEarlyMs;
      step = hot_step_ == 0 ? 1 : early ? kHotEarlyStepMs : kHotMaxStepMs;
      hot_step_ = step;
    } else {
      step = wd_ >= 0 ? kSlowPollMs : kNoNotifyPollMs;
    }
    step = static_cast<int>(std::min<std::int64_t>(step, left));

    fds.clear();
    if (wd_ >= 0) fds.push_back({inotify_fd_, POLLIN, 0});
    for (int fd : hangup_fds_) fds.push_back({fd, 0, 0});
    timespec ts{step / 1000, static_cast<long>(step % 1000) * 1000000L};

    // Block the stop signals, re-check the flag, and let ppoll unblock them atomically: a
    // SIGINT that arrives just before we sleep still ends the sleep.
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    if (interrupted()) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return Wake::interrupted;
    }
    sigset_t during = old;
    sigdelset(&during, SIGINT);
    sigdelset(&during, SIGTERM);
    int rc = ::ppoll(fds.data(), fds.size(), &ts, &during);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc < 0) {
      if (err == EINTR) continue;
      throw Error(Errc::io, fmt::format("cannot wait for changes to store '{}': {}", location_, std::strerror(err)));
    }
    for (const auto& p : fds) {
      if (p.fd == inotify_fd_) {
        if (p.revents & POLLIN) {
          drain_notifications();
          hot_until_ = Clock::now() + std::chrono::milliseconds(kHotWindowMs);
          hot_step_ = 0;
        }
      } else if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
        return Wake::hangup;
      }
    }
  }
}

std::unique_ptr<ChangeSource> make_wal_waiter(sql::Db& db, const std::string& location) {
  return std::make_unique<WalWaiter>(db, location);
}

}  // namespace esctl::sqlite
