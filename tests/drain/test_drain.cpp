// drain/drain: the drain loop on a real store with fake handlers (no processes): every event
// handed out once and acked, a nacked event delivered again alone with its next attempt, returned
// events using no attempt, a missing outcome counted as a nack, a throwing handler giving its
// batch back, --max-events, and per-stream exclusivity and order across parallel workers.
#include <doctest/doctest.h>

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "drain/drain.hpp"
#include "store/queue.hpp"
#include "store/store.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
using esctl::test::TempStore;

namespace {

struct Fixture {
  TempStore t;

  /// `per_stream` events in each of `streams` streams s0.., interleaved (version-major).
  void fill(int streams, int per_stream) {
    Store store(t.options(), Access::write);
    std::vector<NewEvent> batch;
    for (int v = 0; v < per_stream; ++v)
      for (int k = 0; k < streams; ++k) {
        NewEvent e;
        e.stream = "s" + std::to_string(k);
        e.type = "T";
        batch.push_back(e);
      }
    store.append(batch);
  }
  void create(std::int64_t max_attempts = 5) {
    Store store(t.options(), Access::write);
    QueueSpec s;
    s.name = "q";
    s.max_attempts = max_attempts;
    Queues(store).create(s, StartPoint{StartPoint::start});
  }
  QueueStatus status() {
    Store store(t.options(), Access::read);
    return Queues(store).status("q", Clock::now());
  }
  DrainSummary drain(const HandlerFactory& f, std::int64_t batch = 1000, int parallel = 1,
                     std::optional<std::int64_t> max_events = std::nullopt) {
    DrainOptions o;
    o.queue = "q";
    o.batch = batch;
    o.parallel = parallel;
    o.max_events = max_events;
    return esctl::drain(t.options(), o, f);
  }
};

// What the handlers were given, in call order.
struct Seen {
  std::mutex m;
  std::vector<std::vector<Delivery>> batches;
  void add(const std::vector<Delivery>& b) {
    std::lock_guard<std::mutex> lock(m);
    batches.push_back(b);
  }
  std::size_t events() {
    std::size_t n = 0;
    for (const auto& b : batches) n += b.size();
    return n;
  }
};

}  // namespace

