// Appends to a PostgreSQL store: positions dense and in commit order under concurrent writers
// on many connections, expected-version races, idempotency by id, atomic batches, payloads kept
// byte for byte.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <map>
#include <thread>

#include "core/uuid.hpp"
#include "store/postgres/store.hpp"
#include "store/store.hpp"
#include "support/pg_db.hpp"

using namespace esctl;
using esctl::test::event;
using esctl::test::TempDatabase;

namespace {

// Every event of the store at `uri`, read through the backend-neutral Store.
std::vector<Event> all_events(const std::string& uri) {
  Store s(StoreOptions{uri, 5000}, Access::read);
  std::vector<Event> out;
  s.read_all(1, std::nullopt, EventFilter{}, [&](const EventRef& e) {
    out.push_back(Event::from(e));
    return true;
  });
  return out;
}

}  // namespace

TEST_CASE("pg: append assigns versions and positions and reads give the events back byte for byte") {
  TempDatabase db;
  pg::PgStore s(db.uri(), 5000, Access::write);
  const std::string data = R"({"b":1,"a":2.50,"s":"\u00e9\"\\","n":[1e3,-0]})";
  auto a = s.append({event("order-1", "t", data), event("order-2"), event("order-1")});
  REQUIRE(a.size() == 3);
  CHECK(a[0].version == 0);
  CHECK(a[0].position == 1);
  CHECK(a[1].version == 0);
  CHECK(a[2].version == 1);
  CHECK(a[2].position == 3);
  auto all = all_events(db.uri());
  REQUIRE(all.size() == 3);
  CHECK(all[0].data == data);
  CHECK(all[0].stream == "order-1");
  CHECK(all[0].id == std::string(a[0].id.view()));
  std::vector<std::int64_t> back;
  s.read_stream("order-1", std::nullopt, std::nullopt, true, [&](const EventRef& e) {
    back.push_back(e.version);
    return true;
  });
  CHECK(back == std::vector<std::int64_t>{1, 0});
  CHECK(s.stream_version("order-1") == 1);
  CHECK_FALSE(s.stream_version("nope"));
  CHECK_THROWS_AS(s.read_stream("nope", std::nullopt, std::nullopt, false, [](const EventRef&) { return true; }), Error);
}

TEST_CASE("pg: expected versions and idempotency by id and all-or-nothing batches") {
  TempDatabase db;
  pg::PgStore s(db.uri(), 5000, Access::write);
  const Uuid id = new_uuid_v7();
  auto first = s.append({event("a", "t", R"({"x":1})", id)}, Expect{Expect::none});
  CHECK_FALSE(first[0].existed);
  // the same event again: a no-op reporting where it is
  auto again = s.append({event("a", "t", R"({"x":1})", id)}, Expect{Expect::none});
  CHECK(again[0].existed);
  CHECK(again[0].position == first[0].position);
  CHECK(s.head_position() == 1);
  // the same id with other content: conflict
  try {
    s.append({event("a", "t", R"({"x":2})", id)});
    FAIL("expected a conflict");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::conflict);
    CHECK(std::string(e.what()).find("already used by a different event") != std::string::npos);
  }
  CHECK_THROWS_AS(s.append({event("a")}, Expect{Expect::none}), Error);
  CHECK_THROWS_AS(s.append({event("b")}, Expect{Expect::exists}), Error);
  CHECK_THROWS_AS(s.append({event("a")}, Expect{Expect::version, 5}), Error);
  CHECK(s.append({event("a")}, Expect{Expect::version, 0})[0].version == 1);
  // a batch whose third event conflicts writes nothing, and says which one
  NewEvent bad = event("c");
  bad.version = 7;
  std::size_t failed_at = 99;
  CHECK_THROWS_AS(s.append({event("c"), event("d"), bad}, {}, true, &failed_at), Error);
  CHECK(failed_at == 2);
  CHECK(s.head_position() == 2);
  CHECK_FALSE(s.stream_version("c"));
  // positions given back by the rolled-back batch are used next: still dense
  CHECK(s.append({event("c")})[0].position == 3);
  // an id repeated inside one batch is one event
  const Uuid id2 = new_uuid_v7();
  auto twice = s.append({event("e", "t", "{}", id2), event("e", "t", "{}", id2)});
  CHECK_FALSE(twice[0].existed);
  CHECK(twice[1].existed);
  CHECK(twice[1].position == twice[0].position);
  CHECK(s.head_position() == 4);
}

