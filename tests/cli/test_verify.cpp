// esctl verify end to end: stores damaged on purpose with the sqlite3 CLI are reported with the
// right kind and location (and exit 6); clean stores exit 0; narrowing, exit codes, output
// forms, read-only behaviour, concurrent appenders, and --log checks of delivery logs.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <set>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

// A store with `streams` streams "s<K>-x" of `per_stream` events each, interleaved: stream K's
// version V is at position V*streams + K + 1.
std::string make_store(const TempDir& dir, int streams, int per_stream, const std::string& name = "s.db") {
  std::string path = dir / name, input;
  for (int v = 0; v < per_stream; ++v)
    for (int s = 0; s < streams; ++s)
      input += "{\"stream\":\"s" + std::to_string(s) + "-x\",\"type\":\"T\",\"data\":{\"v\":" + std::to_string(v) +
               ",\"pad\":\"abcdefghijklmnopqrstuvwxyz\"}}\n";
  auto r = run({"--store", path, "-q", "import", "-"}, {input});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return path;
}

std::int64_t pos(int streams, int k, int v) { return static_cast<std::int64_t>(v) * streams + k + 1; }

// Runs SQL on the store with the sqlite3 command-line shell.
void sqlite(const std::string& path, const std::string& sql) {
  RunOptions o;
  o.input = sql;
  o.env["DB"] = path;
  auto r = sh("sqlite3 -bail \"$DB\"", o);
  REQUIRE_MESSAGE(r.status == 0, sql << "\n" << r.err);
}

constexpr const char* kDropTriggers = "DROP TRIGGER events_immutable_update; DROP TRIGGER events_immutable_delete;\n";
constexpr const char* kTriggers =
    "CREATE TRIGGER events_immutable_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'esctl: events are immutable'); END;\n"
    "CREATE TRIGGER events_immutable_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'esctl: events are immutable'); END;\n";

