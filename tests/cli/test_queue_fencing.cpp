// esctl queue fencing: a drainer paused (SIGSTOP) past --ack-timeout comes back with a late ack
// or nack that is reported stale and changes nothing, so a stream's next event never starts while
// the current holder is inside the earlier one; fenced `queue ack|nack POSITION:LEASE`; a queue
// deleted and created again under a drainer; SIGINT's given-back batch counted as returned.
// Barriers are files and log lines, never sleeps of a guessed length.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

struct Env {
  TempDir dir;
  std::string store = dir / "events.db";
  std::string log = dir / "log";           // "NAME start|end VERSION ATTEMPT" lines, in order
  std::string events = dir / "events.ndjson";  // every line a handler was given

  Result esctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--store", store});
    return run(args);
  }
  Result ok(std::vector<std::string> args) const {
    auto r = esctl(std::move(args));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    return r;
  }
  json status(const std::string& q) const { return json::parse(ok({"queue", "status", q, "--json"}).out); }

  // A handler for drainer `name`: logs its start and end, and inside version 0 waits for the file
  // release-NAME-ATTEMPT; it fails attempt 1 when `fail_first` is set.
  std::string handler(const std::string& name, bool fail_first) const {
    std::string d = dir.path();
    return "read -r line; printf '%s\\n' \"$line\" >> '" + events + "'; " +
           "v=$(printf '%s' \"$line\" | sed 's/.*\"version\":\\([0-9]*\\).*/\\1/'); " +
           "a=$(printf '%s' \"$line\" | sed 's/.*\"attempt\":\\([0-9]*\\).*/\\1/'); " +
           "echo \"" + name + " start $v $a\" >> '" + log + "'; " +
           "if [ \"$v\" = 0 ]; then while [ ! -e '" + d + "/release-" + name + "-'\"$a\" ]; do sleep 0.02; done; fi; " +
           "echo \"" + name + " end $v $a\" >> '" + log + "'; " +
           (fail_first ? "[ \"$a\" != 1 ]" : "true");
  }
  void release(const std::string& name, int attempt) const {
    write_file(dir / ("release-" + name + "-" + std::to_string(attempt)), "");
  }
  std::vector<std::string> logged() const { return lines(read_file(log)); }
  bool logged_line(const std::string& l) const {
    for (const auto& x : logged())
      if (x == l) return true;
    return false;
  }
};

// Waits (up to two minutes, a bound for slow machines, not a timing assumption) for `done`.
bool wait_until(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::size_t index_of(const std::vector<std::string>& v, const std::string& x) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] == x) return i;
  return v.size();
}

// The two scenarios of a paused drainer A whose lease passed to B while its handler ran.
void paused_drainer(bool late_nack) {
  Env e;
  for (int v = 0; v < 3; ++v) e.ok({"append", "s-1", "T", "{\"v\":" + std::to_string(v) + "}"});
  e.ok({"queue", "create", "q", "--from", "start", "--ack-timeout", "1s"});
  auto drainer = [&](const std::string& name) {
    return spawn({"--store", e.store, "queue", "drain", "q", "--follow", "--batch", "1", "--exec",
                  e.handler(name, late_nack)},
                 e.dir / (name + ".out"), e.dir / (name + ".err"));
  };
  int a = drainer("A");
  REQUIRE(wait_until([&] { return e.logged_line("A start 0 1"); }));
  ::kill(a, SIGSTOP);  // A's esctl is paused; its handler goes on
  int b = drainer("B");
  // B gets s-1@0 once A's lease has expired: attempt 2.
  REQUIRE(wait_until([&] { return e.logged_line("B start 0 2"); }));
  ::kill(a, SIGCONT);
  e.release("A", 1);  // A's handler ends (acks or fails) while B is inside s-1@0
  // A reports its outcome stale (the old code instead starts s-1@1, or s-1@0 attempt 3).
  bool stale = wait_until([&] {
    return contains(read_file(e.dir / "A.err"), "stale") || e.logged_line("A start 1 1") || e.logged_line("A start 0 3");
  });
  CHECK(stale);
  CHECK(contains(read_file(e.dir / "A.err"), "1 outcome of queue 'q' was stale, not applied"));
  // The stale outcome's pull has committed: nothing of s-1 beyond B's delivery was handed out,
  // and B's delivery keeps its attempt.
  auto st = e.status("q");
  CHECK(st["leased"] == 1);
  CHECK(st["retrying"] == 0);
  CHECK(st["pending"] == 2);
  auto before = e.logged();
  CHECK(index_of(before, "A start 1 1") == before.size());
  CHECK(index_of(before, "B start 1 1") == before.size());
  CHECK(index_of(before, "A start 0 3") == before.size());

  e.release("B", 2);  // B acks s-1@0; the stream moves on
  REQUIRE(wait_until([&] { return e.logged_line("A end 2 1") || e.logged_line("B end 2 1"); }));
  REQUIRE(wait_until([&] { return e.status("q")["lag"] == 0; }));
  ::kill(a, SIGINT);
  ::kill(b, SIGINT);
  CHECK(wait_for(a) == 130);
  CHECK(wait_for(b) == 130);
  auto log = e.logged();
  INFO(read_file(e.log));
  // s-1@1 started only after B, the holder of s-1@0, ended it; s-1@2 only after s-1@1 ended.
  auto b_end0 = index_of(log, "B end 0 2");
  REQUIRE(b_end0 < log.size());
  for (std::size_t i = 0; i < log.size(); ++i) {
    if (log[i].find(" start 1 ") != std::string::npos) CHECK(i > b_end0);
    if (log[i].find(" start 0 3") != std::string::npos) CHECK(false);
  }
  std::size_t end1 = std::min(index_of(log, "A end 1 1"), index_of(log, "B end 1 1"));
  for (std::size_t i = 0; i < log.size(); ++i)
    if (log[i].find(" start 2 ") != std::string::npos) CHECK(i > end1);
  auto a_sum = read_file(e.dir / "A.out");
  CHECK(contains(a_sum, "1 stale"));
  auto v = run({"verify", "--log", e.events});
  CHECK_MESSAGE(v.status == 0, v.out, v.err);
  check_sound(e.store);
}

}  // namespace

