// Attack (issue 8): many esctl processes appending to one store at once. Checks that no append
// fails, every payload is stored exactly once with contiguous versions, and that racing
// --expect writers produce exactly one winner per round. Not: crashes, locks held elsewhere.
// CI sizes are scaled down; set ESCTL_ATTACK_FULL=1 for the full-size runs.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

bool full_size() { return std::getenv("ESCTL_ATTACK_FULL") != nullptr; }

std::vector<json> read_json_lines(const std::vector<std::string>& args) {
  auto r = run(args);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  std::vector<json> out;
  for (const auto& l : lines(r.out)) out.push_back(json::parse(l));
  return out;
}

/// After every attack: esctl verify exits 0 and SQLite's own integrity_check says ok.
}  // namespace

TEST_SUITE("cli/attack_concurrency") {
  TEST_CASE("16 processes appending to a shared and their own streams lose, duplicate and reorder nothing") {
    // Full size: 500 single appends per process. CI: the same 500 events per process, sent as
    // --ndjson batches of 50 (each one append call), alternating between the two streams.
    const int procs = 16, per_proc = 500;
    const int batch = full_size() ? 1 : 50;
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "init"}).status == 0);
    std::string all;
    for (int p = 0; p < procs; ++p) {
      std::string script;
      for (int i = 0, call = 0; i < per_proc; i += batch, ++call) {
        std::string stream = call % 2 == 0 ? "shared-1" : fmt::format("private-{}", p);
        std::string cmd = fmt::format("\"$ESCTL\" --store '{}' --busy-timeout 300s -q append {}", store_location(store), stream);
        if (batch == 1) {
          script += fmt::format("{} T '{{\"p\":{},\"i\":{}}}' || echo \"FAIL {} {}\"\n", cmd, p, i, p, i);
        } else {
          std::string file = d / fmt::format("p{}-{}.ndjson", p, call);
          std::ofstream f(file);
          for (int k = i; k < i + batch && k < per_proc; ++k) f << fmt::format("{{\"type\":\"T\",\"data\":{{\"p\":{},\"i\":{}}}}}\n", p, k);
          script += fmt::format("{} --ndjson '{}' || echo \"FAIL {} {}\"\n", cmd, file, p, i);
        }
      }
      write_file(d / fmt::format("proc{}.sh", p), script);
      all += fmt::format("sh '{}' & ", d / fmt::format("proc{}.sh", p));
    }
    auto r = sh(all + "wait");
    CHECK(r.status == 0);
    CHECK_MESSAGE(r.out.find("FAIL") == std::string::npos, (r.out + r.err));

    auto events = read_json_lines({"--store", store, "--json", "read", "--all"});
    CHECK(events.size() == static_cast<std::size_t>(procs * per_proc));
    std::set<std::pair<int, int>> seen;
    std::map<std::string, std::int64_t> next_version;
    std::map<int, int> last_i;  // per process: events of one process appear in the order it sent them
    std::int64_t last_position = 0;
    int duplicates = 0, gaps = 0, reordered = 0;
    for (const auto& e : events) {
      std::int64_t pos = e["position"];
      if (pos <= last_position) ++reordered;
      last_position = pos;
      std::string stream = e["stream"];
      if (e["version"].get<std::int64_t>() != next_version[stream]) ++gaps;
      next_version[stream] = e["version"].get<std::int64_t>() + 1;
      int p = e["data"]["p"], i = e["data"]["i"];
      if (!seen.insert({p, i}).second) ++duplicates;
      if (last_i.count(p) && i <= last_i[p]) ++reordered;
      last_i[p] = i;
    }
    CHECK(duplicates == 0);
    CHECK(gaps == 0);
    CHECK(reordered == 0);
    CHECK(seen.size() == static_cast<std::size_t>(procs * per_proc));
    CHECK(next_version.size() == static_cast<std::size_t>(procs + 1));
    check_sound(store);
  }

  TEST_CASE("32 processes racing on one --expect N: one winner a round, the rest exit 3 naming both versions") {
    const int procs = 32, rounds = full_size() ? 100 : 5;
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "race-1", "Start"}).status == 0);
    for (int round = 0; round < rounds; ++round) {
      const int expected = round;  // the stream is at version `round` before this round
      std::string script;
      for (int p = 0; p < procs; ++p)
        script += fmt::format(
            "( \"$ESCTL\" --store '{}' --busy-timeout 300s append race-1 Won '{{\"round\":{},\"p\":{}}}' --expect {} "
            ">/dev/null 2>'{}'; echo \"{} $?\" ) & ",
            store, round, p, expected, d / fmt::format("err{}", p), p);
      auto r = sh(script + "wait");
      int won = 0, conflicts = 0, other = 0, named = 0;
      for (const auto& l : lines(r.out)) {
        auto sp = l.find(' ');
        int p = std::stoi(l.substr(0, sp));
        int rc = std::stoi(l.substr(sp + 1));
        if (rc == 0) ++won;
        else if (rc == 3) {
          ++conflicts;
          auto err = read_file(d / fmt::format("err{}", p));
          if (err.find(fmt::format("is at version {}", expected + 1)) != std::string::npos &&
              err.find(fmt::format("to be at version {}", expected)) != std::string::npos)
            ++named;
          else
            MESSAGE("conflict message lacks the versions: " << err);
        } else {
          ++other;
          MESSAGE("process " << p << " exited " << rc << ": " << read_file(d / fmt::format("err{}", p)));
        }
      }
      CHECK(won == 1);
      CHECK(conflicts == procs - 1);
      CHECK(named == procs - 1);
      CHECK(other == 0);
      if (won != 1 || other != 0) break;
    }
    auto events = read_json_lines({"--store", store, "--json", "read", "race-1"});
    REQUIRE(events.size() == static_cast<std::size_t>(rounds + 1));
    for (int v = 1; v <= rounds; ++v) {
      CHECK(events[v]["version"] == v);
      CHECK(events[v]["data"]["round"] == v - 1);
    }
    check_sound(store);
  }
}