TEST_CASE("pg: a batch with stored ids among new ones stores only the new ones, densely, and a stored id with other content stores nothing") {
  TempDatabase db;
  pg::PgStore s(db.uri(), 5000, Access::write);
  const Uuid a = new_uuid_v7(), b = new_uuid_v7(), c = new_uuid_v7(), d = new_uuid_v7();
  auto first = s.append({event("x", "t", "{}", a), event("y", "t", "{}", b)});
  // 40 events with ids of their own before and after `middle`: a batch that large takes its ids
  // as new at first, so the store's unique index is what finds the stored ones.
  std::vector<Uuid> fill;
  for (int i = 0; i < 80; ++i) fill.push_back(new_uuid_v7());
  auto batch = [&](std::vector<NewEvent> middle) {
    std::vector<NewEvent> out;
    for (int i = 0; i < 40; ++i) out.push_back(event("f", "t", "{}", fill[static_cast<std::size_t>(i)]));
    out.insert(out.end(), middle.begin(), middle.end());
    for (int i = 40; i < 80; ++i) out.push_back(event("g", "t", "{}", fill[static_cast<std::size_t>(i)]));
    return out;
  };
  // A different event under a stored id, in the middle: nothing of the batch, and which one.
  std::size_t failed_at = 99;
  try {
    s.append(batch({event("x", "t", "{}", c), event("y", "t", R"({"other":1})", b), event("z", "t", "{}", d)}), {}, true,
             &failed_at);
    FAIL("expected a conflict");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::conflict);
    CHECK(std::string(e.what()).find("already used by a different event") != std::string::npos);
  }
  CHECK(failed_at == 41);
  CHECK(s.head_position() == 2);
  CHECK_FALSE(s.stream_version("z"));
  CHECK_FALSE(s.stream_version("f"));
  // The same ids with their stored content: repeats reported where they are, the rest appended.
  const auto mixed = batch({event("x", "t", "{}", c), event("y", "t", "{}", b), event("z", "t", "{}", d), event("x", "t", "{}", a)});
  auto r = s.append(mixed);
  REQUIRE(r.size() == 84);
  CHECK(r[0].position == 3);
  CHECK_FALSE(r[40].existed);
  CHECK(r[40].position == 43);
  CHECK(r[40].version == 1);
  CHECK(r[41].existed);
  CHECK(r[41].position == first[1].position);
  CHECK_FALSE(r[42].existed);
  CHECK(r[42].position == 44);
  CHECK(r[42].version == 0);
  CHECK(r[43].existed);
  CHECK(r[43].position == first[0].position);
  CHECK(r[83].position == 84);
  CHECK(r[83].version == 39);
  CHECK(s.head_position() == 84);
  auto all = all_events(db.uri());
  REQUIRE(all.size() == 84);
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].position == static_cast<std::int64_t>(i + 1));
  // Once more: every event a repeat, nothing written.
  auto again = s.append(mixed);
  CHECK(std::all_of(again.begin(), again.end(), [](const Appended& e) { return e.existed; }));
  CHECK(again[83].position == 84);
  CHECK(s.head_position() == 84);
  // An expectation is judged on the first event that is not a repeat.
  auto more = mixed;
  more.push_back(event("w"));
  auto last = s.append(more, Expect{Expect::none});
  CHECK(last[84].version == 0);
  CHECK(last[84].position == 85);
}

