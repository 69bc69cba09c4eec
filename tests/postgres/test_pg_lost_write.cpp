// esctl write commands whose PostgreSQL connection is cut (pg_terminate_backend from another
// session, as a server crash or a network failure would): the command exits 1; when the cut
// came while COMMIT ran, it says the outcome is unknown; and it never retries the write by
// itself (a retry would store the events again or store them after all).
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "store/postgres/pg.hpp"
#include "support/cli.hpp"
#include "support/pg_db.hpp"

using namespace esctl::test;
namespace pg = esctl::pg;

namespace {

// Waits (ctest's timeout bounds it) for a backend of another esctl session that waits on a
// lock (with `query` as its statement, if given); returns its pid.
std::int64_t waiting_backend(pg::Conn& admin, const std::string& query = "") {
  for (;;) {
    auto r = admin.exec(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND wait_event_type = 'Lock' AND ($1 = '' OR query = $1)",
        {query});
    if (r.rows() == 1) return r.i64(0, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// A deferred trigger on each of `tables` runs inside COMMIT and waits there for advisory lock
// 4242 (once the SQL condition `when` holds), so that a writer is reliably inside its COMMIT
// while the test holds that lock.
void hold_commits_on(pg::Conn& admin, std::initializer_list<const char*> tables, const std::string& when = "true") {
  admin.exec_script(("CREATE OR REPLACE FUNCTION public.hold_commit() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN IF " + when + " THEN PERFORM pg_advisory_lock(4242); END IF; RETURN NULL; END $$;")
                        .c_str());
  for (const char* table : tables)
    admin.exec_script((std::string("CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT OR UPDATE OR DELETE ON ") + table +
                       " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.hold_commit();")
                          .c_str());
}

std::int64_t count(pg::Conn& c, const char* sql) { return c.exec(sql).i64(0, 0); }

// Runs `esctl ARGS` while the test holds advisory lock 4242 (see hold_commits_on), ends its
// session once it waits inside COMMIT, then releases the lock at once (an esctl that retried
// would now get through) and returns how the command ended.
Result cut_in_commit(pg::Conn& admin, const std::vector<std::string>& args) {
  TempDir dir;
  admin.exec("SELECT pg_advisory_lock(4242)");
  const int pid = spawn(args, dir / "out", dir / "err");
  admin.exec("SELECT pg_terminate_backend($1)", {waiting_backend(admin, "COMMIT")});
  admin.exec("SELECT pg_advisory_unlock(4242)");
  Result r;
  r.status = wait_for(pid);
  r.out = read_file(dir / "out");
  r.err = read_file(dir / "err");
  return r;
}

}  // namespace

TEST_SUITE("postgres/lost_write") {
  TEST_CASE("pg: append cut off inside COMMIT exits 1 saying the outcome is unknown, and does not retry") {
    TempDatabase db;
    REQUIRE(run({"--store", db.uri(), "init"}).status == 0);
    pg::Conn admin(db.uri(), 5000);
    hold_commits_on(admin, {"esctl.events"});
    auto r = cut_in_commit(admin, {"--store", db.uri(), "--busy-timeout", "60s", "append", "a-1", "T", "--id",
                                   "0190a6e4-6d5a-7c4e-9a51-000000000001"});
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "the outcome is unknown"), r.err);
    CHECK_MESSAGE(contains(r.err, "re-running it is safe only for events with ids"), r.err);
    CHECK(r.out.empty());
    CHECK(count(admin, "SELECT count(*) FROM esctl.events") == 0);  // the cut COMMIT did not commit here
    // Re-running it, as the message says, stores it once.
    admin.exec_script("DROP TRIGGER hold_commit ON esctl.events");
    REQUIRE(run({"--store", db.uri(), "append", "a-1", "T", "--id", "0190a6e4-6d5a-7c4e-9a51-000000000001"}).status == 0);
    REQUIRE(run({"--store", db.uri(), "append", "a-1", "T", "--id", "0190a6e4-6d5a-7c4e-9a51-000000000001"}).status == 0);
    CHECK(count(admin, "SELECT count(*) FROM esctl.events") == 1);
  }

  TEST_CASE("pg: append cut off while it waits for the position lock exits 1 naming the lost connection, stores nothing, does not retry") {
    TempDatabase db;
    REQUIRE(run({"--store", db.uri(), "append", "a-1", "T"}).status == 0);
    pg::Conn admin(db.uri(), 5000), holder(db.uri(), 5000);
    auto hold = std::make_unique<pg::Txn>(holder);
    holder.exec("SELECT value FROM esctl.counters WHERE name = 'position' FOR UPDATE");
    TempDir dir;
    const int pid = spawn({"--store", db.uri(), "--busy-timeout", "60s", "append", "a-1", "T"}, dir / "out", dir / "err");
    admin.exec("SELECT pg_terminate_backend($1)", {waiting_backend(admin)});
    hold.reset();  // the lock is free: an esctl that retried would now store its event
    CHECK(wait_for(pid) == 1);
    const std::string err = read_file(dir / "err");
    CHECK_MESSAGE(contains(err, "lost the connection to the PostgreSQL server of"), err);
    CHECK_MESSAGE(contains(err, "nothing of it was stored"), err);
    CHECK(count(admin, "SELECT count(*) FROM esctl.events") == 1);
  }

  TEST_CASE("pg: import cut off inside its second batch's COMMIT exits 1: outcome unknown, the first batch named, no retry") {
    TempDatabase db;
    REQUIRE(run({"--store", db.uri(), "init"}).status == 0);
    pg::Conn admin(db.uri(), 5000);
    hold_commits_on(admin, {"esctl.events"}, "(SELECT count(*) FROM esctl.events) > 5");  // the first batch passes
    TempDir dir;
    std::string input;
    for (int i = 0; i < 10; ++i) input += "{\"stream\":\"s-1\",\"type\":\"T\",\"data\":{\"i\":" + std::to_string(i) + "}}\n";
    write_file(dir / "in.ndjson", input);
    auto r = cut_in_commit(admin, {"--store", db.uri(), "--busy-timeout", "60s", "import", "--batch", "5", dir / "in.ndjson"});
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "the outcome is unknown"), r.err);
    CHECK_MESSAGE(contains(r.err, "committed before this batch: 5 events"), r.err);
    CHECK(count(admin, "SELECT count(*) FROM esctl.events") == 5);
  }

  TEST_CASE("pg: queue create and queue ack cut off inside COMMIT exit 1 saying the outcome is unknown") {
    TempDatabase db;
    REQUIRE(run({"--store", db.uri(), "append", "a-1", "T"}).status == 0);
    REQUIRE(run({"--store", db.uri(), "queue", "create", "q", "--from", "start"}).status == 0);
    auto pulled = run({"--store", db.uri(), "--json", "queue", "pull", "q"});
    REQUIRE(pulled.status == 0);
    const auto lease = nlohmann::json::parse(lines(pulled.out).at(0));
    pg::Conn admin(db.uri(), 5000);
    hold_commits_on(admin, {"esctl.queues", "esctl.queue_items", "esctl.queue_runs"});
    SUBCASE("create") {
      auto r = cut_in_commit(admin, {"--store", db.uri(), "--busy-timeout", "60s", "queue", "create", "q2"});
      CHECK(r.status == 1);
      CHECK_MESSAGE(contains(r.err, "the outcome is unknown"), r.err);
      CHECK(count(admin, "SELECT count(*) FROM esctl.queues WHERE name = 'q2'") == 0);
    }
    SUBCASE("ack") {
      const std::string target = std::to_string(lease["position"].get<std::int64_t>()) + ":" +
                                 std::to_string(lease["lease"].get<std::int64_t>());
      auto r = cut_in_commit(admin, {"--store", db.uri(), "--busy-timeout", "60s", "queue", "ack", "q", target});
      CHECK(r.status == 1);
      CHECK_MESSAGE(contains(r.err, "the outcome is unknown"), r.err);
      // Not acked: the event is still leased to that delivery.
      auto st = nlohmann::json::parse(run({"--store", db.uri(), "--json", "queue", "status", "q"}).out);
      CHECK(st["lag"] == 1);
    }
  }
}
