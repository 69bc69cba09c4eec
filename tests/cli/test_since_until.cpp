// --since/--until on read, tail and export through the binary: RFC 3339 times, UTC dates (a
// date as both bounds is the whole day), durations ago; both bounds inclusive; the same answers
// whether recorded_at grows with position (searched) or not (imported out of order: filtered).
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

struct Row {
  int n;
  const char* stream;
  const char* at;
};
// In time order; n numbers them.
const Row kRows[] = {
    {0, "a-1", "2026-11-09T23:00:00Z"},        {1, "b-1", "2026-11-09T23:59:59.999999Z"},
    {2, "a-2", "2026-11-10T00:00:00Z"},        {3, "a-1", "2026-11-10T06:00:00Z"},
    {4, "b-1", "2026-11-10T12:00:00Z"},        {5, "a-2", "2026-11-10T12:00:00.000001Z"},
    {6, "a-1", "2026-11-10T23:59:59.999999Z"}, {7, "b-1", "2026-11-11T00:00:00Z"},
    {8, "a-2", "2026-11-12T08:30:00+02:00"},
};

std::string line(const Row& r) {
  return fmt::format(R"({{"stream":"{}","type":"T","data":{{"n":{}}},"recorded_at":"{}"}})", r.stream, r.n, r.at) + "\n";
}

/// A store holding kRows imported in `order` (indexes into kRows).
struct Fixture {
  TempDir dir;
  std::string store = dir / "s.db";
  explicit Fixture(const std::vector<int>& order) {
    std::string ndjson;
    for (int i : order) ndjson += line(kRows[i]);
    auto r = run({"--store", store, "import", "--batch", "2", "--ignore-versions"}, RunOptions{ndjson, {}, ""});
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
  Result e(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--store", store});
    return run(args);
  }
  /// The `n` of each event printed by `esctl --json ARGS`, in output order.
  std::vector<int> ns(std::vector<std::string> args) const {
    args.insert(args.begin(), "--json");
    auto r = e(args);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    std::vector<int> out;
    for (const auto& j : parse_lines(r.out)) out.push_back(j["data"]["n"].get<int>());
    return out;
  }
  /// The expected answer: kRows' n in [lo, hi] (by index), in this store's position order.
  std::vector<int> expect(int lo, int hi, const std::vector<int>& order, const char* stream = nullptr,
                          std::size_t last = 1000) const {
    std::vector<int> out;
    for (int i : order)
      if (i >= lo && i <= hi && (!stream || std::string(kRows[i].stream) == stream)) out.push_back(i);
    if (out.size() > last) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(last));
    return out;
  }
};

std::vector<int> in_order() {
  std::vector<int> v;
  for (int i = 0; i < static_cast<int>(std::size(kRows)); ++i) v.push_back(i);
  return v;
}

void check_answers(const std::vector<int>& order) {
  Fixture f(order);
  INFO("order: " << json(order).dump());
  // A date: its start as --since, its end as --until; both bounds inclusive.
  CHECK(f.ns({"read", "--all", "--since", "2026-11-10", "--until", "2026-11-10"}) == f.expect(2, 6, order));
  CHECK(f.ns({"read", "--all", "--since", "2026-11-10"}) == f.expect(2, 8, order));
  CHECK(f.ns({"read", "--all", "--until", "2026-11-10"}) == f.expect(0, 6, order));
  CHECK(f.ns({"read", "--all", "--until", "2026-11-09"}) == f.expect(0, 1, order));
  // RFC 3339, inclusive at both ends, offsets applied.
  CHECK(f.ns({"read", "--all", "--since", "2026-11-10T12:00:00Z", "--until", "2026-11-10T12:00:00.000001Z"}) ==
        f.expect(4, 5, order));
  CHECK(f.ns({"read", "--all", "--since", "2026-11-12T06:30:00Z"}) == f.expect(8, 8, order));
  CHECK(f.ns({"read", "--all", "--since", "2026-11-12T06:30:00.000001Z"}).empty());
  CHECK(f.ns({"read", "--all", "--until", "2026-11-09T22:59:59Z"}).empty());
  CHECK(f.ns({"read", "--all", "--since", "2026-11-11", "--until", "2026-11-10"}).empty());
  // --count counts events within the range; --from still applies.
  auto firsts = f.expect(2, 8, order);
  firsts.resize(2);
  CHECK(f.ns({"read", "--all", "--since", "2026-11-10", "--count", "2"}) == firsts);
  std::vector<int> from5 = f.expect(2, 8, std::vector<int>(order.begin() + 4, order.end()));
  CHECK(f.ns({"read", "--all", "--from", "5", "--since", "2026-11-10"}) == from5);
  // A category, a stream.
  CHECK(f.ns({"read", "--category", "a", "--since", "2026-11-10", "--until", "2026-11-10T23:00:00Z"}) ==
        [&] {
          auto v = f.expect(2, 5, order);
          v.erase(std::remove_if(v.begin(), v.end(), [](int i) { return kRows[i].stream[0] != 'a'; }), v.end());
          return v;
        }());
  CHECK(f.ns({"read", "a-1", "--since", "2026-11-10"}) == f.expect(3, 8, order, "a-1"));
  // tail: the last N within the range.
  CHECK(f.ns({"tail", "-n", "2", "--until", "2026-11-10"}) == f.expect(0, 6, order, nullptr, 2));
  CHECK(f.ns({"tail", "b-1", "-n", "5", "--since", "2026-11-10"}) == f.expect(2, 8, order, "b-1"));
  // export.
  CHECK(f.ns({"export", "--since", "2026-11-10", "--until", "2026-11-10"}) == f.expect(2, 6, order));
  CHECK(f.ns({"export", "a-2", "--until", "2026-11-10"}) == f.expect(0, 6, order, "a-2"));
}

}  // namespace

