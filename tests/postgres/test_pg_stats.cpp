// `esctl stats` on a PostgreSQL store: the URI without its password, the server and its
// version (human and --json), the schema version, sizes and counts; a SQLite store shows no
// server.
#include <doctest/doctest.h>

#include <string>

#include "store/postgres/pg.hpp"
#include "support/cli.hpp"
#include "support/pg_db.hpp"

using namespace esctl::test;
using nlohmann::json;

TEST_CASE("pg stats: the server and its version, human and --json, beside the URI without password") {
  TempDatabase db;
  // The server trusts any password: one in the URI must not be shown.
  std::string uri = db.uri();
  uri.replace(uri.find("esctl@"), 6, "esctl:Hunter2Secret@");
  REQUIRE_MESSAGE(run({"--store", uri, "append", "order-1", "Placed"}).status == 0, uri);
  esctl::pg::Conn c(db.uri(), 5000);
  const std::string version(c.exec("SELECT current_setting('server_version')").text(0, 0));
  REQUIRE(!version.empty());

  auto human = run({"--store", uri, "stats"});
  REQUIRE_MESSAGE(human.status == 0, human.err);
  CHECK_MESSAGE(contains(human.out, "server:"), human.out);
  CHECK_MESSAGE(contains(human.out, " PostgreSQL " + version + "\n"), human.out);
  CHECK(contains(human.out, db.uri()));
  CHECK_FALSE(contains(human.out, "Hunter2Secret"));

  auto r = run({"--store", uri, "--json", "stats"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  auto j = json::parse(r.out);
  CHECK(j["server_version"] == version);
  CHECK(j["store"] == db.uri());
  CHECK(j["events"] == 1);
  CHECK(j["schema_version"].is_number_integer());
  CHECK(j["store_bytes"].get<std::int64_t>() > 0);
  CHECK(j["database_bytes"].get<std::int64_t>() >= j["store_bytes"].get<std::int64_t>());
  CHECK_FALSE(contains(r.out, "Hunter2Secret"));

  // A file store has no server.
  TempDir dir;
  REQUIRE(run({"--store", dir / "s.db", "init"}).status == 0);
  auto file = run({"--store", dir / "s.db", "--json", "stats"});
  REQUIRE(file.status == 0);
  CHECK_FALSE(json::parse(file.out).contains("server_version"));
  CHECK_FALSE(contains(run({"--store", dir / "s.db", "stats"}).out, "server:"));
}
