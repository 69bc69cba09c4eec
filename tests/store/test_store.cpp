// store/store: append (atomicity, idempotency by id, expected versions, import versions, the
// stream-head cache shared across calls and connections) and the read paths (stream windows
// through the every-64th-version marks, backwards, --all filters, read_last, streams, stats).
// On temp files: several connections to one file are part of what is tested.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "core/error.hpp"
#include "store/sqlite/event_store.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/store.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
using esctl::test::TempStore;

namespace {

NewEvent event(const std::string& stream, const std::string& type, const std::string& data = "{}") {
  NewEvent e;
  e.stream = stream;
  e.type = type;
  e.data = data;
  return e;
}

NewEvent with_id(NewEvent e, const char* uuid) {
  e.id = parse_uuid(uuid);
  REQUIRE(e.id);
  return e;
}

Errc failure(const std::function<void()>& fn, std::string* message = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  FAIL("no exception");
  return Errc::internal;
}

struct Seen {
  std::int64_t position, version;
  std::string stream, type, data;
};

std::vector<Seen> stream_events(Store& s, const std::string& stream, std::optional<std::int64_t> from = std::nullopt,
                                std::optional<std::int64_t> count = std::nullopt, bool backwards = false) {
  std::vector<Seen> out;
  s.read_stream(stream, from, count, backwards, [&](const EventRef& e) {
    out.push_back({e.position, e.version, std::string(e.stream), std::string(e.type), std::string(e.data)});
    return true;
  });
  return out;
}

std::vector<Seen> all_events(Store& s, std::int64_t from = 1, std::optional<std::int64_t> count = std::nullopt,
                             const EventFilter& f = {}) {
  std::vector<Seen> out;
  s.read_all(from, count, f, [&](const EventRef& e) {
    out.push_back({e.position, e.version, std::string(e.stream), std::string(e.type), std::string(e.data)});
    return true;
  });
  return out;
}

std::int64_t count_rows(Store& s, const char* table) {
  return sqlite::connection(s).query_i64((std::string("SELECT count(*) FROM ") + table).c_str());
}

}  // namespace

