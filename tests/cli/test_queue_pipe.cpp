// esctl queue drain --pipe (esctl-queue(1), PIPE HANDLERS): one long-lived handler answering
// ack / nack per event line; every way a handler fails costs one attempt of its first unanswered
// event and returns the rest; the inside-a-stream rule; --parallel; SIGINT; a drainer killed
// with -9 mid-batch. Each failure test checks with `verify --log --queue` that every event the
// queue acked is one the handler answered `ack` for, in per-stream order.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <initializer_list>
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
  std::string log = dir / "log";  // the lines the handler answered `ack` for

  Result q(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--store", path, "queue"});
    return run(args);
  }
  Result ok(std::vector<std::string> args) const {
    auto r = q(std::move(args));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    return r;
  }
  /// `per_stream` events in each of `streams` streams s-0.., interleaved (version-major).
  void fill(int streams, int per_stream) const {
    std::string input;
    for (int v = 0; v < per_stream; ++v)
      for (int k = 0; k < streams; ++k)
        input += "{\"stream\":\"s-" + std::to_string(k) + "\",\"type\":\"T\",\"data\":{\"v\":" + std::to_string(v) +
                 "}}\n";
    auto r = run({"--store", path, "import", "-"}, {input});
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
  json status(const std::string& name) const { return json::parse(ok({"status", name, "--json"}).out); }
  std::vector<json> logged(const std::string& file = "") const {
    std::vector<json> out;
    for (const auto& l : lines(read_file(file.empty() ? log : file))) out.push_back(json::parse(l));
    return out;
  }
  /// A handler that logs each line and acks it. The first time it runs (no DIR/tripped yet), it
  /// runs `trip` on its line `at` instead of logging and answering it.
  std::string acker(int at = 0, const std::string& trip = "") const {
    return "echo $$ >> '" + dir / "starts" + "'; n=0; while IFS= read -r l; do n=$((n+1)); if [ $n -eq " +
           std::to_string(at) + " ] && [ ! -e '" + dir / "tripped" + "' ]; then : > '" + dir / "tripped" + "'; " +
           (trip.empty() ? ":" : trip) + "; fi; printf '%s\\n' \"$l\" >> '" + log + "'; echo ack; done";
  }
  std::size_t starts() const { return lines(read_file(dir / "starts")).size(); }
  /// verify --log LOG --queue NAME: every acked event is in the log, first deliveries in order.
  void verify(const std::string& queue = "q") const {
    auto v = run({"--store", path, "verify", "--log", log, "--queue", queue});
    CHECK_MESSAGE(v.status == 0, v.out, v.err);
  }
};

/// How many logged deliveries have each attempt number.
std::map<std::int64_t, int> attempts(const std::vector<json>& log) {
  std::map<std::int64_t, int> out;
  for (const auto& e : log) ++out[e["attempt"].get<std::int64_t>()];
  return out;
}

