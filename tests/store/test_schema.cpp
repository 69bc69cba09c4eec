// Unit tests of the SQLite backend's schema (src/store/sqlite/schema.cpp): a new store gets the
// current layout, foreign and newer files are refused untouched, and an older store is migrated
// forward only when writing is allowed, keeping its events.
#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "core/error.hpp"
#include "store/sqlite/event_store.hpp"
#include "store/sqlite/schema.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/store.hpp"
#include "support/fault_vfs.hpp"
#include "support/temp_store.hpp"

using namespace esctl;

namespace {

// What schema version 3 added, undone: a version 2 store as esctl wrote it.
constexpr const char* kDownTo2 =
    "DROP TABLE counters; DROP INDEX queue_items_leased; DROP TABLE time_order;"
    "ALTER TABLE queue_items DROP COLUMN lease;"
    "ALTER TABLE queue_runs DROP COLUMN lease;"
    "ALTER TABLE queues DROP COLUMN deliverable_since;"
    "PRAGMA user_version = 2;";

std::int64_t count(sql::Db& db, const std::string& what) { return db.query_i64(("SELECT count(*) FROM " + what).c_str()); }

Errc refusal(sql::Db& db, Access access) {
  try {
    prepare_schema(db, access);
  } catch (const Error& e) {
    return e.code();
  }
  return Errc::internal;  // not refused
}

}  // namespace

TEST_SUITE("store/schema") {
  TEST_CASE("a store that another process creates while this one opens it is used, never refused as foreign") {
    // The other process commits the new store's schema between two of this one's transactions,
    // at each such moment in turn. Each look at the file (application id, schema version, any
    // tables) must be one snapshot: three statements on either side of that commit once read as
    // "a SQLite database but not an esctl store" (exit 1) for a writer or a reader.
    test::fault::Install vfs(true);
    for (Access access : {Access::write, Access::read}) {
      int moments = 0;
      for (int n = 1;; ++n) {
        CAPTURE(n);
        CAPTURE(static_cast<int>(access));
        test::TempStore t;
        std::ofstream(t.path).flush();  // an empty file, as `esctl init` leaves for an instant
        bool other_ran = false;
        test::fault::on_unlock("/s.db", n, [&] {
          other_ran = true;
          Store other(t.options(), Access::write);
        });
        try {
          Store mine(t.options(), access);
          CHECK(mine.stats().streams == 0);
        } catch (const Error& e) {
          // Only a reader that looked before the other's commit may find no store yet.
          CHECK(access == Access::read);
          CHECK_MESSAGE(e.code() == Errc::not_found, std::string(e.what()));
        }
        if (!other_ran) break;  // every moment of opening was tried
        ++moments;
        sql::Db db(t.path, sql::OpenMode::read_only, 1000);
        CHECK(db.query_i64("PRAGMA user_version") == kSchemaVersion);
      }
      CHECK(moments >= 2);
    }
  }

  TEST_CASE("an empty file becomes a store of the current version only when opened to write") {
    test::TempStore t;
    {
      sql::Db db(t.path, sql::OpenMode::create, 1000);
      CHECK(refusal(db, Access::read) == Errc::not_found);
      CHECK(refusal(db, Access::update) == Errc::not_found);
      CHECK(count(db, "sqlite_schema") == 0);
      prepare_schema(db, Access::write);
      CHECK(db.query_i64("PRAGMA user_version") == kSchemaVersion);
      CHECK(db.query_i64("PRAGMA application_id") == kApplicationId);
      CHECK(count(db, "time_order") == 1);
      prepare_schema(db, Access::read);  // the current version: accepted by every access
    }
  }

  TEST_CASE("a SQLite database of another application is refused and left unchanged") {
    test::TempStore t;
    sql::Db db(t.path, sql::OpenMode::create, 1000);
    db.exec("CREATE TABLE mine (x); INSERT INTO mine VALUES (1)");
    for (Access a : {Access::read, Access::update, Access::write}) CHECK(refusal(db, a) == Errc::corrupt);
    CHECK(count(db, "sqlite_schema") == 1);
    CHECK(db.query_i64("PRAGMA user_version") == 0);
  }

  TEST_CASE("a store of a newer schema version is refused by every access") {
    test::TempStore t;
    sql::Db db(t.path, sql::OpenMode::create, 1000);
    prepare_schema(db, Access::write);
    db.exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion + 1)).c_str());
    for (Access a : {Access::read, Access::update, Access::write}) CHECK(refusal(db, a) == Errc::corrupt);
    CHECK(db.query_i64("PRAGMA user_version") == kSchemaVersion + 1);
  }

  TEST_CASE("a version 2 store is refused by readers and migrated by the first writer, keeping its events") {
    test::TempStore t;
    {
      Store s(t.options(), Access::write);
      for (int i = 0; i < 70; ++i) s.append({NewEvent{"s-" + std::to_string(i % 3), "T", "{}", "{}"}});
    }
    {
      sql::Db db(t.path, sql::OpenMode::read_write, 1000);
      db.exec(kDownTo2);
      CHECK(refusal(db, Access::read) == Errc::corrupt);
      CHECK(db.query_i64("PRAGMA user_version") == 2);
      prepare_schema(db, Access::update);
      CHECK(db.query_i64("PRAGMA user_version") == kSchemaVersion);
      CHECK(count(db, "events") == 70);
      CHECK(count(db, "counters") > 0);
      // Every stored event was appended in time order, so the upgrade finds them all in order.
      CHECK(db.query_i64("SELECT ordered_through FROM time_order") == 70);
    }
    Store s(t.options(), Access::read);
    CHECK(s.last_position() == 70);
    CHECK(s.stream_version("s-0") == 23);
  }
}
