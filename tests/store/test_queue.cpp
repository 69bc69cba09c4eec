// store/queue: the pull algorithm on a real store file with an injected clock: lowest position
// first, per-stream exclusivity and order, runs of first deliveries settled whole or in part,
// nack/expiry/parking/retry, poison policies, reset, and a randomized model check of the
// per-stream rule with several consumers.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "core/error.hpp"
#include "store/queue.hpp"
#include "store/sqlite/event_store.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/store.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
using esctl::test::TempStore;

namespace {

struct Fixture {
  TempStore t;
  Store store{t.options(), Access::write};
  Queues queues{store};
  Clock clock = Clock::pinned_now();

  std::int64_t append(const std::string& stream, const std::string& type = "T") {
    NewEvent e;
    e.stream = stream;
    e.type = type;
    return store.append({e}).front().position;
  }
  QueueInfo create(const std::string& name, StartPoint from = {StartPoint::start}, std::int64_t max_attempts = 5,
                   Poison poison = Poison::block, EventFilter filter = {}) {
    QueueSpec s;
    s.name = name;
    s.filter = std::move(filter);
    s.max_attempts = max_attempts;
    s.ack_timeout_ms = 1000;
    s.on_poison = poison;
    return queues.create(s, from);
  }
  PullResult pull(const std::string& q, std::int64_t max = 10, bool isolate = false) {
    PullOptions o;
    o.max = max;
    o.isolate_retries = isolate;
    return queues.pull(q, o, clock);
  }
  void advance_ms(std::int64_t ms) { clock = clock.plus_ms(ms); }
};

std::vector<std::int64_t> positions(const PullResult& r) {
  std::vector<std::int64_t> out;
  for (const auto& d : r.deliveries) out.push_back(d.event.position);
  return out;
}

std::vector<std::int64_t> attempts(const PullResult& r) {
  std::vector<std::int64_t> out;
  for (const auto& d : r.deliveries) out.push_back(d.attempt);
  return out;
}

Settlement settle_all(const PullResult& r, Settlement::Kind kind, const std::string& reason = "failed") {
  Settlement s;
  s.queue_id = r.lease.queue_id;
  s.token = r.lease.token;
  for (const auto& d : r.deliveries) s.items.push_back({d.event.position, kind, reason});
  return s;
}

}  // namespace

