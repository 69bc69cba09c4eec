// The drain loop. Each worker owns a connection and repeats: the handler on the batch in hand,
// while a helper thread runs one transaction that settles the previous batch and leases the next
// (so a batch costs one commit, overlapped with a handler). A lease keeper thread renews the
// leases of batches in progress. SIGINT is honoured between batches: the batch in hand is settled
// (acked if its handler succeeded, else given back without counting the attempt) and a batch
// leased ahead is given back, before the drain returns.
#include "store/drain.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/signals.hpp"
#include "store/follow.hpp"

extern char** environ;

namespace esctl {
namespace {

// How long an idle --follow worker sleeps at most between pulls when no commit wakes it: lease
// expiries and retry times come due without any commit.
constexpr int kIdleRecheckMs = 1000;

// Renews the leases of the batches workers are handling, on its own connection.
class LeaseKeeper {
 public:
  LeaseKeeper(const StoreOptions& store, std::string queue, std::int64_t lease_ms)
      : store_(store), queue_(std::move(queue)), lease_ms_(lease_ms) {
    period_ = std::chrono::milliseconds(std::clamp<std::int64_t>(lease_ms / 3, 10, 10000));
    thread_ = std::thread([this] { run(); });
  }
  ~LeaseKeeper() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void hold(int worker, const Lease& lease) {
    std::lock_guard<std::mutex> lock(m_);
    held_[worker] = lease;
  }
  void drop(int worker) {
    std::lock_guard<std::mutex> lock(m_);
    held_.erase(worker);
  }

 private:
  void run() {
    std::unique_ptr<Store> store;
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      cv_.wait_for(lock, period_, [this] { return stop_; });
      if (stop_) return;
      if (held_.empty()) continue;
      std::vector<Lease> leases;
      for (const auto& [w, l] : held_) leases.push_back(l);
      lock.unlock();
      try {
        if (!store) store = std::make_unique<Store>(store_, Access::update);
        Queues queues(*store);
        for (const auto& l : leases) queues.renew(queue_, l, lease_ms_, Clock::now());
      } catch (const Error&) {
        // Busy or gone: the next round tries again; a lease that lapses only means a redelivery.
      }
      lock.lock();
    }
  }

  StoreOptions store_;
  std::string queue_;
  std::int64_t lease_ms_;
  std::chrono::milliseconds period_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<int, Lease> held_;
  std::thread thread_;
};

struct Shared {
  const DrainOptions& options;
  const StoreOptions& store;
  const HandlerFactory& make_handler;
  LeaseKeeper& keeper;
  std::atomic<std::int64_t> budget;
  std::int64_t queue_id;
  std::atomic<bool> stop{false};
  std::atomic<bool> deleted{false};
  std::mutex m;
  DrainTotals totals;
  std::exception_ptr error;

