// LISTEN/NOTIFY waits: an append wakes a listener, a quiet store times out, and a listener
// whose connection is killed reconnects, says so, and wakes its caller to read again.
#include <doctest/doctest.h>

#include <thread>

#include "store/postgres/listen.hpp"
#include "store/postgres/store.hpp"
#include "support/pg_db.hpp"

using namespace esctl;
using esctl::test::event;
using esctl::test::TempDatabase;

TEST_CASE("pg: a committed append wakes a listener / a rolled-back one does not") {
  TempDatabase db;
  pg::PgStore s(db.uri(), 5000, Access::write);
  pg::Listener l(db.uri(), 5000);
  l.set_recheck_ms(600000);
  CHECK(l.wait(50) == pg::Woke::timeout);
  NewEvent bad = event("a");
  bad.version = 3;  // conflicts: the append rolls back
  CHECK_THROWS_AS(s.append({bad}), Error);
  CHECK(l.wait(100) == pg::Woke::timeout);
  s.append({event("a")});
  CHECK(l.wait(-1) == pg::Woke::changed);
  CHECK(l.wait(50) == pg::Woke::timeout);  // consumed
}

TEST_CASE("pg: the periodic re-check wakes a listener without notifications") {
  TempDatabase db;
  pg::PgStore s(db.uri(), 5000, Access::write);
  pg::Listener l(db.uri(), 5000);
  l.set_recheck_ms(20);
  CHECK(l.wait(-1) == pg::Woke::changed);
}

TEST_CASE("pg: a listener whose connection is killed reconnects / reports it / and wakes its caller") {
  TempDatabase db;
  pg::PgStore s(db.uri(), 5000, Access::write);
  std::vector<std::string> reports;
  pg::Listener l(db.uri(), 5000, [&](const std::string& m) { reports.push_back(m); });
  l.set_recheck_ms(600000);
  const int pid = l.backend_pid();
  REQUIRE(pid > 0);
  s.conn().exec("SELECT pg_terminate_backend($1)", {pid});
  // The first wait sees the loss and reconnects (a changed wake: notifications may be lost).
  pg::Woke w = l.wait(-1);
  CHECK(w == pg::Woke::changed);
  REQUIRE(reports.size() == 2);
  CHECK(reports[0].find("lost the connection") != std::string::npos);
  CHECK(reports[1].find("reconnected") != std::string::npos);
  CHECK(l.backend_pid() != pid);
  s.append({event("a")});
  CHECK(l.wait(-1) == pg::Woke::changed);  // listening again
}
