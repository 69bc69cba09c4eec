// Projector queues on a PostgreSQL store, through the neutral Queues API with one Store per
// connection (each standing in for a drainer on another machine): pulls from several connections
// keep per-stream order and hand each event out once; a queue operation waits for another
// connection's open one on the same queue (the row lock), not for one on another queue (but
// every pull takes a lease token, whose counter row a pull holds until it commits); leases
// are judged by the server's clock, so a late ack after expiry is stale.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <thread>

#include "core/error.hpp"
#include "store/queue.hpp"
#include "store/store.hpp"
#include "support/pg_db.hpp"

using namespace esctl;
using esctl::test::event;
using esctl::test::TempDatabase;

namespace {

Store open(const std::string& uri, int busy_ms = 5000) {
  StoreOptions o;
  o.location = uri;
  o.busy_timeout_ms = busy_ms;
  return Store(o, Access::write);
}

}  // namespace

TEST_CASE("pg: pulls from two connections hand each event out once, in per-stream order") {
  TempDatabase db;
  Store a = open(db.uri()), b = open(db.uri());
  std::vector<NewEvent> batch;
  for (int v = 0; v < 6; ++v)
    for (int k = 0; k < 4; ++k) batch.push_back(event("s-" + std::to_string(k)));
  a.append(batch);
  Queues(a).create(QueueSpec{"q"}, StartPoint{StartPoint::start});
  std::map<std::string, std::int64_t> next;
  std::map<std::int64_t, int> times;
  for (int round = 0; round < 100; ++round) {
    // Both connections pull before either acks: the second must not get what the first holds,
    // nor a later event of a stream the first holds.
    auto ra = Queues(a).pull("q", PullOptions{3}, Clock::now());
    auto rb = Queues(b).pull("q", PullOptions{3}, Clock::now());
    if (ra.deliveries.empty() && rb.deliveries.empty()) break;
    std::map<std::string, int> held;
    for (const auto* r : {&ra, &rb}) {
      for (const auto& d : r->deliveries) {
        ++times[d.event.position];
        CHECK_MESSAGE(d.event.version == next[d.event.stream], d.event.stream, "@", d.event.version);
        next[d.event.stream] = d.event.version + 1;
        ++held[d.event.stream];
      }
    }
    std::vector<Target> ta, tb;
    for (const auto& d : ra.deliveries) ta.push_back(Target{d.event.position, d.lease});
    for (const auto& d : rb.deliveries) tb.push_back(Target{d.event.position, d.lease});
    // A stream is held by one connection at a time.
    for (const auto& da : ra.deliveries)
      for (const auto& db2 : rb.deliveries) CHECK(da.event.stream != db2.event.stream);
    if (!ta.empty()) CHECK(Queues(a).ack_targets("q", ta, Clock::now()).empty());
    if (!tb.empty()) CHECK(Queues(b).ack_targets("q", tb, Clock::now()).empty());
  }
  CHECK(times.size() == 24);
  for (const auto& [p, n] : times) CHECK_MESSAGE(n == 1, "position ", p);
  CHECK(Queues(a).status("q", Clock::now()).lag == 0);
}

TEST_CASE("pg: a queue operation waits for another connection's on the same queue, not on another queue") {
  TempDatabase db;
  Store a = open(db.uri()), b = open(db.uri(), 300);
  a.append({event("s-1"), event("s-2")});
  Queues(a).create(QueueSpec{"q"}, StartPoint{StartPoint::start});
  Queues(a).create(QueueSpec{"other"}, StartPoint{StartPoint::start});
  queue_admin::atomically(a, [&] {
    auto r = Queues(a).pull("q", PullOptions{1}, Clock::now());  // holds q until the end
    CHECK(r.deliveries.size() == 1);
    try {
      Queues(b).pull("q", PullOptions{1}, Clock::now());
      FAIL("the second pull did not wait for the first");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::busy);
    }
    CHECK(Queues(b).reset("other", StartPoint{StartPoint::end}).cursor == 2);  // another queue: no wait
    return true;
  });
  // Committed: b now gets the event a did not hold.
  auto r = Queues(b).pull("q", PullOptions{2}, Clock::now());
  REQUIRE(r.deliveries.size() == 1);
  CHECK(r.deliveries[0].event.stream == "s-2");
}

TEST_CASE("pg: a lease is judged by the server's clock: a late ack after it expired and was redelivered is stale") {
  TempDatabase db;
  Store a = open(db.uri()), b = open(db.uri());
  a.append({event("s-1")});
  Queues(a).create(QueueSpec{"q", {}, 5, 30000}, StartPoint{StartPoint::start});
  PullOptions brief{1};
  brief.lease_ms = 1;
  auto first = Queues(a).pull("q", brief, Clock::now());
  REQUIRE(first.deliveries.size() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto second = Queues(b).pull("q", PullOptions{1}, Clock::now());
  REQUIRE(second.deliveries.size() == 1);
  CHECK(second.deliveries[0].attempt == 2);
  auto stale = Queues(a).ack_targets("q", {Target{1, first.deliveries[0].lease}}, Clock::now());
  CHECK(stale.size() == 1);
  auto st = Queues(a).status("q", Clock::now());
  CHECK(st.leased == 1);
  CHECK(st.lag == 1);
  CHECK(Queues(b).ack_targets("q", {Target{1, second.deliveries[0].lease}}, Clock::now()).empty());
  CHECK(Queues(a).status("q", Clock::now()).lag == 0);
}
