// One queue drained by several processes at once (standing in for machines): every event is
// handled, per-stream order holds across the drainers (a stream's next event starts only after
// its previous one ended, in whichever process), and `verify --log --queue` finds the handlers'
// log complete and in order. Runs on every backend (ESCTL_TEST_BACKEND).
#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

TEST_SUITE("cli/queue_shared") {
  TEST_CASE("two drain processes on one queue share it: each event acked, per-stream order, verify --log clean") {
    TempDir dir;
    const std::string store = dir / "events.db", log = dir / "log", order = dir / "order";
    constexpr int kStreams = 8, kPerStream = 60;
    std::string input;
    for (int v = 0; v < kPerStream; ++v)
      for (int k = 0; k < kStreams; ++k)
        input += "{\"stream\":\"s-" + std::to_string(k) + "\",\"type\":\"T\",\"data\":{\"v\":" + std::to_string(v) + "}}\n";
    REQUIRE(run({"--store", store, "import", "-"}, {input}).status == 0);
    REQUIRE(run({"--store", store, "queue", "create", "q", "--from", "start"}).status == 0);

    // Each batch: its lines go to the log in one write; a "NAME batch - 0" line, then
    // "NAME start|end STREAM VERSION" lines around it record which drainer held which events when.
    auto handler = [&](const std::string& name) {
      return "f=$(mktemp '" + dir.path() + "/b.XXXXXX') && cat > \"$f\" && echo '" + name + " batch - 0' >> '" + order +
             "' && " +
             "sed 's/.*\"stream\":\"\\([^\"]*\\)\".*\"version\":\\([0-9]*\\).*/" + name + " start \\1 \\2/' \"$f\" >> '" +
             order + "' && cat \"$f\" >> '" + log + "' && " +
             "sed 's/.*\"stream\":\"\\([^\"]*\\)\".*\"version\":\\([0-9]*\\).*/" + name + " end \\1 \\2/' \"$f\" >> '" +
             order + "'; rm -f \"$f\"";
    };
    auto drainer = [&](const std::string& name) {
      return spawn({"--store", store, "--busy-timeout", "60s", "queue", "drain", "q", "--batch", "7", "--exec",
                     handler(name)},
                    dir / (name + ".out"), dir / (name + ".err"));
    };
    int a = drainer("A"), b = drainer("B");
    CHECK_MESSAGE(wait_for(a) == 0, read_file(dir / "A.err"));
    CHECK_MESSAGE(wait_for(b) == 0, read_file(dir / "B.err"));
    // A drainer that found nothing left may end before the other: finish what remains.
    auto rest = run({"--store", store, "queue", "drain", "q", "--exec", handler("C")});
    REQUIRE_MESSAGE(rest.status == 0, rest.err);
    auto st = json::parse(run({"--store", store, "--json", "queue", "status", "q"}).out);
    CHECK(st["lag"] == 0);

    // Every event handled exactly once (nothing failed, nothing expired), and per stream the
    // versions started in order, each only after the previous one ended or in the same batch.
    std::map<std::string, int> handled;
    for (const auto& l : lines(read_file(log))) ++handled[json::parse(l)["stream"].get<std::string>()];
    CHECK(handled.size() == static_cast<std::size_t>(kStreams));
    for (const auto& [s, n] : handled) CHECK_MESSAGE(n == kPerStream, s);
    struct Seen {
      int version = -1;
      bool ended = true;
      std::string batch;  // drainer and batch number of its start
    };
    std::map<std::string, Seen> at;
    std::map<std::string, int> by, batches;
    for (const auto& l : lines(read_file(order))) {
      char who[8], what[8], stream[32];
      int v = -1;
      REQUIRE(std::sscanf(l.c_str(), "%7s %7s %31s %d", who, what, stream, &v) == 4);
      if (std::string(what) == "batch") {
        ++batches[who];
        continue;
      }
      Seen& seen = at[stream];
      const std::string batch = std::string(who) + "#" + std::to_string(batches[who]);
      if (std::string(what) == "start") {
        CHECK_MESSAGE((seen.ended || seen.batch == batch), l, ": started while version ", seen.version,
                      " was held by another batch");
        CHECK_MESSAGE(v == seen.version + 1, l, ": after version ", seen.version);
        seen = Seen{v, false, batch};
        ++by[who];
      } else {
        CHECK_MESSAGE(seen.batch == batch, l);
        seen.ended = true;
      }
    }
    MESSAGE("events handled by A: ", by["A"], ", by B: ", by["B"], ", by C: ", by["C"]);
    auto v = run({"--store", store, "verify", "--log", log, "--queue", "q"});
    CHECK_MESSAGE(v.status == 0, v.out, v.err);
    CHECK(contains(v.out, std::to_string(kStreams * kPerStream) + " events acked by queue 'q', 0 missing from the log"));
  }
}
