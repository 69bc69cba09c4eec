// esctl queue drain --projection FILE --into DB (esctl-projection(5)) together with rebuild: an
// incremental drain builds the same db as a rebuild; re-draining after a reset changes nothing;
// rebuild --queue hands over with no gap and no duplicate, also when a drain ran meanwhile;
// failing events are nacked and parked with nothing of them applied; and an event retried after
// its stream fell behind others (block) or moved on past it (park) is applied, not skipped.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <functional>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

// WITHOUT ROWID / INTEGER PRIMARY KEY: .dump lists rows by key, whatever order they were written in.
constexpr const char* kOrders = R"sql(-- @init
CREATE TABLE items (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL, sku TEXT);
CREATE TABLE totals (stream TEXT PRIMARY KEY, n INTEGER NOT NULL, amount INTEGER NOT NULL) WITHOUT ROWID;

-- @on ItemAdded
INSERT INTO items VALUES (:position, :stream, :version, :data ->> '$.sku');
INSERT INTO totals VALUES (:stream, 1, :data ->> '$.amount')
  ON CONFLICT (stream) DO UPDATE SET n = n + 1, amount = amount + excluded.amount;

-- @on ItemRemoved
DELETE FROM items WHERE stream = :stream AND sku = :data ->> '$.sku';
UPDATE totals SET n = n - 1, amount = amount - (:data ->> '$.amount') WHERE stream = :stream;
)sql";

struct Env {
  TempDir dir;
  std::string store = dir / "events.db", db = dir / "q.db", proj = dir / "orders.sql";
  Env() { write_file(proj, kOrders); }

  Result esctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--store", store});
    return run(args);
  }
  Result ok(std::vector<std::string> args) const {
    auto r = esctl(std::move(args));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    return r;
  }
  /// Events of `streams` carts, `per_stream` each, interleaved; every 5th is an ItemRemoved.
  void fill(int streams, int per_stream, int offset = 0, const std::string& category = "cart") const {
    std::string in;
    for (int v = 0; v < per_stream; ++v)
      for (int k = 0; k < streams; ++k) {
        int i = offset + v;
        bool removed = i % 5 == 4;
        in += "{\"stream\":\"" + category + "-" + std::to_string(k) + "\",\"type\":\"" +
              (removed ? "ItemRemoved" : "ItemAdded") + "\",\"data\":{\"sku\":\"sku-" + std::to_string(removed ? i - 1 : i) +
              "\",\"amount\":" + std::to_string(k + i) + "}}\n";
      }
    auto r = run({"--store", store, "import", "-"}, RunOptions{in, {}, ""});
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
  Result drain(const std::string& queue, std::vector<std::string> extra = {}, const std::string& into = "") const {
    std::vector<std::string> args{"--json", "queue", "drain", queue, "--projection", proj, "--into", into.empty() ? db : into};
    args.insert(args.end(), extra.begin(), extra.end());
    return esctl(args);
  }
  json status(const std::string& queue) const { return json::parse(ok({"queue", "status", queue, "--json"}).out); }
};

std::string sql(const std::string& db, const std::string& query) {
  auto r = sh("sqlite3 '" + db + "' \"$Q\"", RunOptions{"", {{"Q", query}}, ""});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return r.out;
}

/// The read model's tables, as SQL text.
std::string dump(const std::string& db) { return sql(db, ".dump items totals"); }

}  // namespace

