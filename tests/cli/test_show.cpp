// esctl show through the binary: one event by position or by id, human block and --json object,
// exit 4 when there is no such event, exit 2 for an argument that is neither.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {
const char* kId = "018f2c1e-7b3a-7c00-8000-00000000abcd";

struct Fixture {
  TempDir dir;
  std::string store = dir / "s.db";
  Result e(std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", store});
    return run(args);
  }
  Fixture() {
    REQUIRE(e({"append", "order-1", "Placed", R"({"customer":"ann","items":[{"sku":"A1"}],"empty":{}})", "--meta",
               R"({"trace":"t1"})", "--id", kId})
                .status == 0);
    REQUIRE(e({"append", "order-2", "Placed"}).status == 0);
  }
};
}  // namespace

TEST_SUITE("cli/show") {
  TEST_CASE("show POSITION prints every field, data and meta indented") {
    Fixture f;
    auto r = f.e({"show", "1"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto l = lines(r.out);
    REQUIRE(l.size() >= 16);
    CHECK(l[0] == "position:    1");
    CHECK(l[1] == "stream:      order-1");
    CHECK(l[2] == "version:     0");
    CHECK(l[3] == "type:        Placed");
    CHECK(l[4] == std::string("id:          ") + kId);
    CHECK(l[5].rfind("recorded_at: ", 0) == 0);
    CHECK(contains(r.out, "data:\n  {\n    \"customer\": \"ann\",\n    \"items\": [\n      {\n        \"sku\": \"A1\"\n"
                          "      }\n    ],\n    \"empty\": {}\n  }\nmeta:\n  {\n    \"trace\": \"t1\"\n  }\n"));
  }

  TEST_CASE("show ID finds the same event, and --json prints the event object") {
    Fixture f;
    auto by_id = f.e({"--json", "show", kId});
    REQUIRE_MESSAGE(by_id.status == 0, by_id.err);
    auto j = json::parse(by_id.out);
    CHECK(j["position"] == 1);
    CHECK(j["stream"] == "order-1");
    CHECK(j["id"] == kId);
    CHECK(j["data"]["items"][0]["sku"] == "A1");
    CHECK(j["meta"]["trace"] == "t1");
    CHECK(f.e({"--json", "show", "1"}).out == by_id.out);
    // Upper-case ids are the same id.
    std::string upper = kId;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    CHECK(f.e({"--json", "show", upper}).out == by_id.out);
  }

  TEST_CASE("no event at the position or with the id exits 4") {
    Fixture f;
    auto r = f.e({"show", "3"});
    CHECK(r.status == 4);
    CHECK(contains(r.err, "no event at position 3"));
    CHECK(r.out.empty());
    r = f.e({"show", "018f2c1e-7b3a-7c00-8000-000000000000"});
    CHECK(r.status == 4);
    CHECK(contains(r.err, "no event with id"));
  }

  TEST_CASE("an argument that is neither a position nor an id exits 2, a missing store exits 4") {
    Fixture f;
    for (const char* bad : {"0", "-1", "abc", "1.5", "018f2c1e-7b3a", "99999999999999999999999"}) {
      INFO(bad);
      auto r = f.e({"show", bad});
      CHECK(r.status == 2);
      CHECK_FALSE(r.err.empty());
    }
    CHECK(f.e({"show"}).status == 2);
    TempDir d;
    CHECK(run({"--store", d / "none.db", "show", "1"}).status == 4);
  }
}
