// esctl queue pull/ack/nack (esctl-queue(1)), delivery rules through the binary: an expired lease comes
// back, parking after max attempts under both poison policies, per-stream holding, and many
// concurrent pulling processes never getting one stream's events out of order.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

struct Store {
  TempDir dir;
  std::string path = dir / "events.db";

  Result q(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--store", path, "queue"});
    return run(args);
  }
  Result ok(std::vector<std::string> args) const {
    auto r = q(std::move(args));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    return r;
  }
  void append_many(const std::string& stream, int n) const {
    std::string input;
    for (int i = 0; i < n; ++i) input += "{\"type\":\"T\",\"data\":{\"i\":" + std::to_string(i) + "}}\n";
    auto r = run({"--store", path, "append", stream, "--ndjson", "-"}, {input});
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
  std::vector<json> pull(const std::string& name, int max = 1, const std::string& lease = "") const {
    std::vector<std::string> args{"pull", name, "--max", std::to_string(max), "--json"};
    if (!lease.empty()) args.insert(args.end(), {"--lease", lease});
    std::vector<json> out;
    for (const auto& l : lines(ok(args).out)) out.push_back(json::parse(l));
    return out;
  }
  json status(const std::string& name) const { return json::parse(ok({"status", name, "--json"}).out); }
};

std::string pos(const json& e) { return std::to_string(e["position"].get<std::int64_t>()); }

}  // namespace