TEST_SUITE("drain/drain") {
  TEST_CASE("every event is handed out once, lowest position first, and acked") {
    Fixture f;
    f.fill(3, 4);
    f.create();
    Seen seen;
    auto sum = f.drain([&](int) {
      return [&](const std::vector<Delivery>& b) {
        seen.add(b);
        return BatchOutcome::ack_all(b);
      };
    }, 5);
    CHECK(sum.totals.delivered == 12);
    CHECK(sum.totals.acked == 12);
    CHECK(sum.totals.retried == 0);
    std::int64_t last = 0;
    for (const auto& b : seen.batches) {
      CHECK(b.size() <= 5);
      for (const auto& d : b) {
        CHECK(d.event.position > last);
        CHECK(d.attempt == 1);
        last = d.event.position;
      }
    }
    CHECK(seen.events() == 12);
    CHECK(f.status().lag == 0);
  }

  TEST_CASE("a nacked event is delivered again alone with attempt 2, and its batch-mates are acked") {
    Fixture f;
    f.fill(4, 1);
    f.create();
    Seen seen;
    auto sum = f.drain([&](int) {
      return [&](const std::vector<Delivery>& b) {
        seen.add(b);
        BatchOutcome out = BatchOutcome::ack_all(b);
        for (auto& [p, r] : out.results)
          for (const auto& d : b)
            if (d.event.position == p && d.event.stream == "s2" && d.attempt == 1) r = "not yet";
        return out;
      };
    });
    CHECK(sum.totals.acked == 4);
    CHECK(sum.totals.retried == 1);
    REQUIRE(seen.batches.size() == 2);
    CHECK(seen.batches[0].size() == 4);
    REQUIRE(seen.batches[1].size() == 1);
    CHECK(seen.batches[1][0].event.stream == "s2");
    CHECK(seen.batches[1][0].attempt == 2);
    CHECK(f.status().lag == 0);
  }

  TEST_CASE("returned events come back without using an attempt") {
    Fixture f;
    f.fill(2, 2);
    f.create();
    Seen seen;
    bool first = true;
    auto sum = f.drain([&](int) {
      return [&](const std::vector<Delivery>& b) {
        seen.add(b);
        BatchOutcome out = BatchOutcome::ack_all(b);
        if (first) {
          for (const auto& d : b)
            if (d.event.stream == "s1") out.returned.push_back(d.event.position);
          first = false;
        }
        return out;
      };
    });
    CHECK(sum.totals.returned == 2);
    CHECK(sum.totals.retried == 0);
    CHECK(sum.totals.acked == 4);
    for (const auto& b : seen.batches)
      for (const auto& d : b) CHECK(d.attempt == 1);
    CHECK(seen.events() == 6);
  }

  TEST_CASE("an event the handler reports nothing for is nacked, and parked after its last attempt") {
    Fixture f;
    f.fill(1, 2);
    f.create(1);
    auto sum = f.drain([&](int) { return [&](const std::vector<Delivery>&) { return BatchOutcome{}; }; });
    CHECK(sum.totals.parked == 2);  // both nacked in one batch, with no attempt left
    CHECK(sum.totals.acked == 0);
    auto st = f.status();
    CHECK(st.parked == 2);
    CHECK(st.lag == 2);
  }

  TEST_CASE("a handler that throws stops the drain, and its batch goes back without using an attempt") {
    Fixture f;
    f.fill(3, 2);
    f.create();
    CHECK_THROWS_AS(f.drain([&](int) {
      return [&](const std::vector<Delivery>&) -> BatchOutcome { throw Error(Errc::io, "handler lost"); };
    }), Error);
    auto st = f.status();
    CHECK(st.lag == 6);
    CHECK(st.leased == 0);
    CHECK(st.retrying == 0);
  }

  TEST_CASE("max_events stops the drain after that many deliveries") {
    Fixture f;
    f.fill(5, 4);
    f.create();
    Seen seen;
    auto sum = f.drain([&](int) {
      return [&](const std::vector<Delivery>& b) {
        seen.add(b);
        return BatchOutcome::ack_all(b);
      };
    }, 3, 1, 7);
    CHECK(sum.totals.delivered == 7);
    CHECK(seen.events() == 7);
    CHECK(f.status().lag == 13);
  }

  TEST_CASE("parallel workers never hold one stream at once, and each stream goes in version order") {
    Fixture f;
    f.fill(8, 10);
    f.create();
    std::mutex m;
    std::multiset<std::string> held;  // streams inside some handler now
    std::map<std::string, std::int64_t> next;
    bool overlap = false, out_of_order = false;
    std::set<int> workers;
    auto sum = f.drain([&](int index) {
      {
        std::lock_guard<std::mutex> lock(m);
        workers.insert(index);
      }
      return [&](const std::vector<Delivery>& b) {
        std::set<std::string> mine;
        {
          std::lock_guard<std::mutex> lock(m);
          for (const auto& d : b) mine.insert(d.event.stream);
          for (const auto& s : mine) {
            if (held.count(s)) overlap = true;
            held.insert(s);
          }
          for (const auto& d : b) {
            if (d.event.version != next[d.event.stream]) out_of_order = true;
            next[d.event.stream] = d.event.version + 1;
          }
        }
        std::this_thread::yield();
        std::lock_guard<std::mutex> lock(m);
        for (const auto& s : mine) held.erase(held.find(s));
        return BatchOutcome::ack_all(b);
      };
    }, 3, 4);
    CHECK(sum.totals.acked == 80);
    CHECK_FALSE(overlap);
    CHECK_FALSE(out_of_order);
    CHECK(workers.size() == 4);
    CHECK(f.status().lag == 0);
  }

  TEST_CASE("bad options and an unknown queue are refused before anything is delivered") {
    Fixture f;
    f.fill(1, 1);
    f.create();
    auto never = [](int) -> BatchHandler {
      return [](const std::vector<Delivery>& b) {
        FAIL("handler called");
        return BatchOutcome::ack_all(b);
      };
    };
    CHECK_THROWS_AS(f.drain(never, 0), Error);
    CHECK_THROWS_AS(f.drain(never, 10, 0), Error);
    DrainOptions o;
    o.queue = "nope";
    try {
      esctl::drain(f.t.options(), o, never);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::not_found);
    }
    CHECK(f.status().lag == 1);
  }
}