TEST_CASE("pg: a session's later batches see the heads other sessions moved in between, and a failed batch leaves no trace") {
  TempDatabase db;
  pg::PgStore mine(db.uri(), 5000, Access::write), other(db.uri(), 5000, Access::write);
  CHECK(mine.append({event("s"), event("t")})[1].version == 0);
  CHECK(other.append({event("s"), event("u")})[0].version == 1);
  // mine appended last at position 2; the store is at 4 now: its next batch must see s at 1.
  auto r = mine.append({event("s"), event("u")});
  CHECK(r[0].version == 2);
  CHECK(r[0].position == 5);
  CHECK(r[1].version == 1);
  CHECK_THROWS_AS(mine.append({event("s")}, Expect{Expect::version, 1}), Error);
  CHECK(mine.append({event("s")}, Expect{Expect::version, 2})[0].version == 3);
  // A batch that makes a stream and then fails: the stream is not there, for either session.
  NewEvent bad = event("s");
  bad.version = 9;
  CHECK_THROWS_AS(mine.append({event("n"), event("t"), bad}), Error);
  CHECK_FALSE(mine.stream_version("n"));
  CHECK(mine.append({event("n")}, Expect{Expect::none})[0].version == 0);
  CHECK(mine.append({event("t")})[0].version == 1);
  CHECK(other.append({event("n"), event("s")})[1].version == 4);
  CHECK(mine.append({event("n"), event("s")})[1].version == 5);
  auto names = mine.streams(std::nullopt, std::nullopt);
  REQUIRE(names.size() == 4);
  CHECK(names[0].name == "n");
  CHECK(names[0].version == 2);
  CHECK(mine.head_position() == 13);
}

TEST_CASE("pg: 8 concurrent appenders lose nothing / positions are dense and each stream's versions contiguous and a reader following position > last never sees a gap") {
  TempDatabase db;
  { pg::PgStore init(db.uri(), 5000, Access::write); }
  constexpr int kWriters = 8, kAppends = 150;
  constexpr std::int64_t kTotal = kWriters * kAppends * 2;  // every append writes 2 events
  std::atomic<int> failures{0};
  std::atomic<bool> reader_ok{true};
  std::string reader_problem;
  std::thread reader([&] {
    Store r(StoreOptions{db.uri(), 5000}, Access::read);
    std::int64_t last = 0;
    while (last < kTotal && reader_ok) {
      r.read_all(last + 1, std::nullopt, EventFilter{}, [&](const EventRef& e) {
        if (e.position != last + 1) {  // dense and in commit order: nothing can appear below it later
          reader_problem = "after position " + std::to_string(last) + " the reader saw " + std::to_string(e.position);
          reader_ok = false;
          return false;
        }
        last = e.position;
        return true;
      });
    }
  });
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      try {
        pg::PgStore s(db.uri(), 30000, Access::write);
        for (int i = 0; i < kAppends; ++i)
          s.append({event("own-" + std::to_string(w), "t", "{\"i\":" + std::to_string(i) + "}"), event("shared")});
      } catch (const std::exception& e) {
        ++failures;
        MESSAGE(e.what());
      }
    });
  for (auto& t : writers) t.join();
  reader.join();
  CHECK(failures == 0);
  CHECK_MESSAGE(reader_ok, reader_problem);
  pg::PgStore s(db.uri(), 5000, Access::read);
  auto all = all_events(db.uri());
  REQUIRE(all.size() == static_cast<std::size_t>(kTotal));
  std::map<std::string, std::int64_t> next_version;
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].position == static_cast<std::int64_t>(i) + 1);
    CHECK(all[i].version == next_version[all[i].stream]++);
  }
  CHECK(next_version["shared"] == kWriters * kAppends);
  for (int w = 0; w < kWriters; ++w) CHECK(next_version["own-" + std::to_string(w)] == kAppends);
  CHECK(s.head_position() == kTotal);
}

TEST_CASE("pg: a 32-way expected-version race has exactly one winner") {
  TempDatabase db;
  {
    pg::PgStore init(db.uri(), 5000, Access::write);
    init.append({event("race")});
  }
  constexpr int kRacers = 32;
  std::vector<std::unique_ptr<pg::PgStore>> stores;
  for (int i = 0; i < kRacers; ++i) stores.push_back(std::make_unique<pg::PgStore>(db.uri(), 30000, Access::write));
  std::barrier start(kRacers);
  std::atomic<int> won{0}, conflicts{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      try {
        stores[static_cast<std::size_t>(i)]->append({event("race", "t", "{\"racer\":" + std::to_string(i) + "}")},
                                                    Expect{Expect::version, 0});
        ++won;
      } catch (const Error& e) {
        if (e.code() == Errc::conflict) ++conflicts;
        else ++other;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(won == 1);
  CHECK(conflicts == kRacers - 1);
  CHECK(other == 0);
  CHECK(stores[0]->stream_version("race") == 1);
  CHECK(stores[0]->head_position() == 2);
}
