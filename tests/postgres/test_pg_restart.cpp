// A PostgreSQL server restarted (`pg_ctl restart`) under running esctl commands: a follower and
// a reader in the middle of a long read reconnect, say so on stderr (one notice per outage, no
// raw libpq line), and skip and repeat nothing; a queue drainer reconnects too and skips
// nothing, writes what it holds when it stops, stops at once on SIGINT while reconnecting, and
// without --follow gives up after 30 s; a rebuild and a pull whose reads are cut go on on a new
// connection; a queue command cut while COMMIT runs says its outcome is unknown. Each test restarts (or stops) a server of its own (tests/support/pg_cluster.sh in
// a directory of its own), or closes a database of its own on the shared test server, so the
// tests running beside it there are not disturbed.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "store/postgres/pg.hpp"
#include "support/cli.hpp"
#include "support/pg_db.hpp"

using namespace esctl::test;

namespace {

// A throwaway server of this test's own, stopped (and its directory removed) at the end.
class OwnServer {
 public:
  OwnServer() {
    char tmpl[] = "/tmp/esctl-pgr-XXXXXX";  // short: the Unix socket lives in it
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    auto r = script("start");
    REQUIRE_MESSAGE(r.status == 0, r.err);
    uri_ = "postgresql://esctl@/postgres?host=" + dir_;
  }
  ~OwnServer() { script("stop"); }
  OwnServer(const OwnServer&) = delete;
  /// `pg_ctl restart`: every session is disconnected; returns once the server is up again.
  void restart() {
    auto r = script("restart");
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
  /// Stops the server for good (its directory goes too): every connection attempt fails at once.
  void stop() { script("stop"); }
  const std::string& uri() const { return uri_; }

 private:
  Result script(const std::string& cmd) {
    return sh("sh '" ESCTL_SOURCE_DIR "/tests/support/pg_cluster.sh' " + cmd + " '" + dir_ + "'");
  }
  std::string dir_, uri_;
};

std::string ndjson(int from, int to) {
  std::string s;
  for (int i = from; i <= to; ++i)
    s += "{\"stream\":\"s-" + std::to_string(i % 7) + "\",\"type\":\"T\",\"data\":{\"n\":" + std::to_string(i) + "}}\n";
  return s;
}

void import_events(const std::string& uri, int from, int to) {
  auto r = run({"--store", uri, "import", "-"}, RunOptions{ndjson(from, to), {}, ""});
  REQUIRE_MESSAGE(r.status == 0, r.err);
}

// Polls (bounded by ctest's timeout, not by a clock of its own) until `done()`; fails at once
// if the esctl process `pid` (if given) ends meanwhile, showing its stderr.
template <class F>
void wait_until(F&& done, int pid = 0, const std::string& err_file = "") {
  while (!done()) {
    int status = 0;
    if (pid > 0 && ::waitpid(pid, &status, WNOHANG) == pid)
      FAIL("esctl ended early (status " << status << "): " << read_file(err_file));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// How many lines of `text` contain `part`.
std::size_t count_lines(const std::string& text, std::string_view part) {
  std::size_t n = 0;
  for (const auto& l : lines(text)) n += contains(l, part);
  return n;
}

// stderr of a command that lived through `outages` server restarts: one "lost" and one
// "reconnected" notice for each, whichever of its connections found out, and none of libpq's
// raw lines (the server's FATAL to idle sessions as it shuts down).
void check_notices(const std::string& err, std::size_t outages) {
  CHECK_MESSAGE(count_lines(err, "esctl: lost the connection to the PostgreSQL server") == outages, err);
  CHECK_MESSAGE(count_lines(err, "esctl: reconnected to the PostgreSQL server") == outages, err);
  CHECK_MESSAGE(!contains(err, "FATAL"), err);
  CHECK_MESSAGE(!contains(err, "terminating connection"), err);
}

// Starts a drain of `q` (one batch of 5 at a time, one-shot unless `extra` says otherwise) whose
// handler, on its first batch, creates `started`, then waits for `go` before it logs the batch;
// returns once the handler holds its batch and none of the drainer's statements is on the wire
// (the look-ahead pull is done), so that what happens to the server next cuts only idle
// connections.
int drain_holding_a_batch(const std::string& uri, TempDir& tmp, std::vector<std::string> extra = {}) {
  const std::string log = tmp / "log", started = tmp / "started", go = tmp / "go";
  std::vector<std::string> args = {"--store", uri, "queue", "drain", "q", "--batch", "5", "--exec",
                                   ": > '" + started + "'; while [ ! -e '" + go + "' ]; do sleep 0.01; done; cat >> '" +
                                       log + "'"};
  args.insert(args.end(), extra.begin(), extra.end());
  const int pid = spawn(args, tmp / "out", tmp / "err");
  esctl::pg::Conn admin(uri, 5000);
  wait_until(
      [&] {
        return access(started.c_str(), F_OK) == 0 &&
               admin
                       .exec("SELECT 1 FROM pg_stat_activity WHERE application_name = 'esctl' AND state <> 'idle' "
                             "AND pid <> pg_backend_pid()")
                       .rows() == 0;
      },
      pid, tmp / "err");
  return pid;
}

// 20 events and a queue `q` of them with a lease far longer than a restart: a batch in hand is
// still its drainer's when the server is back.
void queue_of_20(const std::string& uri) {
  import_events(uri, 1, 20);
  auto c = run({"--store", uri, "queue", "create", "q", "--from", "start", "--ack-timeout", "60s"});
  REQUIRE_MESSAGE(c.status == 0, c.err);
}

// Restarts the server once esctl `pid` waits for a lock (one the test holds), then requires it to
// end well.
void restart_once_waiting_for_a_lock(OwnServer& srv, int pid, TempDir& tmp) {
  esctl::pg::Conn admin(srv.uri(), 5000);
  wait_until(
      [&] {
        return admin.exec("SELECT 1 FROM pg_stat_activity WHERE application_name = 'esctl' AND wait_event_type = 'Lock'")
                   .rows() > 0;
      },
      pid, tmp / "err");
  srv.restart();
  REQUIRE_MESSAGE(wait_for(pid) == 0, read_file(tmp / "err"));
}

void release_handler(TempDir& tmp) { std::ofstream((tmp / "go").c_str()) << ""; }

// The positions of NDJSON lines, checked to be exactly 1..n in order (no gap, no repeat).
void check_positions(const std::string& out, int n) {
  auto events = parse_lines(out);
  REQUIRE(static_cast<int>(events.size()) == n);
  for (int i = 0; i < n; ++i) REQUIRE(events[static_cast<std::size_t>(i)]["position"].get<int>() == i + 1);
}

}  // namespace

TEST_CASE("pg restart: tail -f prints every event once, in order, across a server restart, and says it reconnected") {
  OwnServer srv;
  TempDir tmp;
  REQUIRE(run({"--store", srv.uri(), "init"}).status == 0);
  const int pid = spawn({"--store", srv.uri(), "tail", "-f", "--all", "-n", "0", "--json"}, tmp / "out", tmp / "err");
  // Listening (LISTEN is its connection's last statement) means the follower has taken its start.
  esctl::pg::Conn admin(srv.uri(), 5000);
  wait_until([&] { return admin.exec("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'LISTEN%'").rows() > 0; }, pid,
             tmp / "err");
  import_events(srv.uri(), 1, 3);
  wait_until([&] { return lines(read_file(tmp / "out")).size() >= 3; }, pid, tmp / "err");

  srv.restart();  // the follower is idle, waiting: both of its connections die
  import_events(srv.uri(), 4, 6);
  wait_until([&] { return lines(read_file(tmp / "out")).size() >= 6; }, pid, tmp / "err");
  // Once more, with the follower's connections known to be fresh: still nothing lost.
  srv.restart();
  import_events(srv.uri(), 7, 9);
  wait_until([&] { return lines(read_file(tmp / "out")).size() >= 9; }, pid, tmp / "err");

  ::kill(pid, SIGINT);
  CHECK(wait_for(pid) == 130);  // still running after both restarts
  check_positions(read_file(tmp / "out"), 9);
  check_notices(read_file(tmp / "err"), 2);  // its reads' connection and its LISTEN one: one notice each time
}

TEST_CASE("pg restart: read --all blocked on a full pipe mid-read goes on after a restart: every event once, in order") {
  OwnServer srv;
  TempDir tmp;
  import_events(srv.uri(), 1, 5000);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  // stdout is the pipe's write end (reopened through /dev/fd in the child); nobody reads it yet.
  const int pid = spawn({"--store", srv.uri(), "read", "--all", "--json"}, "/dev/fd/" + std::to_string(fds[1]), tmp / "err");
  ::close(fds[1]);
  // Barrier: esctl is blocked writing to stdout, in the middle of its first chunk of rows.
  wait_until([&] { return read_file("/proc/" + std::to_string(pid) + "/syscall").rfind("1 0x1 ", 0) == 0; }, pid,
             tmp / "err");
  srv.restart();
  std::string out;
  char buf[65536];
  for (ssize_t got; (got = ::read(fds[0], buf, sizeof buf)) != 0;)
    if (got > 0) out.append(buf, static_cast<std::size_t>(got));
  ::close(fds[0]);
  REQUIRE_MESSAGE(wait_for(pid) == 0, read_file(tmp / "err"));
  check_positions(out, 5000);
  CHECK_MESSAGE(contains(read_file(tmp / "err"), "reconnected to the PostgreSQL server"), read_file(tmp / "err"));
}

TEST_CASE("pg restart: queue drain --follow goes on across server restarts: every event delivered, in order per stream") {
  OwnServer srv;
  TempDir tmp;
  import_events(srv.uri(), 1, 30);
  // A short ack timeout: a delivery whose ack died with the connection comes back soon.
  auto c = run({"--store", srv.uri(), "queue", "create", "q", "--from", "start", "--ack-timeout", "2s", "--max-attempts",
                "100"});
  REQUIRE_MESSAGE(c.status == 0, c.err);
  const std::string log = tmp / "log";
  // Logs each batch whole (one write), then works a little, so a restart can land inside a batch.
  const int pid = spawn({"--store", srv.uri(), "queue", "drain", "q", "--follow", "--batch", "5", "--exec",
                         "cat >> '" + log + "'; sleep 0.02"},
                        tmp / "out", tmp / "err");
  // The distinct positions delivered so far.
  auto delivered = [&] {
    std::set<std::int64_t> seen;
    for (const auto& e : parse_lines(read_file(log))) seen.insert(e["position"].get<std::int64_t>());
    return seen.size();
  };
  wait_until([&] { return delivered() >= 30; }, pid, tmp / "err");

  srv.restart();  // the drainer is idle, waiting: every connection it has dies
  import_events(srv.uri(), 31, 60);
  wait_until([&] { return delivered() >= 60; }, pid, tmp / "err");

  import_events(srv.uri(), 61, 300);
  wait_until([&] { return delivered() >= 80; }, pid, tmp / "err");
  srv.restart();  // most likely mid-drain: a batch in the handler, its settle or the next pull on the wire
  wait_until([&] { return delivered() >= 300; }, pid, tmp / "err");
  // Everything acked (a delivery whose ack was lost is redelivered once its lease expires).
  wait_until(
      [&] {
        auto s = run({"--store", srv.uri(), "--json", "queue", "status", "q"});
        return s.status == 0 && nlohmann::json::parse(s.out)["lag"].get<std::int64_t>() == 0;
      },
      pid, tmp / "err");

  ::kill(pid, SIGINT);
  CHECK_MESSAGE(wait_for(pid) == 130, read_file(tmp / "err"));  // still running after both restarts
  // First deliveries in order per stream: a version is first delivered only after all before it.
  std::map<std::string, std::int64_t> next;
  std::size_t firsts = 0;
  for (const auto& e : parse_lines(read_file(log))) {
    const auto s = e["stream"].get<std::string>();
    const auto v = e["version"].get<std::int64_t>();
    auto& n = next[s];
    if (v < n) continue;  // a redelivery
    CHECK_MESSAGE(v == n, "stream ", s, ": version ", v, " delivered first while version ", n, " never was");
    n = v + 1;
    ++firsts;
  }
  CHECK(firsts == 300);
  auto v = run({"--store", srv.uri(), "verify", "--log", log, "--queue", "q"});
  CHECK_MESSAGE(v.status == 0, v.out, v.err);
  check_notices(read_file(tmp / "err"), 2);  // its worker's, lease keeper's and LISTEN connections
}

TEST_CASE("pg restart: a drain whose handler holds a batch across a restart settles it after reconnecting, then ends") {
  OwnServer srv;
  TempDir tmp;
  queue_of_20(srv.uri());
  const std::string log = tmp / "log";
  const int pid = drain_holding_a_batch(srv.uri(), tmp);
  srv.restart();
  release_handler(tmp);
  REQUIRE_MESSAGE(wait_for(pid) == 0, read_file(tmp / "err"));
  // Every event logged exactly once: the held batch's acks were written after the reconnect.
  std::set<std::int64_t> seen;
  const auto logged = parse_lines(read_file(log));
  for (const auto& e : logged) seen.insert(e["position"].get<std::int64_t>());
  CHECK(logged.size() == 20);
  CHECK(seen.size() == 20);
  auto s = run({"--store", srv.uri(), "--json", "queue", "status", "q"});
  REQUIRE(s.status == 0);
  CHECK(nlohmann::json::parse(s.out)["lag"].get<std::int64_t>() == 0);
  auto v = run({"--store", srv.uri(), "verify", "--log", log, "--queue", "q"});
  CHECK_MESSAGE(v.status == 0, v.out, v.err);
  check_notices(read_file(tmp / "err"), 1);
}

TEST_CASE("pg restart: a drain stopped by SIGINT while its handler runs writes its outcomes after a restart cut its connection") {
  OwnServer srv;
  TempDir tmp;
  queue_of_20(srv.uri());
  const int pid = drain_holding_a_batch(srv.uri(), tmp, {"--follow"});
  ::kill(pid, SIGINT);  // it stops once its handler is done: what it holds is to be written then
  srv.restart();
  release_handler(tmp);
  CHECK_MESSAGE(wait_for(pid) == 130, read_file(tmp / "err"));
  CHECK(parse_lines(read_file(tmp / "log")).size() == 5);
  CHECK_MESSAGE(contains(read_file(tmp / "out"), "5 acked"), read_file(tmp / "out"));
  // The batch handled is acked and the one leased ahead given back: nothing waits for a lease to expire.
  auto s = run({"--store", srv.uri(), "--json", "queue", "status", "q"});
  REQUIRE(s.status == 0);
  const auto st = nlohmann::json::parse(s.out);
  CHECK_MESSAGE(st["lag"].get<std::int64_t>() == 15, s.out);
  CHECK_MESSAGE(st["leased"].get<std::int64_t>() == 0, s.out);
  check_notices(read_file(tmp / "err"), 1);
}

TEST_CASE("pg restart: SIGINT while a drain reconnects ends it at once with its summary (exit 130)") {
  OwnServer srv;
  TempDir tmp;
  queue_of_20(srv.uri());
  const int pid = drain_holding_a_batch(srv.uri(), tmp);  // without --follow: it would try for 30 s, then exit 1
  srv.stop();
  release_handler(tmp);
  wait_until([&] { return contains(read_file(tmp / "err"), "; reconnecting"); }, pid, tmp / "err");
  ::kill(pid, SIGINT);
  CHECK_MESSAGE(wait_for(pid) == 130, read_file(tmp / "err"));
  CHECK_MESSAGE(contains(read_file(tmp / "out"), "drained queue 'q': 5 delivered"), read_file(tmp / "out"));
  CHECK_MESSAGE(contains(read_file(tmp / "out"), "(interrupted)"), read_file(tmp / "out"));
  CHECK_MESSAGE(!contains(read_file(tmp / "err"), "error"), read_file(tmp / "err"));
}

TEST_CASE("pg restart: a drain without --follow whose server stays away gives up after 30 s with exit 1 saying so") {
  // The shared test server, not one of its own (whose start would add seconds to the 30): its
  // database stops taking connections and the drainer's sessions are ended.
  esctl::test::TempDatabase db;
  TempDir tmp;
  queue_of_20(db.uri());
  const int pid = drain_holding_a_batch(db.uri(), tmp);
  {
    esctl::pg::Conn admin(esctl::test::pg_server_uri(), 5000);
    admin.exec_script(("ALTER DATABASE " + db.name() + " ALLOW_CONNECTIONS false").c_str());
    admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", {db.name()});
  }
  release_handler(tmp);
  CHECK(wait_for(pid) == 1);
  const std::string err = read_file(tmp / "err");
  CHECK_MESSAGE(count_lines(err, "esctl: lost the connection to the PostgreSQL server") == 1, err);
  CHECK_MESSAGE(contains(err, "esctl: error: lost the connection to the PostgreSQL server of '" + db.uri() +
                                  "' and could not reconnect within 30 seconds: cannot connect"),
                err);
  CHECK_MESSAGE(!contains(err, "reconnected"), err);
}

TEST_CASE("pg restart: a queue command whose connection is cut while COMMIT runs exits 1 saying the outcome is unknown") {
  OwnServer srv;
  TempDir tmp;
  import_events(srv.uri(), 1, 3);
  REQUIRE(run({"--store", srv.uri(), "queue", "create", "q", "--from", "start"}).status == 0);
  esctl::pg::Conn admin(srv.uri(), 5000);
  // A deferred trigger runs inside COMMIT; it waits for an advisory lock the test holds, so the
  // reset is reliably inside its COMMIT when the test ends its session (as a restart would).
  admin.exec_script(
      "CREATE FUNCTION public.hold_commit() RETURNS trigger LANGUAGE plpgsql AS "
      "$$ BEGIN PERFORM pg_advisory_lock(4243); RETURN NULL; END $$;"
      "CREATE CONSTRAINT TRIGGER hold_commit AFTER UPDATE ON esctl.queues DEFERRABLE INITIALLY DEFERRED "
      "FOR EACH ROW EXECUTE FUNCTION public.hold_commit();");
  admin.exec("SELECT pg_advisory_lock(4243)");
  const int pid = spawn({"--store", srv.uri(), "queue", "reset", "q", "--to", "start"}, tmp / "out", tmp / "err");
  auto committing = [&] {
    return admin.exec("SELECT pid FROM pg_stat_activity WHERE query = 'COMMIT' AND wait_event_type = 'Lock'");
  };
  wait_until([&] { return committing().rows() > 0; }, pid, tmp / "err");
  admin.exec("SELECT pg_terminate_backend($1)", {committing().i64(0, 0)});
  CHECK(wait_for(pid) == 1);
  CHECK_MESSAGE(contains(read_file(tmp / "err"), "before it confirmed the commit: the outcome is unknown"),
                read_file(tmp / "err"));
}

TEST_CASE("pg restart: rebuild --queue whose read is cut by a restart reconnects, then hands the queue over") {
  OwnServer srv;
  TempDir tmp;
  import_events(srv.uri(), 1, 50);
  REQUIRE(run({"--store", srv.uri(), "queue", "create", "q", "--from", "start"}).status == 0);
  const std::string proj = tmp / "view.sql", db = tmp / "view.db";
  {
    std::ofstream(proj.c_str()) << "-- @init\nCREATE TABLE seen (position INTEGER PRIMARY KEY);\n\n-- @on T\n"
                                   "INSERT INTO seen (position) VALUES (:position);\n";
  }
  // Barrier: the rebuild has looked its queue up and waits to read the events, which a session of
  // the test holds locked; the restart then cuts the read.
  esctl::pg::Conn locker(srv.uri(), 5000);
  locker.exec("BEGIN");
  locker.exec("LOCK TABLE esctl.events IN ACCESS EXCLUSIVE MODE");
  const int pid = spawn({"--store", srv.uri(), "--busy-timeout", "60s", "rebuild", db, "--projection", proj, "--queue", "q"},
                        tmp / "out", tmp / "err");
  restart_once_waiting_for_a_lock(srv, pid, tmp);
  auto s = run({"--store", srv.uri(), "--json", "queue", "status", "q"});
  REQUIRE(s.status == 0);
  CHECK_MESSAGE(nlohmann::json::parse(s.out)["lag"].get<std::int64_t>() == 0, s.out);  // handed over at the head
  check_notices(read_file(tmp / "err"), 1);
}

TEST_CASE("pg restart: a drain whose pull is cut while it reads stream names reconnects and drains everything") {
  OwnServer srv;
  TempDir tmp;
  import_events(srv.uri(), 1, 20);
  // A stream filter: the pull reads stream names inside its transaction.
  auto c = run({"--store", srv.uri(), "queue", "create", "q", "--from", "start", "--stream", "s-*"});
  REQUIRE_MESSAGE(c.status == 0, c.err);
  // Barrier: the pull waits for the stream names, which a session of the test holds locked; the
  // restart then cuts the read inside the pull's transaction.
  esctl::pg::Conn locker(srv.uri(), 5000);
  locker.exec("BEGIN");
  locker.exec("LOCK TABLE esctl.streams IN ACCESS EXCLUSIVE MODE");
  const std::string log = tmp / "log";
  const int pid = spawn({"--store", srv.uri(), "--busy-timeout", "60s", "queue", "drain", "q", "--exec", "cat >> '" + log + "'"},
                        tmp / "out", tmp / "err");
  restart_once_waiting_for_a_lock(srv, pid, tmp);
  std::set<std::int64_t> seen;
  for (const auto& e : parse_lines(read_file(log))) seen.insert(e["position"].get<std::int64_t>());
  CHECK(seen.size() == 20);
  check_notices(read_file(tmp / "err"), 1);
}