TEST_SUITE("store/store") {
  TEST_CASE("appended events get contiguous versions per stream and increasing positions across streams") {
    TempStore t;
    Store s(t.options(), Access::write);
    auto r = s.append({event("a-1", "T"), event("b-1", "T"), event("a-1", "U", "[1]")});
    REQUIRE(r.size() == 3);
    CHECK(r[0].version == 0);
    CHECK(r[1].version == 0);
    CHECK(r[2].version == 1);
    CHECK(r[0].position == 1);
    CHECK(r[1].position == 2);
    CHECK(r[2].position == 3);
    CHECK_FALSE(r[2].existed);
    auto r2 = s.append({event("a-1", "V")});
    CHECK(r2[0].version == 2);
    CHECK(r2[0].position == 4);
    auto a = stream_events(s, "a-1");
    REQUIRE(a.size() == 3);
    CHECK(a[1].type == "U");
    CHECK(a[1].data == "[1]");
    CHECK(s.stream_version("a-1") == 2);
    CHECK_FALSE(s.stream_version("nope").has_value());
    CHECK(s.last_position() == 4);
  }

  TEST_CASE("a read-only open of a missing file fails with not_found and creates nothing") {
    TempStore t;
    CHECK(failure([&] { Store s(t.options(), Access::read); }) == Errc::not_found);
    CHECK_FALSE(std::filesystem::exists(t.path));
  }

  TEST_CASE("expected-version modes pass or conflict without writing anything") {
    TempStore t;
    Store s(t.options(), Access::write);
    CHECK_NOTHROW(s.append({event("x", "T")}, Expect{Expect::none}));
    std::string msg;
    CHECK(failure([&] { s.append({event("x", "T")}, Expect{Expect::none}); }, &msg) == Errc::conflict);
    CHECK(msg.find("is at version 0") != std::string::npos);
    CHECK(failure([&] { s.append({event("y", "T")}, Expect{Expect::exists}); }, &msg) == Errc::conflict);
    CHECK(msg.find("'y' does not exist") != std::string::npos);
    CHECK_NOTHROW(s.append({event("x", "T")}, Expect{Expect::exists}));
    CHECK_NOTHROW(s.append({event("x", "T"), event("x", "T")}, Expect{Expect::version, 1}));
    CHECK(failure([&] { s.append({event("x", "T")}, Expect{Expect::version, 1}); }, &msg) == Errc::conflict);
    CHECK(msg.find("is at version 3") != std::string::npos);
    CHECK(count_rows(s, "events") == 4);
    CHECK(count_rows(s, "streams") == 1);  // 'y' was rolled back
    CHECK(s.append({event("x", "T")}, Expect{Expect::version, 3})[0].version == 4);
  }

  TEST_CASE("an append is all or nothing: a conflict in its last event leaves no trace of the others") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({event("s", "T")});
    std::vector<NewEvent> batch{event("new-1", "T"), event("s", "T"), event("s", "T")};
    batch[2].version = 7;  // does not fit: s will be at 1
    std::size_t failed = 99;
    CHECK(failure([&] { s.append(batch, {}, true, &failed); }) == Errc::conflict);
    CHECK(failed == 2);
    CHECK(count_rows(s, "events") == 1);
    CHECK_FALSE(s.stream_version("new-1").has_value());
    // The rolled-back heads must not linger in the cache.
    auto r = s.append({event("s", "T"), event("new-1", "T")});
    CHECK(r[0].version == 1);
    CHECK(r[1].version == 0);
    CHECK(r[0].position == 2);
  }

  TEST_CASE("with check_versions an event's version must be its stream's next one, without, it is ignored") {
    TempStore t;
    Store s(t.options(), Access::write);
    auto e0 = event("s", "T");
    e0.version = 0;
    auto e1 = event("s", "T");
    e1.version = 1;
    CHECK_NOTHROW(s.append({e0, e1}));
    auto e5 = event("s", "T");
    e5.version = 5;
    std::string msg;
    CHECK(failure([&] { s.append({e5}); }, &msg) == Errc::conflict);
    CHECK(msg.find("is at version 1, so the event for version 5 does not fit") != std::string::npos);
    CHECK(s.append({e5}, {}, false)[0].version == 2);
  }

  TEST_CASE("re-appending an id with the same content reports the stored event, other content conflicts") {
    TempStore t;
    Store s(t.options(), Access::write);
    const char* id = "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77";
    auto first = s.append({with_id(event("s", "T", R"({"a":1})"), id)});
    s.append({event("s", "T")});
    auto again = s.append({with_id(event("s", "T", R"({"a":1})"), id)}, Expect{Expect::version, 0});
    CHECK(again[0].existed);
    CHECK(again[0].position == first[0].position);
    CHECK(again[0].version == 0);
    CHECK(count_rows(s, "events") == 2);
    std::string msg;
    CHECK(failure([&] { s.append({with_id(event("s", "T", R"({"a":2})"), id)}); }, &msg) == Errc::conflict);
    CHECK(msg.find("already used by a different event") != std::string::npos);
    CHECK(failure([&] { s.append({with_id(event("s", "U", R"({"a":1})"), id)}); }) == Errc::conflict);
    CHECK(failure([&] { s.append({with_id(event("other", "T", R"({"a":1})"), id)}); }) == Errc::conflict);
    CHECK(count_rows(s, "events") == 2);
  }

  TEST_CASE("ids below the highest stored id are still checked, above it are inserted, repeats in one call are found") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({with_id(event("s", "T"), "00000000-0000-7000-8000-000000000005"),
              with_id(event("s", "T"), "ffffffff-0000-7000-8000-000000000000")});
    // Lower than the max, not stored: inserted.
    auto low = s.append({with_id(event("s", "T"), "00000000-0000-7000-8000-000000000001")});
    CHECK_FALSE(low[0].existed);
    // Lower than the max, stored: found.
    auto dup = s.append({with_id(event("s", "T"), "00000000-0000-7000-8000-000000000005")});
    CHECK(dup[0].existed);
    CHECK(dup[0].position == 1);
    // Higher than anything, twice in one call: the second is a repeat of the first.
    auto twice = s.append({with_id(event("s", "T", "1"), "ffffffff-ffff-7fff-bfff-ffffffffffff"),
                           with_id(event("s", "T", "1"), "ffffffff-ffff-7fff-bfff-ffffffffffff")});
    CHECK_FALSE(twice[0].existed);
    CHECK(twice[1].existed);
    CHECK(twice[1].position == twice[0].position);
    CHECK(count_rows(s, "events") == 4);
  }

  TEST_CASE("a large append (events inserted in groups) links, numbers and deduplicates like single appends") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({event("x", "T")});
    // Positions continue above the highest ever used, even one no longer stored.
    sqlite::connection(s).exec("UPDATE sqlite_sequence SET seq = 100 WHERE name = 'events'");
    std::vector<NewEvent> batch;
    char id[40];
    // Events 100..149 repeat 99, 98, ..., 50: the first few are still waiting to be inserted.
    auto original = [](int i) { return i < 100 ? i : 199 - i; };
    for (int i = 0; i < 150; ++i) {
      const int k = original(i);
      std::snprintf(id, sizeof id, "ffffffff-0000-7000-8000-%012d", k);
      batch.push_back(with_id(event(k % 3 ? "a" : "b", "T", std::to_string(k)), id));
    }
    auto r = s.append(batch);
    REQUIRE(r.size() == 150);
    for (int i = 0; i < 150; ++i) {
      CHECK(r[i].existed == (i >= 100));
      CHECK(r[i].position == 101 + original(i));
    }
    auto a = stream_events(s, "a"), b = stream_events(s, "b");
    CHECK(a.size() == 66);
    CHECK(b.size() == 34);
    for (std::size_t v = 0; v < a.size(); ++v) CHECK(a[v].version == static_cast<std::int64_t>(v));
    for (std::size_t v = 0; v < b.size(); ++v) CHECK(b[v].version == static_cast<std::int64_t>(v));
    CHECK(stream_events(s, "a", 40, 3).at(0).data == std::to_string(a[40].position - 101));
    CHECK(count_rows(s, "events") == 101);
    // A rolled-back append takes no positions.
    batch.assign(40, event("a", "T"));
    batch.back().version = 0;
    CHECK(failure([&] { s.append(batch); }) == Errc::conflict);
    CHECK(s.append({event("a", "T")})[0].position == 201);
  }

  TEST_CASE("two connections appending in turn to the same streams keep versions contiguous") {
    TempStore t;
    Store a(t.options(), Access::write);
    Store b(t.options(), Access::write);
    for (int i = 0; i < 50; ++i) {
      Store& w = i % 3 == 0 ? b : a;
      auto r = w.append({event("s-1", "T"), event("s-2", "T")});
      CHECK(r[0].version == i);
      CHECK(r[1].version == i);
    }
    // Expectations see the other connection's writes too.
    CHECK(failure([&] { a.append({event("s-1", "T")}, Expect{Expect::version, 48}); }) == Errc::conflict);
    CHECK(b.append({event("s-1", "T")}, Expect{Expect::version, 49})[0].version == 50);
    CHECK(a.append({event("s-1", "T")}, Expect{Expect::version, 50})[0].version == 51);
  }

  TEST_CASE("stored events cannot be updated or deleted") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({event("s", "T")});
    CHECK_THROWS_AS(sqlite::connection(s).exec("UPDATE events SET data = '1'"), Error);
    CHECK_THROWS_AS(sqlite::connection(s).exec("DELETE FROM events"), Error);
    CHECK(count_rows(s, "events") == 1);
  }

  TEST_CASE("every window of a long interleaved stream reads the right versions, forwards and backwards") {
    TempStore t;
    Store s(t.options(), Access::write);
    constexpr int kLen = 300;
    std::vector<NewEvent> batch;
    for (int v = 0; v < kLen; ++v) {
      batch.push_back(event("long-1", "T", std::to_string(v)));
      if (v % 3 == 0) batch.push_back(event("other-" + std::to_string(v % 7), "T"));
    }
    s.append(batch);
    s.append({event("long-1", "T", "late")});  // a later transaction, far from the rest
    const int len = kLen + 1;
    auto all = stream_events(s, "long-1");
    REQUIRE(all.size() == static_cast<std::size_t>(len));
    for (int v = 0; v < len; ++v) CHECK(all[static_cast<std::size_t>(v)].version == v);
    CHECK(all.back().data == "late");
    for (int from = 0; from <= len; ++from) {
      for (int count : {1, 2, 63, 64, 65, 130, 1000}) {
        auto got = stream_events(s, "long-1", from, count);
        int want = std::max(0, std::min(count, len - from));
        REQUIRE(got.size() == static_cast<std::size_t>(want));
        for (int k = 0; k < want; ++k) REQUIRE(got[static_cast<std::size_t>(k)].version == from + k);
        if (want) CHECK(got.front().position == all[static_cast<std::size_t>(from)].position);
        auto back = stream_events(s, "long-1", from, count, true);
        int start = std::min(from, len - 1);
        int want_back = std::min(count, start + 1);
        REQUIRE(back.size() == static_cast<std::size_t>(want_back));
        for (int k = 0; k < want_back; ++k) REQUIRE(back[static_cast<std::size_t>(k)].version == start - k);
      }
    }
    CHECK(stream_events(s, "long-1", std::nullopt, 0).empty());
    auto newest = stream_events(s, "long-1", std::nullopt, 3, true);
    REQUIRE(newest.size() == 3);
    CHECK(newest[0].version == kLen);
  }

  TEST_CASE("reading a missing stream is not_found") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({event("s", "T")});
    CHECK(failure([&] { stream_events(s, "nope"); }) == Errc::not_found);
  }

  TEST_CASE("read_all goes in position order from a position, with count, category and type filters") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({event("order-1", "Placed"), event("customer-1", "Joined"), event("order-2", "Placed"),
              event("order-1", "Shipped"), event("orders-1", "Placed")});
    auto all = all_events(s);
    REQUIRE(all.size() == 5);
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].position == static_cast<std::int64_t>(i + 1));
    CHECK(all_events(s, 3).size() == 3);
    CHECK(all_events(s, 3, 1).size() == 1);
    CHECK(all_events(s, 6).empty());
    EventFilter orders;
    orders.categories = {"order"};
    auto o = all_events(s, 1, std::nullopt, orders);
    REQUIRE(o.size() == 3);
    CHECK(o[2].stream == "order-1");
    CHECK(o[2].type == "Shipped");
    orders.types = {"Placed"};
    CHECK(all_events(s, 1, std::nullopt, orders).size() == 2);
    CHECK(all_events(s, 1, 1, orders).size() == 1);
  }

  TEST_CASE("read_last gives the last N matching events oldest first") {
    TempStore t;
    Store s(t.options(), Access::write);
    for (int i = 0; i < 10; ++i) s.append({event(i % 2 ? "a-1" : "b-1", "T", std::to_string(i))});
    EventFilter a;
    a.categories = {"a"};
    std::vector<std::string> got;
    s.read_last(3, a, [&](const EventRef& e) {
      got.emplace_back(e.data);
      return true;
    });
    CHECK(got == std::vector<std::string>{"5", "7", "9"});
  }

  TEST_CASE("streams lists name, head, count and last position, by category and by name prefix") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({event("order-2", "T"), event("order-10", "T"), event("order-2", "T"), event("customer-1", "T"),
              event("order", "T")});
    auto rows = s.streams(std::nullopt, std::nullopt);
    REQUIRE(rows.size() == 4);
    CHECK(rows[0].name == "customer-1");
    std::map<std::string, StreamInfo> by;
    for (auto& r : rows) by[r.name] = r;
    CHECK(by["order-2"].version == 1);
    CHECK(by["order-2"].count == 2);
    CHECK(by["order-2"].last_position == 3);
    CHECK(by["order-2"].last_recorded_at > 0);
    CHECK(s.streams(std::string("order"), std::nullopt).size() == 3);
    auto pre = s.streams(std::nullopt, std::string("order-1"));
    REQUIRE(pre.size() == 1);
    CHECK(pre[0].name == "order-10");
    CHECK(s.streams(std::string("order"), std::string("order-2")).size() == 1);
    CHECK(s.streams(std::string("nope"), std::nullopt).empty());
  }

  TEST_CASE("stats counts events and streams and reports the schema version and file size") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({event("a", "T"), event("b", "T"), event("a", "T")});
    auto st = s.stats();
    CHECK(st.path == t.path);
    CHECK(st.schema_version == 3);
    CHECK(st.events == 3);
    CHECK(st.streams == 2);
    CHECK(st.last_position == 3);
    CHECK(st.sizes.at(0).bytes > 0);
  }

  TEST_CASE("recorded_at is kept when given and set to now otherwise") {
    TempStore t;
    Store s(t.options(), Access::write);
    auto e = event("s", "T");
    e.recorded_at = 123456789;
    s.append({e, event("s", "T")});
    std::vector<std::int64_t> at;
    s.read_stream("s", std::nullopt, std::nullopt, false, [&](const EventRef& r) {
      at.push_back(r.recorded_at_us);
      return true;
    });
    REQUIRE(at.size() == 2);
    CHECK(at[0] == 123456789);
    CHECK(at[1] > 1700000000LL * 1000000);
  }

  TEST_CASE("a WAL grown behind a held snapshot is cut back to 8 MiB once the snapshot ends") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({event("a-1", "T")});
    auto wal_size = [&] { return std::filesystem::file_size(t.path + "-wal"); };
    const std::string big = "\"" + std::string(10000, 'x') + "\"";
    {
      sql::Db reader(t.path, sql::OpenMode::read_only, 5000);
      reader.exec("BEGIN");
      CHECK(reader.query_i64("SELECT count(*) FROM events") == 1);  // holds its snapshot from here
      for (int b = 0; b < 150; ++b) {
        std::vector<NewEvent> batch;
        for (int i = 0; i < 10; ++i) batch.push_back(event("a-1", "T", big));
        s.append(batch);
      }
      CHECK(wal_size() > 12u << 20);  // no checkpoint could pass the reader
      reader.exec("COMMIT");
    }
    // The next commits checkpoint, then start the WAL over and truncate it.
    for (int i = 0; i < 10 && wal_size() > 8u << 20; ++i) s.append({event("a-1", "T")});
    CHECK(wal_size() <= 8u << 20);
  }

  // Regression: POSIX locks belong to the process, and closing any descriptor of the file drops
  // them all. Opening a second Store (which reads the file header first) must not drop the lock
  // a connection of this process holds on the store file, or another process closing its
  // connection thinks it is the last one and checkpoints and deletes the WAL under us
  // ("database disk image is malformed" in drain --parallel, found by the relay kill test).
  // Linux: the kernel lists every process's locks in /proc/locks.
  TEST_CASE("opening and closing another Store keeps this process's lock on the store file") {
    TempStore t;
    Store first(t.options(), Access::write);
    first.append({event("a-1", "T")});
    struct stat st {};
    REQUIRE(::stat(t.path.c_str(), &st) == 0);
    auto holds_lock = [&] {
      std::ifstream locks("/proc/locks");
      std::string line;
      auto inode = fmt::format(":{} ", st.st_ino), pid = fmt::format(" {} ", ::getpid());
      while (std::getline(locks, line))
        if (line.find(inode) != std::string::npos && line.find(pid) != std::string::npos) return true;
      return false;
    };
    if (!std::ifstream("/proc/locks")) {
      MESSAGE("no /proc/locks here: skipped");
      return;
    }
    REQUIRE(holds_lock());  // SQLite in WAL mode holds a shared lock while the connection is open
    { Store second(t.options(), Access::read); CHECK(second.last_position() == 1); }
    CHECK(holds_lock());
    CHECK(sql::is_sqlite_header(sql::read_header(t.path).value()));
    CHECK(holds_lock());
    first.append({event("a-1", "T")});
    CHECK(first.head_position() == 2);
  }
}
