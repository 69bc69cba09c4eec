// esctl read and esctl streams (esctl-read(1), esctl-streams(1)) through the binary: human and JSON lines,
// --from/--count/--backwards windows over a stream long enough to use the version marks,
// --category/--type/--all selection, missing streams, and quiet ends on a closed pipe.
#include <doctest/doctest.h>

#include <regex>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

constexpr int kLong = 300;

/// A store with long-1 (kLong events, types Even/Odd by version) interleaved event by event
/// with other-0..other-4 (one event after each long-1 event whose version is a multiple of 3).
struct Fixture {
  TempDir dir;
  std::string store = dir / "s.db";
  Fixture() {
    std::string ndjson;
    int other = 0;
    for (int v = 0; v < kLong; ++v) {
      ndjson += "{\"stream\":\"long-1\",\"type\":\"" + std::string(v % 2 ? "Odd" : "Even") +
                "\",\"data\":{\"v\":" + std::to_string(v) + "}}\n";
      if (v % 3 == 0)
        ndjson += "{\"stream\":\"other-" + std::to_string(other++ % 5) + "\",\"type\":\"X\",\"data\":[]}\n";
    }
    auto r = run({"--store", store, "import", "--batch", "77"}, RunOptions{ndjson, {}, ""});
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
  std::vector<json> read(std::vector<std::string> args) const {
    std::vector<std::string> argv{"--store", store, "--json", "read"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    return parse_lines(r.out);
  }
};

std::vector<std::int64_t> versions(const std::vector<json>& ev) {
  std::vector<std::int64_t> out;
  for (const auto& e : ev) out.push_back(e["version"]);
  return out;
}

std::vector<std::int64_t> range(std::int64_t first, std::int64_t last, std::int64_t step = 1) {
  std::vector<std::int64_t> out;
  if (step > 0)
    for (auto v = first; v <= last; v += step) out.push_back(v);
  else
    for (auto v = first; v >= last; v += step) out.push_back(v);
  return out;
}

}  // namespace

TEST_SUITE("cli/read") {
  TEST_CASE("a human line shows position, stream@version, type, recorded_at in UTC with microseconds, and data") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "order-1", "OrderPlaced", R"({ "total" : 1.50 })"}).status == 0);
    auto r = run({"--store", store, "read", "order-1"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    std::regex line(R"(1 order-1@0 OrderPlaced \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \{"total":1\.50\}\n)");
    CHECK_MESSAGE(std::regex_match(r.out, line), r.out);
    CHECK(run({"--store", store, "read", "--all"}).out == r.out);
  }

  TEST_CASE("--json prints the full event object with data and meta as JSON values") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "s", "T", "[1]", "--meta", R"({"m":"x"})"}).status == 0);
    auto ev = parse_lines(run({"--store", store, "read", "s", "--json"}).out);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["position"] == 1);
    CHECK(ev[0]["stream"] == "s");
    CHECK(ev[0]["version"] == 0);
    CHECK(ev[0]["type"] == "T");
    CHECK(ev[0]["data"] == json::parse("[1]"));
    CHECK(ev[0]["meta"]["m"] == "x");
    CHECK(ev[0]["id"].get<std::string>().size() == 36);
    CHECK(std::regex_match(ev[0]["recorded_at"].get<std::string>(),
                           std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
    CHECK(ev[0].size() == 8);
  }

  TEST_CASE("windows of --from and --count over a 300-event interleaved stream give exactly those versions") {
    Fixture f;
    CHECK(versions(f.read({"long-1"})) == range(0, kLong - 1));
    for (int from : {0, 1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 250, 298, 299, 300, 301}) {
      for (int count : {1, 63, 64, 65, 200, -1}) {
        INFO("from ", from, " count ", count);
        std::vector<std::string> args{"long-1", "--from", std::to_string(from)};
        if (count >= 0) args.insert(args.end(), {"--count", std::to_string(count)});
        auto last = count < 0 ? kLong - 1 : std::min(kLong - 1, from + count - 1);
        CHECK(versions(f.read(args)) == range(from, last));
      }
    }
  }

  TEST_CASE("--backwards reads down from --from (default: the last version) to 0") {
    Fixture f;
    CHECK(versions(f.read({"long-1", "--backwards"})) == range(kLong - 1, 0, -1));
    CHECK(versions(f.read({"long-1", "--backwards", "--count", "3"})) == range(kLong - 1, kLong - 3, -1));
    for (int from : {0, 1, 63, 64, 65, 128, 200, 299, 500}) {
      for (int count : {1, 65, -1}) {
        INFO("from ", from, " count ", count);
        std::vector<std::string> args{"long-1", "--backwards", "--from", std::to_string(from)};
        if (count >= 0) args.insert(args.end(), {"--count", std::to_string(count)});
        int start = std::min(from, kLong - 1);
        int stop = count < 0 ? 0 : std::max(0, start - count + 1);
        CHECK(versions(f.read(args)) == range(start, stop, -1));
      }
    }
  }

  TEST_CASE("--type on a stream filters before --count") {
    Fixture f;
    CHECK(versions(f.read({"long-1", "--type", "Odd", "--from", "100", "--count", "5"})) == range(101, 109, 2));
    CHECK(versions(f.read({"long-1", "--type", "Odd", "--type", "Even", "--from", "298"})) == range(298, 299));
    CHECK(f.read({"long-1", "--type", "None"}).empty());
  }

  TEST_CASE("--category and --all read in position order, from a position, with --count and --type") {
    Fixture f;
    auto all = f.read({"--all"});
    REQUIRE(all.size() == kLong + 100);
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i]["position"] == i + 1);
    auto window = f.read({"--all", "--from", "10", "--count", "5"});
    REQUIRE(window.size() == 5);
    CHECK(window[0]["position"] == 10);
    CHECK(window[4]["position"] == 14);
    auto others = f.read({"--category", "other"});
    REQUIRE(others.size() == 100);
    for (const auto& e : others) CHECK(e["stream"].get<std::string>().rfind("other-", 0) == 0);
    auto longs = f.read({"--category", "long", "--type", "Even", "--from", "200"});
    REQUIRE_FALSE(longs.empty());
    for (const auto& e : longs) {
      CHECK(e["type"] == "Even");
      CHECK(e["position"].get<std::int64_t>() >= 200);
    }
    CHECK(f.read({"--category", "long", "--type", "Even", "--count", "2"}).size() == 2);
    CHECK(f.read({"--category", "nothing"}).empty());
    CHECK(f.read({"--all", "--from", "100000"}).empty());
  }

  TEST_CASE("read of a missing stream exits 4, a bad name exits 5, a wrong mix of sources exits 2") {
    Fixture f;
    auto r = run({"--store", f.store, "read", "missing-1"});
    CHECK(r.status == 4);
    CHECK(contains(r.err, "stream 'missing-1' not found"));
    CHECK(run({"--store", f.store, "read", "$all"}).status == 5);
    CHECK(run({"--store", f.store, "read"}).status == 2);
    CHECK(run({"--store", f.store, "read", "long-1", "--all"}).status == 2);
    CHECK(run({"--store", f.store, "read", "--all", "--category", "x"}).status == 2);
    CHECK(run({"--store", f.store, "read", "--all", "--backwards"}).status == 2);
    CHECK(run({"--store", f.store, "read", "long-1", "--count", "-1"}).status == 2);
    CHECK(run({"--store", f.store, "read", "long-1", "--from", "x"}).status == 2);
  }

  TEST_CASE("read --all piped into head -1 ends quietly with status 0") {
    TempDir d;
    auto store = d / "s.db";
    std::string ndjson;
    for (int i = 0; i < 5000; ++i) ndjson += R"({"stream":"s-)" + std::to_string(i % 10) + R"(","type":"T","data":{"pad":"................................................................"}})" "\n";
    REQUIRE(run({"--store", store, "import"}, RunOptions{ndjson, {}, ""}).status == 0);
    auto r = sh("{ \"$ESCTL\" --store '" + store + "' read --all 2>'" + (d / "err") + "'; echo $? >'" + (d / "rc") +
                "'; } | head -1");
    CHECK(lines(r.out).size() == 1);
    CHECK(read_file(d / "rc") == "0\n");
    CHECK(read_file(d / "err").empty());
    r = sh("{ \"$ESCTL\" --store '" + store + "' --json read s-1 2>'" + (d / "err") + "'; echo $? >'" + (d / "rc") +
           "'; } | head -c 10");
    CHECK(read_file(d / "rc") == "0\n");
    CHECK(read_file(d / "err").empty());
  }

  TEST_CASE("streams lists name, version, events, last position and last recorded_at, filters by category and prefix") {
    Fixture f;
    auto r = run({"--store", f.store, "streams"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto ls = lines(r.out);
    REQUIRE(ls.size() == 7);  // header + 6 streams
    CHECK(contains(ls[0], "STREAM"));
    CHECK(contains(ls[0], "LAST RECORDED_AT"));
    CHECK(std::regex_search(ls[1], std::regex(R"(^long-1 +299 +300 +\d+ +\d{4}-\d\d-\d\dT.*Z$)")));
    auto js = parse_lines(run({"--store", f.store, "--json", "streams"}).out);
    REQUIRE(js.size() == 6);
    CHECK(js[0]["stream"] == "long-1");
    CHECK(js[0]["version"] == 299);
    CHECK(js[0]["count"] == 300);
    CHECK(js[0]["last_position"] == kLong + 100);  // long-1's last event is the store's last
    CHECK(parse_lines(run({"--store", f.store, "--json", "streams", "--category", "other"}).out).size() == 5);
    auto pre = parse_lines(run({"--store", f.store, "--json", "streams", "--prefix", "other-3"}).out);
    REQUIRE(pre.size() == 1);
    CHECK(pre[0]["stream"] == "other-3");
    CHECK(parse_lines(run({"--store", f.store, "--json", "streams", "--prefix", "zzz"}).out).empty());
  }
}
