// esctl queue drain under kill -9 (at-least-once, esctl-queue(1)): the drainer is killed at random
// points (while its handler runs, after it, while acking) many times and restarted; at the end
// every event was processed at least once, none was lost, per stream the first deliveries came
// in version order, and the queue is at lag 0.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <map>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

TEST_SUITE("cli/queue_crash") {
  TEST_CASE("kill -9 of the drainer at random points loses nothing and keeps per-stream order") {
    TempDir dir;
    const std::string store = dir / "events.db", log = dir / "log";
    constexpr int kStreams = 12, kPerStream = 40;
    std::string input;
    for (int v = 0; v < kPerStream; ++v)
      for (int k = 0; k < kStreams; ++k)
        input += "{\"stream\":\"s-" + std::to_string(k) + "\",\"type\":\"T\",\"data\":{\"v\":" + std::to_string(v) + "}}\n";
    REQUIRE(run({"--store", store, "import", "-"}, {input}).status == 0);
    REQUIRE(run({"--store", store, "queue", "create", "q", "--from", "start", "--ack-timeout", "300ms",
                 "--max-attempts", "100"}).status == 0);

    // The handler logs only complete lines (a line cut by the kill lacks its closing '}'), with
    // one write per batch, then works a little so kills land inside it too.
    const std::string handler = "f=$(mktemp '" + dir.path() + "/b.XXXXXX') && grep '\"attempt\":[0-9]*}$' > \"$f\"; cat \"$f\" >> '" +
                                log + "'; rm -f \"$f\"; sleep 0.01";
    const std::vector<std::string> drain{"--store", store, "--busy-timeout", "60s", "queue", "drain", "q",
                                         "--batch", "15", "--exec", handler};
    std::mt19937 rng(20261127);
    int killed = 0;
    for (int i = 0; i < 20; ++i) {
      int pid = spawn(drain, "/dev/null", dir / "err");
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
      if (::kill(pid, SIGKILL) == 0) ++killed;
      wait_for(pid);
    }
    CHECK(killed > 0);

    // Restart until the dead drainers' leases have expired and everything is done.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    std::int64_t lag = -1;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = run(drain);
      REQUIRE_MESSAGE(r.status == 0, r.err);
      lag = json::parse(run({"--store", store, "--json", "queue", "status", "q"}).out)["lag"].get<std::int64_t>();
      if (lag == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(lag == 0);

    std::map<std::string, std::int64_t> next;
    std::size_t firsts = 0, total = 0;
    for (const auto& l : lines(read_file(log))) {
      auto e = json::parse(l);
      ++total;
      auto s = e["stream"].get<std::string>();
      auto v = e["version"].get<std::int64_t>();
      auto& n = next[s];
      if (v < n) continue;  // a redelivery after a crash
      CHECK_MESSAGE(v == n, "stream ", s, ": version ", v, " delivered first while version ", n, " never was");
      n = v + 1;
      ++firsts;
    }
    CHECK(firsts == static_cast<std::size_t>(kStreams * kPerStream));
    MESSAGE("kills: ", killed, ", deliveries: ", total, " for ", kStreams * kPerStream, " events");
    auto v = run({"--store", store, "verify", "--log", log});
    CHECK_MESSAGE(v.status == 0, v.out, v.err);
  }
}