TEST_SUITE("cli/since_until") {
  TEST_CASE("ranges over events whose recorded_at grows with position give the events in range") {
    check_answers(in_order());
  }

  TEST_CASE("ranges over events imported out of time order give the same events") {
    check_answers({8, 0, 5, 3, 1, 7, 2, 6, 4});
    check_answers({0, 1, 2, 3, 7, 4, 5, 6, 8});  // in order, then one late-recorded stretch
    check_answers({8, 7, 6, 5, 4, 3, 2, 1, 0});
    std::mt19937 rng(7);
    auto v = in_order();
    for (int round = 0; round < 3; ++round) {
      std::shuffle(v.begin(), v.end(), rng);
      check_answers(v);
    }
  }

  TEST_CASE("appends after an out-of-order import are still found") {
    Fixture f({0, 1, 2, 3, 7, 4, 5, 6, 8});
    REQUIRE(f.e({"append", "c-1", "Now", R"({"n":100})"}).status == 0);
    CHECK(f.ns({"read", "--all", "--since", "1h"}) == std::vector<int>{100});
    CHECK(f.ns({"read", "--all", "--since", "2026-11-10", "--until", "2026-11-10"}) ==
          f.expect(2, 6, {0, 1, 2, 3, 7, 4, 5, 6, 8}));
  }

  TEST_CASE("a duration means that long ago: appended events are within the last hour, imported ones before it") {
    Fixture f(in_order());
    REQUIRE(f.e({"append", "c-1", "Now", R"({"n":100})"}).status == 0);
    REQUIRE(f.e({"append", "c-1", "Now", R"({"n":101})"}).status == 0);
    CHECK(f.ns({"read", "--all", "--since", "1h"}) == std::vector<int>{100, 101});
    CHECK(f.ns({"read", "--all", "--since", "7d"}) == std::vector<int>{100, 101});
    CHECK(f.ns({"read", "--all", "--until", "1h"}) == f.expect(0, 8, in_order()));
    CHECK(f.ns({"tail", "--since", "2h", "-n", "1"}) == std::vector<int>{101});
    CHECK(f.ns({"read", "c-1", "--since", "15m"}) == std::vector<int>{100, 101});
  }

  TEST_CASE("a TIME that is none of the three forms exits 2 before reading") {
    Fixture f(in_order());
    for (const char* bad : {"yesterday", "2026-11-31", "2026-11-10T25:00:00Z", "15", "5w", ""}) {
      INFO(bad);
      auto r = f.e({"read", "--all", "--since", bad});
      if (std::string(bad).empty()) continue;  // an empty value is "not given"
      CHECK(r.status == 2);
      CHECK(contains(r.err, "--since"));
      CHECK(r.out.empty());
      CHECK(f.e({"export", "--until", bad}).status == 2);
      CHECK(f.e({"tail", "--until", bad}).status == 2);
    }
  }
}
