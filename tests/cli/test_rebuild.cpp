// esctl rebuild (esctl-rebuild(1)): builds a query db from a projection, replaces an old one
// atomically (readers never see a partial or missing db), leaves the old db byte-identical when
// the projection is bad, an event fails, the process is killed or interrupted, cleans up the
// temporary files of killed runs, and never touches the store.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

constexpr const char* kCounter = R"sql(-- one row per event, and a total per stream
-- @init
CREATE TABLE t (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, n INTEGER);
CREATE TABLE totals (stream TEXT PRIMARY KEY, n INTEGER NOT NULL);

-- @on Added
INSERT INTO t VALUES (:position, :stream, :data ->> '$.n');
INSERT INTO totals VALUES (:stream, :data ->> '$.n')
  ON CONFLICT (stream) DO UPDATE SET n = n + excluded.n;
)sql";

void import(const std::string& store, int count, int streams = 10, const std::string& type = "Added") {
  std::string in;
  for (int i = 0; i < count; ++i)
    in += "{\"stream\":\"s-" + std::to_string(i % streams) + "\",\"type\":\"" + type + "\",\"data\":{\"n\":" +
          std::to_string(i % 7) + "}}\n";
  auto r = run({"--store", store, "import", "-"}, RunOptions{in, {}, ""});
  REQUIRE_MESSAGE(r.status == 0, r.err);
}

Result sqlite(const std::string& db, const std::string& sql) {
  return sh("sqlite3 '" + db + "' \"$Q\"", RunOptions{"", {{"Q", sql}}, ""});
}

std::string scalar(const std::string& db, const std::string& sql) {
  auto r = sqlite(db, sql);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return r.out;
}

std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.find(".rebuild-") != std::string::npos) out.push_back(name);
  }
  return out;
}

bool wait_until(const std::function<bool()>& ready) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A projection that takes tens of milliseconds per event, so a rebuild can be caught mid-way.
constexpr const char* kSlow = R"sql(-- @init
CREATE TABLE t (position INTEGER PRIMARY KEY, spin INTEGER);
-- @on Added
INSERT INTO t
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
SELECT :position, count(*) FROM c;
)sql";

struct Fixture {
  TempDir dir;
  std::string store = dir / "s.db", db = dir / "q.db", proj = dir / "counter.sql";
  Fixture() { write_file(proj, kCounter); }
  Result rebuild(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"--store", store, "rebuild", db, "--projection", proj};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  }
};

}  // namespace

