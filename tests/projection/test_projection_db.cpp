// projection/projection_db: the query-db sandbox on its own, on a scratch in-memory db: esctl's
// tables and @init, an event's statements run with its bound parameters, a failing statement
// named by file, line and section, the authorizer refusing esctl's tables and ATTACH, and meta.
#include <doctest/doctest.h>

#include <string>

#include "core/error.hpp"
#include "projection/projection_db.hpp"
#include "projection/projection_file.hpp"

using namespace esctl;

namespace {

ProjectionFile file(const std::string& text) { return ProjectionFile{"p.sql", parse_projection_file(text, "p.sql")}; }

const std::string kId(16, '\x01');

EventRef placed(std::string_view stream, std::int64_t version, std::string_view data) {
  return EventRef{7, stream, version, kId, "Placed", data, "{}", 0};
}

const char* const kText =
    "-- @init\n"
    "CREATE TABLE t (stream TEXT, version INTEGER, total REAL NOT NULL);\n"
    "\n"
    "-- @on Placed\n"
    "INSERT INTO t VALUES (:stream, :version, :data ->> '$.total');\n";

}  // namespace

TEST_SUITE("projection/projection_db") {
  TEST_CASE("a db with tables but no _esctl_meta is another application's, whatever else it has") {
    auto f = file(kText);
    detail::ProjectionDb qdb(f, ":memory:", sql::OpenMode::create, 0);
    qdb.db().exec("CREATE TABLE _esctl_applied (x); CREATE VIEW v AS SELECT 1");
    CHECK(qdb.kind() == detail::QueryDbKind::foreign);
    qdb.db().exec("CREATE TABLE _esctl_meta (key TEXT PRIMARY KEY, value)");
    CHECK(qdb.kind() == detail::QueryDbKind::ours);
  }

  TEST_CASE("@init creates esctl's tables and the projection's, and an event's statements run with its parameters") {
    auto f = file(kText);
    detail::ProjectionDb qdb(f, ":memory:", sql::OpenMode::create, 0);
    CHECK(qdb.kind() == detail::QueryDbKind::empty);
    qdb.db().exec("BEGIN");
    qdb.initialize();
    qdb.prepare_statements("");
    CHECK(qdb.kind() == detail::QueryDbKind::ours);
    CHECK(qdb.plan("Other").empty());
    const auto& plan = qdb.plan("Placed");
    REQUIRE_FALSE(plan.empty());
    std::string error;
    CHECK(qdb.run(plan, placed("o-1", 3, R"({"total":5.5})"), error));
    CHECK(error.empty());
    CHECK(qdb.db().query_i64("SELECT count(*) FROM t WHERE stream = 'o-1' AND version = 3 AND total = 5.5") == 1);
    qdb.set_meta("queue", "orders");
    qdb.set_meta("last_position", std::int64_t{42});
    CHECK(qdb.meta("queue") == "orders");
    CHECK(qdb.meta("last_position") == "42");
    CHECK(qdb.meta("nothing").empty());
    qdb.db().exec("COMMIT");
  }

  TEST_CASE("a statement that fails on an event is reported with file, line and section, not thrown") {
    auto f = file(kText);
    detail::ProjectionDb qdb(f, ":memory:", sql::OpenMode::create, 0);
    qdb.db().exec("BEGIN");
    qdb.initialize();
    qdb.prepare_statements("");
    std::string error;
    CHECK_FALSE(qdb.run(qdb.plan("Placed"), placed("o-1", 0, R"({"other":1})"), error));
    CHECK(error.find("p.sql:5: in section '@on Placed'") != std::string::npos);
    CHECK(error.find("NOT NULL constraint failed") != std::string::npos);
    CHECK(qdb.db().query_i64("SELECT count(*) FROM t") == 0);
    qdb.db().exec("ROLLBACK");
  }

  TEST_CASE("the sandbox refuses statements on esctl's own tables and ATTACH when they are prepared") {
    for (const char* sql : {"DELETE FROM _esctl_applied;", "ATTACH 'other.db' AS other;",
                            "UPDATE _esctl_meta SET value = 'x';"}) {
      CAPTURE(sql);
      auto f = file(std::string("-- @init\nCREATE TABLE t (x);\n-- @on Placed\n") + sql + "\n");
      detail::ProjectionDb qdb(f, ":memory:", sql::OpenMode::create, 0);
      qdb.db().exec("BEGIN");
      qdb.initialize();
      try {
        qdb.prepare_statements("");
        FAIL("prepared");
      } catch (const Error& e) {
        CHECK(e.code() == Errc::invalid_input);
        CHECK(std::string(e.what()).find("p.sql:4: in section '@on Placed'") != std::string::npos);
      }
      qdb.db().exec("ROLLBACK");
    }
  }

  TEST_CASE("a failing @init statement is an invalid_input error naming its line") {
    auto f = file("-- @init\nCREATE TABLE t (x);\nINSERT INTO nope VALUES (1);\n-- @on Placed\nINSERT INTO t VALUES (1);\n");
    detail::ProjectionDb qdb(f, ":memory:", sql::OpenMode::create, 0);
    qdb.db().exec("BEGIN");
    try {
      qdb.initialize();
      FAIL("initialized");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::invalid_input);
      CHECK(std::string(e.what()).find("p.sql:3: in section '@init'") != std::string::npos);
    }
    qdb.db().exec("ROLLBACK");
  }
}
