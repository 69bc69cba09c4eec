// esctl import and esctl export (esctl-import(1), esctl-export(1)) through the binary: the round trip,
// batches, idempotent re-runs, version checks, bad lines, SIGINT between batches, and what
// export selects and prints.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

extern char** environ;

using namespace esctl::test;
using nlohmann::json;

namespace {

Result import(const std::string& store, std::vector<std::string> args, const std::string& input = {}) {
  std::vector<std::string> argv{"--store", store, "import"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, RunOptions{input, {}, ""});
}

std::string export_all(const std::string& store) {
  auto r = run({"--store", store, "export"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return r.out;
}

std::int64_t event_count(const std::string& store) {
  auto r = run({"--store", store, "--json", "stats"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return json::parse(r.out)["events"];
}

std::string line(const std::string& stream, const std::string& type, const std::string& data = "{}",
                 const std::string& extra = "") {
  return "{\"stream\":\"" + stream + "\",\"type\":\"" + type + "\",\"data\":" + data + extra + "}\n";
}

std::string uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "01900000-0000-7000-8000-%012d", n);
  return buf;
}

/// n events over `streams` interleaved streams, each with an id, its version and a recorded_at.
std::string numbered(int n, int streams) {
  std::string out;
  std::vector<int> next(static_cast<std::size_t>(streams), 0);
  for (int i = 0; i < n; ++i) {
    int s = i % streams;
    char at[40];
    std::snprintf(at, sizeof at, "2026-01-01T00:00:00.%06dZ", i % 1000000);
    out += line("s-" + std::to_string(s), "T", "{\"i\":" + std::to_string(i) + "}",
                ",\"id\":\"" + uuid(i) + "\",\"version\":" + std::to_string(next[static_cast<std::size_t>(s)]++) +
                    ",\"recorded_at\":\"" + at + "\"");
  }
  return out;
}

}  // namespace

TEST_SUITE("cli/import_export") {
  TEST_CASE("export | import into an empty store reproduces everything, and re-exports byte-identical") {
    TempDir d;
    auto a = d / "a.db", b = d / "b.db";
    REQUIRE(run({"--store", a, "append", "order-1", "Placed", R"({"total": 1.50, "s": "\u00e9\n"})"}).status == 0);
    REQUIRE(run({"--store", a, "append", "customer-1", "Joined", "[1, 2e3, null]", "--meta", R"({"u": "ann"})"}).status ==
            0);
    REQUIRE(run({"--store", a, "append", "order-1", "Shipped", "\"plain\"", "--id", uuid(5)}).status == 0);
    REQUIRE(run({"--store", a, "append", "weird \xe2\x82\xac \"name\"", "T", "0"}).status == 0);
    auto first = export_all(a);
    REQUIRE(lines(first).size() == 4);
    CHECK(run({"--store", a, "--json", "export"}).out == first);
    auto r = run({"--store", b, "--json", "import"}, RunOptions{first, {}, ""});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto summary = json::parse(r.out);
    CHECK(summary["imported"] == 4);
    CHECK(summary["skipped"] == 0);
    CHECK(summary["batches"] == 1);
    CHECK(export_all(b) == first);
    // Through a real pipe, as users run it.
    auto c = d / "c.db";
    r = sh("\"$ESCTL\" --store '" + a + "' export --json | \"$ESCTL\" --store '" + c + "' -q import -");
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out.empty());
    CHECK(export_all(c) == first);
  }

  TEST_CASE("a larger round trip over many interleaved streams, in small batches, is exact") {
    TempDir d;
    auto a = d / "a.db", b = d / "b.db";
    auto r = import(a, {"--batch", "1000"}, numbered(3000, 37));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(contains(r.out, "imported 3000 events"));
    CHECK(contains(r.out, "in 3 batches"));
    auto first = export_all(a);
    r = import(b, {"--batch", "7"}, first);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(export_all(b) == first);
  }

  TEST_CASE("import reads a FILE argument, a missing FILE exits 4 without creating the store") {
    TempDir d;
    auto store = d / "s.db";
    write_file(d / "in.ndjson", line("s", "T") + "\n   \n" + line("s", "U"));
    auto r = import(store, {d / "in.ndjson"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(event_count(store) == 2);
    auto other = d / "other.db";
    r = import(other, {d / "missing.ndjson"});
    CHECK(r.status == 4);
    CHECK(contains(r.err, "missing.ndjson"));
    CHECK_FALSE(std::filesystem::exists(other));
  }

  TEST_CASE("a bad line exits 5 naming its line, its batch is not written, earlier batches stay") {
    TempDir d;
    auto store = d / "s.db";
    std::string input = numbered(5, 2) + "{\"stream\":\"s-0\",\"type\":\"T\",\"data\":{oops}}\n" + numbered(3, 2);
    auto r = import(store, {"--batch", "2"}, input);
    CHECK(r.status == 5);
    CHECK(contains(r.err, "line 6"));
    CHECK(contains(r.err, "4 events imported"));
    CHECK(event_count(store) == 4);  // batches 1-2 and 3-4; line 5 shared its batch with line 6
    r = import(store, {}, input);
    CHECK(r.status == 5);
    CHECK(event_count(store) == 4);
    for (std::string bad : {line("$x", "T"), line("s", ""), std::string("{\"type\":\"T\"}\n"), std::string("[]\n"),
                            line("s", "T", "{}", ",\"id\":\"nope\"")}) {
      INFO(bad);
      r = import(store, {}, line("s", "T") + bad);
      CHECK(r.status == 5);
      CHECK(contains(r.err, "line 2"));
    }
    CHECK(event_count(store) == 4);
  }

  TEST_CASE("a line without data exits 5 naming the line, as documented, and nothing of its batch is written") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(import(store, {}, line("a-1", "T")).status == 0);
    auto before = export_all(store);
    auto r = import(store, {"--batch", "2"}, line("x-1", "T") + line("x-1", "T") + line("x-1", "T") +
                                                  "{\"stream\":\"x-1\",\"type\":\"T\"}\n");
    CHECK(r.status == 5);
    CHECK_MESSAGE(contains(r.err, "line 4: missing \"data\""), r.err);
    CHECK(event_count(store) == 3);  // the first batch (lines 1-2) stays, line 3 shared line 4's batch
    r = import(store, {}, "{\"stream\":\"x-2\",\"type\":\"T\"}\n");
    CHECK(r.status == 5);
    CHECK(contains(r.err, "line 1: missing \"data\""));
    // append --ndjson reads the same lines: one transaction, nothing written.
    r = run({"--store", store, "append", "x-3", "--ndjson"},
            RunOptions{"{\"type\":\"T\",\"data\":{}}\n{\"type\":\"T\"}\n", {}, ""});
    CHECK(r.status == 5);
    CHECK_MESSAGE(contains(r.err, "line 2: missing \"data\""), r.err);
    CHECK(event_count(store) == 3);
    CHECK(run({"--store", store, "read", "x-3"}).status == 4);
    // Explicit empty data is fine.
    CHECK(import(store, {}, "{\"stream\":\"x-2\",\"type\":\"T\",\"data\":{}}\n").status == 0);
    CHECK(export_all(store).substr(0, before.size()) == before);
  }

  TEST_CASE("from a FILE, read a batch ahead while one is written, batches, bad lines and conflicts are as from stdin") {
    TempDir d;
    auto input = numbered(3000, 37);
    write_file(d / "in.ndjson", input);
    auto piped = d / "piped.db", filed = d / "filed.db";
    REQUIRE(import(piped, {"--batch", "7"}, input).status == 0);
    auto r = import(filed, {"--batch", "7", d / "in.ndjson"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(contains(r.out, "imported 3000 events"));
    CHECK(contains(r.out, "in 429 batches"));
    CHECK(export_all(filed) == export_all(piped));

    // A bad line in the third batch: the two before it are written, nothing after it.
    write_file(d / "bad.ndjson", numbered(5, 2) + "{\"stream\":\"s-0\",\"type\":\"T\",\"data\":{oops}}\n" + numbered(3, 2));
    auto store = d / "bad.db";
    r = import(store, {"--batch", "2", d / "bad.ndjson"});
    CHECK(r.status == 5);
    CHECK(contains(r.err, "line 6"));
    CHECK(contains(r.err, "4 events imported"));
    CHECK(event_count(store) == 4);

    // A conflict in the second batch while the third is already read: only the first is written.
    auto conflicted = d / "conflict.db";
    REQUIRE(run({"--store", conflicted, "append", "s-1", "T"}).status == 0);
    write_file(d / "conflict.ndjson", line("s-2", "T", "{}", ",\"version\":0") + line("s-3", "T", "{}", ",\"version\":0") +
                                          line("s-1", "T", "{}", ",\"version\":0") + line("s-4", "T") +
                                          line("s-5", "T") + line("s-6", "T"));
    r = import(conflicted, {"--batch", "2", d / "conflict.ndjson"});
    CHECK(r.status == 3);
    CHECK(contains(r.err, "line 3"));
    CHECK(contains(r.err, "committed before it: 2 events imported"));
    CHECK(event_count(conflicted) == 3);
  }

  TEST_CASE("re-running an import that stopped part way finishes it without duplicates") {
    TempDir d;
    auto store = d / "s.db", whole = d / "whole.db";
    auto input = numbered(50, 4);
    // The first 23 lines made it (as if interrupted), then the whole file is imported again.
    std::string head;
    auto ls = lines(input);
    for (int i = 0; i < 23; ++i) head += ls[static_cast<std::size_t>(i)] + "\n";
    REQUIRE(import(store, {"--batch", "10"}, head).status == 0);
    auto r = import(store, {"--batch", "10", "--json"}, input);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto j = json::parse(r.out);
    CHECK(j["imported"] == 27);
    CHECK(j["skipped"] == 23);
    CHECK(j["batches"] == 5);
    CHECK(j["lines"] == 50);
    REQUIRE(import(whole, {}, input).status == 0);
    CHECK(export_all(store) == export_all(whole));
    // And once more: everything is skipped.
    j = json::parse(import(store, {"--json"}, input).out);
    CHECK(j["imported"] == 0);
    CHECK(j["skipped"] == 50);
  }

  TEST_CASE("a line's version is checked as an expected version: a mismatch exits 3 naming line and stream") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "s-1", "T"}).status == 0);
    auto r = import(store, {}, line("s-2", "T", "{}", ",\"version\":0") + line("s-1", "T", "{}", ",\"version\":0"));
    CHECK(r.status == 3);
    CHECK(contains(r.err, "line 2"));
    CHECK(contains(r.err, "stream 's-1' is at version 0"));
    CHECK(contains(r.err, "(expected-version conflict; --ignore-versions appends at the end)"));  // the flag, not the store's words
    CHECK(event_count(store) == 1);
    r = import(store, {}, line("s-1", "T", "{}", ",\"version\":1") + line("s-1", "T", "{}", ",\"version\":2"));
    CHECK(r.status == 0);
    CHECK(event_count(store) == 3);
  }

