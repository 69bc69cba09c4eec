// esctl check through the binary: each threshold, exit 9 on a breach, the --json shape,
// --queue selection, and exit 4 for a missing queue or store (nothing created).
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

/// Queues over 3 events of order-1 .. order-3:
///   idle: everything acked (lag 0); busy: all 3 pending (lag 3);
///   sick: order-1 parked (max attempts 1), order-2 nacked with a 1h delay (retrying).
struct Fixture {
  TempDir dir;
  std::string store = dir / "s.db";
  Result e(std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", store});
    return run(args);
  }
  void ok(std::vector<std::string> args) {
    auto r = e(args);
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
  Fixture() {
    ok({"init"});
    ok({"queue", "create", "idle"});
    ok({"queue", "create", "busy"});
    ok({"queue", "create", "sick", "--max-attempts", "1"});
    ok({"queue", "create", "sick2", "--max-attempts", "5"});
    for (int i = 1; i <= 3; ++i) ok({"append", "order-" + std::to_string(i), "Placed"});
    ok({"queue", "pull", "idle", "--max", "3"});
    ok({"queue", "ack", "idle", "1", "2", "3"});
    ok({"queue", "pull", "sick", "--max", "1"});
    ok({"queue", "nack", "sick", "1"});
    ok({"queue", "pull", "sick2", "--max", "1"});
    ok({"queue", "nack", "sick2", "1", "--delay", "1h"});
  }
};

}  // namespace

TEST_SUITE("cli/check") {
  TEST_CASE("without thresholds every queue is ok and the exit status is 0") {
    Fixture f;
    auto r = f.e({"check"});
    CHECK_MESSAGE(r.status == 0, r.err);
    auto l = lines(r.out);
    REQUIRE(l.size() == 4);
    CHECK(l[0].rfind("busy ok (lag 3,", 0) == 0);
    CHECK(l[1].rfind("idle ok (lag 0, oldest_age_ms -, parked 0, retrying 0)", 0) == 0);
  }

  TEST_CASE("a lag above --max-lag is a breach: exit 9, the figure and the threshold named") {
    Fixture f;
    auto r = f.e({"check", "--max-lag", "2"});
    CHECK(r.status == 9);
    CHECK(contains(r.out, "busy breach: lag 3 > 2\n"));
    CHECK(contains(r.out, "idle ok"));
    CHECK(f.e({"check", "--max-lag", "3"}).status == 0);  // within means <=
    CHECK(f.e({"check", "--queue", "idle", "--max-lag", "0"}).status == 0);
  }

  TEST_CASE("parked and retrying counts above their thresholds are breaches") {
    Fixture f;
    auto r = f.e({"check", "--queue", "sick", "--max-parked", "0"});
    CHECK(r.status == 9);
    CHECK(r.out == "sick breach: parked 1 > 0\n");
    CHECK(f.e({"check", "--queue", "sick", "--max-parked", "1"}).status == 0);
    r = f.e({"check", "--queue", "sick2", "--max-retrying", "0"});
    CHECK(r.status == 9);
    CHECK(r.out == "sick2 breach: retrying 1 > 0\n");
    CHECK(f.e({"check", "--queue", "sick2", "--max-retrying", "1"}).status == 0);
    CHECK(f.e({"check", "--queue", "sick", "--max-retrying", "0"}).status == 0);
  }

  TEST_CASE("the age of the oldest unacked event, parked ones included, is checked against --max-age") {
    Fixture f;
    ::usleep(20000);  // every unacked event is now at least 20ms old
    auto r = f.e({"check", "--queue", "sick", "--max-age", "10ms"});
    CHECK(r.status == 9);
    CHECK(contains(r.out, "sick breach: oldest_age_ms "));
    CHECK(contains(r.out, " > 10\n"));
    CHECK(f.e({"check", "--queue", "sick", "--max-age", "1h"}).status == 0);
    CHECK(f.e({"check", "--queue", "idle", "--max-age", "0ms"}).status == 0);  // nothing unacked: no age
  }

  TEST_CASE("several breaches of one queue are all listed") {
    Fixture f;
    auto r = f.e({"check", "--queue", "sick", "--max-lag", "0", "--max-parked", "0"});
    CHECK(r.status == 9);
    CHECK(r.out == "sick breach: lag 3 > 0, parked 1 > 0\n");
  }

  TEST_CASE("--json gives ok, and per queue its figures and breaches") {
    Fixture f;
    auto r = f.e({"--json", "check", "--queue", "sick", "--queue", "idle", "--max-parked", "0", "--max-lag", "2"});
    CHECK(r.status == 9);
    auto j = json::parse(r.out);
    CHECK(j["ok"] == false);
    REQUIRE(j["queues"].size() == 2);
    const auto& sick = j["queues"][0];
    CHECK(sick["name"] == "sick");
    CHECK(sick["lag"] == 3);
    CHECK(sick["parked"] == 1);
    CHECK(sick["retrying"] == 0);
    CHECK(sick["oldest_age_ms"].is_number_integer());
    CHECK(sick["breaches"] == json::array({"lag 3 > 2", "parked 1 > 0"}));
    const auto& idle = j["queues"][1];
    CHECK(idle["name"] == "idle");
    CHECK(idle["oldest_age_ms"].is_null());
    CHECK(idle["breaches"] == json::array());
    r = f.e({"--json", "check", "--queue", "idle"});
    CHECK(r.status == 0);
    CHECK(json::parse(r.out)["ok"] == true);
  }

  TEST_CASE("--quiet prints nothing and keeps the exit status") {
    Fixture f;
    auto r = f.e({"-q", "check", "--max-lag", "0"});
    CHECK(r.status == 9);
    CHECK(r.out.empty());
  }

  TEST_CASE("a missing queue exits 4, a missing store exits 4 and is not created") {
    Fixture f;
    auto r = f.e({"check", "--queue", "nope"});
    CHECK(r.status == 4);
    CHECK(contains(r.err, "'nope'"));
    CHECK(r.out.empty());
    TempDir d;
    r = run({"--store", d / "missing.db", "check"});
    CHECK(r.status == 4);
    CHECK(contains(r.err, "no store"));
    struct stat st {};
    CHECK(::stat((d / "missing.db").c_str(), &st) != 0);
  }

  TEST_CASE("bad threshold values are usage errors") {
    Fixture f;
    for (auto args : std::vector<std::vector<std::string>>{{"check", "--max-lag", "-1"},
                                                           {"check", "--max-lag", "x"},
                                                           {"check", "--max-age", "5"},
                                                           {"check", "--max-parked", "1.5"},
                                                           {"check", "--queue", "bad name"}}) {
      auto r = f.e(args);
      CHECK(r.status == 2);
      CHECK_FALSE(r.err.empty());
    }
  }
}
