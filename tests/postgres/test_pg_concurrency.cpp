// Concurrency on a PostgreSQL store, with real esctl processes started as a shell starts them:
// 8 appending processes (nothing lost, contiguous versions, dense positions), a 32-way
// `append --expect N` race (one winner; the losers exit 3 and burn no position), a `tail -f --all`
// follower beside 8 writers (positions only rising, none missed: it prints what `read --all`
// gives), and appenders and drainers killed with SIGKILL mid-run (atomic batches, nothing lost,
// `verify` and `verify --log` clean). The CLI suite's PostgreSQL pass ("pg: " tests) runs more
// of this on both backends: "16 processes appending ..." and "32 processes racing on one
// --expect N ..." (tests/cli/test_attack_concurrency.cpp), "two drain processes on one queue
// share it ..." (tests/cli/test_queue_shared.cpp), kill -9 of `append --ndjson` and `import`
// alone (test_attack_crash.cpp) and of a drainer alone (test_queue_crash.cpp).
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/cli.hpp"
#include "support/pg_db.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

/// Positions 1..N with no gap, versions 0..n-1 per stream in position order; returns the
/// number of events per stream.
std::map<std::string, std::int64_t> check_dense(const std::vector<json>& events) {
  std::map<std::string, std::int64_t> next_version;
  std::int64_t expected_position = 1;
  int bad_positions = 0, bad_versions = 0;
  for (const auto& e : events) {
    if (e["position"].get<std::int64_t>() != expected_position) ++bad_positions;
    expected_position = e["position"].get<std::int64_t>() + 1;
    auto& v = next_version[e["stream"].get<std::string>()];
    if (e["version"].get<std::int64_t>() != v) ++bad_versions;
    v = e["version"].get<std::int64_t>() + 1;
  }
  CHECK(bad_positions == 0);
  CHECK(bad_versions == 0);
  return next_version;
}

