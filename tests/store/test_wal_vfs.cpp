// Unit tests of the WAL write-gathering VFS (src/store/sqlite/wal_vfs.cpp): every committed transaction
// is in the WAL file when the commit returns, whatever `synchronous` says, so another connection
// (here one that does not use the VFS, reading the file through its own descriptor) sees it
// whole; transactions bigger than the buffer, spilled mid-transaction and rolled back, change
// nothing that is read back; and the VFS is really in use: esctl's connections open it, and a
// commit reaches the file system in a few large writes, not two per page (a SQLite upgrade that
// changed how WAL frames are written, or a connection opened without the VFS, fails here).
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "store/sqlite/event_store.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/store.hpp"
#include "store/sqlite/wal_vfs.hpp"
#include "support/fault_vfs.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
namespace fault = esctl::test::fault;

namespace {

/// A connection through SQLite's default VFS, outside esctl's wrapper.
class Plain {
 public:
  explicit Plain(const std::string& path) {
    REQUIRE(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  }
  ~Plain() { sqlite3_close(db_); }
  /// count(*) and sum(length(x)) of t, or an SQLite error text.
  std::string totals() {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, "SELECT count(*), coalesce(sum(length(x)), 0), coalesce(sum(k), 0) FROM t", -1, &s,
                           nullptr) != SQLITE_OK)
      return sqlite3_errmsg(db_);
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW)
      out = std::to_string(sqlite3_column_int64(s, 0)) + "/" + std::to_string(sqlite3_column_int64(s, 1)) + "/" +
            std::to_string(sqlite3_column_int64(s, 2));
    else
      out = sqlite3_errmsg(db_);
    sqlite3_finalize(s);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

std::string totals(std::int64_t rows, std::int64_t bytes, std::int64_t keys) {
  return std::to_string(rows) + "/" + std::to_string(bytes) + "/" + std::to_string(keys);
}

}  // namespace

TEST_SUITE("store/wal_vfs") {
  TEST_CASE("another connection sees each commit whole, with synchronous FULL, NORMAL or OFF") {
    for (std::string sync : {"FULL", "NORMAL", "OFF"}) {
      CAPTURE(sync);
      test::TempStore f;
      sql::Db db(f.path, sql::OpenMode::create, 1000);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(("PRAGMA synchronous = " + sync).c_str());
      db.exec("CREATE TABLE t(k INTEGER, x BLOB)");
      Plain reader(f.path);
      std::int64_t rows = 0, bytes = 0, keys = 0;
      // Sizes from one row to several times the 64 KiB buffer in one transaction.
      for (int i = 1; i <= 40; ++i) {
        const int n = i % 7 + 1, size = (i * 7919) % 60000 + 1;
        sql::Txn txn(db);
        for (int r = 0; r < n; ++r) {
          sql::StmtScope s(db.prepare("INSERT INTO t(k, x) VALUES (?1, zeroblob(?2))"));
          s->bind(1, i).bind(2, size).run();
          rows += 1, bytes += size, keys += i;
        }
        txn.commit();
        REQUIRE(reader.totals() == totals(rows, bytes, keys));
      }
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      CHECK(reader.totals() == totals(rows, bytes, keys));
    }
  }

  TEST_CASE("a transaction that spills into the WAL and rolls back leaves nothing, and the next commit is whole") {
    test::TempStore f;
    sql::Db db(f.path, sql::OpenMode::create, 1000);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = 8");
    db.exec("CREATE TABLE t(k INTEGER, x BLOB)");
    db.exec("INSERT INTO t VALUES (1, randomblob(1000))");
    Plain reader(f.path);
    REQUIRE(reader.totals() == totals(1, 1000, 1));
    {
      // 3 MB through an 8-page cache: dirty pages are written to the WAL mid-transaction and
      // read back (and rewritten) from it before the rollback.
      sql::Txn txn(db);
      db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
              "INSERT INTO t SELECT i, randomblob(1000) FROM n");
      db.exec("UPDATE t SET k = k + 1");
      CHECK(db.query_i64("SELECT count(*) FROM t") == 3001);
      CHECK(reader.totals() == totals(1, 1000, 1));
    }  // rolled back
    CHECK(db.query_i64("SELECT count(*) FROM t") == 1);
    CHECK(reader.totals() == totals(1, 1000, 1));
    {
      sql::Txn txn(db);
      db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
              "INSERT INTO t SELECT i, zeroblob(1000) FROM n");
      db.exec("UPDATE t SET k = k * 2");
      txn.commit();
    }
    CHECK(reader.totals() == totals(501, 501000, 2 * (1 + 500 * 501 / 2)));
    auto check = db.prepare_new("PRAGMA integrity_check");
    REQUIRE(check.step());
    CHECK(check.text(0) == "ok");
  }

  TEST_CASE("esctl's connections use the WAL VFS, and a commit reaches the disk in few writes, not two per page") {
    // Written through the fault VFS, which counts the writes that reach it, with and without
    // the WAL VFS above it.
    std::int64_t writes[2] = {};
    for (bool gather : {true, false}) {
      CAPTURE(gather);
      test::TempStore f;
      fault::Install vfs(gather);
      Store store(f.options(), Access::write);
      sqlite3_vfs* used = nullptr;
      REQUIRE(sqlite3_file_control(sqlite::connection(store).raw(), "main", SQLITE_FCNTL_VFS_POINTER, &used) == SQLITE_OK);
      REQUIRE(used);
      CHECK(std::string(used->zName) == (gather ? "esctl-wal" : fault::vfs_name()));
      fault::reset();
      // One transaction of ~60 pages of 8 KiB: 120 write calls from SQLite.
      std::vector<NewEvent> batch;
      for (int i = 0; i < 60; ++i) {
        NewEvent e;
        e.stream = "big";
        e.type = "T";
        e.data = "{\"pad\":\"" + std::string(7000, 'x') + "\"}";
        batch.push_back(std::move(e));
      }
      store.append(batch);
      writes[gather ? 0 : 1] = fault::writes_to("-wal");
    }
    MESSAGE("writes to the WAL for one 60-page commit: " << writes[0] << " with the WAL VFS, " << writes[1] << " without");
    CHECK(writes[1] >= 120);
    CHECK_MESSAGE(writes[0] * 8 <= writes[1], "the WAL VFS no longer gathers frame writes (SQLite changed how it writes them?)");
  }
}