  std::int64_t take(std::int64_t want) {
    std::int64_t cur = budget.load();
    for (;;) {
      if (cur <= 0) return 0;
      std::int64_t n = std::min(cur, want);
      if (budget.compare_exchange_weak(cur, cur - n)) return n;
    }
  }
  void add(const SettleCounts& c, std::int64_t delivered, std::int64_t parked_on_expiry) {
    std::lock_guard<std::mutex> lock(m);
    totals.delivered += delivered;
    totals.acked += c.acked;
    totals.retried += c.retried;
    totals.returned += c.released;
    totals.stale += c.stale;
    totals.parked += c.parked + parked_on_expiry;
    if (c.stale && options.on_stale) options.on_stale(c.stale);
    if (options.progress && delivered) options.progress(totals);
  }
  // The queue this drain started on is gone: stop at this batch boundary, without an error.
  void queue_gone() {
    deleted = true;
    stop = true;
  }
};

Settlement settlement_for(const PullResult& r, const BatchOutcome& out, bool interrupted) {
  std::unordered_map<std::int64_t, const std::optional<std::string>*> by_position;
  for (const auto& [p, v] : out.results) by_position[p] = &v;
  std::unordered_set<std::int64_t> returned(out.returned.begin(), out.returned.end());
  Settlement s = Settlement::of(r.lease);
  for (const auto& d : r.deliveries) {
    auto it = by_position.find(d.event.position);
    Settlement::Item item{d.event.position, Settlement::ack, {}};
    if (it == by_position.end()) {
      item.kind = Settlement::nack;
      item.reason = "the handler reported no outcome for it";
    } else if (*it->second) {
      item.kind = Settlement::nack;
      item.reason = **it->second;
    }
    // Stopped by SIGINT: the failure is most likely the interrupt itself; do not count it.
    if (item.kind == Settlement::nack && interrupted) item.kind = Settlement::release;
    if (returned.count(d.event.position)) item.kind = Settlement::release;
    s.items.push_back(std::move(item));
  }
  return s;
}

Settlement release_all(const PullResult& r) {
  Settlement s = Settlement::of(r.lease);
  for (const auto& d : r.deliveries) s.items.push_back({d.event.position, Settlement::release, {}});
  return s;
}

// One worker. While the handler works on a batch, a helper thread settles the previous batch and
// leases the next one on the worker's connection (only a whole batch, so that nothing of the
// streams in hand is admitted early; else the next batch is pulled after the handler, as
// without the look-ahead). The handler's outcome is thus written by the pull after next, still
// only after the handler returned: what is not settled when the drain dies is redelivered.
void run_worker(Shared& sh, int index) {
  const DrainOptions& o = sh.options;
  std::vector<Settlement> unsettled;  // outcomes not written yet, oldest first (at most one unless failing)
  std::vector<Settlement> give_back;  // leased ahead and never handed to the handler: not counted
  std::unique_ptr<Store> store;
  try {
    store = std::make_unique<Store>(sh.store, Access::update);
    Queues queues(*store);
    BatchHandler handler = sh.make_handler(index);
    std::optional<ChangeWaiter> waiter;
    if (o.follow) waiter.emplace(*store);

    // Pulls up to a batch, writing the unsettled outcome in the same transaction. nullopt: the
    // --max-events budget is spent.
    auto pull = [&](bool whole_batch_only) -> std::optional<PullResult> {
      std::int64_t want = sh.take(o.batch);
      if (want == 0) return std::nullopt;
      PullOptions po;
      po.max = want;
      po.isolate_retries = true;
      po.whole_batch_only = whole_batch_only;
      po.queue_id = sh.queue_id;
      SettleCounts counts;
      PullResult r;
      try {
        r = queues.pull(o.queue, po, Clock::now(), unsettled.empty() ? nullptr : &unsettled.front(), &counts);
      } catch (const Error& e) {
        sh.budget.fetch_add(want);
        if (e.code() != Errc::not_found) throw;
        sh.queue_gone();
        return std::nullopt;
      } catch (...) {
        sh.budget.fetch_add(want);
        throw;
      }
      unsettled.clear();
      sh.budget.fetch_add(want - static_cast<std::int64_t>(r.deliveries.size()));
      sh.add(counts, 0, r.parked);
      return r;
    };

    std::optional<PullResult> ahead;
    int slot = 0;  // the lease keeper's key for the batch in hand: index * 2 + slot
    while (!sh.stop.load() && !interrupted()) {
      PullResult cur;
      if (ahead) {
        // Leased while the last handler ran: the queue may have been deleted since.
        bool same = false;
        try {
          same = queues.get(o.queue).id == sh.queue_id;
        } catch (const Error& e) {
          if (e.code() != Errc::not_found) throw;
        }
        if (!same) {
          sh.keeper.drop(index * 2 + slot);
          give_back.push_back(release_all(*ahead));
          sh.queue_gone();
          break;
        }
        cur = std::move(*ahead);
        ahead.reset();
      } else {
        auto r = pull(false);
        if (!r) break;
        if (r->deliveries.empty()) {
          if (!o.follow) break;
          waiter->wait(kIdleRecheckMs);
          continue;
        }
        cur = std::move(*r);
        sh.keeper.hold(index * 2 + slot, cur.lease);
      }
      const int cur_key = index * 2 + slot, ahead_key = index * 2 + (slot ^ 1);
      const auto delivered = static_cast<std::int64_t>(cur.deliveries.size());

      std::exception_ptr ahead_error;
      std::thread look_ahead([&] {
        try {
          ahead = pull(true);
          if (ahead && ahead->deliveries.empty()) ahead.reset();
          if (ahead) sh.keeper.hold(ahead_key, ahead->lease);
        } catch (...) {
          ahead_error = std::current_exception();
        }
      });
      BatchOutcome out;
      try {
        out = handler(cur.deliveries);
      } catch (...) {
        look_ahead.join();
        sh.keeper.drop(cur_key);
        unsettled.push_back(release_all(cur));
        sh.add({}, delivered, 0);
        if (ahead) {
          sh.keeper.drop(ahead_key);
          give_back.push_back(release_all(*ahead));
          ahead.reset();
        }
        throw;
      }
      look_ahead.join();
      sh.keeper.drop(cur_key);
      unsettled.push_back(settlement_for(cur, out, interrupted()));
      sh.add({}, delivered, 0);
      slot ^= 1;
      if (ahead_error) std::rethrow_exception(ahead_error);
      if (ahead && (sh.stop.load() || interrupted())) {
        sh.keeper.drop(ahead_key);
        give_back.push_back(release_all(*ahead));
        ahead.reset();
      }
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(sh.m);
    if (!sh.error) sh.error = std::current_exception();
    sh.stop = true;
  }
  if (!store) return;
  auto settle = [&](const Settlement& s, bool count) {
    try {
      auto c = Queues(*store).settle(o.queue, s, Clock::now());
      if (count) sh.add(c, 0, 0);
    } catch (...) {
      std::lock_guard<std::mutex> lock(sh.m);
      if (!sh.error) sh.error = std::current_exception();
      sh.stop = true;
    }
  };
  for (const auto& s : unsettled) settle(s, true);
  for (const auto& s : give_back) settle(s, false);
}

// ---- the --exec handler ----

std::string signal_text(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? fmt::format("{} (SIG{})", sig, abbrev) : std::to_string(sig);
}

// The last non-empty line a handler wrote to stderr, at most kReasonStderrBytes of it.
class LastLine {
 public:
  void add(std::string_view bytes) {
    for (char c : bytes) {
      if (c == '\n') {
        end_line();
      } else if (partial_.size() < kReasonStderrBytes + 4) {  // room to cut at a character boundary
        partial_.push_back(c);
      }
    }
  }
  std::string take() {
    end_line();
    std::string out = std::move(last_);
    last_.clear();
    return out;
  }

 private:
  void end_line() {
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
  std::string partial_, last_;
};

void write_all_fd(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n > 0) s.remove_prefix(static_cast<std::size_t>(n));
    else if (n < 0 && errno == EINTR) continue;
    else return;  // the user's stderr is gone: the handler's output is lost, the drain goes on
  }
}

// A descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

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
  // Starts the shell first and formats the batch while it starts up. posix_spawn (a vfork-style
  // clone in glibc) copies no page tables, which fork() would for the whole store cache. Then
  // feeds the batch to its stdin while reading its stderr (and, with a relay, its stdout), so
  // neither side can block the other on a full pipe.
  int run(const std::vector<Delivery>& batch) {
    int p[2];
    auto make_pipe = [&](Fd& r, Fd& w) {
      if (::pipe2(p, O_CLOEXEC) != 0)
        throw Error(Errc::io, fmt::format("cannot start handler '{}': pipe: {}", o_.command, std::strerror(errno)));
      r.fd = p[0];
      w.fd = p[1];
    };
    Fd in_r, in_w, err_r, err_w, out_r, out_w;
    make_pipe(in_r, in_w);
    make_pipe(err_r, err_w);
    const bool relay = static_cast<bool>(o_.relay);
    if (relay) make_pipe(out_r, out_w);
    pid_t pid = -1;
    int err = spawn(in_r.fd, relay ? out_w.fd : o_.stdout_fd, err_w.fd, pid);
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
      wait(pid);
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
    return status ? *status : wait(pid);
  }