  TEST_CASE("--ignore-versions appends each event at the end of its stream") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "s-1", "T"}).status == 0);
    auto r = import(store, {"--ignore-versions"},
                    line("s-1", "T", "{}", ",\"version\":7") + line("s-1", "T", "{}", ",\"version\":3"));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto ev = parse_lines(run({"--store", store, "--json", "read", "s-1"}).out);
    REQUIRE(ev.size() == 3);
    CHECK(ev[1]["version"] == 1);
    CHECK(ev[2]["version"] == 2);
  }

  TEST_CASE("an id already used by a different event stops the import with exit 3") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "s", "T", "--id", uuid(1)}).status == 0);
    auto r = import(store, {}, line("s", "T", "{}", ",\"id\":\"" + uuid(2) + "\"") +
                                   line("s", "Other", "{}", ",\"id\":\"" + uuid(1) + "\""));
    CHECK(r.status == 3);
    CHECK(contains(r.err, "line 2"));
    CHECK(contains(r.err, "already used"));
    CHECK(event_count(store) == 1);
  }

  TEST_CASE("a batch mixing stored ids with new ones imports the new ones densely, a clashing one in the middle stores none") {
    TempDir d;
    auto store = d / "s.db";
    auto with_id = [](const std::string& stream, const std::string& type, int n) {
      return line(stream, type, "{}", ",\"id\":\"" + uuid(n) + "\"");
    };
    std::string fill;  // 100 new events first: a batch this large may take its ids as new at first
    for (int i = 0; i < 100; ++i) fill += with_id("f", "T", 1000 + i);
    REQUIRE(import(store, {}, with_id("a", "T", 1) + with_id("b", "T", 2)).status == 0);
    auto r = import(store, {}, fill + with_id("c", "T", 3) + with_id("b", "Other", 2) + with_id("a", "T", 4));
    CHECK(r.status == 3);
    CHECK(contains(r.err, "line 102"));
    CHECK(contains(r.err, "already used"));
    CHECK(event_count(store) == 2);
    const std::string mixed = fill + with_id("c", "T", 3) + with_id("b", "T", 2) + with_id("a", "T", 4) + with_id("a", "T", 1);
    r = import(store, {"--json"}, mixed);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(json::parse(r.out)["imported"] == 102);
    CHECK(json::parse(r.out)["skipped"] == 2);
    auto ev = parse_lines(run({"--store", store, "--json", "read", "--all"}).out);
    REQUIRE(ev.size() == 104);
    for (std::size_t i = 0; i < ev.size(); ++i) CHECK(ev[i]["position"] == i + 1);
    CHECK(ev[102]["id"] == uuid(3));
    CHECK(ev[103]["stream"] == "a");
    CHECK(ev[103]["version"] == 1);
    r = import(store, {"--json"}, mixed);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(json::parse(r.out)["skipped"] == 104);
    CHECK(event_count(store) == 104);
  }

  TEST_CASE("a relayed batch imported twice with --ignore-versions is stored once") {
    TempDir d;
    auto src = d / "src.db", dst = d / "dst.db";
    REQUIRE(import(src, {}, numbered(20, 3)).status == 0);
    auto batch = run({"--store", src, "export", "--category", "s", "--from", "5"}).out;
    REQUIRE(import(dst, {"--ignore-versions"}, batch).status == 0);
    auto r = import(dst, {"--ignore-versions", "--json"}, batch);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(json::parse(r.out)["skipped"] == 16);
    CHECK(event_count(dst) == 16);
  }

  TEST_CASE("--batch must be a positive integer") {
    TempDir d;
    for (const char* bad : {"0", "-5", "x", ""}) {
      INFO(bad);
      CHECK(import(d / "s.db", {"--batch", bad}, line("s", "T")).status == 2);
    }
  }

  TEST_CASE("no progress is drawn and nothing goes to stderr when stderr is not a terminal") {
    TempDir d;
    auto r = import(d / "s.db", {}, numbered(100, 3));
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(lines(r.out).size() == 1);
  }

  TEST_CASE("SIGINT stops an import between batches with exit 130, committed batches stay, a re-run finishes") {
    TempDir d;
    auto store = d / "s.db";
    auto input = numbered(10, 2);
    auto ls = lines(input);
    int in[2];
    REQUIRE(::pipe(in) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addopen(&fa, 2, (d / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> args{bin(), "--store", store_location(store), "import", "--batch", "4"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    REQUIRE(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    // One full batch and half of the next, then wait until the first batch is committed.
    std::string part;
    for (int i = 0; i < 6; ++i) part += ls[static_cast<std::size_t>(i)] + "\n";
    REQUIRE(::write(in[1], part.data(), part.size()) == static_cast<ssize_t>(part.size()));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = run({"--store", store, "--json", "stats"});
      if (r.status == 0 && json::parse(r.out)["events"] == 4) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Repeated, because a SIGINT that lands just before the import blocks in read() is seen
    // only when the read is interrupted (as when a user presses Ctrl-C twice).
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      ::kill(pid, SIGINT);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::close(in[1]);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 130);
    auto err = read_file(d / "err");
    CHECK(contains(err, "interrupted"));
    CHECK(contains(err, "4 events imported"));
    CHECK(event_count(store) == 4);
    auto r = import(store, {"--json"}, input);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(json::parse(r.out)["skipped"] == 4);
    CHECK(event_count(store) == 10);
  }

  TEST_CASE("export writes full event objects in position order, with or without --json") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(import(store, {}, numbered(30, 4)).status == 0);
    auto plain = run({"--store", store, "export"});
    REQUIRE(plain.status == 0);
    CHECK(run({"--store", store, "export", "--json"}).out == plain.out);
    CHECK(run({"--store", store, "export", "--all"}).out == plain.out);
    auto ev = parse_lines(plain.out);
    REQUIRE(ev.size() == 30);
    for (std::size_t i = 0; i < ev.size(); ++i) {
      CHECK(ev[i]["position"] == i + 1);
      CHECK(ev[i].size() == 8);
    }
  }

  TEST_CASE("export selects a stream, a category or everything from a position") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(import(store, {}, numbered(30, 3) + line("other-1", "T") + line("s", "T")).status == 0);
    auto s1 = parse_lines(run({"--store", store, "export", "s-1"}).out);
    REQUIRE(s1.size() == 10);
    for (std::size_t v = 0; v < s1.size(); ++v) CHECK(s1[v]["version"] == v);
    auto s1_late = parse_lines(run({"--store", store, "export", "s-1", "--from", "20"}).out);
    REQUIRE(s1_late.size() == 4);  // positions 20, 23, 26, 29
    CHECK(s1_late[0]["position"] == 20);
    CHECK(parse_lines(run({"--store", store, "export", "--category", "s"}).out).size() == 31);  // s-0..s-2 and s
    CHECK(parse_lines(run({"--store", store, "export", "--category", "other"}).out).size() == 1);
    auto tail = parse_lines(run({"--store", store, "export", "--from", "31"}).out);
    REQUIRE(tail.size() == 2);
    CHECK(tail[0]["stream"] == "other-1");
    CHECK(run({"--store", store, "export", "--from", "99"}).out.empty());
  }

  TEST_CASE("export of a missing stream or store exits 4, conflicting selections exit 2") {
    TempDir d;
    auto store = d / "s.db";
    CHECK(run({"--store", store, "export"}).status == 4);
    CHECK_FALSE(std::filesystem::exists(store));
    REQUIRE(run({"--store", store, "append", "s", "T"}).status == 0);
    auto r = run({"--store", store, "export", "nope"});
    CHECK(r.status == 4);
    CHECK(contains(r.err, "'nope'"));
    CHECK(run({"--store", store, "export", "s", "--all"}).status == 2);
    CHECK(run({"--store", store, "export", "--all", "--category", "s"}).status == 2);
    CHECK(run({"--store", store, "export", "--from", "x"}).status == 2);
  }

  TEST_CASE("export piped into head ends quietly with status 0") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(import(store, {}, numbered(3000, 5)).status == 0);
    auto r = sh("{ \"$ESCTL\" --store '" + store + "' export 2>'" + (d / "err") + "'; echo $? >'" + (d / "rc") +
                "'; } | head -1");
    CHECK(lines(r.out).size() == 1);
    CHECK(read_file(d / "rc") == "0\n");
    CHECK(read_file(d / "err").empty());
  }
}