std::int64_t head_position(const std::string& uri) {
  auto r = run({"--store", uri, "--json", "stats"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return json::parse(r.out)["head_position"].get<std::int64_t>();
}

/// Waits (bounded by a generous deadline, not a timing assertion) until `file` holds at least
/// `n` lines; returns its content either way.
std::string wait_for_lines(const std::string& file, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    std::string text = read_file(file);
    if (static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) >= n ||
        std::chrono::steady_clock::now() > deadline)
      return text;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void verify_clean(const std::string& uri) {
  auto v = run({"--store", uri, "verify"});
  CHECK_MESSAGE(v.status == 0, v.out, v.err);
}

/// Runs `procs` appending processes at once against `uri`, each `rounds` times: one append to
/// shared-1, then one --ndjson batch of `batch` events to its own stream own-P; every event's
/// data is {"p":P,"i":ROUND,"k":0..batch}. CHECKs that every append exited 0.
void append_at_once(const std::string& uri, int procs, int rounds, int batch) {
  std::string script;
  for (int p = 0; p < procs; ++p) {
    std::string format, args;  // printf's format and arguments for the batch of round $i
    for (int k = 1; k <= batch; ++k) {
      format += fmt::format(R"({{"type":"T","data":{{"p":{},"i":%s,"k":{}}}}}\n)", p, k);
      args += " $i";
    }
    script += fmt::format(
        "( for i in $(seq 0 {0}); do "
        "\"$ESCTL\" -q --store \"$STORE\" --busy-timeout 60s append shared-1 T \"{{\\\"p\\\":{1},\\\"i\\\":$i,\\\"k\\\":0}}\" "
        "|| echo \"FAIL {1} $i\"; "
        "printf '{2}'{3} | \"$ESCTL\" -q --store \"$STORE\" --busy-timeout 60s append own-{1} --ndjson - || echo \"FAIL {1} $i\"; "
        "done ) & ",
        rounds - 1, p, format, args);
  }
  auto r = sh(script + "wait", RunOptions{"", {{"STORE", uri}}, ""});
  REQUIRE(r.status == 0);
  CHECK_MESSAGE(!contains(r.out, "FAIL"), r.out, r.err);
}

std::string uuid_for(int n) { return fmt::format("0190a6e4-6d5a-7c4e-9a51-{:012x}", n); }

}  // namespace

TEST_SUITE("postgres/concurrency") {
  TEST_CASE("pg: 8 appending processes, to one stream and to many: nothing lost, contiguous versions, dense positions") {
    TempDatabase db;
    TempDir dir;
    REQUIRE(run({"--store", db.uri(), "init"}).status == 0);
    // Each process: 6 single appends to shared-1, each followed by a 2-event --ndjson batch to
    // its own stream.
    constexpr int kProcs = 8, kRounds = 6;
    append_at_once(db.uri(), kProcs, kRounds, 2);

    auto events = all_events(db.uri());
    REQUIRE(events.size() == static_cast<std::size_t>(kProcs * kRounds * 3));
    auto counts = check_dense(events);
    CHECK(counts["shared-1"] == kProcs * kRounds);
    for (int p = 0; p < kProcs; ++p) CHECK(counts[fmt::format("own-{}", p)] == kRounds * 2);
    // Each (process, round, part) once, and each process's events in the order it wrote them.
    std::set<std::tuple<int, int, int>> seen;
    std::map<int, std::pair<int, int>> last;
    int out_of_order = 0;
    for (const auto& e : events) {
      const int p = e["data"]["p"], i = e["data"]["i"], k = e["data"]["k"];
      seen.insert({p, i, k});
      if (last.count(p) && std::make_pair(i, k) <= last[p]) ++out_of_order;
      last[p] = {i, k};
    }
    CHECK(seen.size() == events.size());
    CHECK(out_of_order == 0);
    CHECK(head_position(db.uri()) == static_cast<std::int64_t>(events.size()));
    verify_clean(db.uri());
  }

  TEST_CASE("pg: a 32-way append --expect N race: one winner, 31 exit 3, the store unchanged by them (no position used)") {
    TempDatabase db;
    TempDir dir;
    REQUIRE(run({"--store", db.uri(), "append", "race-1", "Start"}).status == 0);
    REQUIRE(run({"--store", db.uri(), "append", "other-1", "Start"}).status == 0);
    constexpr int kProcs = 32;
    std::string script;
    for (int p = 0; p < kProcs; ++p)
      script += fmt::format(
          "( \"$ESCTL\" --store \"$STORE\" --busy-timeout 60s append race-1 Won '{{\"p\":{}}}' --expect 0 "
          ">/dev/null 2>'{}'; echo \"{} $?\" ) & ",
          p, dir / fmt::format("err{}", p), p);
    auto r = sh(script + "wait", RunOptions{"", {{"STORE", db.uri()}}, ""});
    REQUIRE(r.status == 0);
    int won = 0, conflicts = 0, named = 0, winner = -1;
    for (const auto& l : lines(r.out)) {
      const int p = std::stoi(l.substr(0, l.find(' ')));
      const int rc = std::stoi(l.substr(l.find(' ') + 1));
      const std::string err = read_file(dir / fmt::format("err{}", p));
      if (rc == 0) {
        ++won;
        winner = p;
      } else if (rc == 3) {
        ++conflicts;
        if (contains(err, "is at version 1") && contains(err, "to be at version 0")) ++named;
        else MESSAGE("conflict message lacks the versions: ", err);
      } else {
        MESSAGE("process ", p, " exited ", rc, ": ", err);
      }
    }
    CHECK(won == 1);
    CHECK(conflicts == kProcs - 1);
    CHECK(named == kProcs - 1);

    // The winner's event is the only one added, at the next position; the losers used none (a
    // sequence would have burnt 31 values): the next append gets the position after it.
    auto events = all_events(db.uri());
    REQUIRE(events.size() == 3);
    check_dense(events);
    CHECK(events[2]["stream"] == "race-1");
    CHECK(events[2]["data"]["p"] == winner);
    auto next = run({"--store", db.uri(), "--json", "append", "other-1", "After"});
    REQUIRE(next.status == 0);
    CHECK(json::parse(next.out)["position"] == 4);
    verify_clean(db.uri());
  }

  TEST_CASE("pg: a tail -f --all follower beside 8 writers: positions only rise and it misses none of read --all") {
    TempDatabase db;
    TempDir dir;
    REQUIRE(run({"--store", db.uri(), "append", "marker-1", "Start"}).status == 0);
    const int follower =
        spawn({"--json", "--store", db.uri(), "tail", "-f", "--all", "-n", "1"}, dir / "out", dir / "err");
    REQUIRE(lines(wait_for_lines(dir / "out", 1)).size() == 1);  // it runs

    // 8 writers, each: 5 single appends to shared-1 and 5 4-event batches to its own stream, so
    // commits of different sizes race for the next positions.
    constexpr int kProcs = 8, kRounds = 5;
    append_at_once(db.uri(), kProcs, kRounds, 4);
    const std::size_t total = 1 + kProcs * kRounds * 5;

    const std::string seen = wait_for_lines(dir / "out", total);
    ::kill(follower, SIGINT);
    CHECK(wait_for(follower) == 130);
    auto followed = parse_lines(seen);
    REQUIRE(followed.size() == total);
    std::int64_t highest = 0;
    int fell_back = 0;
    for (const auto& e : followed) {
      if (e["position"].get<std::int64_t>() <= highest) ++fell_back;
      highest = std::max(highest, e["position"].get<std::int64_t>());
    }
    CHECK(fell_back == 0);
    // The same events, byte for byte, as a reader of the finished store gets.
    auto all = run({"--store", db.uri(), "--json", "read", "--all"});
    REQUIRE(all.status == 0);
    CHECK(seen == all.out);
    check_dense(followed);
    CHECK(read_file(dir / "err").empty());
  }

  TEST_CASE("pg: kill -9 of appenders and drainers mid-run: whole batches, nothing lost, verify and verify --log clean") {
    TempDatabase db;
    TempDir dir;
    const std::string uri = db.uri(), log = dir / "log";
    REQUIRE(run({"--store", uri, "queue", "create", "q", "--from", "start", "--ack-timeout", "300ms", "--max-attempts",
                 "100"}).status == 0);
    // Append batches: 30 events with ids, batch b to stream s-(b % 5).
    constexpr int kRounds = 6, kAppendersPerRound = 2, kBatch = 30, kStreams = 5;
    constexpr int kBatches = kRounds * kAppendersPerRound;
    auto batch_file = [&](int b) { return dir / fmt::format("b{}.ndjson", b); };
    for (int b = 0; b < kBatches; ++b) {
      std::string text;
      for (int k = 0; k < kBatch; ++k)
        text += fmt::format("{{\"type\":\"T\",\"data\":{{\"b\":{},\"k\":{}}},\"id\":\"{}\"}}\n", b, k, uuid_for(b * 100 + k));
      write_file(batch_file(b), text);
    }
    auto append_args = [&](int b) {
      return std::vector<std::string>{"--store", uri, "--busy-timeout", "60s", "-q", "append",
                                      fmt::format("s-{}", b % kStreams), "--ndjson", batch_file(b)};
    };
    // The handler logs complete lines only (a line cut by a kill lacks its closing brace).
    const std::string handler = "f=$(mktemp '" + dir.path() + "/h.XXXXXX') && grep '\"attempt\":[0-9]*}$' > \"$f\"; cat \"$f\" >> '" +
                                log + "'; rm -f \"$f\"";
    const std::vector<std::string> drain{"--store", uri, "--busy-timeout", "60s", "queue", "drain", "q",
                                         "--batch", "10", "--exec", handler};

    // Each round: two appenders and two drainers at once; after a random moment, each of them
    // is killed with SIGKILL or not, by a coin toss.
    std::mt19937 rng(20261207);
    std::set<int> acknowledged;
    int killed_appenders = 0, killed_drainers = 0;
    for (int round = 0; round < kRounds; ++round) {
      std::vector<std::pair<int, int>> appenders;  // pid, batch
      for (int a = 0; a < kAppendersPerRound; ++a) {
        const int b = round * kAppendersPerRound + a;
        appenders.push_back({spawn(append_args(b), "/dev/null", dir / fmt::format("a{}.err", b)), b});
      }
      std::vector<int> drainers{spawn(drain, "/dev/null", dir / "d1.err"), spawn(drain, "/dev/null", dir / "d2.err")};
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 250));
      for (auto& [pid, b] : appenders) {
        if (rng() % 2 == 0 && ::kill(pid, SIGKILL) == 0) ++killed_appenders;
      }
      for (int pid : drainers)
        if (rng() % 2 == 0 && ::kill(pid, SIGKILL) == 0) ++killed_drainers;
      for (auto& [pid, b] : appenders) {
        const int rc = wait_for(pid);
        if (rc == 0) acknowledged.insert(b);
        else CHECK_MESSAGE(rc == 128 + SIGKILL, "append of batch ", b, " exited ", rc, ": ", read_file(dir / fmt::format("a{}.err", b)));
      }
      for (int pid : drainers) {
        const int rc = wait_for(pid);
        CHECK_MESSAGE((rc == 0 || rc == 128 + SIGKILL), "drain exited ", rc, ": ", read_file(dir / "d1.err"),
                      read_file(dir / "d2.err"));
      }
    }
    MESSAGE("killed ", killed_appenders, " appenders and ", killed_drainers, " drainers");

    // Every batch is whole or absent, and every acknowledged one is there.
    std::map<int, int> stored;  // batch -> events
    for (const auto& e : all_events(uri)) ++stored[e["data"]["b"].get<int>()];
    for (const auto& [b, n] : stored) CHECK_MESSAGE(n == kBatch, "batch ", b, " has ", n, " of ", kBatch, " events");
    for (int b : acknowledged) CHECK_MESSAGE(stored.count(b) == 1, "acknowledged batch ", b, " is missing");
    verify_clean(uri);

    // Re-running every batch finishes the killed ones without duplicates (idempotent by id).
    for (int b = 0; b < kBatches; ++b) {
      auto r = run(append_args(b));
      REQUIRE_MESSAGE(r.status == 0, r.err);
    }
    auto events = all_events(uri);
    CHECK(events.size() == static_cast<std::size_t>(kBatches * kBatch));
    check_dense(events);

    // Drain until the killed drainers' leases have expired and everything is acked.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    std::int64_t lag = -1;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = run(drain);
      REQUIRE_MESSAGE(r.status == 0, r.err);
      lag = json::parse(run({"--store", uri, "--json", "queue", "status", "q"}).out)["lag"].get<std::int64_t>();
      if (lag == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(lag == 0);
    // Per stream, first deliveries in version order, every event delivered at least once.
    std::map<std::string, std::int64_t> next;
    std::size_t firsts = 0;
    for (const auto& l : lines(read_file(log))) {
      auto e = json::parse(l);
      auto& n = next[e["stream"].get<std::string>()];
      const auto v = e["version"].get<std::int64_t>();
      if (v < n) continue;  // a redelivery after a kill
      CHECK_MESSAGE(v == n, e["stream"], ": version ", v, " delivered first while ", n, " never was");
      n = v + 1;
      ++firsts;
    }
    CHECK(firsts == events.size());
    auto v = run({"--store", uri, "verify", "--log", log, "--queue", "q"});
    CHECK_MESSAGE(v.status == 0, v.out, v.err);
    verify_clean(uri);
  }
}
