// The store file through the binary (esctl(1)): init, where the store is, read-only
// commands on a missing store, refusing files that are not esctl stores (left byte-identical),
// what sqlite3 sees, immutability, stats, and a lock held elsewhere.
#include <doctest/doctest.h>

#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

// Turns a version 3 store back into what esctl wrote at version 2 (no lease tokens, counters or
// deliverable_since).
constexpr const char* kDownTo2 =
    "DROP TABLE counters; DROP INDEX queue_items_leased; DROP TABLE time_order;"
    "ALTER TABLE queue_items DROP COLUMN lease;"
    "ALTER TABLE queue_runs DROP COLUMN lease;"
    "ALTER TABLE queues DROP COLUMN deliverable_since;";

}  // namespace

namespace {

Result sqlite3(const std::string& db, const std::string& sql) {
  return sh("sqlite3 '" + db + "' \"$SQL\"", RunOptions{"", {{"SQL", sql}}, ""});
}

/// Every command that only reads, with the arguments it needs.
const std::vector<std::vector<std::string>>& reading_commands() {
  static const std::vector<std::vector<std::string>> all{
      {"read", "s"}, {"read", "--all"}, {"read", "--category", "s"}, {"streams"}, {"stats"}, {"export"}};
  return all;
}

/// Runs every command against `store` and checks each refuses it with `code` and a message
/// containing `what`, leaving the file as it was.
void all_refuse(const std::string& store, int code, const std::string& what) {
  auto before = file_hash(store);
  std::vector<std::vector<std::string>> commands = reading_commands();
  commands.push_back({"init"});
  commands.push_back({"append", "s", "T"});
  commands.push_back({"append", "s", "--ndjson"});
  commands.push_back({"import"});
  for (auto args : commands) {
    INFO(args[0], " ", args.size() > 1 ? args[1] : "");
    args.insert(args.begin(), {"--store", store});
    auto r = run(args, RunOptions{"{\"type\":\"T\",\"data\":{}}\n", {}, ""});
    CHECK(r.status == code);
    CHECK(contains(r.err, what));
    CHECK(r.out.empty());
  }
  CHECK(file_hash(store) == before);
  CHECK_FALSE(std::filesystem::exists(store + "-journal"));
}

}  // namespace

