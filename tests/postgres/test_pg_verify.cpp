// `esctl verify` on PostgreSQL stores: a sound store is clean, and damage made by hand in the
// database (rows inserted, heads and counters changed, an index dropped, a trigger disabled) is
// found with its kind and location, exit 6, without changing anything.
#include <doctest/doctest.h>

#include <string>

#include "store/postgres/pg.hpp"
#include "support/cli.hpp"
#include "support/pg_db.hpp"

using namespace esctl::test;

namespace {

// A store with order-1@0..1 (#1, #4), order-2@0 (#2), order-3@0 (#3).
void fill(const std::string& uri) {
  for (const char* s : {"order-1", "order-2", "order-3", "order-1"})
    REQUIRE(run({"--store", uri, "append", s, "OrderPlaced", "{\"total\":1}"}).status == 0);
}

Result verify(const std::string& uri, std::vector<std::string> more = {}) {
  std::vector<std::string> args{"--store", uri, "verify"};
  args.insert(args.end(), more.begin(), more.end());
  return run(args);
}

// Runs SQL as a DBA would with psql: the immutability triggers do not fire for this session.
void damage(const std::string& uri, const std::string& sql) {
  esctl::pg::Conn c(uri, 5000);
  c.exec_script(("SET session_replication_role = replica; " + sql).c_str());
}

}  // namespace

TEST_CASE("pg verify: a sound store is clean, with the checks it ran, --stream narrows, missing targets exit 4") {
  TempDatabase db;
  fill(db.uri());
  auto r = verify(db.uri());
  CHECK_MESSAGE(r.status == 0, r.out, r.err);
  CHECK(contains(r.out, "verify: ok, no violations (checked 4 events in 3 streams"));
  CHECK(contains(r.out, "PostgreSQL catalog"));
  auto j = nlohmann::json::parse(verify(db.uri(), {"--json"}).out);
  CHECK(j["ok"] == true);
  CHECK(j["checked"]["events"] == 4);
  CHECK(j["checked"]["triggers"] == 2);
  CHECK(contains(verify(db.uri(), {"--stream", "order-1"}).out, "checked 2 events in 1 stream"));
  CHECK(verify(db.uri(), {"--stream", "nope"}).status == 4);
  CHECK(verify(db.uri(), {"--queue", "nope"}).status == 4);
  TempDatabase empty;
  CHECK(verify(empty.uri()).status == 4);  // no store there
}

TEST_CASE("pg verify: a position gap, a repeated version, bad JSON and a stale head are found where they are") {
  TempDatabase db;
  fill(db.uri());
  // Position 5 skipped, version 2 of order-1 skipped, data cut short; then version 1 again
  // (possible once the unique index is gone); a head that lies.
  damage(db.uri(),
         "INSERT INTO esctl.events VALUES (6, 1, 3, gen_random_uuid(), 'T', '{\"a\":', '{}', 0);"
         "DROP INDEX esctl.events_by_stream;"
         "INSERT INTO esctl.events VALUES (7, 1, 1, gen_random_uuid(), 'T', '{}', '{}', 0);"
         "UPDATE esctl.stream_heads SET head = 7 WHERE stream_id = 2;");
  auto r = verify(db.uri());
  CHECK(r.status == 6);
  CHECK_MESSAGE(contains(r.out, "index: unique index 'events_by_stream' of esctl.events is missing"), r.out);
  CHECK(contains(r.out, "position_gap: order-1@3 #6: position 5 is missing"));
  CHECK(contains(r.out, "json_invalid: order-1@3 #6: data is not valid JSON"));
  CHECK(contains(r.out, "version_duplicate: order-1@1 #7"));
  CHECK(contains(r.out, "version_gap: order-1@2 #6: version 2 missing: no event holds it"));
  CHECK(contains(r.out, "position_counter: the position counter says 4, but the last event is at position 7"));
  CHECK(contains(r.out, "stream_head: order-2@0 #2: head is 7, but the highest version is 0"));
  CHECK(contains(r.out, "verify: 8 violations"));
  auto j = nlohmann::json::parse(verify(db.uri(), {"--json"}).out);
  CHECK(j["ok"] == false);
  CHECK(j["violations"].size() == 8);
  // verify wrote nothing: the same findings again.
  CHECK(verify(db.uri()).out == r.out);
}

TEST_CASE("pg verify: a disabled immutability trigger, a version out of order and a duplicate id are found") {
  TempDatabase db;
  fill(db.uri());
  damage(db.uri(),
         "ALTER TABLE esctl.events DISABLE TRIGGER events_immutable;"
         "DROP INDEX esctl.events_by_id;"
         "INSERT INTO esctl.events SELECT 5, 2, 2, id, 'T', '{}', '{}', 0 FROM esctl.events WHERE position = 1;"
         "INSERT INTO esctl.events VALUES (6, 2, 1, gen_random_uuid(), 'T', '{}', '{}', 0);"
         "UPDATE esctl.counters SET value = 6 WHERE name = 'position';"
         "UPDATE esctl.stream_heads SET head = 2, head_position = 5 WHERE stream_id = 2;");
  auto r = verify(db.uri());
  CHECK(r.status == 6);
  CHECK_MESSAGE(contains(r.out, "trigger: trigger 'events_immutable' is disabled"), r.out);
  CHECK(contains(r.out, "version_order: order-2@1 #6: version 1 is at position 6, after version 2 at position 5"));
  CHECK(contains(r.out, "id_duplicate: order-1@0 #1: id "));
  CHECK(contains(r.out, "is also the id of the event at position 5"));
  CHECK(!contains(r.out, "position_gap"));
  CHECK(!contains(r.out, "position_counter"));
}