  int wait(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR)
        throw Error(Errc::io, fmt::format("lost handler '{}': waitpid: {}", o_.command, std::strerror(errno)));
    }
    return status;
  }

  // `/bin/sh -c command` with stdin from `in`, stdout to `out`, stderr to `err`, the default
  // disposition for the signals esctl handles or ignores, and no signal blocked.
  int spawn(int in, int out, int err, pid_t& pid) {
    const char* argv[] = {"sh", "-c", o_.command.c_str(), nullptr};
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
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = ::posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
  }

  static constexpr std::size_t kPipeMin = 64 << 10, kPipeMax = 1 << 20;
  static constexpr int kExitCheckMs = 200;
  ExecOptions o_;
  std::string buf_;
  LastLine last_stderr_;
};

}  // namespace

BatchOutcome BatchOutcome::ack_all(const std::vector<Delivery>& batch) {
  BatchOutcome out;
  out.results.reserve(batch.size());
  for (const auto& d : batch) out.results.emplace_back(d.event.position, std::nullopt);
  return out;
}

BatchOutcome BatchOutcome::nack_all(const std::vector<Delivery>& batch, const std::string& reason) {
  BatchOutcome out;
  out.results.reserve(batch.size());
  for (const auto& d : batch) out.results.emplace_back(d.event.position, reason);
  return out;
}

BatchHandler make_exec_handler(ExecOptions options) {
  auto h = std::make_shared<ExecHandler>(std::move(options));
  return [h](const std::vector<Delivery>& batch) { return (*h)(batch); };
}

DrainSummary drain(const StoreOptions& store_options, const DrainOptions& o, const HandlerFactory& make_handler) {
  if (o.batch < 1) throw Error(Errc::usage, fmt::format("invalid --batch {}: a batch holds at least 1 event", o.batch));
  if (o.parallel < 1) throw Error(Errc::usage, fmt::format("invalid --parallel {}: run at least 1 handler", o.parallel));
  if (o.max_events && *o.max_events < 0) throw Error(Errc::usage, "invalid --max-events: it must not be negative");
  std::int64_t lease_ms, queue_id;
  {
    Store store(store_options, Access::update);
    QueueInfo q = Queues(store).get(o.queue);  // also: the queue exists
    lease_ms = q.ack_timeout_ms;
    queue_id = q.id;
  }
  const auto started = std::chrono::steady_clock::now();
  LeaseKeeper keeper(store_options, o.queue, lease_ms);
  Shared sh{o, store_options, make_handler, keeper, {o.max_events.value_or(INT64_MAX)}, queue_id};
  if (o.parallel == 1) {
    run_worker(sh, 0);
  } else {
    std::vector<std::thread> workers;
    for (int i = 0; i < o.parallel; ++i) workers.emplace_back([&sh, i] { run_worker(sh, i); });
    for (auto& t : workers) t.join();
  }
  DrainSummary sum;
  sum.totals = sh.totals;
  sum.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  sum.interrupted = interrupted();
  sum.queue_deleted = sh.deleted.load();
  if (sh.error) std::rethrow_exception(sh.error);
  return sum;
}

}  // namespace esctl