json verify_json(const std::string& store, std::vector<std::string> extra = {}, int expect_status = 6) {
  std::vector<std::string> args = {"--store", store, "--json", "verify"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = run(args);
  INFO(r.out << r.err);
  CHECK(r.status == expect_status);
  CHECK(r.err.empty());
  REQUIRE(lines(r.out).size() == 1);
  return json::parse(r.out);
}

std::set<std::string> kinds(const json& j) {
  std::set<std::string> k;
  for (const auto& v : j["violations"]) k.insert(v["kind"].get<std::string>());
  return k;
}

const json* find(const json& j, const std::string& kind) {
  for (const auto& v : j["violations"])
    if (v["kind"] == kind) return &v;
  return nullptr;
}

void overwrite(const std::string& path, std::int64_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f.good());
  f.seekp(offset);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

std::int64_t file_size(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  return static_cast<std::int64_t>(f.tellg());
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

Result verify_log(const TempDir& dir, const std::string& log, std::vector<std::string> extra = {}) {
  write_file(dir / "seen.ndjson", log);
  std::vector<std::string> args = {"--json", "verify", "--log", dir / "seen.ndjson"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run(args);
}

}  // namespace

TEST_SUITE("cli/verify") {
  TEST_CASE("a clean store verifies with exit 0, a summary line, and a JSON summary" * sqlite_only()) {
    TempDir dir;
    auto store = make_store(dir, 4, 70);
    auto r = run({"--store", store, "verify"});
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    REQUIRE(lines(r.out).size() == 1);
    CHECK(r.out.rfind("verify: ok, no violations (checked 280 events in 4 streams", 0) == 0);
    CHECK(r.out.find("SQLite quick_check") != std::string::npos);

    auto j = verify_json(store, {}, 0);
    CHECK(j["ok"] == true);
    CHECK(j["integrity"] == "quick_check");
    CHECK(j["checked"]["events"] == 280);
    CHECK(j["checked"]["streams"] == 4);
    CHECK(j["checked"]["ids"] == 280);
    CHECK(j["checked"]["marks"] == 8);
    CHECK(j["checked"]["triggers"] == 2);
    CHECK(j["violations"].empty());

    auto full = verify_json(store, {"--full"}, 0);
    CHECK(full["integrity"] == "integrity_check");

    auto q = run({"--store", store, "-q", "verify"});
    CHECK(q.status == 0);
    CHECK(q.out.empty());
  }

  TEST_CASE("an empty store verifies clean") {
    TempDir dir;
    REQUIRE(run({"--store", dir / "e.db", "init"}).status == 0);
    auto j = verify_json(dir / "e.db", {}, 0);
    CHECK(j["ok"] == true);
    CHECK(j["checked"]["events"] == 0);
  }

  TEST_CASE("damage made with sqlite3 is found with its kind and location" * sqlite_only()) {
    struct Case {
      const char* name;
      std::string sql;
      std::set<std::string> kinds;  // everything reported
      const char* kind;             // the finding to locate
      const char* stream;
      std::int64_t version, position;
    };
    const int n = 3;  // streams; 70 events each
    const std::vector<Case> cases = {
        {"delete a middle event", "DELETE FROM events WHERE position = " + std::to_string(pos(n, 1, 30)) + ";",
         {"version_gap", "prev_link"}, "version_gap", "s1-x", 30, pos(n, 1, 31)},
        {"duplicate a version",
         "INSERT INTO events (stream_id, version, prev, id, type, data, meta, recorded_at) SELECT stream_id, version, "
         "prev, randomblob(16), type, data, meta, recorded_at FROM events WHERE position = " +
             std::to_string(pos(n, 2, 12)) + ";",
         {"version_duplicate"}, "version_duplicate", "s2-x", 12, 211},
        {"swap two positions",
         "UPDATE events SET position = -1 WHERE position = 4; UPDATE events SET position = 4 WHERE position = 7;"
         "UPDATE events SET position = 7 WHERE position = -1;",
         {"version_order", "prev_link"}, "version_order", "s0-x", 1, 7},
        {"corrupt a JSON payload", "UPDATE events SET data = '{\"total\": 12,' WHERE position = 50;",
         {"json_invalid"}, "json_invalid", "s1-x", 16, 50},
        {"break a prev link", "UPDATE events SET prev = 2 WHERE position = 100;", {"prev_link"}, "prev_link", "s0-x", 33,
         100},
        {"drop a mark",
         "DROP INDEX events_marks;"
         "CREATE UNIQUE INDEX events_marks ON events(version, stream_id) WHERE version % 64 = 0 AND position <> " +
             std::to_string(pos(n, 2, 64)) +
             ";"
             "PRAGMA writable_schema = ON;"
             "UPDATE sqlite_schema SET sql = 'CREATE UNIQUE INDEX events_marks ON events(version, stream_id) "
             "WHERE version % 64 = 0' WHERE name = 'events_marks';"
             "PRAGMA writable_schema = OFF;",
         {"mark_missing"}, "mark_missing", "s2-x", 64, pos(n, 2, 64)},
        {"make a stream head disagree", "UPDATE stream_heads SET head = 68, head_position = 5 WHERE stream_id = (SELECT id FROM streams WHERE name = 's1-x');",
         {"stream_head"}, "stream_head", "s1-x", 69, pos(n, 1, 69)},
    };
    for (const auto& c : cases) {
      CAPTURE(c.name);
      TempDir dir;
      auto store = make_store(dir, n, 70);
      sqlite(store, std::string(kDropTriggers) + c.sql + "\n" + kTriggers);
      auto j = verify_json(store);
      CHECK(j["ok"] == false);
      CHECK(kinds(j) == c.kinds);
      auto v = find(j, c.kind);
      REQUIRE(v);
      CHECK((*v)["stream"] == c.stream);
      CHECK((*v)["version"] == c.version);
      CHECK((*v)["position"] == c.position);
      CHECK(!(*v)["detail"].get<std::string>().empty());
      // The human form has one line per violation and the summary.
      auto h = run({"--store", store, "verify"});
      CHECK(h.status == 6);
      auto ls = lines(h.out);
      REQUIRE(ls.size() == j["violations"].size() + 1);
      CHECK(h.out.find(std::string(c.kind) + ": " + c.stream + "@" + std::to_string(c.version) + " #" +
                       std::to_string(c.position) + ": ") != std::string::npos);
      CHECK(ls.back().rfind("verify: " + std::to_string(j["violations"].size()) + " violation", 0) == 0);
    }
  }

  TEST_CASE("a dropped trigger, a queue cursor past the head and a dangling queue item are found" * sqlite_only()) {
    TempDir dir;
    auto store = make_store(dir, 2, 5);  // positions 1..10
    sqlite(store,
           "DROP TRIGGER events_immutable_delete;"
           "INSERT INTO queues (name, start_position, cursor, max_attempts, ack_timeout_ms, on_poison, created_at) "
           "VALUES ('ahead', 0, 11, 5, 30000, 'block', 0), ('dangling', 0, 8, 5, 30000, 'block', 0);"
           "INSERT INTO queue_items (queue_id, position, stream_id, state, head) "
           "SELECT id, 42, 1, 1, 1 FROM queues WHERE name = 'dangling';");
    auto j = verify_json(store);
    CHECK(kinds(j) == std::set<std::string>{"trigger", "queue_cursor", "queue_item"});
    CHECK(j["checked"]["queues"] == 2);
    CHECK(j["checked"]["queue_items"] == 1);
    CHECK((*find(j, "trigger"))["detail"].get<std::string>().find("events_immutable_delete") != std::string::npos);
    CHECK((*find(j, "queue_cursor"))["position"] == 11);
    CHECK((*find(j, "queue_cursor"))["detail"].get<std::string>().find("'ahead'") != std::string::npos);
    CHECK((*find(j, "queue_item"))["position"] == 42);
    CHECK((*find(j, "queue_item"))["detail"].get<std::string>().find("'dangling'") != std::string::npos);

    auto only = verify_json(store, {"--queue", "dangling"});
    CHECK(kinds(only) == std::set<std::string>{"trigger", "queue_item"});
    CHECK(run({"--store", store, "verify", "--queue", "nope"}).status == 4);
  }

  TEST_CASE("flipped bytes in a page are integrity violations (exit 6), an unreadable schema exits 1" * sqlite_only()) {
    TempDir dir;
    auto store = make_store(dir, 5, 400);
    RunOptions db;
    db.env["DB"] = store;
    const std::int64_t page = std::stoll(sh("sqlite3 \"$DB\" \"PRAGMA page_size\"", db).out);
    const std::int64_t pages = file_size(store) / page;
    REQUIRE(pages > 20);
    SUBCASE("a page in the middle of the file") {
      overwrite(store, (pages / 2) * page, std::string(8, '\xff'));
    }
    SUBCASE("the root page of the events table") {
      auto root = sh("sqlite3 \"$DB\" \"SELECT rootpage FROM sqlite_schema WHERE name = 'events'\"", db);
      REQUIRE(root.status == 0);
      overwrite(store, (std::stoll(root.out) - 1) * page + 2, std::string(6, '\x5a'));
    }
    SUBCASE("the last page") {
      overwrite(store, (pages - 1) * page, std::string(12, '\x01'));
    }
    auto j = verify_json(store);
    CHECK(j["ok"] == false);
    CHECK(kinds(j) == std::set<std::string>{"integrity"});
    auto h = run({"--store", store, "verify"});
    CHECK(h.status == 6);
    CHECK(h.out.rfind("integrity: quick_check: ", 0) == 0);
  }

  TEST_CASE("a store whose header or schema cannot be read exits 1 with a clear message" * sqlite_only()) {
    TempDir dir;
    auto store = make_store(dir, 2, 50);
    SUBCASE("schema page") {
      overwrite(store, 100, std::string(12, '\xff'));  // the b-tree header of sqlite_schema
      auto r = run({"--store", store, "verify"});
      CHECK(r.status == 1);
      CHECK(r.out.empty());
      CHECK(r.err.find("is too damaged to verify") != std::string::npos);
    }
    SUBCASE("file header") {
      overwrite(store, 0, "NOT SQLITE AT ALL");
      auto r = run({"--store", store, "verify"});
      CHECK(r.status == 1);
      CHECK(r.err.find("not an esctl store") != std::string::npos);
    }
  }

  TEST_CASE("missing stores, streams and queues exit 4, bad option mixes exit 2") {
    TempDir dir;
    auto r = run({"--store", dir / "none.db", "verify"});
    CHECK(r.status == 4);
    CHECK(r.err.find("no store at") != std::string::npos);
    CHECK(!exists(dir / "none.db"));
    auto store = make_store(dir, 1, 3);
    auto s = run({"--store", store, "verify", "--stream", "nope"});
    CHECK(s.status == 4);
    CHECK(s.err.find("stream 'nope' not found") != std::string::npos);
    CHECK(run({"--store", store, "verify", "--queue", "nope"}).status == 4);
    CHECK(run({"--store", store, "verify", "--no-gaps"}).status == 2);
    CHECK(run({"--store", store, "verify", "--log", dir / "x", "--stream", "s0-x"}).status == 2);
    if (postgres_backend()) return;  // the rest is about files
    write_file(dir / "plain.db", "just text");
    CHECK(run({"--store", dir / "plain.db", "verify"}).status == 1);
  }

  TEST_CASE("--stream checks one stream only" * sqlite_only()) {
    TempDir dir;
    auto store = make_store(dir, 3, 10);
    sqlite(store, std::string(kDropTriggers) + "UPDATE events SET meta = 'nope' WHERE position = 5;" + kTriggers);
    auto bad = verify_json(store, {"--stream", "s1-x"});
    CHECK(kinds(bad) == std::set<std::string>{"json_invalid"});
    CHECK(bad["checked"]["events"] == 10);
    CHECK(bad["integrity"] == "skipped");
    auto good = verify_json(store, {"--stream", "s0-x"}, 0);
    CHECK(good["ok"] == true);
  }

  TEST_CASE("verify changes nothing on disk") {
    TempDir dir;
    auto store = make_store(dir, 3, 100);
    REQUIRE(!exists(store + "-wal"));
    auto before = file_hash(store);
    CHECK(run({"--store", store, "verify", "--full"}).status == 0);
    CHECK(file_hash(store) == before);
    CHECK(!exists(store + "-wal"));
    CHECK(!exists(store + "-shm"));
  }

  TEST_CASE("verify reports nothing while appenders write concurrently") {
    TempDir dir;
    auto store = make_store(dir, 3, 20);
    // Three writers importing in small batches (many commits) to shared and own streams;
    // verify runs again and again until they are done.
    std::vector<int> pids;
    for (int w = 0; w < 3; ++w) {
      std::string input, file = dir / ("in" + std::to_string(w) + ".ndjson");
      for (int i = 0; i < 2000; ++i)
        input += "{\"stream\":\"s" + std::to_string((i + w) % 5) + "-x\",\"type\":\"T\",\"data\":{\"w\":" +
                 std::to_string(w) + "}}\n";
      write_file(file, input);
      pids.push_back(spawn({"--store", store, "import", "--batch", "2", file}, "/dev/null", dir / "err.txt"));
    }
    std::vector<int> status(pids.size(), -1);
    auto running = [&] {
      bool any = false;
      for (std::size_t i = 0; i < pids.size(); ++i) {
        int st = 0;
        if (status[i] == -1 && ::waitpid(pids[i], &st, WNOHANG) == pids[i])
          status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        any = any || status[i] == -1;
      }
      return any;
    };
    int runs = 0;
    for (; running() && runs < 100; ++runs) {
      auto r = run({"--store", store, "--json", "verify"});
      INFO(r.out << r.err);
      REQUIRE(r.status == 0);
    }
    for (std::size_t i = 0; i < pids.size(); ++i)
      if (status[i] == -1) status[i] = wait_for(pids[i]);
    for (int st : status) CHECK_MESSAGE(st == 0, read_file(dir / "err.txt"));
    MESSAGE("verify ran " << runs << " times while appenders wrote");
    auto j = verify_json(store, {}, 0);
    CHECK(j["checked"]["events"] == 60 + 6000);
  }

  TEST_CASE("a delivery log in order passes, redelivered batches are counted") {
    TempDir dir;
    auto r = verify_log(dir,
                        "{\"position\":1,\"stream\":\"a-1\",\"version\":0,\"type\":\"T\",\"data\":{}}\n"
                        "{\"position\":2,\"stream\":\"b-1\",\"version\":0}\n"
                        "{\"stream\":\"a-1\",\"version\":1}\n"
                        "{\"stream\":\"a-1\",\"version\":2}\n"
                        "{\"stream\":\"a-1\",\"version\":3}\n"
                        "\n"
                        "{\"stream\":\"a-1\",\"version\":1}\n"
                        "{\"stream\":\"a-1\",\"version\":2}\n"
                        "{\"stream\":\"a-1\",\"version\":3}\n"
                        "{\"stream\":\"a-1\",\"version\":4}\n",
                        {"--no-gaps"});
    CHECK(r.status == 0);
    auto j = json::parse(r.out);
    CHECK(j["ok"] == true);
    CHECK(j["checked"]["lines"] == 9);
    CHECK(j["checked"]["streams"] == 2);
    CHECK(j["checked"]["first_deliveries"] == 6);
    CHECK(j["checked"]["redeliveries"] == 3);
    auto h = run({"verify", "--log", dir / "seen.ndjson"});
    CHECK(h.status == 0);
    CHECK(h.out == "verify: ok, no violations (checked 9 deliveries of 2 streams: 6 first deliveries, 3 redeliveries)\n");
  }

  TEST_CASE("a reordered delivery log is a violation at the late line") {
    TempDir dir;
    auto r = verify_log(dir,
                        "{\"stream\":\"a-1\",\"version\":0}\n"
                        "{\"position\":9,\"stream\":\"a-1\",\"version\":2}\n"
                        "{\"position\":5,\"stream\":\"a-1\",\"version\":1}\n");
    CHECK(r.status == 6);
    auto j = json::parse(r.out);
    REQUIRE(j["violations"].size() == 1);
    auto v = j["violations"][0];
    CHECK(v["kind"] == "delivery_order");
    CHECK(v["stream"] == "a-1");
    CHECK(v["version"] == 1);
    CHECK(v["position"] == 5);
    CHECK(v["line"] == 3);
    auto h = run({"verify", "--log", dir / "seen.ndjson"});
    CHECK(h.status == 6);
    CHECK(lines(h.out)[0].rfind("delivery_order: a-1@1 #5 (line 3): first delivery of version 1 came after version 2", 0) == 0);
  }

  TEST_CASE("a gap in a delivery log is a violation only with --no-gaps") {
    TempDir dir;
    const std::string log = "{\"stream\":\"a-1\",\"version\":0}\n{\"stream\":\"a-1\",\"version\":2}\n";
    CHECK(verify_log(dir, log).status == 0);
    auto r = verify_log(dir, log, {"--no-gaps"});
    CHECK(r.status == 6);
    auto j = json::parse(r.out);
    REQUIRE(j["violations"].size() == 1);
    CHECK(j["violations"][0]["kind"] == "delivery_gap");
    CHECK(j["violations"][0]["version"] == 2);
    CHECK(j["violations"][0]["line"] == 2);
  }

  TEST_CASE("a malformed log line exits 5 naming the line, a missing log exits 4") {
    TempDir dir;
    auto r = verify_log(dir, "{\"stream\":\"a-1\",\"version\":0}\n{\"stream\":\"a-1\",\"vers\n");
    CHECK(r.status == 5);
    CHECK(r.err.find("seen.ndjson' line 2: not a JSON object") != std::string::npos);
    auto m = verify_log(dir, "{\"stream\":\"a-1\"}\n");
    CHECK(m.status == 5);
    CHECK(m.err.find("line 1: missing \"version\"") != std::string::npos);
    auto missing = run({"verify", "--log", dir / "nope.ndjson"});
    CHECK(missing.status == 4);
    CHECK(missing.err.find("log file") != std::string::npos);
    RunOptions in;
    in.input = "{\"stream\":\"x\",\"version\":1}\n{\"stream\":\"x\",\"version\":0}\n";
    CHECK(run({"verify", "--log", "-"}, in).status == 6);
  }

  TEST_CASE("--log --queue finds acked events missing at the start, middle and end of a stream") {
    TempDir dir;
    auto store = make_store(dir, 3, 5);  // s0-x..s2-x, versions 0..4
    REQUIRE(run({"--store", store, "queue", "create", "seen", "--from", "start"}).status == 0);
    RunOptions o;
    o.env["LOG"] = dir / "full.ndjson";
    o.env["DB"] = store;
    auto d = sh("\"$ESCTL\" --store \"$DB\" -q queue drain seen --batch 4 --exec 'cat >> \"$LOG\"'", o);
    REQUIRE_MESSAGE(d.status == 0, d.err);
    auto full = lines(read_file(dir / "full.ndjson"));
    REQUIRE(full.size() == 15);
    auto check = [&](const std::vector<std::string>& log_lines, std::vector<std::string> extra = {}) {
      std::string log;
      for (const auto& l : log_lines) log += l + "\n";
      write_file(dir / "seen.ndjson", log);
      std::vector<std::string> args{"--store", store, "--json", "verify", "--log", dir / "seen.ndjson", "--queue", "seen"};
      args.insert(args.end(), extra.begin(), extra.end());
      return run(args);
    };
    // Complete, and complete with redeliveries (a batch sent twice): clean.
    auto r = check(full);
    CHECK_MESSAGE(r.status == 0, r.out, r.err);
    auto j = json::parse(r.out);
    CHECK(j["checked"]["acked"] == 15);
    CHECK(j["checked"]["missing"] == 0);
    auto twice = full;
    twice.insert(twice.begin() + 6, full.begin() + 2, full.begin() + 6);
    r = check(twice, {"--no-gaps"});
    CHECK_MESSAGE(r.status == 0, r.out, r.err);
    CHECK(json::parse(r.out)["checked"]["redeliveries"] == 4);

    // Drop one stream's first (s0-x@0), middle (s1-x@2) and last (s2-x@4) events.
    auto without = [&](const std::string& stream, int version) {
      std::vector<std::string> out;
      for (const auto& l : full) {
        auto e = json::parse(l);
        if (e["stream"] != stream || e["version"] != version) out.push_back(l);
      }
      REQUIRE(out.size() == full.size() - 1);
      return out;
    };
    for (auto [stream, k, version] : {std::tuple{"s0-x", 0, 0}, std::tuple{"s1-x", 1, 2}, std::tuple{"s2-x", 2, 4}}) {
      INFO(stream, "@", version);
      auto log = without(stream, version);
      // The log alone cannot tell, even with --no-gaps, at the start or the end of a stream.
      if (version != 2) {
        write_file(dir / "alone.ndjson", [&] {
          std::string t;
          for (const auto& l : log) t += l + "\n";
          return t;
        }());
        CHECK(run({"verify", "--log", dir / "alone.ndjson", "--no-gaps"}).status == 0);
      }
      r = check(log);
      CHECK(r.status == 6);
      j = json::parse(r.out);
      REQUIRE(j["violations"].size() == 1);
      auto v = j["violations"][0];
      CHECK(v["kind"] == "missing");
      CHECK(v["stream"] == stream);
      CHECK(v["version"] == version);
      CHECK(v["position"] == pos(3, k, version));
      CHECK(j["checked"]["missing"] == 1);
      auto h = run({"--store", store, "verify", "--log", dir / "seen.ndjson", "--queue", "seen"});
      CHECK(h.status == 6);
      CHECK_MESSAGE(contains(h.out, fmt::format("missing: {}@{} #{}: acked by queue 'seen' but not in the log", stream,
                                                version, pos(3, k, version))),
                    h.out);
    }

    // In flight is not acked: a leased event need not be in the log.
    REQUIRE(run({"--store", store, "append", "s0-x", "T"}).status == 0);
    REQUIRE(run({"--store", store, "queue", "pull", "seen"}).status == 0);
    CHECK(check(full).status == 0);
    // After a reset, the queue's start moves: events acked before it are not required.
    REQUIRE(run({"--store", store, "queue", "reset", "seen", "--to", "end", "--force"}).status == 0);
    r = check({});
    CHECK_MESSAGE(r.status == 0, r.out);
    CHECK(json::parse(r.out)["checked"]["acked"] == 0);

    // Errors: no store (nothing created), no such queue, two queues.
    r = run({"--store", dir / "none.db", "verify", "--log", dir / "seen.ndjson", "--queue", "seen"});
    CHECK(r.status == 4);
    CHECK(contains(r.err, "no store at"));
    CHECK(!exists(dir / "none.db"));
    CHECK(run({"--store", store, "verify", "--log", dir / "seen.ndjson", "--queue", "nope"}).status == 4);
    CHECK(run({"--store", store, "verify", "--log", dir / "seen.ndjson", "--queue", "seen", "--queue", "x"}).status == 2);
  }

  TEST_CASE("the log of a real drain verifies, when queues are available") {
    TempDir dir;
    auto store = make_store(dir, 4, 30);
    if (run({"--store", store, "queue", "create", "seen", "--from", "start"}).status != 0) return;
    RunOptions o;
    o.env["LOG"] = dir / "seen.ndjson";
    o.env["DB"] = store;
    auto d = sh("\"$ESCTL\" --store \"$DB\" -q queue drain seen --batch 7 --exec 'cat >> \"$LOG\"'", o);
    REQUIRE_MESSAGE(d.status == 0, d.err);
    auto r = run({"--json", "verify", "--log", dir / "seen.ndjson", "--no-gaps"});
    CHECK(r.status == 0);
    CHECK(json::parse(r.out)["checked"]["first_deliveries"] == 120);
  }
}
