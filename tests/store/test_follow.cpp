// store/follow: ChangeWaiter wakes on commits by other connections (not its own), does not lose
// a commit made between a read and the next wait, ends on a hang-up, and never holds a read
// transaction; read_after reads what is new and reports how far it looked.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "store/follow.hpp"
#include "store/sqlite/event_store.hpp"
#include "store/sqlite/sqlite.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
using esctl::test::TempStore;

namespace {

NewEvent event(const std::string& stream, const std::string& type) {
  NewEvent e;
  e.stream = stream;
  e.type = type;
  return e;
}

}  // namespace

TEST_SUITE("store/follow") {
  TEST_CASE("a waiter reports a commit by another connection, also one made before wait() was called") {
    TempStore t;
    Store writer(t.options(), Access::write);
    Store reader(t.options(), Access::read);
    ChangeWaiter waiter(reader);
    CHECK(waiter.wait(30) == Wake::timeout);
    writer.append({event("a-1", "T")});
    CHECK(waiter.wait(60000) == Wake::changed);
    CHECK(waiter.wait(30) == Wake::timeout);  // reported once

    std::thread later([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      writer.append({event("a-1", "T")});
    });
    CHECK(waiter.wait(60000) == Wake::changed);
    later.join();
  }

  TEST_CASE("a waiter is not woken by commits on its own connection") {
    TempStore t;
    Store store(t.options(), Access::write);
    ChangeWaiter waiter(store);
    store.append({event("a-1", "T")});
    CHECK(waiter.wait(50) == Wake::timeout);
  }

  TEST_CASE("a hang-up on a watched descriptor ends the wait") {
    TempStore t;
    Store store(t.options(), Access::write);
    ChangeWaiter waiter(store);
    int p[2];
    REQUIRE(::pipe(p) == 0);
    waiter.wake_on_hangup(p[1]);
    CHECK(waiter.wait(30) == Wake::timeout);  // reader still there
    ::close(p[0]);
    CHECK(waiter.wait(60000) == Wake::hangup);
    ::close(p[1]);
  }

  TEST_CASE("read_after passes matching events after a position and returns the last position examined") {
    TempStore t;
    Store store(t.options(), Access::write);
    store.append({event("order-1", "Placed"), event("user-1", "Joined"), event("order-2", "Placed"),
                  event("user-2", "Joined")});
    EventFilter f;
    f.categories = {"order"};
    std::vector<std::int64_t> seen;
    auto collect = [&](const EventRef& e) {
      seen.push_back(e.position);
      return true;
    };
    CHECK(read_after(store, 0, f, collect, 2) == 4);  // several chunks of 2
    CHECK(seen == std::vector<std::int64_t>{1, 3});
    seen.clear();
    CHECK(read_after(store, 3, f, collect) == 4);  // examined 4, passed nothing
    CHECK(seen.empty());
    CHECK(read_after(store, 4, f, collect) == 4);
    f = EventFilter{};
    auto stop_at_2 = [&](const EventRef& e) { return e.position < 2; };
    CHECK(read_after(store, 0, f, stop_at_2) == 2);  // stopped: the cursor is the last event handed over
  }

  TEST_CASE("a waiting follower holds no read transaction: another connection can truncate the WAL") {
    TempStore t;
    Store writer(t.options(), Access::write);
    writer.append({event("a-1", "T")});
    Store reader(t.options(), Access::read);
    std::atomic<bool> stop{false};
    std::atomic<std::int64_t> last{0};
    std::thread follower([&] {
      ChangeWaiter waiter(reader);
      EventFilter all;
      std::int64_t at = read_after(reader, 0, all, [](const EventRef&) { return true; });
      last = at;
      while (!stop) {
        if (waiter.wait(20) == Wake::changed) last = at = read_after(reader, at, all, [](const EventRef&) { return true; });
      }
    });
    for (int round = 0; round < 5; ++round) {
      for (int i = 0; i < 20; ++i) writer.append({event("a-1", "T")});
      // busy (column 0) is 0 only if no reader's snapshot kept the checkpoint from finishing.
      sql::Stmt ck = sqlite::connection(writer).prepare_new("PRAGMA wal_checkpoint(TRUNCATE)");
      REQUIRE(ck.step());
      CHECK(ck.i64(0) == 0);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (last != 101 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stop = true;
    follower.join();
    CHECK(last == 101);
  }
}