TEST_SUITE("cli/queue_delivery") {
  TEST_CASE("an expired lease comes back with the next attempt") {
    Store s;
    s.ok({"create", "q", "--ack-timeout", "200ms"});
    s.append_many("s-1", 1);
    auto first = s.pull("q");
    REQUIRE(first.size() == 1);
    CHECK(first[0]["attempt"] == 1);
    // Generous deadline: the lease is 200ms, the machine may be slow.
    std::vector<json> again;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (again.empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      again = s.pull("q");
    }
    REQUIRE(again.size() == 1);
    CHECK(again[0]["position"] == first[0]["position"]);
    CHECK(again[0]["attempt"] == 2);
  }

  TEST_CASE("pull --lease overrides the ack timeout for that pull") {
    Store s;
    s.ok({"create", "q", "--ack-timeout", "1h"});
    s.append_many("s-1", 1);
    REQUIRE(s.pull("q", 1, "150ms").size() == 1);
    std::vector<json> again;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (again.empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      again = s.pull("q");
    }
    REQUIRE(again.size() == 1);
    CHECK(again[0]["attempt"] == 2);
  }

  TEST_CASE("an unexpired lease holds its stream for every other pull") {
    Store s;
    s.ok({"create", "q", "--ack-timeout", "1h"});
    s.append_many("s-1", 3);
    s.append_many("t-1", 1);
    auto a = s.pull("q", 1);
    REQUIRE(a.size() == 1);
    CHECK(a[0]["version"] == 0);
    auto b = s.pull("q", 10);
    REQUIRE(b.size() == 1);
    CHECK(b[0]["stream"] == "t-1");
    CHECK(s.pull("q", 10).empty());
    CHECK(s.status("q")["pending"] == 2);
    s.ok({"ack", "q", pos(a[0])});
    auto c = s.pull("q", 10);
    REQUIRE(c.size() == 2);  // one batch may hold several events of a stream, in order
    CHECK(c[0]["version"] == 1);
    CHECK(c[1]["version"] == 2);
  }

  TEST_CASE("under --on-poison block a parked event holds its stream until retried and acked") {
    Store s;
    s.ok({"create", "q", "--max-attempts", "2", "--ack-timeout", "1h"});  // block is the default
    s.append_many("s-1", 2);
    s.append_many("t-1", 1);
    for (int attempt = 1; attempt <= 2; ++attempt) {
      auto got = s.pull("q", 1);
      REQUIRE(got.size() == 1);
      CHECK(got[0]["version"] == 0);
      CHECK(got[0]["attempt"] == attempt);
      s.ok({"nack", "q", pos(got[0]), "--reason", "poison"});
    }
    auto rest = s.pull("q", 10);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0]["stream"] == "t-1");
    s.ok({"ack", "q", pos(rest[0])});
    CHECK(s.pull("q", 10).empty());
    auto st = s.status("q");
    CHECK(st["parked"] == 1);
    CHECK(st["lag"] == 2);
    s.ok({"retry", "q", "--all"});
    auto back = s.pull("q", 10);
    REQUIRE(back.size() == 2);
    CHECK(back[0]["version"] == 0);
    CHECK(back[0]["attempt"] == 1);
    CHECK(back[1]["version"] == 1);
  }

  TEST_CASE("under --on-poison park the stream moves on past a parked event") {
    Store s;
    s.ok({"create", "q", "--max-attempts", "1", "--on-poison", "park", "--ack-timeout", "1h"});
    s.append_many("s-1", 3);
    auto got = s.pull("q", 1);
    REQUIRE(got.size() == 1);
    s.ok({"nack", "q", pos(got[0]), "--reason", "poison"});
    auto rest = s.pull("q", 10);
    REQUIRE(rest.size() == 2);
    CHECK(rest[0]["version"] == 1);
    CHECK(rest[1]["version"] == 2);
    CHECK(s.status("q")["on_poison"] == "park");
    auto parked = lines(s.ok({"parked", "q", "--json"}).out);
    REQUIRE(parked.size() == 1);
    CHECK(json::parse(parked[0])["reason"] == "poison");
  }

  TEST_CASE("a nack with --delay is not delivered before the delay, and holds its stream") {
    Store s;
    s.ok({"create", "q", "--ack-timeout", "1h"});
    s.append_many("s-1", 2);
    auto got = s.pull("q", 1);
    s.ok({"nack", "q", pos(got[0]), "--delay", "1h"});
    CHECK(s.pull("q", 10).empty());
    CHECK(s.status("q")["retrying"] == 1);
    s.ok({"nack", "q", pos(got[0]), "--delay", "0ms"});  // a nack of a waiting event moves its time
    auto again = s.pull("q", 10);
    REQUIRE(again.size() == 2);
    CHECK(again[0]["attempt"] == 2);
  }

  TEST_CASE("concurrent pulling processes never get one stream's events out of order") {
    Store s;
    s.ok({"create", "q", "--from", "start", "--ack-timeout", "1h"});
    // 8 streams x 15 events, interleaved.
    std::string input;
    for (int v = 0; v < 15; ++v)
      for (int k = 0; k < 8; ++k)
        input += "{\"stream\":\"s-" + std::to_string(k) + "\",\"type\":\"T\",\"data\":{}}\n";
    REQUIRE(run({"--store", s.path, "import", "-"}, {input}).status == 0);
    // Each worker: pull up to 3, log what it got (before acking), ack. The log order of one
    // stream's events is then their delivery order.
    std::string script =
        "n=0\n"
        "while :; do\n"
        "  out=$(\"$ESCTL\" --store '" + s.path + "' --busy-timeout 60s --json queue pull q --max 3) || exit 1\n"
        "  if [ -z \"$out\" ]; then n=$((n+1)); [ $n -gt 3 ] && exit 0; continue; fi\n"
        "  n=0\n"
        "  printf '%s\\n' \"$out\" >> '" + (s.dir / "log") + "'\n"
        "  ps=$(printf '%s\\n' \"$out\" | sed 's/^{\"position\":\\([0-9]*\\).*/\\1/')\n"
        "  \"$ESCTL\" --store '" + s.path + "' --busy-timeout 60s queue ack q $ps || exit 1\n"
        "done\n";
    std::vector<std::thread> workers;
    std::vector<int> status(4, -1);
    for (int i = 0; i < 4; ++i) workers.emplace_back([&, i] { status[static_cast<std::size_t>(i)] = sh(script).status; });
    for (auto& w : workers) w.join();
    for (int st : status) CHECK(st == 0);
    std::map<std::string, std::int64_t> last;
    std::size_t n = 0;
    for (const auto& l : lines(read_file(s.dir / "log"))) {
      auto e = json::parse(l);
      auto stream = e["stream"].get<std::string>();
      auto v = e["version"].get<std::int64_t>();
      auto it = last.find(stream);
      std::int64_t want = it == last.end() ? 0 : it->second + 1;
      CHECK_MESSAGE(v == want, stream, " got version ", v, ", expected ", want);
      last[stream] = v;
      ++n;
    }
    CHECK(n == 120);
    CHECK(s.status("q")["lag"] == 0);
  }
}
