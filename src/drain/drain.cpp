// The drain loop. Each worker owns a connection and repeats: the handler on the batch in hand,
// while a helper thread runs one transaction that settles the previous batch and leases the next
// (so a batch costs one commit, overlapped with a handler). A lease keeper thread renews the
// leases of batches in progress. SIGINT is honoured between batches: the batch in hand is settled
// (acked if its handler succeeded, else given back without counting the attempt) and a batch
// leased ahead is given back, before the drain returns.
#include "drain/drain.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/outage.hpp"
#include "core/signals.hpp"
#include "store/follow.hpp"

namespace esctl {
namespace {

// How long an idle --follow worker sleeps at most between pulls when no commit wakes it: lease
// expiries and retry times come due without any commit.
constexpr int kIdleRecheckMs = 1000;
// How long a drain without --follow tries to reach its store's server again after losing it (a
// restart takes seconds); a --follow drain tries until the server is back, or SIGINT. A drain
// that is stopping (to write the outcomes in hand) tries this long too, whatever SIGINT says.
constexpr int kReconnectForMs = 30000;

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
      } catch (const ConnectionLost&) {
        store.reset();  // opened again next round, once the server is back
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

// A thread kept for the whole drain that runs one job at a time: the look-ahead pulls. One
// thread for every batch keeps its stack and malloc arena warm, where a thread per batch would
// fault both in again each time.
class Helper {
 public:
  Helper() : thread_([this] { run(); }) {}
  ~Helper() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Helper(const Helper&) = delete;
  Helper& operator=(const Helper&) = delete;
  /// Starts `job` (which must not throw) on the helper's thread; the previous job must be done.
  void start(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = std::move(job);
      busy_ = true;
    }
    cv_.notify_all();
  }
  /// Waits until the job started last is done.
  void wait() {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [this] { return !busy_; });
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || busy_; });
      if (!busy_) return;
      auto job = std::move(job_);
      lock.unlock();
      job();
      job = nullptr;
      lock.lock();
      busy_ = false;
      cv_.notify_all();
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool busy_ = false, stop_ = false;
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
  /// Inside a catch block: keeps the exception being handled (the first one wins) and stops
  /// every worker.
  void fail_with_current() {
    std::lock_guard<std::mutex> lock(m);
    if (!error) error = std::current_exception();
    stop = true;
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
  void notice(const std::string& line) {
    std::lock_guard<std::mutex> lock(m);
    if (options.notice) options.notice(line);
  }
  // The queue this drain started on is gone: stop at this batch boundary, without an error.
  void queue_gone() {
    deleted = true;
    stop = true;
  }
};

Settlement settlement_for(const PullResult& r, const BatchOutcome& out, bool interrupted) {
  Settlement s = Settlement::of(r.lease);
  s.items.reserve(r.deliveries.size());
  // Handlers give their results in delivery order (returned ones left out), so each lookup
  // usually finds its answer at `next`: the maps are built only for a handler that does not.
  std::size_t next = 0;
  std::unordered_map<std::int64_t, const std::optional<std::string>*> by_position;
  // nullptr: no outcome for it.
  auto result_of = [&](std::int64_t position) -> const std::optional<std::string>* {
    if (next < out.results.size() && out.results[next].first == position) return &out.results[next++].second;
    if (by_position.empty())
      for (const auto& [p, v] : out.results) by_position[p] = &v;
    auto it = by_position.find(position);
    return it == by_position.end() ? nullptr : it->second;
  };
  std::unordered_set<std::int64_t> returned(out.returned.begin(), out.returned.end());
  for (const auto& d : r.deliveries) {
    const std::optional<std::string>* result = result_of(d.event.position);
    Settlement::Item item{d.event.position, Settlement::ack, {}};
    if (!result) {
      item.kind = Settlement::nack;
      item.reason = "the handler reported no outcome for it";
    } else if (*result) {
      item.kind = Settlement::nack;
      item.reason = **result;
    }
    // Stopped by SIGINT: the failure is most likely the interrupt itself; do not count it.
    if (item.kind == Settlement::nack && interrupted && !out.final_answers) item.kind = Settlement::release;
    if (!returned.empty() && returned.count(d.event.position)) item.kind = Settlement::release;
    s.items.push_back(std::move(item));
  }
  return s;
}