TEST_SUITE("cli/queue_fencing") {
  TEST_CASE("a paused drainer's late ack is stale: the stream does not move on while another drainer holds the event") {
    paused_drainer(false);
  }

  TEST_CASE("a paused drainer's late nack is stale: it neither uses up the holder's attempt nor frees the event") {
    paused_drainer(true);
  }

  TEST_CASE("queue ack NAME POSITION:LEASE applies only to the current delivery, exit 3 when stale") {
    Env e;
    e.ok({"append", "s-1", "T"});
    e.ok({"append", "s-1", "T"});  // held behind the first
    e.ok({"queue", "create", "q", "--from", "start"});
    auto first = json::parse(e.ok({"--json", "queue", "pull", "q", "--lease", "100ms"}).out);
    REQUIRE(first["position"] == 1);
    REQUIRE(first["lease"].is_number_integer());
    // Pull until the lease has expired and the event comes again.
    json second;
    REQUIRE(wait_until([&] {
      auto out = e.ok({"--json", "queue", "pull", "q", "--lease", "60s"}).out;
      if (out.empty()) return false;
      second = json::parse(out);
      return true;
    }));
    CHECK(second["position"] == 1);
    CHECK(second["attempt"] == 2);
    CHECK(second["lease"] != first["lease"]);
    auto stale_token = "1:" + std::to_string(first["lease"].get<std::int64_t>());
    auto token = "1:" + std::to_string(second["lease"].get<std::int64_t>());
    auto before = e.status("q");
    auto r = e.esctl({"queue", "ack", "q", stale_token});
    CHECK(r.status == 3);
    CHECK(contains(r.err, stale_token + " of queue 'q' is stale"));
    CHECK(e.status("q") == before);
    r = e.esctl({"queue", "nack", "q", stale_token});
    CHECK(r.status == 3);
    CHECK(e.status("q") == before);
    CHECK(e.status("q")["leased"] == 1);
    r = e.esctl({"queue", "ack", "q", token});
    CHECK_MESSAGE(r.status == 0, r.err);
    CHECK(e.status("q")["lag"] == 1);
    CHECK(e.esctl({"queue", "ack", "q", token}).status == 0);  // the same delivery again: a no-op
    // A mix: the stale one is refused, the current one applies.
    auto t1 = json::parse(e.ok({"--json", "queue", "pull", "q", "--lease", "100ms"}).out);
    REQUIRE(t1["position"] == 2);
    json t2;
    REQUIRE(wait_until([&] {
      auto out = e.ok({"--json", "queue", "pull", "q"}).out;
      if (out.empty()) return false;
      t2 = json::parse(out);
      return true;
    }));
    auto r2 = e.esctl({"queue", "ack", "q", "2:" + std::to_string(t2["lease"].get<std::int64_t>()),
                       "2:" + std::to_string(t1["lease"].get<std::int64_t>())});
    CHECK(r2.status == 3);
    CHECK(e.status("q")["lag"] == 0);
    // Bad tokens are usage errors.
    for (std::string bad : {"1:", ":5", "1:x", "1:-2", "1:2:3"}) {
      auto u = e.esctl({"queue", "ack", "q", bad});
      CHECK(u.status == 2);
      CHECK(contains(u.err, "POSITION:LEASE"));
    }
  }

  TEST_CASE("a fenced ack of a batch settles a stream in order or not at all: after a stale event, its successors go back") {
    Env e;
    for (const char* s : {"s-1", "s-1", "s-1", "t-1"}) e.ok({"append", s, "T"});
    e.ok({"queue", "create", "q", "--from", "start"});
    auto pulled = lines(e.ok({"--json", "queue", "pull", "q", "--max", "4"}).out);
    REQUIRE(pulled.size() == 4);
    std::vector<std::string> targets;
    for (const auto& l : pulled) {
      auto j = json::parse(l);
      targets.push_back(std::to_string(j["position"].get<std::int64_t>()) + ":" +
                        std::to_string(j["lease"].get<std::int64_t>()));
    }
    e.ok({"queue", "nack", "q", "1"});  // an operator fails s-1@0 by hand while the batch is out
    std::vector<std::string> ack{"queue", "ack", "q"};
    ack.insert(ack.end(), targets.begin(), targets.end());
    auto r = e.esctl(ack);
    CHECK(r.status == 3);
    for (int i : {0, 1, 2}) CHECK_MESSAGE(contains(r.err, targets[i] + " of queue 'q' is stale"), r.err);
    CHECK(!contains(r.err, targets[3]));  // t-1@0 is acked
    auto st = e.status("q");
    CHECK(st["lag"] == 3);
    CHECK(st["leased"] == 0);
    // s-1@0 comes first (its second attempt), then s-1@1 and s-1@2, whose attempt was not used.
    std::vector<std::pair<std::int64_t, std::int64_t>> next;
    for (const auto& l : lines(e.ok({"--json", "queue", "pull", "q", "--max", "4"}).out)) {
      auto j = json::parse(l);
      next.emplace_back(j["position"].get<std::int64_t>(), j["attempt"].get<std::int64_t>());
    }
    CHECK(next == std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 2}, {2, 1}, {3, 1}});
  }

  TEST_CASE("a drainer whose queue is deleted and created again touches nothing of the new queue and exits 4") {
    Env e;
    for (int i = 0; i < 6; ++i) e.ok({"append", "s-" + std::to_string(i % 3), "T"});
    e.ok({"queue", "create", "q", "--from", "start"});
    std::string started = e.dir / "started", go = e.dir / "go";
    std::string handler = "cat >/dev/null; : > '" + started + "'; while [ ! -e '" + go + "' ]; do sleep 0.02; done";
    int pid = spawn({"--store", e.store, "queue", "drain", "q", "--follow", "--batch", "10", "--exec", handler},
                    e.dir / "out", e.dir / "err");
    REQUIRE(wait_until([&] { return std::filesystem::exists(started); }));
    // Later esctl versions ask for --force to delete a queue with unacked events.
    auto del = e.esctl({"queue", "delete", "q", "--force"});
    if (del.status == 2) del = e.esctl({"queue", "delete", "q"});
    REQUIRE_MESSAGE(del.status == 0, del.err);
    e.ok({"queue", "create", "q", "--from", "start"});
    auto pulled = parse_lines(e.ok({"--json", "queue", "pull", "q", "--max", "10", "--lease", "60s"}).out);
    REQUIRE(pulled.size() == 6);
    write_file(go, "");
    int status = wait_for(pid);
    CHECK(status == 4);
    auto err = read_file(e.dir / "err");
    CHECK(contains(err, "queue 'q' was deleted under this drain"));
    auto out = read_file(e.dir / "out");
    CHECK(contains(out, "6 delivered, 0 acked"));
    CHECK(contains(out, "6 stale"));
    // The new queue's consumer still holds all six.
    auto st = e.status("q");
    CHECK(st["leased"] == 6);
    CHECK(st["lag"] == 6);
    std::vector<std::string> ack{"queue", "ack", "q"};
    for (const auto& p : pulled)
      ack.push_back(std::to_string(p["position"].get<std::int64_t>()) + ":" + std::to_string(p["lease"].get<std::int64_t>()));
    CHECK(e.esctl(ack).status == 0);
    CHECK(e.status("q")["lag"] == 0);
  }

  TEST_CASE("a drainer whose queue is deleted stops with its summary and exit 4") {
    Env e;
    e.ok({"append", "s-1", "T"});
    e.ok({"queue", "create", "q", "--from", "start"});
    std::string started = e.dir / "started", go = e.dir / "go";
    std::string handler = "cat >/dev/null; : > '" + started + "'; while [ ! -e '" + go + "' ]; do sleep 0.02; done";
    int pid = spawn({"--store", e.store, "--json", "queue", "drain", "q", "--follow", "--exec", handler}, e.dir / "out",
                    e.dir / "err");
    REQUIRE(wait_until([&] { return std::filesystem::exists(started); }));
    auto del = e.esctl({"queue", "delete", "q", "--force"});
    if (del.status == 2) del = e.esctl({"queue", "delete", "q"});
    REQUIRE_MESSAGE(del.status == 0, del.err);
    write_file(go, "");
    CHECK(wait_for(pid) == 4);
    CHECK(contains(read_file(e.dir / "err"), "queue 'q' was deleted under this drain"));
    auto sum = json::parse(read_file(e.dir / "out"));
    CHECK(sum["delivered"] == 1);
    CHECK(sum["stale"] == 1);
  }

  TEST_CASE("a batch given back at SIGINT without using an attempt is counted as returned, not retried") {
    Env e;
    for (int i = 0; i < 5; ++i) e.ok({"append", "s-" + std::to_string(i), "T"});
    e.ok({"queue", "create", "q", "--from", "start"});
    // The handler stands for Ctrl-C: SIGINT to esctl while the batch is in hand, then it fails.
    auto r = e.esctl({"--json", "queue", "drain", "q", "--exec", "cat >/dev/null; kill -INT $PPID; exit 1"});
    CHECK(r.status == 130);
    auto sum = json::parse(r.out);
    CHECK(sum["returned"] == 5);
    CHECK(sum["retried"] == 0);
    auto st = e.status("q");
    CHECK(st["pending"] == 5);
    CHECK(st["retrying"] == 0);
    r = e.esctl({"queue", "drain", "q", "--exec", "cat >/dev/null; kill -INT $PPID; exit 1"});
    CHECK(r.status == 130);
    CHECK(contains(r.out, "0 retried, 5 returned"));
    CHECK(json::parse(e.ok({"--json", "queue", "pull", "q"}).out)["attempt"] == 1);
  }

  TEST_CASE("status shows an event whose last allowed lease expired as parked at once") {
    Env e;
    e.ok({"append", "s-1", "T"});
    e.ok({"append", "s-1", "T"});
    e.ok({"queue", "create", "q", "--from", "start", "--max-attempts", "1"});
    e.ok({"queue", "pull", "q", "--max", "2", "--lease", "100ms"});
    REQUIRE(wait_until([&] { return e.status("q")["leased"] == 0; }));
    auto st = e.status("q");
    CHECK(st["parked"] == 2);
    CHECK(st["retrying"] == 0);
    auto parked = parse_lines(e.ok({"--json", "queue", "parked", "q"}).out);
    REQUIRE(parked.size() == 2);
    CHECK(parked[0]["reason"] == "lease expired");
    CHECK(contains(e.ok({"queue", "ls"}).out, "q"));
  }

  TEST_CASE("a queue created --from start over old history shows the age since its creation") {
    Env e;
    auto r = run({"--store", e.store, "import", "-"},
                 RunOptions{"{\"stream\":\"s-1\",\"type\":\"T\",\"data\":{},\"recorded_at\":\"2020-01-01T00:00:00Z\"}\n", {}, ""});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    e.ok({"queue", "create", "q", "--from", "start"});
    auto st = e.status("q");
    CHECK(contains(st["oldest_unacked_at"].get<std::string>(), "2020-01-01T00:00:00"));
    CHECK(!contains(st["oldest_unacked_since"].get<std::string>(), "2020-01-01"));
    std::string oldest;
    for (const auto& l : lines(e.ok({"queue", "status", "q"}).out))
      if (contains(l, "oldest unacked:")) oldest = l;
    CHECK(contains(oldest, "deliverable to this queue since"));
    CHECK(!contains(oldest, "h ago)"));  // seconds old, not years
    auto ls = lines(e.ok({"queue", "ls"}).out);
    REQUIRE(ls.size() == 2);
    CHECK(!contains(ls[1], "d0"));
  }
}