TEST_SUITE("store/queue") {
  TEST_CASE("a queue from the end delivers only later events, from start every event, lowest position first") {
    Fixture f;
    f.append("a-1");
    f.append("b-1");
    f.create("late", {StartPoint::end});
    f.create("all", {StartPoint::start});
    CHECK(f.pull("late").deliveries.empty());
    auto p3 = f.append("c-1");
    CHECK(positions(f.pull("late")) == std::vector<std::int64_t>{p3});
    auto r = f.pull("all", 2);
    CHECK(positions(r) == std::vector<std::int64_t>{1, 2});
    CHECK(attempts(r) == std::vector<std::int64_t>{1, 1});
    CHECK(positions(f.pull("all", 2)) == std::vector<std::int64_t>{3});
    CHECK(f.pull("all").deliveries.empty());
  }

  TEST_CASE("a batch holds consecutive events of a stream, but a leased stream is not handed to another pull") {
    Fixture f;
    f.create("q");
    f.append("s-1");  // 1
    f.append("s-1");  // 2
    f.append("t-1");  // 3
    auto first = f.pull("q", 2);
    CHECK(positions(first) == std::vector<std::int64_t>{1, 2});
    f.append("s-1");  // 4: s-1 is leased, so held
    f.append("u-1");  // 5
    CHECK(positions(f.pull("q", 10)) == std::vector<std::int64_t>{3, 5});
    CHECK(f.pull("q").deliveries.empty());
    auto st = f.queues.status("q", f.clock);
    CHECK(st.lag == 5);
    CHECK(st.leased == 4);
    CHECK(st.pending == 1);
    f.queues.ack("q", {1});
    CHECK(f.pull("q").deliveries.empty());  // 2 is still leased
    f.queues.ack("q", {2});
    CHECK(positions(f.pull("q")) == std::vector<std::int64_t>{4});
  }

  TEST_CASE("a nacked event is delivered again with attempt 2, and parked after max attempts with its reason") {
    Fixture f;
    f.create("q", {StartPoint::start}, 2);
    f.append("s-1");
    auto r = f.pull("q");
    f.queues.nack("q", positions(r), 0, "boom", f.clock);
    r = f.pull("q");
    CHECK(positions(r) == std::vector<std::int64_t>{1});
    CHECK(attempts(r) == std::vector<std::int64_t>{2});
    f.queues.nack("q", {1}, 0, "boom again", f.clock);
    CHECK(f.pull("q").deliveries.empty());
    auto parked = f.queues.parked("q");
    REQUIRE(parked.size() == 1);
    CHECK(parked[0].event.position == 1);
    CHECK(parked[0].attempts == 2);
    CHECK(parked[0].reason == "boom again");
    CHECK(f.queues.retry("q", {1}) == 1);
    r = f.pull("q");
    CHECK(attempts(r) == std::vector<std::int64_t>{1});
  }

  TEST_CASE("a nack with a delay waits for its time, and holds its stream meanwhile") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    f.append("s-1");
    f.pull("q", 1);
    f.queues.nack("q", {1}, 500, "later", f.clock);
    CHECK(f.pull("q").deliveries.empty());
    CHECK(f.queues.status("q", f.clock).retrying == 1);
    f.advance_ms(501);
    auto r = f.pull("q");
    CHECK(positions(r) == std::vector<std::int64_t>{1, 2});
    CHECK(attempts(r) == std::vector<std::int64_t>{2, 1});
  }

  TEST_CASE("an expired lease is delivered again, after the last attempt it is parked as 'lease expired'") {
    Fixture f;
    f.create("q", {StartPoint::start}, 2);
    f.append("s-1");
    CHECK(attempts(f.pull("q")) == std::vector<std::int64_t>{1});
    f.advance_ms(999);
    CHECK(f.pull("q").deliveries.empty());
    f.advance_ms(2);
    CHECK(attempts(f.pull("q")) == std::vector<std::int64_t>{2});
    f.advance_ms(1001);
    auto r = f.pull("q");
    CHECK(r.deliveries.empty());
    CHECK(r.parked == 1);
    auto parked = f.queues.parked("q");
    REQUIRE(parked.size() == 1);
    CHECK(parked[0].reason == "lease expired");
  }

  TEST_CASE("a lease taken on another boot has expired, whatever its monotonic time") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    Clock other = f.clock;
    other.boot = f.clock.boot + 1;
    other.mono_us = f.clock.mono_us + 3600LL * 1000000;  // far in this boot's future
    PullOptions o;
    CHECK(f.queues.pull("q", o, other).deliveries.size() == 1);
    auto r = f.pull("q");
    CHECK(attempts(r) == std::vector<std::int64_t>{2});
  }

  TEST_CASE("a wall clock jump changes nothing: leases run on the monotonic clock") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    f.pull("q");
    f.clock.wall_us += 24LL * 3600 * 1000000;  // the wall clock jumps a day ahead
    CHECK(f.pull("q").deliveries.empty());
    f.clock.wall_us -= 48LL * 3600 * 1000000;  // and back
    CHECK(f.pull("q").deliveries.empty());
  }

  TEST_CASE("on-poison block holds the stream behind a parked event, park lets it move on") {
    for (Poison p : {Poison::block, Poison::park}) {
      CAPTURE(poison_name(p));
      Fixture f;
      f.create("q", {StartPoint::start}, 1, p);
      f.append("s-1");  // 1: poison
      f.append("s-1");  // 2
      f.append("t-1");  // 3
      auto r = f.pull("q", 1);
      f.queues.nack("q", positions(r), 0, "poison", f.clock);
      r = f.pull("q", 10);
      if (p == Poison::block) {
        CHECK(positions(r) == std::vector<std::int64_t>{3});
      } else {
        CHECK(positions(r) == std::vector<std::int64_t>{2, 3});
      }
      f.queues.ack("q", positions(r));
      CHECK(f.queues.retry_all("q") == 1);
      r = f.pull("q", 10);
      if (p == Poison::block) {
        CHECK(positions(r) == std::vector<std::int64_t>{1, 2});
      } else {
        CHECK(positions(r) == std::vector<std::int64_t>{1});
      }
      CHECK(r.deliveries[0].attempt == 1);
    }
  }

  TEST_CASE("a run settled in part: acked events are done, nacked ones come back one at a time") {
    Fixture f;
    f.create("q");
    for (int i = 0; i < 4; ++i) f.append("s-" + std::to_string(i));
    auto r = f.pull("q", 4);
    REQUIRE(r.lease.run);
    Settlement s = settle_all(r, Settlement::ack);
    s.items[1].kind = Settlement::nack;
    s.items[2].kind = Settlement::nack;
    auto c = f.queues.settle("q", s, f.clock);
    CHECK(c.acked == 2);
    CHECK(c.retried == 2);
    auto again = f.pull("q", 10, true);
    CHECK(positions(again) == std::vector<std::int64_t>{2});
    CHECK(attempts(again) == std::vector<std::int64_t>{2});
    f.queues.settle("q", settle_all(again, Settlement::ack), f.clock);
    CHECK(positions(f.pull("q", 10, true)) == std::vector<std::int64_t>{3});
  }

  TEST_CASE("a whole batch acked removes its run, the queue ends at lag 0") {
    Fixture f;
    f.create("q");
    for (int i = 0; i < 50; ++i) f.append("s-" + std::to_string(i % 7));
    SettleCounts counts;
    Settlement prev;
    std::set<std::int64_t> seen;
    for (;;) {
      PullOptions o;
      o.max = 8;
      auto r = f.queues.pull("q", o, f.clock, prev.items.empty() ? nullptr : &prev, &counts);
      if (r.deliveries.empty()) break;
      for (auto p : positions(r)) seen.insert(p);
      prev = settle_all(r, Settlement::ack);
    }
    CHECK(seen.size() == 50);
    CHECK(counts.acked == 50);
    CHECK(f.queues.status("q", f.clock).lag == 0);
  }

  TEST_CASE("whole_batch_only leases a full batch or the rest up to the head, else nothing and admits nothing") {
    Fixture f;
    f.create("q");
    f.append("s-1");  // 1
    f.append("t-1");  // 2
    f.append("u-1");  // 3
    f.append("s-1");  // 4: held behind 1 while it is leased
    f.append("v-1");  // 5
    auto first = f.pull("q", 1);
    CHECK(positions(first) == std::vector<std::int64_t>{1});
    PullOptions o;
    o.whole_batch_only = true;
    o.max = 2;
    auto ahead = f.queues.pull("q", o, f.clock);
    CHECK(positions(ahead) == std::vector<std::int64_t>{2, 3});
    o.max = 10;
    CHECK(f.queues.pull("q", o, f.clock).deliveries.empty());  // 4 would have to be admitted
    auto st = f.queues.status("q", f.clock);
    CHECK(st.queue.cursor == 3);
    CHECK(st.pending == 2);  // 4 and 5, both still new
    f.queues.settle("q", settle_all(first, Settlement::ack), f.clock);
    CHECK(positions(f.queues.pull("q", o, f.clock)) == std::vector<std::int64_t>{4, 5});  // the rest, up to the head
  }

  TEST_CASE("a released batch comes back without an attempt counted") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    f.append("t-1");
    auto r = f.pull("q", 2);
    f.queues.settle("q", settle_all(r, Settlement::release), f.clock);
    CHECK(attempts(f.pull("q", 2)) == std::vector<std::int64_t>{1, 1});
  }

  TEST_CASE("outcomes from before a reset are ignored, and reset replays from the given point") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    f.append("s-1");
    auto r = f.pull("q", 2);
    f.queues.reset("q", {StartPoint::at, 1});
    auto c = f.queues.settle("q", settle_all(r, Settlement::ack), f.clock);
    CHECK(c.stale == 2);
    CHECK(positions(f.pull("q", 2)) == std::vector<std::int64_t>{2});
    f.queues.reset("q", {StartPoint::end});
    CHECK(f.queues.status("q", f.clock).lag == 0);
    CHECK_THROWS_AS(f.queues.reset("q", {StartPoint::at, 99}), Error);
  }

  TEST_CASE("ack: a repeat is a no-op, a position never delivered or not in the queue is refused") {
    Fixture f;
    f.append("x-1", "Other");  // 1: before the start
    f.create("q", {StartPoint::end}, 5, Poison::block, EventFilter{{}, {}, {"T"}});
    f.append("s-1", "Other");  // 2: filtered out
    f.append("s-1");           // 3
    f.append("s-1");           // 4
    auto r = f.pull("q", 1);
    CHECK(positions(r) == std::vector<std::int64_t>{3});
    f.queues.ack("q", {3});
    f.queues.ack("q", {3});
    auto usage = [&](std::vector<std::int64_t> ps) {
      try {
        f.queues.ack("q", ps);
        return false;
      } catch (const Error& e) {
        return e.code() == Errc::usage;
      }
    };
    CHECK(usage({4}));     // after the cursor
    CHECK(usage({2}));     // not matching
    CHECK(usage({1}));     // before the start
    CHECK(usage({3, 4}));  // all or nothing
    CHECK(f.queues.status("q", f.clock).lag == 1);
  }

  TEST_CASE("nack refuses acked, pending and unknown events") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    f.append("s-1");
    f.append("s-1");
    f.pull("q", 1);
    f.pull("q", 1);  // s-1 is leased: 2 and 3 are admitted as pending
    f.queues.ack("q", {1});
    CHECK_THROWS_AS(f.queues.nack("q", {1}, 0, "x", f.clock), Error);
    CHECK_THROWS_AS(f.queues.nack("q", {2}, 0, "x", f.clock), Error);
    CHECK_THROWS_AS(f.queues.nack("q", {9}, 0, "x", f.clock), Error);
  }

  TEST_CASE("a long held-back stream is delivered in order as rows, after its blocker is acked") {
    Fixture f;
    f.create("q");
    std::vector<NewEvent> batch;
    for (int i = 0; i < 300; ++i) {
      NewEvent e;
      e.stream = i % 3 == 0 ? "t-" + std::to_string(i) : "big";
      e.type = "T";
      batch.push_back(e);
    }
    f.store.append(batch, {}, false);
    auto blocker = f.pull("q", 1);  // position 1 (t-0)... then "big" at 2
    auto big = f.pull("q", 1);
    REQUIRE(big.deliveries.size() == 1);
    CHECK(big.deliveries[0].event.stream == "big");
    // Everything else of "big" is held; the t-* streams flow.
    auto others = f.pull("q", 1000);
    for (const auto& d : others.deliveries) CHECK(d.event.stream != "big");
    f.queues.ack("q", positions(big));
    std::int64_t last_version = big.deliveries[0].event.version;
    std::int64_t n = 1;
    for (;;) {
      auto r = f.pull("q", 17);
      if (r.deliveries.empty()) break;
      for (const auto& d : r.deliveries) {
        CHECK(d.event.stream == "big");
        CHECK(d.event.version == last_version + 1);
        last_version = d.event.version;
        ++n;
      }
      f.queues.ack("q", positions(r));
    }
    CHECK(n == 200);
  }

  TEST_CASE("a filter that skips very many events still finds the next match") {
    Fixture f;
    f.create("q", {StartPoint::start}, 5, Poison::block, EventFilter{{}, {"wanted"}, {}});
    std::vector<NewEvent> batch(25000);
    for (auto& e : batch) {
      e.stream = "noise-1";
      e.type = "T";
    }
    f.store.append(batch, {}, false);
    auto p = f.append("wanted-1");
    CHECK(positions(f.pull("q")) == std::vector<std::int64_t>{p});
  }

  TEST_CASE("status counts lag as pending + leased + retrying + parked, with and without a filter") {
    Fixture f;
    f.create("all", {StartPoint::start}, 1);
    f.create("some", {StartPoint::start}, 1, Poison::block, EventFilter{{"a-*"}, {}, {}});
    for (int i = 0; i < 6; ++i) f.append(i % 2 ? "a-" + std::to_string(i) : "b-" + std::to_string(i));
    auto r = f.pull("all", 3);
    f.queues.nack("all", {positions(r)[0]}, 0, "x", f.clock);  // parked (1 attempt)
    f.queues.nack("all", {positions(r)[1]}, 0, "x", f.clock);  // parked
    auto st = f.queues.status("all", f.clock);
    CHECK(st.parked == 2);
    CHECK(st.leased == 1);
    CHECK(st.pending == 3);
    CHECK(st.lag == 6);
    CHECK(st.oldest_position == 1);
    auto some = f.queues.status("some", f.clock);
    CHECK(some.lag == 3);
    CHECK(some.oldest_position == 2);
  }

  TEST_CASE("renew keeps a lease alive past its original expiry") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    auto r = f.pull("q");
    f.advance_ms(900);
    f.queues.renew("q", r.lease, 1000, f.clock);
    f.advance_ms(900);
    CHECK(f.pull("q").deliveries.empty());
    f.advance_ms(200);
    CHECK(attempts(f.pull("q")) == std::vector<std::int64_t>{2});
  }

  TEST_CASE("random consumers never see a stream's event while an earlier one is unacked") {
    Fixture f;
    f.create("q", {StartPoint::start}, 1000);
    std::mt19937 rng(12345);
    std::map<std::int64_t, std::pair<std::string, std::int64_t>> events;  // position -> stream, version
    std::set<std::int64_t> acked;
    std::vector<PullResult> held;
    auto add = [&] {
      std::string s = "s-" + std::to_string(rng() % 6);
      NewEvent e;
      e.stream = s;
      e.type = "T";
      auto a = f.store.append({e}).front();
      events[a.position] = {s, a.version};
    };
    for (int i = 0; i < 40; ++i) add();
    for (int step = 0; step < 400; ++step) {
      int op = static_cast<int>(rng() % 10);
      if (op < 2) {
        add();
      } else if (op < 5) {
        auto r = f.pull("q", 1 + rng() % 4, rng() % 2);
        for (std::size_t i = 0; i < r.deliveries.size(); ++i) {
          const auto& d = r.deliveries[i];
          // Every earlier event of its stream is acked or earlier in this batch.
          for (const auto& [p, sv] : events) {
            if (p >= d.event.position || sv.first != d.event.stream || acked.count(p)) continue;
            bool in_batch = false;
            for (std::size_t j = 0; j < i; ++j) in_batch |= r.deliveries[j].event.position == p;
            CHECK_MESSAGE(in_batch, "position ", d.event.position, " handed out while ", p, " is unacked");
          }
        }
        if (!r.deliveries.empty()) held.push_back(std::move(r));
      } else if (op < 8 && !held.empty()) {
        auto i = rng() % held.size();
        auto r = std::move(held[i]);
        held.erase(held.begin() + static_cast<long>(i));
        Settlement s = settle_all(r, Settlement::ack);
        std::vector<std::int64_t> ok;
        for (auto& it : s.items) {
          if (rng() % 3 == 0) it.kind = Settlement::nack;
          else ok.push_back(it.position);
        }
        auto c = f.queues.settle("q", s, f.clock);
        // A pull's deliveries expire together: its late outcomes are all stale, else none.
        CHECK((c.stale == 0 || c.stale == static_cast<std::int64_t>(s.items.size())));
        if (c.stale == 0) acked.insert(ok.begin(), ok.end());
      } else if (op == 8) {
        f.advance_ms(rng() % 1500);  // some leases expire; their late outcomes are stale
      }
    }
    // Drain what is left.
    for (auto& r : held) {
      auto c = f.queues.settle("q", settle_all(r, Settlement::ack), f.clock);
      if (c.stale == 0)
        for (auto p : positions(r)) acked.insert(p);
    }
    for (int guard = 0; guard < 1000; ++guard) {
      f.advance_ms(2000);
      auto r = f.pull("q", 5);
      if (r.deliveries.empty()) break;
      for (auto p : positions(r)) acked.insert(p);
      f.queues.settle("q", settle_all(r, Settlement::ack), f.clock);
    }
    CHECK(acked.size() == events.size());
    CHECK(f.queues.status("q", f.clock).lag == 0);
  }

  TEST_CASE("a late outcome of a lease that expired and was delivered again is stale and changes nothing") {
    for (auto kind : {Settlement::ack, Settlement::nack, Settlement::release}) {
      CAPTURE(kind);
      Fixture f;
      f.create("q");
      f.append("s-1");
      f.append("s-1");
      auto a = f.pull("q", 1);  // consumer A: s-1@0, attempt 1
      REQUIRE(positions(a) == std::vector<std::int64_t>{1});
      f.advance_ms(1001);       // A is paused past its lease
      auto b = f.pull("q", 1);  // consumer B: s-1@0, attempt 2
      REQUIRE(attempts(b) == std::vector<std::int64_t>{2});
      CHECK(b.lease.token != a.lease.token);
      f.queues.renew("q", a.lease, 1000, f.clock);  // A's keeper wakes up: no effect
      auto c = f.queues.settle("q", settle_all(a, kind), f.clock);
      CHECK(c.stale == 1);
      CHECK(c.acked + c.retried + c.parked + c.released == 0);
      // B still holds s-1@0: nothing of s-1 is deliverable, and B's delivery keeps its attempt.
      CHECK(f.pull("q", 5).deliveries.empty());
      auto st = f.queues.status("q", f.clock);
      CHECK(st.leased == 1);
      CHECK(st.pending == 1);
      CHECK(f.queues.settle("q", settle_all(b, Settlement::ack), f.clock).acked == 1);
      CHECK(positions(f.pull("q", 5)) == std::vector<std::int64_t>{2});
    }
  }

  TEST_CASE("an outcome after its lease expired is stale even when nobody took the event since") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    auto a = f.pull("q", 1);
    f.advance_ms(1001);
    f.queues.renew("q", a.lease, 1000, f.clock);  // an expired lease is not revived
    CHECK(f.queues.settle("q", settle_all(a, Settlement::ack), f.clock).stale == 1);
    CHECK(attempts(f.pull("q")) == std::vector<std::int64_t>{2});
  }

  TEST_CASE("renew extends only the current deliveries of its own lease") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    f.append("t-1");
    auto a = f.pull("q", 1);
    f.queues.settle("q", settle_all(a, Settlement::nack), f.clock);
    auto b = f.pull("q", 2);  // s-1@0 again (row) and t-1@0 (run)
    REQUIRE(positions(b) == std::vector<std::int64_t>{1, 2});
    f.advance_ms(900);
    f.queues.renew("q", a.lease, 1000, f.clock);  // a's token: not b's delivery
    f.advance_ms(200);
    auto c = f.pull("q", 2);
    CHECK(positions(c) == std::vector<std::int64_t>{1, 2});
    CHECK(f.queues.settle("q", settle_all(b, Settlement::ack), f.clock).stale == 2);
    CHECK(f.queues.settle("q", settle_all(c, Settlement::ack), f.clock).acked == 2);
  }

  TEST_CASE("fenced ack and nack apply only with the current delivery's token, and bare positions override") {
    Fixture f;
    f.create("q");
    f.append("s-1");
    f.append("t-1");
    auto a = f.pull("q", 2);
    f.advance_ms(1001);
    auto b = f.pull("q", 2);
    REQUIRE(positions(b) == std::vector<std::int64_t>{1, 2});
    auto stale = f.queues.ack_targets("q", {Target{1, a.lease.token}, Target{2, b.lease.token}}, f.clock);
    REQUIRE(stale.size() == 1);
    CHECK(stale[0].position == 1);
    auto st = f.queues.status("q", f.clock);
    CHECK(st.lag == 1);
    CHECK(st.leased == 1);
    CHECK(f.queues.nack_targets("q", {Target{1, a.lease.token}}, 0, "late", f.clock).size() == 1);
    CHECK(f.queues.status("q", f.clock).leased == 1);
    CHECK(f.queues.ack_targets("q", {Target{2, b.lease.token}}, f.clock).empty());  // acked again: a no-op
    f.queues.ack("q", std::vector<std::int64_t>{1});  // the override
    CHECK(f.queues.status("q", f.clock).lag == 0);
  }

  TEST_CASE("an outcome that waited for the write lock past its lease is stale: leases are judged after the lock") {
    // Found by the chaos harness: a drainer read the clock, then waited seconds for the store's
    // lock; meanwhile its lease expired and s-1@0 went to another consumer. Judged by the clock
    // it read before waiting, its acks of s-1@1.. still looked current and were applied.
    Fixture f;
    f.create("q");
    f.append("s-1");
    f.append("s-1");
    PullOptions o;
    o.max = 2;
    o.lease_ms = 150;
    auto a = f.queues.pull("q", o, Clock::now());
    REQUIRE(positions(a) == std::vector<std::int64_t>{1, 2});
    const Clock asked = Clock::now();  // the drainer's reading, while its lease is current
    Store other(f.t.options(), Access::write);
    std::optional<sql::Txn> lock(std::in_place, sqlite::connection(other));  // holds the write lock
    SettleCounts c;
    std::thread late([&] { c = f.queues.settle("q", settle_all(a, Settlement::ack), asked); });
    while (Clock::now().mono_us < asked.mono_us + 300'000) ::usleep(10'000);  // the lease is over
    lock.reset();  // rolled back: the lock is free
    late.join();
    CHECK(c.stale == 2);
    CHECK(c.acked == 0);
    o.isolate_retries = true;
    auto again = f.queues.pull("q", o, Clock::now());
    CHECK(positions(again) == std::vector<std::int64_t>{1});  // a redelivery is handed out alone
    CHECK(attempts(again) == std::vector<std::int64_t>{2});
  }

  TEST_CASE("one settle applies a stream's outcomes in order or not at all: after a stale S@v, S@v+1.. go back") {
    for (bool fenced_cli : {false, true}) {
      CAPTURE(fenced_cli);
      Fixture f;
      f.create("q");
      f.append("s-1");
      f.append("s-1");
      f.append("s-1");
      f.append("t-1");
      auto a = f.pull("q", 4);
      REQUIRE(positions(a) == std::vector<std::int64_t>{1, 2, 3, 4});
      // An operator fails s-1@0 by hand (a bare position overrides the lease): it waits for a retry.
      f.queues.nack("q", {1}, 0, "by hand", f.clock);
      std::int64_t stale = 0, acked = 0;
      if (fenced_cli) {
        auto st = f.queues.ack_targets(
            "q", {Target{1, a.lease.token}, Target{2, a.lease.token}, Target{3, a.lease.token}, Target{4, a.lease.token}},
            f.clock);
        stale = static_cast<std::int64_t>(st.size());
        acked = 4 - stale;
      } else {
        auto c = f.queues.settle("q", settle_all(a, Settlement::ack), f.clock);
        stale = c.stale;
        acked = c.acked;
      }
      CHECK(stale == 3);  // s-1@0 (nacked since), and s-1@1, s-1@2 held back behind it
      CHECK(acked == 1);  // t-1@0
      auto st = f.queues.status("q", f.clock);
      CHECK(st.lag == 3);
      CHECK(st.leased == 0);
      // s-1@0 comes back alone (attempt 2), then s-1@1 and s-1@2 with their first attempt.
      auto b = f.pull("q", 4, true);
      CHECK(positions(b) == std::vector<std::int64_t>{1});
      CHECK(attempts(b) == std::vector<std::int64_t>{2});
      CHECK(f.queues.settle("q", settle_all(b, Settlement::ack), f.clock).acked == 1);
      auto c = f.pull("q", 4, true);
      CHECK(positions(c) == std::vector<std::int64_t>{2, 3});
      CHECK(attempts(c) == std::vector<std::int64_t>{1, 1});
    }
  }

  TEST_CASE("a queue deleted and created again under its name is another queue") {
    Fixture f;
    auto old_q = f.create("q");
    f.append("s-1");
    f.append("s-2");
    auto a = f.pull("q", 2);
    f.queues.remove("q");
    auto new_q = f.create("q");
    CHECK(new_q.id != old_q.id);
    auto b = f.pull("q", 2);
    REQUIRE(positions(b) == std::vector<std::int64_t>{1, 2});
    CHECK(b.lease.token > a.lease.token);
    f.queues.renew("q", a.lease, 60000, f.clock);
    auto c = f.queues.settle("q", settle_all(a, Settlement::ack), f.clock);
    CHECK(c.stale == 2);
    CHECK(f.queues.status("q", f.clock).leased == 2);
    PullOptions o;
    o.queue_id = old_q.id;
    try {
      f.queues.pull("q", o, f.clock);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::not_found);
      CHECK(std::string(e.what()).find("was deleted") != std::string::npos);
    }
    // Deleted outright: a late settlement is stale, not an error.
    f.queues.remove("q");
    CHECK(f.queues.settle("q", settle_all(b, Settlement::ack), f.clock).stale == 2);
    // The highest id deleted is not given out again either.
    CHECK(f.create("q").id > new_q.id);
  }

  TEST_CASE("an event whose last allowed lease expired is parked at once, and so is every later one with no attempt left") {
    Fixture f;
    f.create("q", {StartPoint::start}, 1);
    f.append("s-1");
    f.append("s-1");
    f.append("t-1");
    auto r = f.pull("q", 3);
    REQUIRE(positions(r) == std::vector<std::int64_t>{1, 2, 3});
    f.queues.ack("q", std::vector<std::int64_t>{3});  // the run becomes rows; 1 and 2 stay leased
    f.advance_ms(1001);
    auto st = f.queues.status("q", f.clock);  // nothing pulled since
    CHECK(st.parked == 2);
    CHECK(st.retrying == 0);
    CHECK(st.leased == 0);
    auto parked = f.queues.parked("q", f.clock);
    REQUIRE(parked.size() == 2);
    CHECK(parked[0].event.position == 1);
    CHECK(parked[1].event.position == 2);
    CHECK(parked[0].reason == "lease expired");
    CHECK(f.queues.retry("q", {2}, f.clock) == 1);  // retry accepts it as parked
    CHECK(f.queues.parked("q", f.clock).size() == 1);
  }

  TEST_CASE("an expired run of first deliveries with no attempt left is parked at once") {
    Fixture f;
    f.create("q", {StartPoint::start}, 1);
    f.append("s-1");
    f.append("t-1");
    auto r = f.pull("q", 2);
    REQUIRE(r.lease.run);
    f.advance_ms(1001);
    auto st = f.queues.status("q", f.clock);
    CHECK(st.parked == 2);
    CHECK(st.retrying == 0);
    CHECK(f.queues.parked("q", f.clock).size() == 2);
    CHECK(f.queues.settle("q", settle_all(r, Settlement::ack), f.clock).stale == 2);
    auto p = f.pull("q", 2);
    CHECK(p.deliveries.empty());
    CHECK(p.parked == 2);
    CHECK(f.queues.status("q", f.clock).parked == 2);
  }

  TEST_CASE("the oldest unacked age counts from the queue's creation or reset when those are later") {
    Fixture f;
    NewEvent e;
    e.stream = "s-1";
    e.type = "T";
    e.recorded_at = 1000000;  // imported history: 1970
    f.store.append({e});
    auto q = f.create("q");
    auto st = f.queues.status("q", f.clock);
    REQUIRE(st.oldest_since_us);
    CHECK(*st.oldest_recorded_at_us == 1000000);
    CHECK(*st.oldest_since_us == q.deliverable_since_us);
    CHECK(q.deliverable_since_us >= q.created_at_us);
    f.pull("q", 1);
    f.queues.ack("q", std::vector<std::int64_t>{1});
    f.append("s-2");  // committed now, after the queue's creation: its own time counts
    st = f.queues.status("q", f.clock);
    REQUIRE(st.oldest_position == 2);
    CHECK(*st.oldest_since_us == *st.oldest_recorded_at_us);
    CHECK(*st.oldest_since_us >= q.deliverable_since_us);
    ::usleep(2000);
    auto again = f.queues.reset("q", {StartPoint::start});  // the old event is deliverable again, from now
    CHECK(again.deliverable_since_us > q.deliverable_since_us);
    st = f.queues.status("q", f.clock);
    REQUIRE(st.oldest_position == 1);
    CHECK(*st.oldest_since_us == again.deliverable_since_us);
  }

  TEST_CASE("queue names are checked and unknown queues are not found") {
    Fixture f;
    CHECK_THROWS_AS(f.create("bad name"), Error);
    try {
      f.queues.status("nope", f.clock);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::not_found);
    }
    f.create("q");
    try {
      f.create("q");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::conflict);
    }
  }
}
