// --format on read, tail and queue pull through the binary: every placeholder, member paths,
// braces and escapes, and an unknown placeholder refused (exit 2) before anything is read.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include "support/cli.hpp"

using namespace esctl::test;

namespace {
const char* kId = "018f2c1e-7b3a-7c00-8000-00000000abcd";

struct Fixture {
  TempDir dir;
  std::string store = dir / "s.db";
  Result e(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--store", store});
    return run(args);
  }
  Fixture() {
    auto line = std::string(R"({"stream":"order-1","type":"Placed","id":")") + kId +
                R"(","data":{"customer":"ann","items":[{"sku":"A1"},{"sku":"B2"}],"total":9.50},)"
                R"("meta":{"trace":{"id":"t1"}},"recorded_at":"2026-11-10T08:00:00.000001Z"})" + "\n" +
                R"({"stream":"order-2","type":"Paid","data":{"customer":"bob"}})" + "\n";
    auto r = run({"--store", store, "import"}, RunOptions{line, {}, ""});
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
};
}  // namespace

TEST_SUITE("cli/format") {
  TEST_CASE("read --format renders every event placeholder, one line per event") {
    Fixture f;
    auto r = f.e({"read", "--all", "--count", "1", "--format",
                  "{position} {stream} {version} {type} {id} {recorded_at} {data} {meta}"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out == std::string("1 order-1 0 Placed ") + kId +
                       R"( 2026-11-10T08:00:00.000001Z {"customer":"ann","items":[{"sku":"A1"},{"sku":"B2"}],)"
                       R"("total":9.50} {"trace":{"id":"t1"}})" + "\n");
  }

  TEST_CASE("member paths: strings unquoted, other values as JSON, absent members empty") {
    Fixture f;
    auto r = f.e({"read", "--all", "--format", "{data.customer}|{data.items.1.sku}|{data.total}|{meta.trace.id}|"
                                              "{data.items}|{data.nope}"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out == "ann|B2|9.50|t1|[{\"sku\":\"A1\"},{\"sku\":\"B2\"}]|\nbob|||||\n");
  }

  TEST_CASE("doubled braces are braces, \\t and \\n are a tab and a newline") {
    Fixture f;
    auto r = f.e({"read", "order-1", "--format", "{{{type}}}\\t{stream}\\n--"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out == "{Placed}\torder-1\n--\n");
  }

  TEST_CASE("tail --format prints the last events through the template") {
    Fixture f;
    auto r = f.e({"tail", "-n", "1", "--format", "{stream}:{data.customer}"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out == "order-2:bob\n");
  }

  TEST_CASE("queue pull --format adds {attempt} and {lease}") {
    Fixture f;
    REQUIRE(f.e({"queue", "create", "q", "--from", "start"}).status == 0);
    auto r = f.e({"queue", "pull", "q", "--max", "2", "--format", "{position} {attempt} [{lease}]"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto l = lines(r.out);
    REQUIRE(l.size() == 2);
    CHECK(l[0].rfind("1 1 [", 0) == 0);
    CHECK(l[1].rfind("2 1 [", 0) == 0);
    REQUIRE(f.e({"queue", "nack", "q", "1"}).status == 0);
    r = f.e({"queue", "pull", "q", "--format", "{position} {attempt}"});
    CHECK(r.out == "1 2\n");
  }

  TEST_CASE("an unknown placeholder exits 2 before anything is read or leased") {
    Fixture f;
    auto r = f.e({"read", "--all", "--format", "{position} {nope}"});
    CHECK(r.status == 2);
    CHECK(contains(r.err, "unknown placeholder '{nope}'"));
    CHECK(r.out.empty());
    CHECK(f.e({"read", "--all", "--format", "{attempt}"}).status == 2);
    CHECK(f.e({"tail", "--format", "{data.}"}).status == 2);
    CHECK(f.e({"tail", "--format", "{position"}).status == 2);
    CHECK(f.e({"read", "--all", "--format", "\\q"}).status == 2);
    CHECK(f.e({"--json", "read", "--all", "--format", "{position}"}).status == 2);
    // Refused before the store is opened: a missing store is not what is reported.
    TempDir d;
    r = run({"--store", d / "none.db", "read", "--all", "--format", "{nope}"});
    CHECK(r.status == 2);
    // A pull with a bad template leases nothing.
    REQUIRE(f.e({"queue", "create", "q", "--from", "start"}).status == 0);
    CHECK(f.e({"queue", "pull", "q", "--format", "{nope}"}).status == 2);
    r = f.e({"queue", "pull", "q", "--format", "{position} {attempt}"});
    CHECK(r.out == "1 1\n");
  }
}