TEST_SUITE("cli/projection") {
  TEST_CASE("an incremental drain builds the same query db as a rebuild of the same store") {
    Env e;
    e.ok({"queue", "create", "carts", "--from", "start", "--category", "cart"});
    e.fill(6, 10);
    e.fill(3, 4, 0, "other");  // not in the queue's category
    auto r = e.drain("carts", {"--batch", "7"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(json::parse(r.out)["acked"] == 60);
    e.fill(6, 10, 10);
    r = e.drain("carts", {"--batch", "5", "--parallel", "3"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    e.fill(6, 3, 20);
    r = e.drain("carts", {"--batch", "100"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(e.status("carts")["lag"] == 0);

    auto b = e.ok({"rebuild", e.dir / "r.db", "--projection", e.proj, "--queue", "carts"});
    std::string drained = dump(e.db);
    CHECK(drained.find("INSERT INTO items") != std::string::npos);
    CHECK(drained == dump(e.dir / "r.db"));
    CHECK(sql(e.db, "SELECT stream, version FROM _esctl_applied ORDER BY stream") ==
          sql(e.dir / "r.db", "SELECT stream, version FROM _esctl_applied ORDER BY stream"));
    CHECK(sql(e.db, "SELECT count(*) FROM items WHERE stream LIKE 'other-%'") == "0\n");
  }

  TEST_CASE("re-draining everything after 'queue reset --to start' changes nothing") {
    Env e;
    e.ok({"queue", "create", "carts", "--from", "start"});
    e.fill(4, 12);
    REQUIRE(e.drain("carts").status == 0);
    std::string before = dump(e.db);
    std::string applied = sql(e.db, "SELECT * FROM _esctl_applied ORDER BY stream");
    e.ok({"queue", "reset", "carts", "--to", "start"});
    auto r = e.drain("carts", {"--batch", "9", "--parallel", "2"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto sum = json::parse(r.out);
    CHECK(sum["delivered"] == 48);
    CHECK(sum["acked"] == 48);
    CHECK(dump(e.db) == before);
    CHECK(sql(e.db, "SELECT * FROM _esctl_applied ORDER BY stream") == applied);
  }

  TEST_CASE("rebuild --queue hands over: a later drain applies each later event exactly once") {
    Env e;
    e.ok({"queue", "create", "carts", "--from", "start"});
    e.ok({"queue", "create", "other", "--from", "start"});
    e.fill(3, 5);
    REQUIRE(e.drain("carts", {"--max-events", "4"}).status == 0);  // part of the way
    std::string other_status = e.ok({"queue", "status", "other", "--json"}).out;
    auto r = e.ok({"--json", "rebuild", e.db, "--projection", e.proj, "--queue", "carts"});
    CHECK(json::parse(r.out)["head"] == 15);
    auto st = e.status("carts");
    CHECK(st["cursor"] == 15);
    CHECK(st["lag"] == 0);
    CHECK(e.ok({"queue", "status", "other", "--json"}).out == other_status);  // other queues untouched
    e.ok({"append", "cart-1", "ItemAdded", R"({"sku":"late","amount":100})"});
    auto d = e.drain("carts");
    REQUIRE_MESSAGE(d.status == 0, d.err);
    CHECK(json::parse(d.out)["delivered"] == 1);
    CHECK(sql(e.db, "SELECT count(*) FROM items WHERE sku = 'late'") == "1\n");
    CHECK(sql(e.db, "SELECT count(*), count(DISTINCT position) FROM items") == "10|10\n");
    // And the result is what a rebuild from scratch gives.
    e.ok({"rebuild", e.dir / "r.db", "--projection", e.proj});
    CHECK(dump(e.db) == dump(e.dir / "r.db"));
  }

  TEST_CASE("a drain into the old db while rebuild --queue runs loses nothing and duplicates nothing") {
    Env e;
    // A slow variant of the projection, so the drain below runs while the rebuild is replaying.
    std::string slow = std::string(kOrders) +
                       "-- @on ItemAdded\nSELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                       "SELECT x + 1 FROM c WHERE x < 20000) SELECT x FROM c);\n";
    write_file(e.proj, slow);
    e.ok({"queue", "create", "carts", "--from", "start"});
    e.fill(4, 10);
    REQUIRE(e.drain("carts").status == 0);
    int pid = spawn({"--store", e.store, "rebuild", e.db, "--projection", e.proj, "--queue", "carts"}, e.dir / "out",
                    e.dir / "err");
    // Meanwhile: new events, drained into the db being replaced (the queue's cursor passes the
    // rebuild's head unless the rebuild is already done; the outcome must be the same either way).
    e.fill(4, 2, 10);
    auto d = e.drain("carts");
    CHECK_MESSAGE(d.status == 0, d.err);
    CHECK(wait_for(pid) == 0);
    INFO(read_file(e.dir / "err"));
    d = e.drain("carts");
    CHECK_MESSAGE(d.status == 0, d.err);
    CHECK(e.status("carts")["lag"] == 0);
    CHECK(sql(e.db, "SELECT count(*), count(DISTINCT position) FROM items") == "32|32\n");
    e.ok({"rebuild", e.dir / "r.db", "--projection", e.proj});
    CHECK(dump(e.db) == dump(e.dir / "r.db"));
  }

  TEST_CASE("a failing event is nacked, retried and parked with nothing of it applied, exit 8") {
    Env e;
    write_file(e.proj, "-- @init\nCREATE TABLE log (stream TEXT, n INTEGER NOT NULL);\n-- @on T\n"
                       "INSERT INTO log VALUES (:stream, 0);\nINSERT INTO log VALUES (:stream, :data ->> '$.n');\n");
    e.ok({"queue", "create", "q", "--from", "start", "--max-attempts", "3"});
    e.ok({"append", "s-1", "T", R"({"n":1})"});
    e.ok({"append", "s-1", "T", R"({"m":1})"});
    e.ok({"append", "s-2", "T", R"({"n":2})"});
    auto r = e.drain("q");
    CHECK(r.status == 8);
    CHECK(json::parse(r.out)["parked"] == 1);
    auto parked = json::parse(e.ok({"queue", "parked", "q", "--json"}).out);
    CHECK(parked["position"] == 2);
    CHECK(parked["attempts"] == 3);
    CHECK(parked["reason"] == e.proj + ":5: in section '@on T': NOT NULL constraint failed: log.n");
    CHECK(sql(e.db, "SELECT stream, n FROM log ORDER BY rowid") == "s-1|0\ns-1|1\ns-2|0\ns-2|2\n");
    CHECK(sql(e.db, "SELECT stream, version, position FROM _esctl_pending") == "s-1|1|2\n");
  }

  TEST_CASE("later events of a failed event's stream in the same batch are returned as pending, not retried") {
    Env e;
    write_file(e.proj, "-- @init\nCREATE TABLE log (stream TEXT, n INTEGER NOT NULL);\n-- @on T\n"
                       "INSERT INTO log VALUES (:stream, :data ->> '$.n');\n");
    e.ok({"queue", "create", "q", "--from", "start"});
    e.ok({"append", "s-1", "T", R"({})"});       // fails
    e.ok({"append", "s-1", "T", R"({"n":2})"});  // held behind it
    e.ok({"append", "s-1", "T", R"({"n":3})"});  // held behind it
    auto r = e.drain("q", {"--max-events", "3"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto sum = json::parse(r.out);
    CHECK(sum["retried"] == 1);
    CHECK(sum["returned"] == 2);
    auto st = e.status("q");
    CHECK(st["retrying"] == 1);
    CHECK(st["pending"] == 2);
    // Their next delivery is their first attempt.
    write_file(e.proj, "-- @init\nCREATE TABLE log (stream TEXT, n INTEGER NOT NULL);\n-- @on T\n"
                       "INSERT INTO log VALUES (:stream, coalesce(:data ->> '$.n', 0));\n");
    CHECK(e.drain("q").status == 0);
    CHECK(sql(e.db, "SELECT n FROM log ORDER BY rowid") == "0\n2\n3\n");
  }

  TEST_CASE("an event retried after other streams moved on (--on-poison block) is applied, not skipped") {
    Env e;
    write_file(e.proj, "-- @init\nCREATE TABLE log (stream TEXT, version INTEGER, n INTEGER NOT NULL);\n-- @on T\n"
                       "INSERT INTO log VALUES (:stream, :version, :data ->> '$.n');\n");
    e.ok({"queue", "create", "q", "--from", "start", "--max-attempts", "2", "--on-poison", "block"});
    e.ok({"append", "s-1", "T", R"({"n":1})"});  // position 1
    e.ok({"append", "s-1", "T", R"({})"});       // 2: fails until the projection is fixed
    e.ok({"append", "s-2", "T", R"({"n":3})"});  // 3
    e.ok({"append", "s-2", "T", R"({"n":4})"});  // 4
    e.ok({"append", "s-1", "T", R"({"n":5})"});  // 5: held behind 2
    CHECK(e.drain("q").status == 8);
    CHECK(sql(e.db, "SELECT stream, version FROM log ORDER BY stream, version") == "s-1|0\ns-2|0\ns-2|1\n");
    // Fix the projection, put the parked event back, drain again.
    write_file(e.proj, "-- @init\nCREATE TABLE log (stream TEXT, version INTEGER, n INTEGER NOT NULL);\n-- @on T\n"
                       "INSERT INTO log VALUES (:stream, :version, coalesce(:data ->> '$.n', 0));\n");
    e.ok({"queue", "retry", "q", "--all"});
    auto r = e.drain("q");
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.err.find("warning: '" + e.proj + "' is not the projection") != std::string::npos);
    CHECK(sql(e.db, "SELECT stream, version, n FROM log ORDER BY stream, version") ==
          "s-1|0|1\ns-1|1|0\ns-1|2|5\ns-2|0|3\ns-2|1|4\n");
    CHECK(sql(e.db, "SELECT count(*) FROM _esctl_pending") == "0\n");
    CHECK(e.status("q")["lag"] == 0);
  }

  TEST_CASE("an event retried after its own stream moved on past it (--on-poison park) is applied, once") {
    Env e;
    write_file(e.proj, "-- @init\nCREATE TABLE log (stream TEXT, version INTEGER, n INTEGER NOT NULL);\n-- @on T\n"
                       "INSERT INTO log VALUES (:stream, :version, :data ->> '$.n');\n");
    e.ok({"queue", "create", "q", "--from", "start", "--max-attempts", "2", "--on-poison", "park"});
    e.ok({"append", "s-1", "T", R"({"n":1})"});
    e.ok({"append", "s-1", "T", R"({})"});
    e.ok({"append", "s-1", "T", R"({"n":3})"});
    CHECK(e.drain("q").status == 8);
    CHECK(sql(e.db, "SELECT version FROM log ORDER BY version") == "0\n2\n");
    CHECK(sql(e.db, "SELECT version FROM _esctl_applied") == "2\n");
    write_file(e.proj, "-- @init\nCREATE TABLE log (stream TEXT, version INTEGER, n INTEGER NOT NULL);\n-- @on T\n"
                       "INSERT INTO log VALUES (:stream, :version, coalesce(:data ->> '$.n', 0));\n");
    e.ok({"queue", "retry", "q", "--all"});
    REQUIRE(e.drain("q").status == 0);
    CHECK(sql(e.db, "SELECT version, n FROM log ORDER BY version") == "0|1\n1|0\n2|3\n");
    // Delivered again (a reset), nothing is applied twice.
    e.ok({"queue", "reset", "q", "--to", "start"});
    REQUIRE(e.drain("q").status == 0);
    CHECK(sql(e.db, "SELECT count(*) FROM log") == "3\n");
  }

  // the store as a query db: only a store that is a file can be named so
  TEST_CASE("drain --projection checks the file and the queue before creating the db, and refuses the store" *
            sqlite_only()) {
    Env e;
    e.ok({"queue", "create", "q", "--from", "start"});
    e.ok({"append", "s-1", "T"});
    std::string store_hash = file_hash(e.store);
    write_file(e.proj, "-- @init\nCREATE TABLE t (x);\n-- @on T\nINSERT INTO t VALUES (:strem);\n");
    auto r = e.drain("q");
    CHECK(r.status == 5);
    CHECK(r.err.find(e.proj + ":4: in section '@on T': unknown parameter ':strem'") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(e.db));
    write_file(e.proj, "-- @init\nCREATE TABLE t (x);\n-- @on T\nATTACH '" + e.store + "' AS s;\n");
    CHECK(e.drain("q").status == 5);
    write_file(e.proj, kOrders);
    CHECK(e.drain("nope").status == 4);
    CHECK_FALSE(std::filesystem::exists(e.db));
    r = e.drain("q", {}, e.store);
    CHECK(r.status == 1);
    CHECK(r.err.find("is not a query db made by esctl") != std::string::npos);
    CHECK(file_hash(e.store) == store_hash);
  }
}

namespace {

bool alive(int pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
}

bool wait_until(const std::function<bool()>& ready, std::chrono::seconds limit = std::chrono::seconds(120)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::string figures(const json& status) {
  return status["cursor"].dump() + " " + status["lag"].dump() + " " + status["leased"].dump() + " " +
         status["retrying"].dump() + " " + status["parked"].dump();
}

}  // namespace

TEST_SUITE("cli/projection") {
  TEST_CASE("a drainer left on the replaced file reopens the new one and never rolls back another writer's journal") {
    Env e;
    e.ok({"queue", "create", "carts", "--from", "start"});
    e.fill(3, 4);
    int drainer = spawn({"--store", e.store, "--busy-timeout", "120s", "queue", "drain", "carts", "--projection", e.proj,
                         "--into", e.db, "--follow"},
                        e.dir / "drain.out", e.dir / "drain.err");
    REQUIRE(wait_until([&] { return e.status("carts")["lag"] == 0; }));
    // The drainer is idle with its connection on q.db; stop it there, and replace q.db.
    REQUIRE(::kill(drainer, SIGSTOP) == 0);
    e.fill(3, 1, 4);
    e.ok({"rebuild", e.db, "--projection", e.proj, "--queue", "carts"});
    // Another writer of the new q.db is in the middle of a transaction that spilled its cache: its
    // journal, q.db-journal, is synced and looks like one to roll back unless its file is locked.
    std::string go = e.dir / "go", rc = e.dir / "holder.rc";
    auto bg = sh("( { printf 'PRAGMA cache_size = 10;\\nBEGIN IMMEDIATE;\\nCREATE TABLE side (x);\\n"
                 "INSERT INTO side WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300) "
                 "SELECT randomblob(2000) FROM c;\\n'; "
                 "while [ ! -e '" + go + "' ]; do sleep 0.01; done; printf 'COMMIT;\\n'; } | sqlite3 '" + e.db + "' > '" +
                 e.dir / "holder.out" + "' 2>&1; echo $? > '" + rc + "' ) >/dev/null 2>&1 &");
    REQUIRE(bg.status == 0);
    REQUIRE(wait_until([&] { return std::filesystem::exists(e.db + "-journal"); }));
    // The drainer wakes up with a new event to apply. The old code began a transaction on the
    // replaced file, took the writer's journal for its own hot journal, rolled it back and
    // deleted it: the writer's commit then failed with a disk I/O error.
    e.fill(3, 1, 5);
    REQUIRE(::kill(drainer, SIGCONT) == 0);
    wait_until([&] { return !std::filesystem::exists(e.db + "-journal"); }, std::chrono::seconds(2));
    CHECK(std::filesystem::exists(e.db + "-journal"));
    write_file(go, "");
    REQUIRE(wait_until([&] { return std::filesystem::exists(rc) && read_file(rc) != ""; }));
    CHECK(read_file(rc) == "0\n");
    CHECK(read_file(e.dir / "holder.out") == "");
    // The drainer applies the event to the new db and keeps going.
    REQUIRE(wait_until([&] { return e.status("carts")["lag"] == 0; }));
    CHECK(alive(drainer));
    ::kill(drainer, SIGINT);
    CHECK(wait_for(drainer) == 130);
    INFO(read_file(e.dir / "drain.err"));
    CHECK(read_file(e.dir / "drain.err").find("error") == std::string::npos);
    CHECK(sql(e.db, "SELECT count(*) FROM side") == "300\n");
    e.ok({"rebuild", e.dir / "r.db", "--projection", e.proj});
    CHECK(dump(e.db) == dump(e.dir / "r.db"));
  }

  TEST_CASE("drain into a query db fed from another queue exits 3 naming both queues, and changes nothing") {
    Env e;
    e.ok({"queue", "create", "orders-view", "--from", "start"});
    e.ok({"queue", "create", "billing", "--from", "start"});
    e.fill(2, 3);
    REQUIRE(e.drain("orders-view").status == 0);
    std::string billing = figures(e.status("billing"));
    std::string exported = e.ok({"export", "--all"}).out;
    std::string db_hash = file_hash(e.db);
    auto r = e.drain("billing");
    CHECK(r.status == 3);
    CHECK(r.err == "esctl: error: query db '" + e.db + "' is fed from queue 'orders-view', not 'billing': draining "
                   "'billing' into it would mix the two queues' events (drain 'orders-view' into it, or choose "
                   "another --into for 'billing')\n");
    CHECK(figures(e.status("billing")) == billing);
    CHECK(e.ok({"export", "--all"}).out == exported);
    CHECK(file_hash(e.db) == db_hash);
    // A db rebuilt without a queue records none: the first queue drained into it claims it.
    e.ok({"rebuild", e.dir / "r.db", "--projection", e.proj});
    REQUIRE(e.drain("billing", {}, e.dir / "r.db").status == 0);
    CHECK(sql(e.dir / "r.db", "SELECT value FROM _esctl_meta WHERE key = 'queue'") == "billing\n");
    CHECK(e.drain("orders-view", {}, e.dir / "r.db").status == 3);
  }
}