TEST_SUITE("cli/store_file" * sqlite_only()) {
  TEST_CASE("init creates an empty WAL-mode store that sqlite3 can read, and is a no-op on an existing one") {
    TempDir d;
    auto store = d / "s.db";
    auto r = run({"--store", store, "init"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(contains(r.out, store));
    auto q = sqlite3(store, "PRAGMA application_id; PRAGMA user_version; PRAGMA journal_mode; SELECT count(*) FROM events;");
    CHECK(q.out == "1163084628\n3\nwal\n0\n");
    REQUIRE(run({"--store", store, "append", "s", "T", "{\"a\":1}"}).status == 0);
    r = run({"--store", store, "--json", "init"});
    REQUIRE(r.status == 0);
    CHECK(json::parse(r.out)["events"] == 1);
    CHECK(sqlite3(store, "SELECT stream, version, type, data FROM event_log;").out == "s|0|T|{\"a\":1}\n");
  }

  TEST_CASE("the store is --store, else $ESCTL_STORE, else ./events.db") {
    TempDir d;
    REQUIRE(run({"init"}, RunOptions{"", {}, d.path()}).status == 0);
    CHECK(std::filesystem::exists(d / "events.db"));
    REQUIRE(run({"init"}, RunOptions{"", {{"ESCTL_STORE", d / "env.db"}}, d.path()}).status == 0);
    CHECK(std::filesystem::exists(d / "env.db"));
    REQUIRE(run({"--store", d / "opt.db", "init"}, RunOptions{"", {{"ESCTL_STORE", d / "env2.db"}}, d.path()}).status == 0);
    CHECK(std::filesystem::exists(d / "opt.db"));
    CHECK_FALSE(std::filesystem::exists(d / "env2.db"));
  }

  TEST_CASE("commands that only read exit 4 on a missing store and do not create it") {
    TempDir d;
    auto store = d / "missing.db";
    for (auto args : reading_commands()) {
      INFO(args[0]);
      args.insert(args.begin(), {"--store", store});
      auto r = run(args);
      CHECK(r.status == 4);
      CHECK(contains(r.err, "no store at '" + store + "'"));
      CHECK_FALSE(std::filesystem::exists(store));
    }
    auto r = run({"read", "s"}, RunOptions{"", {}, d.path()});
    CHECK(r.status == 4);
    CHECK_FALSE(std::filesystem::exists(d / "events.db"));
  }

  TEST_CASE("only init, append, import and queue create create a store: every other command exits 4, creating nothing") {
    TempDir d;
    write_file(d / "p.sql", "-- @on *\nSELECT 1;\n");
    const std::vector<std::vector<std::string>> others{
        {"queue", "drain", "billing", "--exec", "true"},
        {"queue", "drain", "billing", "--projection", d / "p.sql", "--into", d / "q.db"},
        {"queue", "pull", "billing"},
        {"queue", "ack", "billing", "1"},
        {"queue", "nack", "billing", "1"},
        {"queue", "retry", "billing", "--all"},
        {"queue", "retry", "billing", "1"},
        {"queue", "reset", "billing", "--to", "start"},
        {"queue", "delete", "billing"},
        {"queue", "status", "billing"},
        {"queue", "parked", "billing"},
        {"queue", "ls"},
        {"tail"},
        {"verify"},
        {"rebuild", d / "q.db", "--projection", d / "p.sql"},
    };
    auto dir = d / "empty";
    std::filesystem::create_directory(dir);
    for (auto args : others) {
      INFO(fmt::format("{}", fmt::join(args, " ")));
      // The default ./events.db, in an empty folder.
      auto r = run(args, RunOptions{"", {}, dir});
      CHECK(r.status == 4);
      CHECK_MESSAGE(contains(r.err, "no store at 'events.db'"), r.err);
      CHECK(sh("ls -A '" + dir + "'").out.empty());  // no store, no -wal/-shm
      // An empty file where the store should be is no store either, and stays empty.
      write_file(dir + "/events.db", "");
      r = run(args, RunOptions{"", {}, dir});
      CHECK(r.status == 4);
      CHECK_MESSAGE(contains(r.err, "no store at 'events.db'"), r.err);
      CHECK(sh("ls -A '" + dir + "'").out == "events.db\n");
      CHECK(std::filesystem::file_size(dir + "/events.db") == 0);
      std::filesystem::remove(dir + "/events.db");
    }
    CHECK_FALSE(std::filesystem::exists(d / "q.db"));
    // The commands that do create it.
    CHECK(run({"--store", d / "c.db", "queue", "create", "billing"}).status == 0);
    CHECK(run({"--store", d / "c.db", "queue", "drain", "billing", "--exec", "true"}).status == 0);
  }

  TEST_CASE("a file that is not SQLite is refused by every command with exit 1 and left unchanged") {
    TempDir d;
    auto store = d / "notes.txt";
    write_file(store, "these are my notes, not a database\n");
    all_refuse(store, 1, "not an esctl store (not a SQLite database)");
    write_file(store, "tiny");
    all_refuse(store, 1, "not an esctl store");
  }

  TEST_CASE("a SQLite database of another application is refused with exit 1 and left unchanged") {
    TempDir d;
    auto store = d / "app.db";
    REQUIRE(sqlite3(store, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ann');")
                .status == 0);
    all_refuse(store, 1, "is a SQLite database but not an esctl store");
    auto other = d / "other.db";
    REQUIRE(sqlite3(other, "PRAGMA application_id = 42; CREATE TABLE t (x);").status == 0);
    all_refuse(other, 1, "not an esctl store (application_id 0x2a)");
    CHECK(sqlite3(store, "SELECT name FROM users;").out == "ann\n");
  }

  TEST_CASE("a store with a newer schema version is refused with exit 1, naming the upgrade, and left unchanged") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "s", "T"}).status == 0);
    REQUIRE(sqlite3(store, "PRAGMA user_version = 4;").status == 0);
    all_refuse(store, 1, "has schema version 4, newer than this esctl understands (3); upgrade esctl");
  }

  TEST_CASE("a schema version 1 store is refused by readers, naming the fix, and upgraded by the first write") {
    TempDir d;
    auto store = d / "s.db";
    std::string input;
    for (int i = 0; i < 700; ++i)
      input += "{\"stream\":\"s" + std::to_string(i % 7) + "-x\",\"type\":\"T\",\"data\":{\"i\":" + std::to_string(i) + "}}\n";
    REQUIRE(run({"--store", store, "import", "-q"}, RunOptions{input, {}, ""}).status == 0);
    REQUIRE(run({"--store", store, "queue", "create", "q", "--from", "start"}).status == 0);
    auto exported = run({"--store", store, "export"});
    auto streams = run({"--store", store, "--json", "streams"});
    REQUIRE(exported.status == 0);
    // Turn it into what esctl wrote before version 2: the heads inside the streams rows.
    auto down = sqlite3(store,
                        "BEGIN;"
                        "CREATE TABLE streams_v1 (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, category TEXT NOT NULL,"
                        " head INTEGER NOT NULL, head_position INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
                        "INSERT INTO streams_v1 SELECT s.id, s.name, s.category, h.head, h.head_position, e.recorded_at"
                        " FROM streams s JOIN stream_heads h ON h.stream_id = s.id JOIN events e ON e.position = h.head_position;"
                        + std::string(kDownTo2) +
                        "DROP VIEW event_log; DROP TABLE streams; DROP TABLE stream_heads;"
                        "ALTER TABLE streams_v1 RENAME TO streams;"
                        "CREATE INDEX streams_by_category ON streams(category);"
                        "CREATE VIEW event_log AS SELECT e.position, s.name AS stream, e.version FROM events e"
                        " JOIN streams s ON s.id = e.stream_id;"
                        "DROP INDEX events_marks;"
                        "CREATE UNIQUE INDEX events_marks ON events(stream_id, version) WHERE version % 64 = 0;"
                        "PRAGMA user_version = 1; COMMIT;");
    REQUIRE_MESSAGE(down.status == 0, down.err);

    auto before = file_hash(store);
    for (auto args : reading_commands()) {
      INFO(args[0]);
      args.insert(args.begin(), {"--store", store});
      auto r = run(args);
      CHECK(r.status == 1);
      CHECK(contains(r.err, "has schema version 1, older than this esctl's (3); upgrade it once with 'esctl init'"));
    }
    CHECK(run({"--store", store, "verify"}).status == 1);
    CHECK(file_hash(store) == before);

    REQUIRE(run({"--store", store, "init"}).status == 0);
    CHECK(sqlite3(store, "PRAGMA user_version;").out == "3\n");
    CHECK(contains(sqlite3(store, "SELECT sql FROM sqlite_schema WHERE name = 'events_marks';").out, "(version, stream_id)"));
    CHECK(run({"--store", store, "export"}).out == exported.out);
    CHECK(run({"--store", store, "--json", "streams"}).out == streams.out);
    auto v = run({"--store", store, "verify"});
    CHECK_MESSAGE(v.status == 0, v.out, v.err);
    auto next = run({"--store", store, "--json", "append", "s3-x", "T", "--expect", "99"});
    REQUIRE_MESSAGE(next.status == 0, next.err);
    CHECK(json::parse(next.out)["version"] == 100);
    CHECK(run({"--store", store, "--json", "queue", "status", "q"}).status == 0);
    // Version 10 is found through the marks index (the mark of version 64), then prev links.
    CHECK(run({"--store", store, "read", "s0-x", "--from", "10", "--count", "1"}).out.find("71 s0-x@10 T ") == 0);
  }

  TEST_CASE("a schema version 2 store is upgraded by the first write: its queues, leases and new queue ids carry on") {
    TempDir d;
    auto store = d / "s.db";
    for (int i = 0; i < 4; ++i) REQUIRE(run({"--store", store, "append", "s-" + std::to_string(i % 2), "T"}).status == 0);
    for (const char* q : {"a", "b"}) REQUIRE(run({"--store", store, "queue", "create", q, "--from", "start"}).status == 0);
    REQUIRE(run({"--store", store, "queue", "pull", "b", "--max", "2"}).status == 0);
    auto down = sqlite3(store, std::string("BEGIN;") + kDownTo2 + "PRAGMA user_version = 2; COMMIT;");
    REQUIRE_MESSAGE(down.status == 0, down.err);
    auto before = file_hash(store);
    auto r = run({"--store", store, "queue", "status", "b"});
    CHECK(r.status == 1);
    CHECK(contains(r.err, "has schema version 2, older than this esctl's (3)"));
    CHECK(file_hash(store) == before);

    REQUIRE(run({"--store", store, "init"}).status == 0);
    CHECK(sqlite3(store, "PRAGMA user_version;").out == "3\n");
    // The time order is computed by the upgrade: all four events were appended in order.
    CHECK(sqlite3(store, "SELECT ordered_through FROM time_order;").out == "4\n");
    auto st = json::parse(run({"--store", store, "--json", "queue", "status", "b"}).out);
    CHECK(st["leased"] == 2);
    CHECK(st["oldest_unacked_since"].is_string());
    // A lease from before the upgrade has no token: only a bare position settles it.
    CHECK(run({"--store", store, "queue", "ack", "b", "1:1"}).status == 3);
    CHECK(run({"--store", store, "queue", "ack", "b", "1", "2"}).status == 0);
    // Queue ids go on from the highest one used, and lease tokens start.
    REQUIRE(run({"--store", store, "queue", "create", "c", "--from", "start"}).status == 0);
    CHECK(sqlite3(store, "SELECT id FROM queues WHERE name = 'c';").out == "3\n");
    auto pulled = json::parse(run({"--store", store, "--json", "queue", "pull", "c"}).out);
    CHECK(pulled["lease"] == 1);
    auto v = run({"--store", store, "verify"});
    CHECK_MESSAGE(v.status == 0, v.out, v.err);
  }

  TEST_CASE("the upgrade from schema version 2 keeps --since searches only over events in time order") {
    TempDir d;
    auto store = d / "s.db";
    // recorded_at goes back at position 3: the time order holds through position 2 only.
    std::string lines;
    for (const char* t : {"2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z", "2026-01-01T00:00:02Z", "2026-01-01T00:00:04Z"})
      lines += fmt::format(R"({{"stream":"s-1","type":"T","data":{{}},"recorded_at":"{}"}})", t) + "\n";
    REQUIRE(run({"--store", store, "import", "-"}, RunOptions{lines, {}, ""}).status == 0);
    auto down = sqlite3(store, std::string("BEGIN;") + kDownTo2 + "PRAGMA user_version = 2; COMMIT;");
    REQUIRE_MESSAGE(down.status == 0, down.err);
    REQUIRE(run({"--store", store, "init"}).status == 0);
    CHECK(sqlite3(store, "SELECT ordered_through FROM time_order;").out == "2\n");
    auto r = run({"--store", store, "read", "--all", "--since", "2026-01-01T00:00:02Z", "--format", "{position}"});
    CHECK_MESSAGE(r.status == 0, r.err);
    CHECK(r.out == "2\n3\n4\n");
    CHECK(run({"--store", store, "verify"}).status == 0);
  }

  TEST_CASE("stored events cannot be changed or deleted, even with sqlite3") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "s", "T", "{\"a\":1}"}).status == 0);
    auto r = sqlite3(store, "UPDATE events SET data = '{}';");
    CHECK(r.status != 0);
    CHECK(contains(r.err, "immutable"));
    r = sqlite3(store, "DELETE FROM events;");
    CHECK(r.status != 0);
    CHECK(contains(r.err, "immutable"));
    CHECK(sqlite3(store, "SELECT data FROM events;").out == "{\"a\":1}\n");
  }

  TEST_CASE("stats shows path, schema version, size, events, streams and head position, --json one object") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "a-1", "T"}).status == 0);
    REQUIRE(run({"--store", store, "append", "a-1", "T"}).status == 0);
    REQUIRE(run({"--store", store, "append", "b-1", "T"}).status == 0);
    auto r = run({"--store", store, "stats"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(contains(r.out, "store:"));
    CHECK(contains(r.out, store));
    CHECK(contains(r.out, "schema version: 3"));
    CHECK(contains(r.out, "events:         3"));
    CHECK(contains(r.out, "streams:        2"));
    CHECK(contains(r.out, "KiB"));  // the size in binary units; bytes are in --json
    auto j = json::parse(run({"--store", store, "--json", "stats"}).out);
    CHECK(j["store"] == store);
    CHECK(j["schema_version"] == 3);
    CHECK(j["events"] == 3);
    CHECK(j["streams"] == 2);
    CHECK(j["head_position"] == 3);
    CHECK(j["file_bytes"].get<std::int64_t>() > 0);
    CHECK(j.contains("wal_bytes"));
    CHECK(run({"--store", store, "-q", "stats"}).out.empty());
  }

  TEST_CASE("a write lock held by another process makes append exit 7 after --busy-timeout, writing nothing") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "s", "T"}).status == 0);
    // sqlite3 holds the write lock until the marker file is removed.
    auto marker = d / "locked";
    write_file(d / "hold.sh", "touch '" + marker + "'; while [ -e '" + marker + "' ]; do sleep 0.05; done\n");
    std::string script = "sqlite3 '" + store + "' 'BEGIN IMMEDIATE;' '.shell sh " + (d / "hold.sh") + "' 'COMMIT;' &"
                         " i=0; while [ ! -e '" + marker + "' ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done;"
                         " \"$ESCTL\" --store '" + store + "' --busy-timeout 200ms append s T; echo \"rc=$?\";"
                         " rm -f '" + marker + "'; wait";
    auto r = sh(script);
    CHECK(contains(r.out, "rc=7"));
    CHECK(contains(r.err, "busy"));
    CHECK(contains(r.err, "--busy-timeout"));
    auto j = json::parse(run({"--store", store, "--json", "stats"}).out);
    CHECK(j["events"] == 1);
  }
}
