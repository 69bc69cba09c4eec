// store/verify: clean stores of every shape pass; each kind of damage made on purpose (with the
// immutability triggers dropped, the damage done, the triggers put back) is found with its kind
// and location, and nothing else is reported; narrowing; verification never writes the store.
#include "store/verify.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/store.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
using esctl::test::TempStore;

namespace {

NewEvent event(const std::string& stream, const std::string& data = "{}") {
  NewEvent e;
  e.stream = stream;
  e.type = "Happened";
  e.data = data;
  return e;
}

// Appends `per_stream` events to each of `streams` streams named "s<i>-x", interleaved.
void fill(const std::string& path, int streams, int per_stream) {
  Store store(StoreOptions{path, 5000}, Access::write);
  std::vector<NewEvent> batch;
  for (int v = 0; v < per_stream; ++v)
    for (int s = 0; s < streams; ++s) batch.push_back(event("s" + std::to_string(s) + "-x", "{\"v\":" + std::to_string(v) + "}"));
  if (!batch.empty()) store.append(batch);
}

struct Run {
  std::vector<Violation> found;
  VerifyCounts counts;

  std::set<std::string> kinds() const {
    std::set<std::string> k;
    for (const auto& v : found) k.insert(v.kind);
    return k;
  }
  const Violation* find(const std::string& kind) const {
    for (const auto& v : found)
      if (v.kind == kind) return &v;
    return nullptr;
  }
  std::string dump() const {
    std::ostringstream s;
    for (const auto& v : found)
      s << v.kind << " " << v.stream.value_or("-") << "@" << (v.version ? std::to_string(*v.version) : "-") << " #"
        << (v.position ? std::to_string(*v.position) : "-") << ": " << v.detail << "\n";
    return s.str();
  }
};

Run verify(const std::string& path, VerifyOptions o = {}) {
  o.location = path;
  Run r;
  r.counts = verify_store(o, [&](const Violation& v) { r.found.push_back(v); });
  return r;
}

constexpr const char* kTriggers =
    "CREATE TRIGGER events_immutable_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'esctl: events are immutable'); END;"
    "CREATE TRIGGER events_immutable_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'esctl: events are immutable'); END;";

// Damages the store on purpose: drops the immutability triggers, runs `sql`, restores them.
void tamper(const std::string& path, const std::string& sql) {
  sql::Db db(path, sql::OpenMode::read_write, 5000);
  db.exec("DROP TRIGGER events_immutable_update; DROP TRIGGER events_immutable_delete;");
  db.exec(sql.c_str());
  db.exec(kTriggers);
}

// Stream sK-x of fill(path, streams, n) has version v at position v*streams + K + 1.
std::int64_t pos(int streams, int k, int v) { return static_cast<std::int64_t>(v) * streams + k + 1; }

void expect_only(const Run& r, std::set<std::string> kinds) {
  INFO(r.dump());
  CHECK(r.kinds() == kinds);
}

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

}  // namespace

