// esctl queue drain --exec (esctl-queue(1)): batches as NDJSON on the handler's stdin, exit 0 acks and
// non-zero nacks, retries one at a time, parking and exit 8, --parallel keeping per-stream order,
// --max-events, --follow with SIGINT (exit 130), the summary, and handlers that cannot run.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

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
  std::string log = dir / "log";

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
  void fill(int streams, int per_stream, const std::string& type = "T") const {
    std::string input;
    for (int v = 0; v < per_stream; ++v)
      for (int k = 0; k < streams; ++k)
        input += "{\"stream\":\"s-" + std::to_string(k) + "\",\"type\":\"" + type + "\",\"data\":{\"v\":" +
                 std::to_string(v) + "}}\n";
    auto r = run({"--store", path, "import", "-"}, {input});
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
  json status(const std::string& name) const { return json::parse(ok({"status", name, "--json"}).out); }
  std::vector<json> logged() const {
    std::vector<json> out;
    for (const auto& l : lines(read_file(log))) out.push_back(json::parse(l));
    return out;
  }
  /// A handler that appends its whole batch to the log with one write (safe with parallel handlers).
  std::string logger(const std::string& then = "") const {
    return "f=$(mktemp '" + dir.path() + "/batch.XXXXXX') && cat > \"$f\" && cat \"$f\" >> '" + log + "' && rm \"$f\"" +
           then;
  }
};

/// Per stream, first deliveries must come as versions 0, 1, 2, ... (repeats allowed).
void check_first_delivery_order(const std::vector<json>& log, std::size_t expect_events) {
  std::map<std::string, std::int64_t> next;
  std::size_t firsts = 0;
  for (const auto& e : log) {
    auto s = e["stream"].get<std::string>();
    auto v = e["version"].get<std::int64_t>();
    auto& n = next[s];
    if (v < n) continue;  // a redelivery
    CHECK_MESSAGE(v == n, "stream ", s, ": first delivery of version ", v, " while ", n, " was never delivered");
    n = v + 1;
    ++firsts;
  }
  CHECK(firsts == expect_events);
}

/// Runs `/bin/sh -c script` (with $ESCTL set) with stdout and stderr on a pseudo-terminal, as in
/// a user's terminal; returns what the terminal received (the tty turns "\n" into "\r\n").
std::string on_terminal(const std::string& script, const std::map<std::string, std::string>& env) {
  int master = -1, slave = -1;
  REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setsid();
    ::ioctl(slave, TIOCSCTTY, 0);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(slave, 1);
    ::dup2(slave, 2);
    ::close(master);
    ::close(slave);
    ::setenv("ESCTL", bin().c_str(), 1);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::signal(SIGPIPE, SIG_DFL);
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(slave);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
    else if (n < 0 && errno == EINTR) continue;
    else break;  // EIO: every writer closed the terminal
  }
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

}  // namespace

