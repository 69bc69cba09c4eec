// The libpq wrapper and the schema against the throwaway server: URIs shown without passwords,
// an unreachable server named (exit 1), lock_timeout as busy (exit 7), a connection lost while
// COMMIT runs reported as an unknown outcome, foreign and newer `esctl` schemas refused untouched.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "store/location.hpp"
#include "store/postgres/pg.hpp"
#include "store/postgres/schema.hpp"
#include "store/postgres/store.hpp"
#include "support/pg_db.hpp"

using namespace esctl;
using esctl::test::event;
using esctl::test::TempDatabase;

namespace {

// The exception `f` throws (REQUIREs one).
template <class F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no esctl::Error thrown");
  return Error(Errc::internal, "");
}

// Waits (without a time limit of its own: ctest's timeout bounds it) until `sql` returns a row.
void wait_for_row(pg::Conn& c, const char* sql, const std::vector<pg::Param>& params) {
  while (c.exec(sql, params).rows() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

}  // namespace

TEST_CASE("pg: display_location drops the password of the user part and of a password parameter") {
  CHECK(display_location("postgresql://app:s3cret@db.example:5432/events?sslmode=require") ==
        "postgresql://app@db.example:5432/events?sslmode=require");
  CHECK(display_location("postgres://app@db/events") == "postgres://app@db/events");
  CHECK(display_location("postgresql://db/events?password=s3cret&sslmode=require") ==
        "postgresql://db/events?sslmode=require");
  CHECK(display_location("postgresql://a:p%40ss@h/d?password=x") == "postgresql://a@h/d");
  CHECK(display_location("postgresql:///events?host=/run/pg") == "postgresql:///events?host=/run/pg");
  CHECK(is_postgres_uri("postgresql://x"));
  CHECK(is_postgres_uri("postgres://x"));
  CHECK_FALSE(is_postgres_uri("events.db"));
  CHECK_FALSE(is_postgres_uri("postgresql:/x"));
  CHECK(display_location("dir/events.db") == "dir/events.db");
}

TEST_CASE("pg: an unreachable server is named without the password as an operational failure (exit 1)") {
  auto e = error_of([] { pg::Conn c("postgresql://esctl:Hunter2Secret@/postgres?host=/nonexistent-esctl-dir", 1000); });
  CHECK(e.code() == Errc::io);
  CHECK(exit_code_for(e.code()) == 1);
  std::string msg = e.what();
  CHECK(msg.find("postgresql://esctl@/postgres?host=/nonexistent-esctl-dir") != std::string::npos);
  CHECK(msg.find("Hunter2Secret") == std::string::npos);
}

TEST_CASE("pg: a server error about the connection never shows the password") {
  std::string server = test::pg_server_uri();
  // The server accepts any password (trust) but has no such database.
  std::string uri = "postgresql://esctl:Hunter2Secret@/no_such_db_esctl?password=Other3Secret&" +
                    server.substr(server.find("host="));
  auto e = error_of([&] { pg::Conn c(uri, 1000); });
  CHECK(e.code() == Errc::io);
  std::string msg = e.what();
  CHECK(msg.find("no_such_db_esctl") != std::string::npos);
  CHECK(msg.find("Hunter2Secret") == std::string::npos);
  CHECK(msg.find("Other3Secret") == std::string::npos);
}

TEST_CASE("pg: reading a database without a store is not found and creates nothing / init creates it") {
  TempDatabase db;
  auto e = error_of([&] { pg::PgStore s(db.uri(), 1000, Access::read); });
  CHECK(e.code() == Errc::not_found);
  CHECK(exit_code_for(e.code()) == 4);
  auto e2 = error_of([&] { pg::PgStore s(db.uri(), 1000, Access::update); });
  CHECK(e2.code() == Errc::not_found);
  pg::Conn c(db.uri(), 1000);
  CHECK(c.exec("SELECT 1 FROM pg_namespace WHERE nspname = 'esctl'").rows() == 0);
  {
    pg::PgStore s(db.uri(), 1000, Access::write);
    CHECK(s.head_position() == 0);
  }
  CHECK(c.exec("SELECT schema_version FROM esctl.store").i64(0, 0) == pg::kSchemaVersion);
  pg::PgStore again(db.uri(), 1000, Access::read);
  CHECK(again.head_position() == 0);
}

TEST_CASE("pg: an empty esctl schema (made by a DBA) is used / a foreign one is refused and left alone") {
  SUBCASE("empty") {
    TempDatabase db;
    pg::Conn c(db.uri(), 1000);
    c.exec_script("CREATE SCHEMA esctl");
    pg::PgStore s(db.uri(), 1000, Access::write);
    CHECK(s.append({event("a")}).size() == 1);
  }
  SUBCASE("foreign") {
    TempDatabase db;
    pg::Conn c(db.uri(), 1000);
    c.exec_script("CREATE SCHEMA esctl; CREATE TABLE esctl.things (x int); INSERT INTO esctl.things VALUES (7)");
    for (auto intent : {Access::write, Access::read}) {
      auto e = error_of([&] { pg::PgStore s(db.uri(), 1000, intent); });
      CHECK(e.code() == Errc::corrupt);
      CHECK(std::string(e.what()).find("not an esctl store") != std::string::npos);
    }
    CHECK(c.exec("SELECT count(*) FROM pg_class WHERE relnamespace = 'esctl'::regnamespace").i64(0, 0) == 1);
    CHECK(c.exec("SELECT x FROM esctl.things").i64(0, 0) == 7);
  }
  SUBCASE("newer") {
    TempDatabase db;
    { pg::PgStore s(db.uri(), 1000, Access::write); }
    pg::Conn c(db.uri(), 1000);
    c.exec("UPDATE esctl.store SET schema_version = $1", {pg::kSchemaVersion + 1});
    auto e = error_of([&] { pg::PgStore s(db.uri(), 1000, Access::write); });
    CHECK(e.code() == Errc::corrupt);
    CHECK(std::string(e.what()).find("newer than this esctl understands") != std::string::npos);
    CHECK(c.exec("SELECT count(*) FROM esctl.events").i64(0, 0) == 0);
  }
}

TEST_CASE("pg: concurrent creators of one store: one creates it and the others use it") {
  TempDatabase db;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i)
    threads.emplace_back([&] {
      try {
        pg::PgStore s(db.uri(), 5000, Access::write);
        s.append({event("s")});
        ++ok;
      } catch (const std::exception& e) {
        MESSAGE(e.what());
      }
    });
  for (auto& t : threads) t.join();
  CHECK(ok == 6);
  pg::PgStore s(db.uri(), 1000, Access::read);
  CHECK(s.head_position() == 6);
}