TEST_SUITE("store/verify") {
  TEST_CASE("clean stores of every shape have no violations") {
    TempStore t;
    SUBCASE("empty") {
      Store(t.options(), Access::write);
      auto r = verify(t.path);
      INFO(r.dump());
      CHECK(r.found.empty());
      CHECK(r.counts.events == 0);
      CHECK(r.counts.storage_check == "quick_check");
      CHECK(r.counts.triggers == 2);
    }
    SUBCASE("one stream") {
      fill(t.path, 1, 5);
      auto r = verify(t.path);
      INFO(r.dump());
      CHECK(r.found.empty());
      CHECK(r.counts.events == 5);
      CHECK(r.counts.streams == 1);
      CHECK(r.counts.ids == 5);
      CHECK(r.counts.marks == 1);
    }
    SUBCASE("many interleaved streams") {
      fill(t.path, 50, 20);
      {
        Store store(t.options(), Access::write);  // a second transaction continues the streams
        store.append({event("s3-x"), event("s49-x"), event("other")});
      }
      auto r = verify(t.path);
      INFO(r.dump());
      CHECK(r.found.empty());
      CHECK(r.counts.events == 1003);
      CHECK(r.counts.streams == 51);
    }
    SUBCASE("a stream longer than 200 events") {
      fill(t.path, 1, 260);
      auto r = verify(t.path);
      INFO(r.dump());
      CHECK(r.found.empty());
      CHECK(r.counts.marks == 5);  // versions 0, 64, 128, 192, 256
    }
  }

  TEST_CASE("a deleted middle event is a version gap at the missing version") {
    TempStore t;
    fill(t.path, 3, 10);
    tamper(t.path, "DELETE FROM events WHERE position = " + std::to_string(pos(3, 1, 5)));
    auto r = verify(t.path);
    expect_only(r, {"version_gap", "prev_link"});
    auto gap = r.find("version_gap");
    REQUIRE(gap);
    CHECK(gap->stream == "s1-x");
    CHECK(gap->version == 5);
    CHECK(gap->position == pos(3, 1, 6));
    CHECK(gap->detail.find("version 5 missing") != std::string::npos);
    auto link = r.find("prev_link");  // version 6 links to the deleted event
    CHECK(link->version == 6);
  }

  TEST_CASE("a stream whose first events were deleted is a gap from version 0") {
    TempStore t;
    fill(t.path, 2, 4);
    tamper(t.path, "DELETE FROM events WHERE position IN (" + std::to_string(pos(2, 0, 0)) + "," +
                       std::to_string(pos(2, 0, 1)) + ")");
    auto r = verify(t.path);
    auto gap = r.find("version_gap");
    REQUIRE(gap);
    INFO(r.dump());
    CHECK(gap->stream == "s0-x");
    CHECK(gap->version == 0);
    CHECK(gap->detail.find("versions 0..1 missing") != std::string::npos);
  }

  TEST_CASE("a duplicated version is reported at its second copy") {
    TempStore t;
    fill(t.path, 2, 6);
    tamper(t.path, "INSERT INTO events (stream_id, version, prev, id, type, data, meta, recorded_at) "
                   "SELECT stream_id, version, prev, randomblob(16), type, data, meta, recorded_at FROM events "
                   "WHERE position = " + std::to_string(pos(2, 1, 3)));
    auto r = verify(t.path);
    expect_only(r, {"version_duplicate"});
    auto d = r.find("version_duplicate");
    CHECK(d->stream == "s1-x");
    CHECK(d->version == 3);
    CHECK(d->position == 13);
  }

  TEST_CASE("a duplicate of a stream's last version names both positions") {
    TempStore t;
    fill(t.path, 1, 3);
    tamper(t.path, "INSERT INTO events (stream_id, version, prev, id, type, data, meta, recorded_at) "
                   "SELECT stream_id, version, prev, randomblob(16), type, data, meta, recorded_at FROM events "
                   "WHERE position = 3");
    auto r = verify(t.path);
    expect_only(r, {"version_duplicate"});
    CHECK(r.find("version_duplicate")->detail.find("at position 3 and at position 4") != std::string::npos);
  }

  TEST_CASE("swapped positions are reported as versions out of order") {
    TempStore t;
    fill(t.path, 1, 6);
    tamper(t.path, "UPDATE events SET position = -1 WHERE position = 2;"
                   "UPDATE events SET position = 2 WHERE position = 3;"
                   "UPDATE events SET position = 3 WHERE position = -1;");
    auto r = verify(t.path);
    expect_only(r, {"version_order", "prev_link"});
    auto o = r.find("version_order");
    CHECK(o->stream == "s0-x");
    CHECK(o->version == 1);
    CHECK(o->position == 3);
    CHECK(o->detail.find("after version 2 at position 2") != std::string::npos);
    // The links still point at the old places: version 2 (now at 2) and version 3 (prev 3).
    for (const auto& v : r.found)
      if (v.kind == "prev_link") CHECK((v.version == 2 || v.version == 3));
  }

  TEST_CASE("a scrambled stream reports each late version once and no gap") {
    TempStore t;
    fill(t.path, 1, 10);
    // Positions 2..6 held versions 1..5; now they hold 5, 2, 1, 3, 4.
    tamper(t.path, "UPDATE events SET position = -position WHERE position BETWEEN 2 AND 6;"
                   "UPDATE events SET position = CASE position WHEN -6 THEN 2 WHEN -3 THEN 3 WHEN -2 THEN 4 "
                   "WHEN -4 THEN 5 WHEN -5 THEN 6 END WHERE position < 0;");
    auto r = verify(t.path);
    expect_only(r, {"version_order", "prev_link"});
    std::vector<std::int64_t> late;
    for (const auto& v : r.found)
      if (v.kind == "version_order") late.push_back(*v.version);
    CHECK(late == std::vector<std::int64_t>{2, 1, 3, 4});
  }

  TEST_CASE("a late version and a missing one in the same stream are told apart") {
    TempStore t;
    fill(t.path, 1, 4);
    tamper(t.path, "DELETE FROM events WHERE position = 3;"  // version 2
                   "UPDATE events SET position = -2 WHERE position = 2;"
                   "UPDATE events SET position = 2 WHERE position = 4;"
                   "UPDATE events SET position = 4 WHERE position = -2;");  // now: 0, 3, 1
    auto r = verify(t.path);
    INFO(r.dump());
    auto order = r.find("version_order");
    REQUIRE(order);
    CHECK(order->version == 1);
    CHECK(order->position == 4);
    auto gap = r.find("version_gap");
    REQUIRE(gap);
    CHECK(gap->version == 2);
    CHECK(gap->detail.find("version 2 missing") == 0);
    CHECK(!r.find("version_duplicate"));
  }

  TEST_CASE("corrupt JSON in data or meta is reported with its stream, version and position") {
    TempStore t;
    fill(t.path, 2, 4);
    tamper(t.path, "UPDATE events SET data = '{\"a\":' WHERE position = 4;"
                   "UPDATE events SET meta = '{x}' WHERE position = 7;");
    auto r = verify(t.path);
    expect_only(r, {"json_invalid"});
    REQUIRE(r.found.size() == 2);
    CHECK(r.found[0].stream == "s1-x");
    CHECK(r.found[0].version == 1);
    CHECK(r.found[0].position == 4);
    CHECK(r.found[0].detail.rfind("data is not valid JSON", 0) == 0);
    CHECK(r.found[1].position == 7);
    CHECK(r.found[1].detail.rfind("meta is not valid JSON", 0) == 0);
  }

  TEST_CASE("a broken prev link is reported at the event that holds it") {
    TempStore t;
    fill(t.path, 2, 5);
    tamper(t.path, "UPDATE events SET prev = 1 WHERE position = 8;"   // s1-x@3 -> s0-x@0
                   "UPDATE events SET prev = 3 WHERE position = 1;");  // s0-x@0 must have none
    auto r = verify(t.path);
    expect_only(r, {"prev_link"});
    REQUIRE(r.found.size() == 2);
    CHECK(r.found[0].stream == "s0-x");
    CHECK(r.found[0].version == 0);
    CHECK(r.found[1].stream == "s1-x");
    CHECK(r.found[1].version == 3);
    CHECK(r.found[1].position == 8);
    CHECK(r.found[1].detail == "prev is 1, but version 2 is at position 6");
  }

  TEST_CASE("a dropped index mark is reported at the marked version") {
    TempStore t;
    fill(t.path, 1, 140);
    // Rebuild the marks index without the entry for position 65 (version 64), then restore its
    // definition: the index now lacks one entry it should have.
    tamper(t.path,
           "DROP INDEX events_marks;"
           "CREATE UNIQUE INDEX events_marks ON events(version, stream_id) WHERE version % 64 = 0 AND position <> 65;"
           "PRAGMA writable_schema = ON;"
           "UPDATE sqlite_schema SET sql = 'CREATE UNIQUE INDEX events_marks ON events(version, stream_id) "
           "WHERE version % 64 = 0' WHERE name = 'events_marks';"
           "PRAGMA writable_schema = OFF;");
    {
      Store store(t.options(), Access::read);  // the read path does fail
      CHECK_THROWS_AS(store.read_stream("s0-x", 10, 1, false, [](const EventRef&) { return true; }), Error);
    }
    auto r = verify(t.path);
    expect_only(r, {"mark_missing"});
    auto m = r.find("mark_missing");
    CHECK(m->stream == "s0-x");
    CHECK(m->version == 64);
    CHECK(m->position == 65);
    CHECK(m->detail.find("versions 1..64") != std::string::npos);
    VerifyOptions full;
    full.full = true;
    auto f = verify(t.path, full);
    CHECK(f.kinds() == std::set<std::string>{"integrity", "mark_missing"});
    CHECK(f.counts.storage_check == "integrity_check");
  }

  TEST_CASE("a missing marks index is reported once") {
    TempStore t;
    fill(t.path, 1, 70);
    tamper(t.path, "DROP INDEX events_marks;");
    auto r = verify(t.path);
    expect_only(r, {"index"});
    CHECK(r.found.size() == 1);
  }

  TEST_CASE("a stream head that disagrees with its events is reported") {
    TempStore t;
    fill(t.path, 3, 4);
    SUBCASE("head") {
      tamper(t.path, "UPDATE stream_heads SET head = 2 WHERE stream_id = (SELECT id FROM streams WHERE name = 's1-x')");
      auto r = verify(t.path);
      expect_only(r, {"stream_head"});
      CHECK(r.found[0].stream == "s1-x");
      CHECK(r.found[0].version == 3);
      CHECK(r.found[0].position == pos(3, 1, 3));
      CHECK(r.found[0].detail == "head is 2, but the highest version is 3");
    }
    SUBCASE("head position") {
      tamper(t.path, "UPDATE stream_heads SET head_position = 1 WHERE stream_id = (SELECT id FROM streams WHERE name = 's2-x')");
      auto r = verify(t.path);
      expect_only(r, {"stream_head"});
      CHECK(r.found.size() == 1);
      CHECK(r.found[0].detail == "head_position is 1, but version 3 is at position 12");
    }
    SUBCASE("a head row of a stream without events") {
      tamper(t.path, "INSERT INTO streams (name, category) VALUES ('ghost', 'ghost');"
                     "INSERT INTO stream_heads SELECT id, 0, 3 FROM streams WHERE name = 'ghost'");
      auto r = verify(t.path);
      expect_only(r, {"stream_head"});
      CHECK(r.found.size() == 1);
      CHECK(r.found[0].stream == "ghost");
    }
    SUBCASE("a stream with events but no head row") {
      tamper(t.path, "DELETE FROM stream_heads WHERE stream_id = (SELECT id FROM streams WHERE name = 's0-x')");
      auto r = verify(t.path);
      expect_only(r, {"stream_head"});
      CHECK(r.found.size() == 1);
      CHECK(r.found[0].stream == "s0-x");
      CHECK(r.found[0].version == 3);
      CHECK(r.found[0].detail == "the stream has events up to version 3, but no head row");
    }
    SUBCASE("category") {
      tamper(t.path, "UPDATE streams SET category = 's1' WHERE name = 's0-x'");
      auto r = verify(t.path);
      expect_only(r, {"stream_category"});
      CHECK(r.found[0].stream == "s0-x");
    }
    SUBCASE("events of a stream without a row, once") {
      tamper(t.path, "UPDATE events SET stream_id = 99 WHERE stream_id = 2");
      auto r = verify(t.path);
      INFO(r.dump());
      CHECK(r.kinds().count("stream_missing") == 1);
      CHECK(std::count_if(r.found.begin(), r.found.end(), [](const Violation& v) { return v.kind == "stream_missing"; }) == 1);
      // The row of s1-x now has no events: its head is wrong too.
      CHECK(r.kinds() == std::set<std::string>{"stream_missing", "stream_head"});
    }
  }

  TEST_CASE("a duplicate id and a malformed id are reported") {
    TempStore t;
    fill(t.path, 2, 3);
    SUBCASE("duplicate, with the unique index gone") {
      tamper(t.path, "DROP INDEX events_by_id; UPDATE events SET id = (SELECT id FROM events WHERE position = 2) "
                     "WHERE position = 5");
      auto r = verify(t.path);
      expect_only(r, {"index", "id_duplicate"});
      auto d = r.find("id_duplicate");
      CHECK(d->position == 5);
      CHECK(d->stream == "s0-x");
      CHECK(d->version == 2);
      CHECK(d->detail.find("at position 2") != std::string::npos);
    }
    SUBCASE("duplicate, with a plain index in its place") {
      tamper(t.path, "DROP INDEX events_by_id; UPDATE events SET id = (SELECT id FROM events WHERE position = 2) "
                     "WHERE position = 5; CREATE INDEX events_by_id ON events(id);");
      auto r = verify(t.path);
      expect_only(r, {"id_duplicate"});
      CHECK(r.found[0].position == 5);
    }
    SUBCASE("not 16 bytes") {
      tamper(t.path, "UPDATE events SET id = x'0102' WHERE position = 3; UPDATE events SET id = 'text' WHERE position = 4");
      auto r = verify(t.path);
      expect_only(r, {"id_invalid"});
      REQUIRE(r.found.size() == 2);
      CHECK(r.found[0].position == 3);
      CHECK(r.found[1].detail.find("text") != std::string::npos);
    }
  }

  TEST_CASE("a missing or altered immutability trigger is reported") {
    TempStore t;
    fill(t.path, 1, 2);
    {
      sql::Db db(t.path, sql::OpenMode::read_write, 5000);
      db.exec("DROP TRIGGER events_immutable_delete;"
              "DROP TRIGGER events_immutable_update;"
              "CREATE TRIGGER events_immutable_update BEFORE UPDATE ON events BEGIN SELECT 1; END;");
    }
    auto r = verify(t.path);
    expect_only(r, {"trigger"});
    REQUIRE(r.found.size() == 2);
    CHECK(r.found[0].detail.find("'events_immutable_update' no longer rejects UPDATE") != std::string::npos);
    CHECK(r.found[1].detail.find("'events_immutable_delete' is missing") != std::string::npos);
  }

  TEST_CASE("queue cursors and queue items are checked against the events") {
    TempStore t;
    fill(t.path, 2, 3);  // positions 1..6; s0-x at odd, s1-x at even positions
    auto queue = [&](const std::string& name, std::int64_t cursor, const std::string& streams = "[]") {
      sql::Db db(t.path, sql::OpenMode::read_write, 5000);
      db.exec(("INSERT INTO queues (name, filter_streams, start_position, cursor, max_attempts, ack_timeout_ms, on_poison, "
               "created_at) VALUES ('" + name + "', '" + streams + "', 0, " + std::to_string(cursor) + ", 5, 30000, 'block', 0)")
                  .c_str());
    };
    // Items get their front flag (head = 1) on the lowest row of their stream, as the queue code
    // keeps them.
    auto item = [&](const std::string& queue_name, std::int64_t position, std::int64_t stream_id, int state = 1) {
      sql::Db db(t.path, sql::OpenMode::read_write, 5000);
      db.exec(("INSERT INTO queue_items (queue_id, position, stream_id, state) SELECT id, " + std::to_string(position) +
               ", " + std::to_string(stream_id) + ", " + std::to_string(state) + " FROM queues WHERE name = '" +
               queue_name + "';"
               "UPDATE queue_items SET head = (position = (SELECT min(position) FROM queue_items q2 "
               "WHERE q2.queue_id = queue_items.queue_id AND q2.stream_id = queue_items.stream_id))")
                  .c_str());
    };
    // A lease run; `members` is the packed blob as hex (varint position delta, varint stream id).
    auto run = [&](const std::string& queue_name, std::int64_t first, std::int64_t last, std::int64_t count,
                   const std::string& members) {
      sql::Db db(t.path, sql::OpenMode::read_write, 5000);
      db.exec(("INSERT INTO queue_runs (queue_id, first, last, count, members, due_mono, due_boot, due_wall) SELECT id, " +
               std::to_string(first) + ", " + std::to_string(last) + ", " + std::to_string(count) + ", x'" + members +
               "', 0, 0, 0 FROM queues WHERE name = '" + queue_name + "'")
                  .c_str());
    };
    SUBCASE("a sound queue") {
      queue("good", 4, "[\"s0-*\"]");
      item("good", 3, 1);
      auto r = verify(t.path);
      INFO(r.dump());
      CHECK(r.found.empty());
      CHECK(r.counts.queues == 1);
      CHECK(r.counts.queue_items == 1);
    }
    SUBCASE("lease runs") {
      queue("r", 6);
      run("r", 5, 6, 2, "05010102");  // positions 5 (stream 1) and 6 (stream 2): sound
      auto clean = verify(t.path);
      INFO(clean.dump());
      CHECK(clean.found.empty());
      CHECK(clean.counts.queue_items == 2);
      run("r", 1, 2, 3, "0101");      // one member (1), but says 1..2 and 3 members
      run("r", 3, 3, 1, "83");        // a truncated varint
      run("r", 4, 4, 1, "0402");      // position 4 is of stream 2: fine ...
      item("r", 4, 2);                // ... but it is an item too
      auto r = verify(t.path);
      expect_only(r, {"queue_item"});
      REQUIRE(r.found.size() == 3);
      CHECK(r.found[0].position == 1);
      CHECK(r.found[0].detail.find("holds 1 members") != std::string::npos);
      CHECK(r.found[1].position == 3);
      CHECK(r.found[1].detail.find("damaged") != std::string::npos);
      CHECK(r.found[2].position == 4);
      CHECK(r.found[2].detail.find("both as an item and in the run") != std::string::npos);
    }
    SUBCASE("head flags") {
      queue("h", 6);
      item("h", 3, 1);
      item("h", 5, 1);
      {
        sql::Db db(t.path, sql::OpenMode::read_write, 5000);
        db.exec("UPDATE queue_items SET head = 1 - head");
      }
      auto r = verify(t.path);
      expect_only(r, {"queue_item"});
      REQUIRE(r.found.size() == 2);
      CHECK(r.found[0].position == 3);
      CHECK(r.found[1].position == 5);
    }
    SUBCASE("a cursor past the head") {
      queue("ahead", 7);
      auto r = verify(t.path);
      expect_only(r, {"queue_cursor"});
      CHECK(r.found[0].position == 7);
      CHECK(r.found[0].detail.find("queue 'ahead' has cursor 7, past the store's head position 6") == 0);
    }
    SUBCASE("dangling, foreign, unmatched, premature and unknown-state items") {
      queue("q", 4, "[\"s0-*\"]");
      item("q", 99, 1);     // no such event
      item("q", 1, 2);      // the event is of stream 1, not 2
      item("q", 2, 2);      // s1-x does not match the filter
      item("q", 5, 1);      // past the cursor
      item("q", 3, 1, 7);   // no such state
      auto r = verify(t.path);
      expect_only(r, {"queue_item"});
      REQUIRE(r.found.size() == 5);
      CHECK(r.found[0].position == 1);
      CHECK(r.found[0].detail.find("says stream id 2") != std::string::npos);
      CHECK(r.found[1].position == 2);
      CHECK(r.found[1].stream == "s1-x");
      CHECK(r.found[1].detail.find("does not match") != std::string::npos);
      CHECK(r.found[2].position == 3);
      CHECK(r.found[3].position == 5);
      CHECK(r.found[3].detail.find("past the queue's cursor 4") != std::string::npos);
      CHECK(r.found[4].position == 99);
      CHECK(!r.found[4].stream);
    }
    SUBCASE("--queue narrows to the named queues; an unknown one is not found") {
      queue("bad", 70);
      queue("fine", 2);
      VerifyOptions o;
      o.queues = {"fine"};
      auto r = verify(t.path, o);
      CHECK(r.found.empty());
      CHECK(r.counts.queues == 1);
      CHECK(r.counts.events == 0);  // no event scan when narrowed to queues
      CHECK(r.counts.storage_check == "skipped");
      o.queues = {"fine", "bad"};
      CHECK(verify(t.path, o).kinds() == std::set<std::string>{"queue_cursor"});
      o.queues = {"nope"};
      try {
        verify(t.path, o);
        FAIL("no error");
      } catch (const Error& e) {
        CHECK(e.code() == Errc::not_found);
        CHECK(std::string(e.what()).find("queue 'nope' not found") == 0);
      }
    }
  }

  TEST_CASE("--stream checks only that stream, including its ids") {
    TempStore t;
    fill(t.path, 3, 70);
    tamper(t.path, "UPDATE events SET data = 'x' WHERE position = " + std::to_string(pos(3, 2, 10)) +
                       "; DELETE FROM events WHERE position = " + std::to_string(pos(3, 0, 5)));
    VerifyOptions o;
    o.stream = "s2-x";
    auto r = verify(t.path, o);
    expect_only(r, {"json_invalid"});
    CHECK(r.counts.events == 70);
    CHECK(r.counts.streams == 1);
    CHECK(r.counts.ids == 70);
    CHECK(r.counts.marks == 2);
    CHECK(r.counts.storage_check == "skipped");
    o.stream = "s1-x";
    CHECK(verify(t.path, o).found.empty());
    o.stream = "missing";
    CHECK_THROWS_AS(verify(t.path, o), Error);
  }

  TEST_CASE("a missing store or a file that is not a store is refused") {
    TempStore t;
    try {
      verify(t.path);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::not_found);
    }
    {
      std::ofstream(t.path) << "hello, not a database at all";
    }
    try {
      verify(t.path);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::corrupt);
    }
  }

  TEST_CASE("verification never writes the store and leaves no files behind") {
    TempStore t;
    fill(t.path, 4, 100);
    tamper(t.path, "UPDATE events SET data = '[' WHERE position = 9");
    REQUIRE(!exists(t.path + "-wal"));
    const std::string before = file_bytes(t.path);
    auto r = verify(t.path);
    CHECK(r.found.size() == 1);
    CHECK(file_bytes(t.path) == before);
    CHECK(!exists(t.path + "-wal"));
    CHECK(!exists(t.path + "-shm"));
    // With another connection holding the store open (so -wal and -shm exist), verify reads
    // through them and changes neither the store nor them.
    Store other(t.options(), Access::read);
    other.stats();
    REQUIRE(exists(t.path + "-wal"));
    const std::string wal = file_bytes(t.path + "-wal");
    CHECK(verify(t.path).found.size() == 1);
    CHECK(file_bytes(t.path) == before);
    CHECK(file_bytes(t.path + "-wal") == wal);
  }

  TEST_CASE("events appended while verification runs cause no findings") {
    TempStore t;
    fill(t.path, 20, 30);
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      Store store(t.options(), Access::write);
      int i = 0;
      while (!stop) {
        std::vector<NewEvent> batch;
        for (int k = 0; k < 20; ++k) batch.push_back(event("s" + std::to_string((i + k) % 25) + "-x"));
        store.append(batch);
        ++i;
      }
    });
    std::int64_t seen = 0;
    for (int round = 0; round < 15; ++round) {
      auto r = verify(t.path);
      INFO(r.dump());
      CHECK(r.found.empty());
      seen = std::max(seen, r.counts.events);
    }
    stop = true;
    writer.join();
    auto r = verify(t.path);
    CHECK(r.found.empty());
    CHECK(r.counts.events >= seen);
  }
}