TEST_SUITE("cli/queue_drain") {
  TEST_CASE("drain --exec pipes each batch as NDJSON with attempt, acks on exit 0, and ends at lag 0") {
    Store s;
    s.fill(3, 4);
    s.ok({"create", "q", "--from", "start"});
    auto r = s.ok({"drain", "q", "--batch", "5", "--exec", s.logger()});
    CHECK(r.out.find("12 delivered, 12 acked, 0 retried, 0 parked") != std::string::npos);
    auto log = s.logged();
    REQUIRE(log.size() == 12);
    for (std::size_t i = 0; i < log.size(); ++i) {
      CHECK(log[i]["position"] == i + 1);
      CHECK(log[i]["attempt"] == 1);
      for (const char* k : {"stream", "version", "id", "type", "data", "meta", "recorded_at"}) CHECK(log[i].contains(k));
    }
    CHECK(s.status("q")["lag"] == 0);
    // Nothing left: a second drain delivers nothing.
    CHECK(s.ok({"drain", "q", "--exec", s.logger()}).out.find("0 delivered") != std::string::npos);
  }

  TEST_CASE("a failing batch is nacked and retried one event at a time, the poison event is parked, exit 8") {
    Store s;
    s.fill(4, 3);  // s-0..s-3, versions 0..2
    // s-1@1 (position 6) is poison.
    s.ok({"create", "q", "--from", "start", "--max-attempts", "3"});
    auto r = s.q({"--json", "drain", "q", "--batch", "100", "--exec",
                  "tee -a '" + s.log + "' | (! grep '\"stream\":\"s-1\",\"version\":1' >/dev/null)"});
    CHECK(r.status == 8);
    auto sum = json::parse(r.out);
    for (const char* k : {"delivered", "acked", "retried", "parked", "elapsed", "events_per_s"}) CHECK(sum.contains(k));
    CHECK(sum["parked"] == 1);
    // Under block, s-1@2 is held behind the poison event; everything else is acked.
    CHECK(sum["acked"] == 10);
    auto st = s.status("q");
    CHECK(st["parked"] == 1);
    CHECK(st["lag"] == 2);
    auto parked = json::parse(s.ok({"parked", "q", "--json"}).out);
    CHECK(parked["position"] == 6);
    CHECK(parked["attempts"] == 3);
    CHECK(parked["reason"] == "handler exited with status 1");
    // The poison event was delivered with attempts 1, 2, 3; its batch-mates were retried alone.
    std::vector<std::int64_t> poison_attempts;
    for (const auto& e : s.logged())
      if (e["position"] == 6) poison_attempts.push_back(e["attempt"].get<std::int64_t>());
    CHECK(poison_attempts == std::vector<std::int64_t>{1, 2, 3});
    check_first_delivery_order(s.logged(), 12);
  }

  TEST_CASE("under --on-poison park the drain moves on past the parked event") {
    Store s;
    s.fill(1, 4);
    s.ok({"create", "q", "--from", "start", "--max-attempts", "1", "--on-poison", "park"});
    auto r = s.q({"drain", "q", "--batch", "1", "--exec",
                  "tee -a '" + s.log + "' | (! grep '\"version\":1,' >/dev/null)"});
    CHECK(r.status == 8);
    CHECK(r.out.find("3 acked") != std::string::npos);
    CHECK(r.err.find("parked") != std::string::npos);
    CHECK(s.status("q")["lag"] == 1);
  }

  TEST_CASE("a nacked batch comes back with attempt 2") {
    Store s;
    s.fill(2, 1);
    s.ok({"create", "q", "--from", "start"});
    // Fail every first attempt.
    auto r = s.ok({"drain", "q", "--exec", "tee -a '" + s.log + "' | (! grep '\"attempt\":1}' >/dev/null)"});
    auto log = s.logged();
    REQUIRE(log.size() == 4);
    CHECK(log[0]["attempt"] == 1);
    CHECK(log[2]["attempt"] == 2);
    CHECK(log[3]["attempt"] == 2);
    CHECK(json::parse(s.ok({"--json", "status", "q"}).out)["lag"] == 0);
  }

  TEST_CASE("retry after parking gives the event attempt 1 in the next drain") {
    Store s;
    s.fill(1, 1);
    s.ok({"create", "q", "--from", "start", "--max-attempts", "2"});
    CHECK(s.q({"drain", "q", "--exec", "cat >/dev/null; exit 3"}).status == 8);
    s.ok({"retry", "q", "--all"});
    s.ok({"drain", "q", "--exec", s.logger()});
    auto log = s.logged();
    REQUIRE(log.size() == 1);
    CHECK(log[0]["attempt"] == 1);
  }

  TEST_CASE("drain --parallel 4 keeps per-stream order") {
    Store s;
    s.fill(10, 30);
    s.ok({"create", "q", "--from", "start"});
    auto r = s.q({"--json", "drain", "q", "--parallel", "4", "--batch", "7", "--exec", s.logger()});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(json::parse(r.out)["acked"] == 300);
    auto log = s.logged();
    CHECK(log.size() == 300);
    check_first_delivery_order(log, 300);
    CHECK(s.status("q")["lag"] == 0);
  }

  TEST_CASE("--parallel with failing handlers still keeps per-stream order and parks only the poison") {
    Store t;
    t.fill(6, 10);
    t.ok({"create", "q", "--from", "start", "--max-attempts", "2", "--on-poison", "park"});
    auto handler = "f=$(mktemp '" + t.dir.path() + "/b.XXXXXX') && cat > \"$f\" && cat \"$f\" >> '" + t.log +
                   "'; ! grep -q '\"stream\":\"s-2\",\"version\":5,' \"$f\"; rc=$?; rm -f \"$f\"; exit $rc";
    auto r2 = t.q({"--json", "drain", "q", "--parallel", "3", "--batch", "4", "--exec", handler});
    CHECK(r2.status == 8);
    auto sum = json::parse(r2.out);
    CHECK(sum["parked"] == 1);
    CHECK(sum["acked"] == 59);
    check_first_delivery_order(t.logged(), 60);
  }

  TEST_CASE("--max-events stops after that many deliveries") {
    Store s;
    s.fill(2, 10);
    s.ok({"create", "q", "--from", "start"});
    auto r = s.ok({"--json", "drain", "q", "--batch", "3", "--max-events", "7", "--exec", s.logger()});
    CHECK(json::parse(r.out)["delivered"] == 7);
    CHECK(s.logged().size() == 7);
    CHECK(s.status("q")["lag"] == 13);
  }

  TEST_CASE("a handler that cannot be run exits 1 without counting an attempt") {
    Store s;
    s.fill(1, 2);
    s.ok({"create", "q", "--from", "start"});
    auto r = s.q({"drain", "q", "--exec", "/nonexistent/handler"});
    CHECK(r.status == 1);
    CHECK(r.err.find("could not be run") != std::string::npos);
    auto st = s.status("q");
    CHECK(st["lag"] == 2);
    CHECK(st["retrying"] == 0);
    CHECK(st["leased"] == 0);
    auto got = json::parse(s.ok({"--json", "pull", "q"}).out);
    CHECK(got["attempt"] == 1);
  }

  TEST_CASE("a nack reason carries the last line the handler wrote to stderr, which still reaches the user") {
    Store s;
    s.fill(1, 1);
    s.ok({"create", "q", "--from", "start", "--max-attempts", "1", "--on-poison", "park"});
    auto r = s.q({"drain", "q", "--exec", "cat >/dev/null; echo 'first line' >&2; echo 'boom: bad event' >&2; echo >&2; exit 1"});
    CHECK(r.status == 8);
    CHECK(contains(r.err, "first line\nboom: bad event\n"));  // passed through, in full
    auto parked = json::parse(s.ok({"parked", "q", "--json"}).out);
    CHECK(parked["reason"] == "handler exited with status 1: boom: bad event");
    // A long line is cut at 500 bytes; a killed handler says its signal and its last words.
    s.fill(1, 1);
    r = s.q({"drain", "q", "--exec", "cat >/dev/null; printf '%02000d' 7 >&2; exit 3"});
    CHECK(r.status == 8);
    CHECK(contains(r.err, std::string(1999, '0') + "7"));
    s.fill(1, 1);
    r = s.q({"drain", "q", "--exec", "cat >/dev/null; echo 'going down' >&2; kill -9 $$"});
    CHECK(r.status == 8);
    std::vector<std::string> reasons;
    for (const auto& l : lines(s.ok({"parked", "q", "--json"}).out)) reasons.push_back(json::parse(l)["reason"]);
    REQUIRE(reasons.size() == 3);
    CHECK(reasons[1] == "handler exited with status 3: " + std::string(500, '0'));
    CHECK(reasons[2] == "handler was killed by signal 9 (SIGKILL): going down");
  }

  // run under script(1), whose command line the PostgreSQL run does not map
  TEST_CASE("on a terminal the progress line is erased before the handler writes, never mixed into its lines" *
            sqlite_only()) {
    Store s;
    s.fill(4, 5);
    s.ok({"create", "q", "--from", "start"});
    auto term = on_terminal("\"$ESCTL\" --store \"$DB\" queue drain q --batch 2 --exec "
                            "'cat >/dev/null; echo imported 2 events; echo warned once >&2'",
                            {{"DB", s.path}, {"ESCTL_PROGRESS_DELAY", "0"}});
    CHECK(s.status("q")["lag"] == 0);
    // Every line of the handler starts a line of the terminal: after a newline, or after the
    // sequence that erases the progress line ("\r" then erase to the end of the line).
    for (const std::string what : {"imported 2 events\r\n", "warned once\r\n"}) {
      std::size_t seen = 0;
      for (std::size_t at = term.find(what); at != std::string::npos; at = term.find(what, at + 1)) {
        ++seen;
        std::size_t line_start = term.rfind('\n', at);
        std::string before = term.substr(line_start == std::string::npos ? 0 : line_start + 1,
                                         at - (line_start == std::string::npos ? 0 : line_start + 1));
        bool clean = before.empty() || (before.size() >= 4 && before.substr(before.size() - 4) == "\r\x1b[K");
        CHECK_MESSAGE(clean, "the handler's line follows '", before, "'");
      }
      CHECK(seen == 10);
    }
    // A bounded drain knows its total: a bar with a percentage.
    CHECK_MESSAGE(contains(term, "drain q ["), term);
    CHECK(contains(term, "%"));
    CHECK(contains(term, "drained queue 'q': 20 delivered"));
  }

  TEST_CASE("--json keeps stdout for the summary: the handler's stdout goes to stderr") {
    Store s;
    s.fill(1, 2);
    s.ok({"create", "q", "--from", "start"});
    auto r = s.ok({"--json", "drain", "q", "--exec", "cat"});
    auto sum = json::parse(r.out);  // exactly one JSON object
    CHECK(sum["acked"] == 2);
    CHECK(r.err.find("\"attempt\":1") != std::string::npos);
  }

  TEST_CASE("drain --follow delivers new events as they come and stops at SIGINT with 130") {
    Store s;
    s.ok({"create", "q"});
    int pid = spawn({"--store", s.path, "queue", "drain", "q", "--follow", "--exec", s.logger()}, s.dir / "out",
                    s.dir / "err");
    for (int i = 0; i < 3; ++i) {
      auto r = run({"--store", s.path, "append", "s-1", "T"});
      REQUIRE(r.status == 0);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (lines(read_file(s.log)).size() < 3 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(lines(read_file(s.log)).size() == 3);
    ::kill(pid, SIGINT);
    CHECK(wait_for(pid) == 130);
    CHECK(read_file(s.dir / "out").find("3 delivered, 3 acked") != std::string::npos);
    CHECK(s.status("q")["lag"] == 0);
  }

  // the relay's handler names its target store by a path the PostgreSQL run does not map
  TEST_CASE("a relay into another store keeps ids, so a redelivered batch is not duplicated" *
            sqlite_only()) {
    Store s;
    s.fill(2, 3);
    s.ok({"create", "billing", "--from", "start"});
    TempDir other;
    std::string relay = "'" + bin() + "' --store '" + (other / "billing.db") + "' import --ignore-versions -";
    // Every first attempt relays the batch and then fails, so it is delivered (and relayed) again.
    std::string handler = "f=$(mktemp '" + s.dir.path() + "/b.XXXXXX') && cat > \"$f\" && " + relay +
                          " < \"$f\" >/dev/null && ! grep -q '\"attempt\":1}' \"$f\"";
    auto r = s.ok({"--json", "drain", "billing", "--exec", handler});
    CHECK(json::parse(r.out)["retried"] == 6);
    auto ex = run({"--store", other / "billing.db", "export", "--all"});
    CHECK(lines(ex.out).size() == 6);
  }
}