/// Waits (polling; generous deadline, not a timing assertion) until `pred` holds.
template <class F>
bool eventually(F pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

TEST_SUITE("cli/queue_pipe") {
  TEST_CASE("drain --pipe keeps one handler for every batch, acks what it answers, and ends at lag 0") {
    Store s;
    s.fill(5, 6);
    s.ok({"create", "q", "--from", "start"});
    auto r = s.ok({"--json", "drain", "q", "--batch", "7", "--pipe", s.acker()});
    auto sum = json::parse(r.out);
    CHECK(sum["delivered"] == 30);
    CHECK(sum["acked"] == 30);
    CHECK(s.starts() == 1);
    auto log = s.logged();
    REQUIRE(log.size() == 30);
    CHECK(log[0].contains("lease"));
    CHECK(attempts(log) == std::map<std::int64_t, int>{{1, 30}});
    CHECK(s.status("q")["lag"] == 0);
    s.verify();
  }

  TEST_CASE("a nack of S@0 keeps S@1 of the same batch from being acked, and S@1 uses no attempt") {
    Store s;
    s.fill(2, 3);  // s-0@0 s-1@0 s-0@1 s-1@1 s-0@2 s-1@2
    s.ok({"create", "q", "--from", "start"});
    // Nacks s-0@0 on its first attempt and acks everything else, s-0@1 included, logging what it acks.
    auto handler = [&](const std::string& log) {
      return "while IFS= read -r l; do case \"$l\" in *'\"stream\":\"s-0\",\"version\":0,'*'\"attempt\":1}') "
             "echo 'nack not yet';; *) printf '%s\\n' \"$l\" >> '" + log + "'; echo ack;; esac; done";
    };
    auto r = s.q({"--json", "drain", "q", "--batch", "6", "--max-events", "6", "--pipe", handler(s.dir / "first")});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto sum = json::parse(r.out);
    CHECK(sum["acked"] == 3);     // s-1 only
    CHECK(sum["retried"] == 1);   // s-0@0
    CHECK(sum["returned"] == 2);  // s-0@1 and s-0@2, answered ack but held behind s-0@0
    auto st = s.status("q");
    CHECK(st["lag"] == 3);
    CHECK(st["retrying"] == 1);
    // What the queue acked is all in a log of s-1 alone: nothing of s-0 was acked.
    std::string s1;
    for (const auto& l : lines(read_file(s.dir / "first")))
      if (contains(l, "\"stream\":\"s-1\"")) s1 += l + "\n";
    CHECK(lines(read_file(s.dir / "first")).size() == 5);  // s-1 x3, s-0@1 and s-0@2 answered ack
    write_file(s.log, s1);
    s.verify();

    // The next drain delivers s-0@0 again (attempt 2), then s-0@1 and s-0@2 with attempt 1.
    s.ok({"drain", "q", "--pipe", handler(s.log)});
    std::map<std::int64_t, std::int64_t> s0;  // version -> attempt of its acked delivery
    for (const auto& e : s.logged())
      if (e["stream"] == "s-0") s0[e["version"].get<std::int64_t>()] = e["attempt"].get<std::int64_t>();
    CHECK(s0 == std::map<std::int64_t, std::int64_t>{{0, 2}, {1, 1}, {2, 1}});
    CHECK(s.status("q")["lag"] == 0);
    s.verify();
  }

  TEST_CASE("a crash with 50 events in flight uses an attempt of one event only") {
    Store s;
    s.fill(10, 5);
    s.ok({"create", "q", "--from", "start"});
    auto r = s.q({"--json", "drain", "q", "--batch", "50", "--max-events", "50", "--pipe",
                  s.acker(1, "kill -9 $$")});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto sum = json::parse(r.out);
    CHECK(sum["acked"] == 0);
    CHECK(sum["retried"] == 1);
    CHECK(sum["returned"] == 49);
    CHECK(contains(r.err, "handler was killed by signal 9 (SIGKILL)"));
    CHECK(contains(r.err, "starting it again in 100ms"));
    auto st = s.status("q");
    CHECK(st["lag"] == 50);
    CHECK(st["retrying"] == 1);

    s.ok({"drain", "q", "--pipe", s.acker()});
    auto log = s.logged();
    CHECK(log.size() == 50);
    CHECK(attempts(log) == std::map<std::int64_t, int>{{1, 49}, {2, 1}});
    CHECK(s.status("q")["lag"] == 0);
    s.verify();
  }

  // Each way a handler can fail, tripped once on its third line with 10 events in flight: event 3
  // is nacked (its next delivery is attempt 2), events 4..10 are returned (attempt 1 again), the
  // handler is started again, and everything is acked in the end. A trip that leaves the handler
  // running ends with `exit`: the drainer closes its stdin and then signals it, and a handler
  // that outlived the trip must not log the event it never answered.
  TEST_CASE("every failure mode nacks the first unanswered event only, returns the rest and restarts the handler") {
    struct Mode {
      std::string name;
      std::string trip;
      std::string reason;  // in the nack reason, on stderr
      std::string ack_timeout = "30s";
    };
    const std::vector<Mode> modes = {
        {"exit", "echo 'boom: bad event' >&2; exit 3", "handler exited with status 3: boom: bad event"},
        {"signal", "kill -USR1 $$", "handler was killed by signal 10 (SIGUSR1)"},
        {"kill -9", "kill -9 $$", "handler was killed by signal 9 (SIGKILL)"},
        {"stdout closed", "exec >&-; cat >/dev/null; exit 0", "handler closed its stdout"},
        {"malformed answer", "echo 'ok'; sleep 600", "protocol error: the handler answered 'ok'"},
        {"no answer", "sleep 600", "handler answered nothing for 5s", "5s"},
    };
    for (const auto& m : modes) {
      CAPTURE(m.name);
      Store s;
      s.fill(10, 1);
      s.ok({"create", "q", "--from", "start", "--ack-timeout", m.ack_timeout});
      auto r = s.q({"--json", "drain", "q", "--batch", "10", "--pipe", s.acker(3, m.trip)});
      REQUIRE_MESSAGE(r.status == 0, r.err);
      auto sum = json::parse(r.out);
      CHECK(sum["acked"] == 10);
      CHECK(sum["retried"] == 1);
      CHECK(sum["returned"] == 7);
      CHECK_MESSAGE(contains(r.err, m.reason), r.err);
      CHECK(contains(r.err, "(8 unanswered: 1 nacked, 7 returned); starting it again in 100ms"));
      CHECK(s.starts() == 2);
      auto log = s.logged();
      CHECK(log.size() == 10);
      CHECK(attempts(log) == std::map<std::int64_t, int>{{1, 9}, {2, 1}});
      for (const auto& e : log)
        if (e["attempt"] == 2) CHECK(e["stream"] == "s-2");
      CHECK(s.status("q")["lag"] == 0);
      s.verify();
    }
  }

  TEST_CASE("more answers than events is a protocol error: the handler is restarted and nothing unanswered is acked") {
    Store s;
    s.fill(4, 1);
    s.ok({"create", "q", "--from", "start"});
    // On its second line it answers twice, in one write.
    std::string h = "echo $$ >> '" + (s.dir / "starts") +
                    "'; n=0; while IFS= read -r l; do n=$((n+1)); printf '%s\\n' \"$l\" >> '" + s.log +
                    "'; if [ $n -eq 2 ] && [ ! -e '" + (s.dir / "tripped") + "' ]; then : > '" + (s.dir / "tripped") +
                    "'; printf 'ack\\nack\\n'; else echo ack; fi; done";
    auto r = s.q({"--json", "drain", "q", "--batch", "1", "--pipe", h});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(contains(r.err, "more answers than events"));
    CHECK(s.starts() == 2);
    CHECK(json::parse(r.out)["acked"] == 4);
    CHECK(s.status("q")["lag"] == 0);
    s.verify();
  }

  TEST_CASE("a handler's nack reason and its last stderr line reach queue parked") {
    Store s;
    s.fill(2, 1);
    s.ok({"create", "q", "--from", "start", "--max-attempts", "1"});
    std::string h = "while IFS= read -r l; do case \"$l\" in *'\"stream\":\"s-0\"'*) echo 'nack bad data';; "
                    "*) echo 'going down' >&2; exit 4;; esac; done";
    auto r = s.q({"drain", "q", "--pipe", h});
    CHECK(r.status == 8);
    auto parked = s.q({"--json", "parked", "q"});
    CHECK(contains(parked.out, "\"bad data\""));
    CHECK(contains(parked.out, "handler exited with status 4: going down"));
  }

  TEST_CASE("--parallel runs one handler per worker, per-stream order holds") {
    Store s;
    s.fill(8, 6);
    s.ok({"create", "q", "--from", "start"});
    auto r = s.ok({"--json", "drain", "q", "--parallel", "3", "--batch", "4", "--pipe", s.acker()});
    CHECK(json::parse(r.out)["acked"] == 48);
    CHECK(s.starts() >= 1);
    CHECK(s.starts() <= 3);
    CHECK(s.logged().size() == 48);
    CHECK(s.status("q")["lag"] == 0);
    s.verify();
  }

  TEST_CASE("a handler that cannot be run ends the drain with exit 1, nothing acked or counted") {
    Store s;
    s.fill(2, 2);
    s.ok({"create", "q", "--from", "start"});
    auto r = s.q({"drain", "q", "--pipe", "/nonexistent/handler"});
    CHECK(r.status == 1);
    CHECK(contains(r.err, "could not be run"));
    auto st = s.status("q");
    CHECK(st["lag"] == 4);
    CHECK(st["retrying"] == 0);
    CHECK(st["leased"] == 0);
  }

  TEST_CASE("--pipe goes alone: with --exec or --into it is a usage error") {
    Store s;
    s.ok({"create", "q"});
    CHECK(s.q({"drain", "q", "--pipe", "cat", "--exec", "cat"}).status == 2);
    CHECK(s.q({"drain", "q", "--pipe", "cat", "--into", s.dir / "x.db"}).status == 2);
  }

  TEST_CASE("SIGINT or SIGTERM settles the answered events, returns the unanswered ones, waits for the handler, exits 130") {
    for (int sig : {SIGINT, SIGTERM}) {
      CAPTURE(sig);
      Store s;
      s.fill(10, 1);
      s.ok({"create", "q", "--from", "start"});
      // Acks two lines, then reads on without answering; says when it has read all ten, and when
      // its stdin has ended.
      std::string h = "n=0; while IFS= read -r l; do n=$((n+1)); if [ $n -le 2 ]; then printf '%s\\n' \"$l\" >> '" +
                      s.log + "'; echo ack; fi; if [ $n -eq 10 ]; then : > '" + (s.dir / "reached") +
                      "'; fi; done; : > '" + (s.dir / "ended") + "'";
      int pid = spawn({"--store", s.path, "--json", "queue", "drain", "q", "--follow", "--pipe", h}, s.dir / "out",
                      s.dir / "err");
      REQUIRE(eventually([&] { return std::filesystem::exists(s.dir / "reached"); }));
      ::kill(pid, sig);
      CHECK(wait_for(pid) == 130);
      CHECK(std::filesystem::exists(s.dir / "ended"));  // its stdin was closed and it was waited for
      auto sum = json::parse(read_file(s.dir / "out"));
      CHECK(sum["acked"] == 2);
      CHECK(sum["returned"] == 8);
      CHECK(sum["retried"] == 0);
      auto st = s.status("q");
      CHECK(st["lag"] == 8);
      CHECK(st["retrying"] == 0);
      CHECK(st["leased"] == 0);
      s.verify();
      s.ok({"drain", "q", "--pipe", s.acker()});
      CHECK(attempts(s.logged()) == std::map<std::int64_t, int>{{1, 10}});
      s.verify();
    }
  }

  TEST_CASE("--follow keeps one handler running across idle periods") {
    Store s;
    s.ok({"create", "q"});
    int pid = spawn({"--store", s.path, "queue", "drain", "q", "--follow", "--pipe", s.acker()}, s.dir / "out",
                    s.dir / "err");
    for (int i = 1; i <= 3; ++i) {
      REQUIRE(run({"--store", s.path, "append", "s-1", "T"}).status == 0);
      REQUIRE(eventually([&] { return lines(read_file(s.log)).size() == static_cast<std::size_t>(i); }));
    }
    // Its answer settled (else SIGINT would return the last event, rightly, unsettled).
    REQUIRE(eventually([&] { return s.status("q")["lag"] == 0; }));
    ::kill(pid, SIGINT);
    CHECK(wait_for(pid) == 130);
    CHECK(s.starts() == 1);
    CHECK(contains(read_file(s.dir / "out"), "3 delivered, 3 acked"));
    CHECK(s.status("q")["lag"] == 0);
    s.verify();
  }

  TEST_CASE("an idle --follow handler's stderr is passed through as it comes, however much it writes") {
    Store s;
    s.fill(1, 1);
    s.ok({"create", "q", "--from", "start"});
    // After answering, with nothing outstanding, it writes 200 KiB to stderr (three pipe buffers):
    // unless esctl reads its stderr while idle, the write blocks and 'written' never appears.
    std::string h = "while IFS= read -r l; do echo ack; yes 'x123456789' | head -c 204800 >&2; echo >&2; "
                    "echo 'last words' >&2; : > '" + (s.dir / "written") + "'; done";
    int pid = spawn({"--store", s.path, "queue", "drain", "q", "--follow", "--pipe", h}, s.dir / "out", s.dir / "err");
    bool written = eventually([&] { return std::filesystem::exists(s.dir / "written"); });
    ::kill(pid, SIGINT);
    CHECK(wait_for(pid) == 130);
    REQUIRE(written);
    std::string err = read_file(s.dir / "err");
    CHECK(err.size() >= 204800);
    CHECK(contains(err, "last words"));
    CHECK(s.status("q")["lag"] == 0);
  }

  TEST_CASE("a drainer killed with -9 mid-batch: the handler exits at the end of its stdin, the next drain redelivers") {
    Store s;
    s.fill(10, 1);
    s.ok({"create", "q", "--from", "start", "--ack-timeout", "1s"});
    std::string h = "echo $$ > '" + (s.dir / "pid") + "'; n=0; while IFS= read -r l; do n=$((n+1)); if [ $n -le 2 ]; "
                    "then echo ack; fi; if [ $n -eq 10 ]; then : > '" + (s.dir / "reached") + "'; fi; done; : > '" +
                    (s.dir / "ended") + "'";
    int pid = spawn({"--store", s.path, "queue", "drain", "q", "--pipe", h}, s.dir / "out", s.dir / "err");
    REQUIRE(eventually([&] { return std::filesystem::exists(s.dir / "reached"); }));
    ::kill(pid, SIGKILL);
    CHECK(wait_for(pid) == 128 + SIGKILL);
    CHECK(eventually([&] { return std::filesystem::exists(s.dir / "ended"); }));
    // Nothing was settled: every event comes back once its lease (1s) has expired.
    REQUIRE(eventually([&] {
      s.ok({"drain", "q", "--pipe", s.acker()});
      return s.status("q")["lag"] == 0;
    }));
    CHECK(s.logged().size() == 10);
    s.verify();
  }
}