TEST_CASE("pg: an append that cannot get the position lock within the busy timeout is busy (exit 7) / writing nothing") {
  TempDatabase db;
  pg::PgStore s(db.uri(), 300, Access::write);
  s.append({event("a")});
  pg::Conn holder(db.uri(), 1000);
  pg::Txn hold(holder);
  holder.exec("SELECT value FROM esctl.counters WHERE name = 'position' FOR UPDATE");
  auto e = error_of([&] { s.append({event("a")}); });
  CHECK(e.code() == Errc::busy);
  CHECK(exit_code_for(e.code()) == 7);
  CHECK(std::string(e.what()).find("busy") != std::string::npos);
  hold.commit();
  CHECK(s.head_position() == 1);
  CHECK(s.append({event("a")})[0].position == 2);  // the connection is still usable
}

TEST_CASE("pg: a connection lost while COMMIT runs: the outcome is unknown (exit 1) and it may have committed or not") {
  TempDatabase db;
  pg::PgStore s(db.uri(), 5000, Access::write);
  pg::Conn admin(db.uri(), 5000);
  // A deferred trigger runs inside COMMIT; it waits for an advisory lock the test holds, so the
  // appender is reliably inside its COMMIT when the test kills its session.
  admin.exec_script(
      "CREATE FUNCTION public.hold_commit() RETURNS trigger LANGUAGE plpgsql AS "
      "$$ BEGIN PERFORM pg_advisory_lock(4242); RETURN NULL; END $$;"
      "CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT ON esctl.events DEFERRABLE INITIALLY DEFERRED "
      "FOR EACH ROW EXECUTE FUNCTION public.hold_commit();");
  admin.exec("SELECT pg_advisory_lock(4242)");
  const auto pid = s.conn().exec("SELECT pg_backend_pid()").i64(0, 0);
  std::optional<Error> failure;
  std::thread appender([&] {
    try {
      s.append({event("a")});
    } catch (const Error& e) {
      failure = e;
    }
  });
  wait_for_row(admin, "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query = 'COMMIT' AND wait_event_type = 'Lock'",
               {pid});
  admin.exec("SELECT pg_terminate_backend($1)", {pid});
  appender.join();
  REQUIRE(failure);
  CHECK(failure->code() == Errc::io);
  CHECK(exit_code_for(failure->code()) == 1);
  CHECK(std::string(failure->what()).find("outcome is unknown") != std::string::npos);
}

TEST_CASE("pg: a connection lost before COMMIT fails the append with the connection named / nothing is stored") {
  TempDatabase db;
  pg::PgStore s(db.uri(), 5000, Access::write);
  pg::Conn admin(db.uri(), 5000);
  pg::Txn hold(admin);
  admin.exec("SELECT value FROM esctl.counters WHERE name = 'position' FOR UPDATE");
  const auto pid = s.conn().exec("SELECT pg_backend_pid()").i64(0, 0);
  std::optional<Error> failure;
  std::thread appender([&] {
    try {
      s.append({event("a")});
    } catch (const Error& e) {
      failure = e;
    }
  });
  pg::Conn killer(db.uri(), 5000);
  wait_for_row(killer, "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", {pid});
  killer.exec("SELECT pg_terminate_backend($1)", {pid});
  appender.join();
  hold.commit();
  REQUIRE(failure);
  CHECK(failure->code() == Errc::io);
  CHECK(std::string(failure->what()).find("lost the connection") != std::string::npos);
  CHECK(killer.exec("SELECT count(*) FROM esctl.events").i64(0, 0) == 0);
}