Settlement release_all(const PullResult& r) {
  Settlement s = Settlement::of(r.lease);
  for (const auto& d : r.deliveries) s.items.push_back({d.event.position, Settlement::release, {}});
  return s;
}

// Opens the store again after `lost` cut a connection opened at `opened_at` (an outage::epoch(),
// updated to the new connection's), with back-off, saying so once per outage of the server. A
// running drain gives up at once on SIGINT (nullptr); a stopping one does not: what it holds is
// written once it is back. Throws ConnectionLost saying so once a drain without --follow, or a
// stopping one, has tried for kReconnectForMs.
std::unique_ptr<Store> reopen(Shared& sh, const ConnectionLost& lost, std::uint64_t& opened_at, bool stopping) {
  if (outage::lost(opened_at)) sh.notice(fmt::format("lost the connection to {}; reconnecting", lost.server()));
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReconnectForMs);
  const bool bounded = stopping || !sh.options.follow;
  int backoff_ms = 100;
  for (;;) {
    for (int slept = 0; slept < backoff_ms; slept += 50) {
      if (interrupted() && !stopping) return nullptr;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const auto epoch = outage::epoch();
    try {
      auto store = std::make_unique<Store>(sh.store, Access::update);
      opened_at = epoch;
      if (outage::reconnected()) sh.notice(fmt::format("reconnected to {}", lost.server()));
      return store;
    } catch (const ConnectionLost& again) {
      if (bounded && std::chrono::steady_clock::now() >= give_up)
        throw ConnectionLost(lost.server(), fmt::format("lost the connection to {} and could not reconnect within {} "
                                                        "seconds: {}",
                                                        lost.server(), kReconnectForMs / 1000, again.what()));
      if (outage::lost(epoch)) sh.notice(fmt::format("lost the connection to {}; reconnecting", lost.server()));
    }
    backoff_ms = std::min(backoff_ms * 2, 2000);
  }
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
  std::uint64_t opened_at = 0;  // outage::epoch() when `store` was opened
  // Ended (a --pipe handler's process closed and waited for) only after its outcomes are settled.
  BatchHandler handler;
  std::optional<ChangeWaiter> waiter;  // its own connection, which reconnects by itself
  std::optional<PullResult> ahead;     // leased while the last handler ran
  // Writes the outcomes not written yet, then gives back what was leased ahead, oldest first;
  // what a lost connection leaves unwritten stays for the next try.
  auto settle_held = [&](Queues& queues) {
    while (!unsettled.empty()) {
      sh.add(queues.settle(o.queue, unsettled.front(), Clock::now()), 0, 0);
      unsettled.erase(unsettled.begin());
    }
    while (!give_back.empty()) {
      queues.settle(o.queue, give_back.front(), Clock::now());
      give_back.erase(give_back.begin());
    }
  };
  // A lost connection (a server restart) ends the loop below; the store is opened again and the
  // loop goes on. What the worker held is then settled first: an outcome whose lease is still
  // current applies, any other is stale and its event redelivered, so nothing is lost. Settling
  // again an outcome whose first write's COMMIT was cut off (its outcome unknown) is harmless:
  // if that write did commit, the rows it settled are no longer leased under its token, so every
  // item is stale and nothing changes twice (no attempt counted twice, no ack of a redelivery).
  // The batch that write may also have leased is held under a token nobody knows: it is
  // redelivered when that lease expires. SIGINT while reconnecting ends the drain at once: what
  // it held is redelivered when its leases expire.
  for (bool again = true; again;) {
    again = false;
    try {
      if (!store) {
        opened_at = outage::epoch();
        store = std::make_unique<Store>(sh.store, Access::update);
      }
      Queues queues(*store);
      if (!handler) handler = sh.make_handler(index);
      if (o.follow && !waiter) waiter.emplace(*store);
      settle_held(queues);

      // Pulls up to a batch, writing the unsettled outcome in the same transaction. nullopt: the
      // --max-events budget is spent.
      auto pull = [&](bool whole_batch_only, std::vector<Delivery>* recycle) -> std::optional<PullResult> {
        std::int64_t want = sh.take(o.batch);
        if (want == 0) return std::nullopt;
        PullOptions po;
        po.max = want;
        po.isolate_retries = true;
        po.whole_batch_only = whole_batch_only;
        po.queue_id = sh.queue_id;
        po.recycle = recycle;
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

      // The deliveries of the batch handled last: the next pull writes its events over them,
      // reusing their buffers, instead of freeing one batch and allocating the next.
      std::vector<Delivery> spare;
      Helper helper;  // after `spare`, which its jobs use
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
            ahead.reset();
            sh.queue_gone();
            break;
          }
          cur = std::move(*ahead);
          ahead.reset();
        } else {
          auto r = pull(false, &spare);
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
        helper.start([&] {
          try {
            ahead = pull(true, &spare);
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
          helper.wait();
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
        helper.wait();
        sh.keeper.drop(cur_key);
        unsettled.push_back(settlement_for(cur, out, interrupted()));
        sh.add({}, delivered, 0);
        spare = std::move(cur.deliveries);
        slot ^= 1;
        if (ahead_error) std::rethrow_exception(ahead_error);
        if (ahead && (sh.stop.load() || interrupted())) {
          sh.keeper.drop(ahead_key);
          give_back.push_back(release_all(*ahead));
          ahead.reset();
        }
      }
    } catch (const ConnectionLost& lost) {
      for (int slot : {0, 1}) sh.keeper.drop(index * 2 + slot);
      if (ahead) give_back.push_back(release_all(*ahead));
      ahead.reset();
      store.reset();
      try {
        // Found while stopping (SIGINT came first): reconnect to write what it holds (bounded).
        store = reopen(sh, lost, opened_at, interrupted() || sh.stop.load());
        again = store != nullptr;
      } catch (...) {
        sh.fail_with_current();
      }
    } catch (...) {
      sh.fail_with_current();
    }
  }
  // At stop: the outcomes not written yet, and the batches leased ahead given back. A connection
  // lost now is made again (bounded, whatever SIGINT says: the stop may be its doing).
  while (store && (!unsettled.empty() || !give_back.empty())) {
    try {
      Queues queues(*store);
      settle_held(queues);
    } catch (const ConnectionLost& lost) {
      store.reset();
      try {
        store = reopen(sh, lost, opened_at, true);
      } catch (...) {
        sh.fail_with_current();
      }
    } catch (...) {
      sh.fail_with_current();
      return;
    }
  }
}

}  // namespace

DrainSummary drain(const StoreOptions& store_options, const DrainOptions& o, const HandlerFactory& make_handler) {
  if (o.batch < 1)
    throw SettingError(Errc::usage, "batch", {"invalid ", fmt::format(" {}: a batch holds at least 1 event", o.batch)});
  if (o.parallel < 1)
    throw SettingError(Errc::usage, "parallel", {"invalid ", fmt::format(" {}: run at least 1 handler", o.parallel)});
  if (o.max_events && *o.max_events < 0)
    throw SettingError(Errc::usage, "max events", {"invalid ", ": it must not be negative"});
  std::int64_t lease_ms, queue_id;
  {
    Store store(store_options, Access::update);
    QueueInfo q = Queues(store).get(o.queue);  // also: the queue exists
    lease_ms = q.ack_timeout_ms;
    queue_id = q.id;
  }
  const auto started = std::chrono::steady_clock::now();
  LeaseKeeper keeper(store_options, o.queue, lease_ms);
  // The workers' pulls read the events in order: the page cache of a scan, which a 1M-event
  // drain would otherwise grow to its full size at the cost of thousands of page faults.
  StoreOptions worker_store = store_options;
  worker_store.scans = true;
  Shared sh{o, worker_store, make_handler, keeper, {o.max_events.value_or(INT64_MAX)}, queue_id};
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