TEST_SUITE("cli/rebuild") {
  TEST_CASE("rebuild builds a query db from the events the projection handles and reports what it did") {
    Fixture f;
    import(f.store, 20, 4);
    import(f.store, 5, 2, "Ignored");
    auto r = f.rebuild();
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out.find("rebuilt '" + f.db + "' with '" + f.proj + "': 20 events of 4 streams applied, through position "
                                                                  "25,") == 0);
    CHECK(scalar(f.db, "SELECT count(*), sum(n) FROM t") == "20|57\n");
    CHECK(scalar(f.db, "SELECT stream, n FROM totals ORDER BY stream") == "s-0|12\ns-1|17\ns-2|15\ns-3|13\n");
    CHECK(scalar(f.db, "SELECT stream, version FROM _esctl_applied ORDER BY stream") ==
          "s-0|4\ns-1|4\ns-2|4\ns-3|4\n");
    CHECK(scalar(f.db, "SELECT value FROM _esctl_meta WHERE key = 'rebuilt_through'") == "25\n");
    CHECK(scalar(f.db, "PRAGMA journal_mode") == "delete\n");
    CHECK(temp_files(f.dir.path()).empty());
  }

  TEST_CASE("rebuild --json prints one summary object, and -q nothing") {
    Fixture f;
    import(f.store, 3);
    auto r = run({"--store", f.store, "--json", "rebuild", f.db, "--projection", f.proj});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto j = json::parse(r.out);
    CHECK(j["db"] == f.db);
    CHECK(j["applied"] == 3);
    CHECK(j["head"] == 3);
    CHECK(j["queue"].is_null());
    CHECK(j["replaced"] == false);
    auto q = f.rebuild({"-q"});
    CHECK(q.status == 0);
    CHECK(q.out.empty());
  }

  TEST_CASE("the parameters carry the event exactly as export shows it") {
    Fixture f;
    write_file(f.proj, R"sql(-- @init
CREATE TABLE seen (position, stream, version, id, type, data, meta, recorded_at);
-- @on *
INSERT INTO seen VALUES (:position, :stream, :version, :id, :type, :data, :meta, :recorded_at);
)sql");
    REQUIRE(run({"--store", f.store, "append", "order-1", "Placed", R"({"total":1.5,"s":"it's \"quoted\""})", "--meta",
                 R"({"user":"ann"})"})
                .status == 0);
    REQUIRE(run({"--store", f.store, "append", "x'); DROP TABLE seen; --", "T", "[1,2]"}).status == 0);
    REQUIRE(f.rebuild().status == 0);
    auto dumped = sh("sqlite3 -json '" + f.db + "' 'SELECT * FROM seen ORDER BY position'");
    REQUIRE_MESSAGE(dumped.status == 0, dumped.err);
    auto rows = json::parse(dumped.out);
    auto exported = lines(run({"--store", f.store, "export", "--all"}).out);
    REQUIRE(rows.size() == 2);
    REQUIRE(exported.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
      auto e = json::parse(exported[i]);
      auto row = rows[i];
      CHECK(row["position"] == e["position"]);
      CHECK(row["stream"] == e["stream"]);
      CHECK(row["version"] == e["version"]);
      CHECK(row["id"] == e["id"]);
      CHECK(row["type"] == e["type"]);
      CHECK(json::parse(row["data"].get<std::string>()) == e["data"]);
      CHECK(json::parse(row["meta"].get<std::string>()) == e["meta"]);
      CHECK(row["recorded_at"] == e["recorded_at"]);
    }
  }

  TEST_CASE("rebuild replaces an existing db, and rebuilding the same store again gives the same dump") {
    Fixture f;
    import(f.store, 50);
    REQUIRE(f.rebuild().status == 0);
    std::string first = scalar(f.db, ".dump t totals");
    import(f.store, 10);
    auto r = f.rebuild({"--json"});
    REQUIRE(r.status == 0);
    CHECK(json::parse(r.out)["replaced"] == true);
    CHECK(scalar(f.db, "SELECT count(*) FROM t") == "60\n");
    std::string second = scalar(f.db, ".dump t totals");
    REQUIRE(f.rebuild().status == 0);
    CHECK(scalar(f.db, ".dump t totals") == second);
    CHECK(second != first);
  }

  TEST_CASE("a bad projection file exits 5 naming file, line and section, and writes nothing") {
    Fixture f;
    import(f.store, 5);
    std::string store_hash = file_hash(f.store);

    write_file(f.proj, "-- @init\nCREATE TABLE t (x);\n\n-- @onn Added\nINSERT INTO t VALUES (1);\n");
    auto r = f.rebuild();
    CHECK(r.status == 5);
    CHECK(r.err == "esctl: error: " + f.proj + ":4: unknown marker '-- @onn' (expected '-- @init' or "
                                               "'-- @on TYPE[, TYPE...]' or '-- @on *')\n");
    CHECK_FALSE(std::filesystem::exists(f.db));

    write_file(f.proj, "-- @init\nCREATE TABLE t (x);\n-- @on Added\nINSERT INTO t VALUES (:data ->> '$.n');\n"
                       "UPDATE t\n   SET y = 1;\n");
    r = f.rebuild();
    CHECK(r.status == 5);
    // SQLite gives no position for an unknown column after SET: the statement's first line is named.
    CHECK(r.err == "esctl: error: " + f.proj + ":5: in section '@on Added': no such column: y\n");

    write_file(f.proj, "CREATE TABLE t (x);\n-- @on Added\nSELECT 1;\n");
    r = f.rebuild();
    CHECK(r.status == 5);
    CHECK(r.err.find(f.proj + ":1: SQL before the first section marker") != std::string::npos);

    // An existing db is left byte-identical.
    write_file(f.proj, kCounter);
    REQUIRE(f.rebuild().status == 0);
    std::string db_hash = file_hash(f.db);
    write_file(f.proj, std::string(kCounter) + "-- @on Removed\nDELETE FROM missing;\n");
    r = f.rebuild();
    CHECK(r.status == 5);
    CHECK(r.err.find(":11: in section '@on Removed': no such table: missing") != std::string::npos);
    CHECK(file_hash(f.db) == db_hash);
    CHECK(file_hash(f.store) == store_hash);
    CHECK(temp_files(f.dir.path()).empty());
  }

  TEST_CASE("a projection that tries ATTACH, or PRAGMAs or transactions, is refused and the store is unchanged") {
    Fixture f;
    import(f.store, 5);
    std::string store_hash = file_hash(f.store);
    write_file(f.proj, "-- @init\nCREATE TABLE t (x);\n-- @on Added\nATTACH '" + f.store +
                           "' AS s;\nDELETE FROM s.events;\n");
    auto r = f.rebuild();
    CHECK(r.status == 5);
    CHECK(r.err == "esctl: error: " + f.proj +
                       ":4: in section '@on Added': ATTACH is not allowed: a projection may touch only its query db\n");
    write_file(f.proj, "-- @init\nATTACH '" + f.store + "' AS s;\n");
    CHECK(f.rebuild().status == 5);
    write_file(f.proj, "-- @init\nCREATE TABLE t (x);\n-- @on Added\nPRAGMA journal_mode = WAL;\n");
    CHECK(f.rebuild().err.find("PRAGMA journal_mode is not allowed") != std::string::npos);
    write_file(f.proj, "-- @init\nCREATE TABLE t (x);\n-- @on Added\nCOMMIT;\n");
    CHECK(f.rebuild().status == 5);
    CHECK(file_hash(f.store) == store_hash);
    CHECK_FALSE(std::filesystem::exists(f.db));
  }

  TEST_CASE("an event whose statements fail stops rebuild with exit 5 naming it, and the old db stays") {
    Fixture f;
    import(f.store, 6, 3);
    REQUIRE(f.rebuild().status == 0);
    std::string db_hash = file_hash(f.db);
    REQUIRE(run({"--store", f.store, "append", "s-1", "Added", R"({"m":1})"}).status == 0);
    write_file(f.proj, "-- @init\nCREATE TABLE t (n INTEGER NOT NULL);\n-- @on Added\n"
                       "INSERT INTO t VALUES (:data ->> '$.n');\n");
    auto r = f.rebuild();
    CHECK(r.status == 5);
    CHECK(r.err == "esctl: error: event Added of stream 's-1' (version 2, position 7) failed: " + f.proj +
                       ":4: in section '@on Added': NOT NULL constraint failed: t.n; '" + f.db +
                       "' is unchanged (fix the projection or the event and rebuild again)\n");
    CHECK(file_hash(f.db) == db_hash);
    CHECK(temp_files(f.dir.path()).empty());
  }

  TEST_CASE("a rebuild that runs out of room exits 1 saying the query db is unchanged, and it is, byte for byte") {
    Fixture f;
    import(f.store, 200, 5);
    REQUIRE(f.rebuild().status == 0);
    std::string db_hash = file_hash(f.db);
    // A projection whose new db outgrows the file size limit (200 events of 4 KiB, against a
    // limit of 256 KiB that the store and the old db fit in), set by a plain shell.
    std::string fat = f.dir / "fat.sql";
    write_file(fat, "-- @init\nCREATE TABLE t (position INTEGER PRIMARY KEY, pad BLOB);\n"
                    "-- @on Added\nINSERT INTO t VALUES (:position, zeroblob(4096));\n");
    auto r = sh("ulimit -f 512; exec \"$ESCTL\" --store '" + f.store + "' rebuild '" + f.db + "' --projection '" + fat + "'");
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "file size limit"), r.err);
    CHECK_MESSAGE(contains(r.err, "; query db '" + f.db + "' is unchanged\n"), r.err);
    CHECK(file_hash(f.db) == db_hash);
    CHECK(temp_files(f.dir.path()).empty());
    CHECK(scalar(f.db, "SELECT count(*) FROM t") == "200\n");
  }

  TEST_CASE("rebuild refuses to replace the store, or any db that esctl did not make" * sqlite_only()) {
    Fixture f;
    import(f.store, 3);
    std::string store_hash = file_hash(f.store);
    auto r = run({"--store", f.store, "rebuild", f.store, "--projection", f.proj});
    CHECK(r.status == 1);
    CHECK(r.err.find("is not a query db made by esctl") != std::string::npos);
    CHECK(file_hash(f.store) == store_hash);
    REQUIRE(sqlite(f.dir / "mine.db", "CREATE TABLE mine (x)").status == 0);
    CHECK(run({"--store", f.store, "rebuild", f.dir / "mine.db", "--projection", f.proj}).status == 1);
    write_file(f.dir / "notes.txt", "not a database, but precious\n");
    r = run({"--store", f.store, "rebuild", f.dir / "notes.txt", "--projection", f.proj});
    CHECK(r.status == 1);
    CHECK(read_file(f.dir / "notes.txt") == "not a database, but precious\n");
    CHECK(temp_files(f.dir.path()).empty());
  }

  TEST_CASE("rebuild without a store or a projection file exits 4, without --projection 2") {
    Fixture f;
    CHECK(f.rebuild().status == 4);
    import(f.store, 1);
    auto r = run({"--store", f.store, "rebuild", f.db, "--projection", f.dir / "nope.sql"});
    CHECK(r.status == 4);
    CHECK(r.err.find("projection file '" + f.dir / "nope.sql" + "' not found") != std::string::npos);
    CHECK(run({"--store", f.store, "rebuild", f.db}).status == 2);
    CHECK_FALSE(std::filesystem::exists(f.db));
  }

  TEST_CASE("a rebuild killed with SIGKILL leaves the old db byte-identical, the next run removes its temporary file") {
    Fixture f;
    import(f.store, 500);
    REQUIRE(f.rebuild().status == 0);
    std::string db_hash = file_hash(f.db);
    std::string slow = f.dir / "slow.sql";
    write_file(slow, kSlow);
    int pid = spawn({"--store", f.store, "rebuild", f.db, "--projection", slow}, f.dir / "out", f.dir / "err");
    // Wait until it is building (its temporary file exists), then let it apply a few events.
    REQUIRE(wait_until([&] { return !temp_files(f.dir.path()).empty(); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(pid, SIGKILL);
    CHECK(wait_for(pid) == 128 + SIGKILL);
    CHECK(file_hash(f.db) == db_hash);
    CHECK(temp_files(f.dir.path()).size() == 1);
    CHECK(scalar(f.db, "SELECT count(*) FROM t") == "500\n");
    // The next rebuild (of this db) cleans up after the dead one.
    REQUIRE(f.rebuild().status == 0);
    CHECK(temp_files(f.dir.path()).empty());
  }

  TEST_CASE("SIGINT stops rebuild with exit 130, removes its temporary file and keeps the old db") {
    Fixture f;
    import(f.store, 500);
    REQUIRE(f.rebuild().status == 0);
    std::string db_hash = file_hash(f.db);
    std::string slow = f.dir / "slow.sql";
    write_file(slow, kSlow);
    int pid = spawn({"--store", f.store, "rebuild", f.db, "--projection", slow}, f.dir / "out", f.dir / "err");
    // Wait until it is building (its temporary file exists), then let it apply a few events.
    REQUIRE(wait_until([&] { return !temp_files(f.dir.path()).empty(); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(pid, SIGINT);
    CHECK(wait_for(pid) == 130);
    CHECK(file_hash(f.db) == db_hash);
    CHECK(temp_files(f.dir.path()).empty());
  }

  TEST_CASE("a reader counting rows during rebuilds sees the old db or the complete new one, never a partial one") {
    Fixture f;
    import(f.store, 20000, 50);
    REQUIRE(f.rebuild().status == 0);
    std::string seen = f.dir / "seen", stop = f.dir / "stop", done = f.dir / "done";
    auto bg = sh("( while [ ! -e '" + stop + "' ]; do sqlite3 '" + f.db + "' 'SELECT count(*) FROM t' >> '" + seen +
                 "' 2>&1 || echo FAILED >> '" + seen + "'; sleep 0.002; done; touch '" + done +
                 "' ) >/dev/null 2>&1 &");
    REQUIRE(bg.status == 0);
    const int rounds = 6;
    for (int i = 1; i <= rounds; ++i) {
      REQUIRE(run({"--store", f.store, "append", "s-0", "Added", R"({"n":1})"}).status == 0);
      auto r = f.rebuild();
      REQUIRE_MESSAGE(r.status == 0, r.err);
    }
    write_file(stop, "");
    REQUIRE(wait_until([&] { return std::filesystem::exists(done); }));
    auto counts = lines(read_file(seen));
    REQUIRE(counts.size() > 5);
    long last = 0;
    for (const auto& c : counts) {
      INFO("reader saw: " << c);
      REQUIRE(c.find_first_not_of("0123456789") == std::string::npos);
      long n = std::stol(c);
      CHECK(n >= 20000);
      CHECK(n <= 20000 + rounds);
      CHECK(n >= last);
      last = n;
    }
    CHECK(scalar(f.db, "SELECT count(*) FROM t") == std::to_string(20000 + rounds) + "\n");
  }
}

namespace {

// The rows kSlow makes, fast: a second rebuild of the same db that is not itself slow.
constexpr const char* kFast = R"sql(-- @init
CREATE TABLE t (position INTEGER PRIMARY KEY, spin INTEGER);
-- @on Added
INSERT INTO t VALUES (:position, 100000);
)sql";

bool running(int pid) {
  // A stopped or running child that has not exited (waitpid would reap an exited one).
  siginfo_t info{};
  info.si_pid = 0;
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
}

// The figures of `queue status --json` that say what the queue will deliver.
std::string queue_figures(const std::string& store, const std::string& queue) {
  auto r = run({"--store", store, "queue", "status", queue, "--json"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  auto j = json::parse(r.out);
  return j["cursor"].dump() + " " + j["lag"].dump() + " " + j["leased"].dump() + " " + j["retrying"].dump() + " " +
         j["parked"].dump();
}

}  // namespace

TEST_SUITE("cli/rebuild") {
  TEST_CASE("rebuilds of one db do not overlap: a second gives up after --busy-timeout (exit 7) or waits, no gap") {
    Fixture f;
    std::string slow = f.dir / "slow.sql", fast = f.dir / "fast.sql";
    write_file(slow, kSlow);
    write_file(fast, kFast);
    REQUIRE(run({"--store", f.store, "queue", "create", "q", "--from", "start"}).status == 0);
    import(f.store, 300);
    // Rebuild A reads the head (300), starts building, and is stopped.
    int a = spawn({"--store", f.store, "rebuild", f.db, "--projection", slow, "--queue", "q"}, f.dir / "a.out",
                  f.dir / "a.err");
    REQUIRE(wait_until([&] { return !temp_files(f.dir.path()).empty(); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    REQUIRE(::kill(a, SIGSTOP) == 0);
    import(f.store, 5);
    std::string figures = queue_figures(f.store, "q");

    // Rebuild B, with a short --busy-timeout, gives up: exit 7, nothing changed.
    auto b = run({"--store", f.store, "--busy-timeout", "200ms", "rebuild", f.db, "--projection", fast, "--queue", "q"});
    CHECK(b.status == 7);
    CHECK(b.err.find("query db '" + f.db + "' is busy: another rebuild of it is running") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(f.db));
    CHECK(queue_figures(f.store, "q") == figures);

    // Rebuild B, with a long one, waits for A (head 300) and then rebuilds to head 305.
    int b2 = spawn({"--store", f.store, "--busy-timeout", "120s", "rebuild", f.db, "--projection", fast, "--queue", "q"},
                   f.dir / "b.out", f.dir / "b.err");
    // Give B every chance to overtake A (the old code did: A then renamed its older db over B's).
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (running(b2) && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(running(b2));
    REQUIRE(::kill(a, SIGCONT) == 0);
    CHECK(wait_for(a) == 0);
    INFO(read_file(f.dir / "a.err"));
    CHECK(wait_for(b2) == 0);
    INFO(read_file(f.dir / "b.err"));
    CHECK(scalar(f.db, "SELECT value FROM _esctl_meta WHERE key = 'rebuilt_through'") == "305\n");
    CHECK(queue_figures(f.store, "q").rfind("305 0 ", 0) == 0);

    // A drain continues with no gap: the db is what a fresh rebuild of every event gives.
    import(f.store, 3);
    auto d = run({"--store", f.store, "queue", "drain", "q", "--projection", fast, "--into", f.db});
    CHECK_MESSAGE(d.status == 0, d.err);
    REQUIRE(run({"--store", f.store, "rebuild", f.dir / "fresh.db", "--projection", fast}).status == 0);
    CHECK(scalar(f.db, "SELECT count(*), sum(position), sum(spin) FROM t") ==
          scalar(f.dir / "fresh.db", "SELECT count(*), sum(position), sum(spin) FROM t"));
    CHECK(scalar(f.db, "SELECT count(*) FROM t") == "308\n");
  }

  TEST_CASE("rebuild --queue of a db fed from another queue exits 3 naming both, and changes nothing") {
    Fixture f;
    REQUIRE(run({"--store", f.store, "queue", "create", "orders-view", "--from", "start"}).status == 0);
    REQUIRE(run({"--store", f.store, "queue", "create", "billing", "--from", "start"}).status == 0);
    import(f.store, 20, 4);
    REQUIRE(run({"--store", f.store, "queue", "pull", "billing", "--max", "3"}).status == 0);
    auto d = run({"--store", f.store, "queue", "drain", "orders-view", "--projection", f.proj, "--into", f.db});
    REQUIRE_MESSAGE(d.status == 0, d.err);
    CHECK(scalar(f.db, "SELECT value FROM _esctl_meta WHERE key = 'queue'") == "orders-view\n");
    std::string billing = queue_figures(f.store, "billing"), view = queue_figures(f.store, "orders-view");
    std::string exported = run({"--store", f.store, "export", "--all"}).out;
    std::string db_hash = file_hash(f.db);

    auto r = f.rebuild({"--queue", "billing"});
    CHECK(r.status == 3);
    CHECK(r.err == "esctl: error: query db '" + f.db + "' is fed from queue 'orders-view', not 'billing': handing it "
                   "over to 'billing' would skip the unacked events of 'billing' (rebuild it with --queue "
                   "orders-view, or choose another path for 'billing')\n");
    CHECK(f.rebuild({"--queue", "billing", "--dry-run"}).status == 3);
    CHECK(queue_figures(f.store, "billing") == billing);
    CHECK(queue_figures(f.store, "orders-view") == view);
    CHECK(run({"--store", f.store, "export", "--all"}).out == exported);
    CHECK(file_hash(f.db) == db_hash);
    CHECK(temp_files(f.dir.path()).empty());

    // A rebuild for its own queue works; one without --queue keeps the queue the db records.
    REQUIRE(f.rebuild({"--queue", "orders-view"}).status == 0);
    REQUIRE(f.rebuild().status == 0);
    CHECK(scalar(f.db, "SELECT value FROM _esctl_meta WHERE key = 'queue'") == "orders-view\n");
    CHECK(f.rebuild({"--queue", "billing"}).status == 3);
    // A db built by rebuild --queue records that queue.
    REQUIRE(run({"--store", f.store, "rebuild", f.dir / "b.db", "--projection", f.proj, "--queue", "billing"}).status == 0);
    CHECK(scalar(f.dir / "b.db", "SELECT value FROM _esctl_meta WHERE key = 'queue'") == "billing\n");
  }

  TEST_CASE("rebuild --queue --dry-run prints how many unacked events the hand-over would settle, and writes nothing") {
    Fixture f;
    REQUIRE(run({"--store", f.store, "queue", "create", "q", "--from", "start"}).status == 0);
    import(f.store, 10, 2);
    REQUIRE(run({"--store", f.store, "queue", "pull", "q", "--max", "2"}).status == 0);
    std::string figures = queue_figures(f.store, "q");
    std::string exported = run({"--store", f.store, "export", "--all"}).out;
    auto r = f.rebuild({"--queue", "q", "--dry-run"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out == "would build '" + f.db + "' with '" + f.proj + "' through position 10\n"
                   "queue 'q' would continue after position 10: the hand-over would settle 10 unacked events "
                   "(8 pending, 2 leased, 0 retrying, 0 parked)\n"
                   "dry run: nothing was written\n");
    auto j = run({"--store", f.store, "--json", "rebuild", f.db, "--projection", f.proj, "--queue", "q", "--dry-run"});
    REQUIRE(j.status == 0);
    auto o = json::parse(j.out);
    CHECK(o["dry_run"] == true);
    CHECK(o["settled"] == 10);
    CHECK(o["leased"] == 2);
    CHECK(o["head"] == 10);
    CHECK(queue_figures(f.store, "q") == figures);
    CHECK(run({"--store", f.store, "export", "--all"}).out == exported);
    for (const auto& e : std::filesystem::directory_iterator(f.dir.path())) {
      std::string name = e.path().filename();
      INFO(name);
      CHECK((name == "counter.sql" || name.rfind("s.db", 0) == 0));  // no q.db, q.db.lock or temporary file
    }
    // The real run prints the same impact, and settles them.
    r = f.rebuild({"--queue", "q"});
    REQUIRE(r.status == 0);
    CHECK(r.out.find("queue 'q' continues after position 10; the hand-over settled 10 unacked events\n") !=
          std::string::npos);
    CHECK(queue_figures(f.store, "q") == "10 0 0 0 0");
  }
}
