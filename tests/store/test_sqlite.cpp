// Unit tests of the SQLite wrapper's lock waiting (src/store/sqlite/sqlite.cpp): a writer that has to
// wait for the write lock gets it while other writers commit back to back. With SQLite's default
// busy handler (one try per 100 ms) the waiter here timed out on 14 of its 20 transactions.
// Also: a Txn inside another is a savepoint of it.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "store/sqlite/sqlite.hpp"
#include "support/temp_store.hpp"

using namespace esctl;

namespace {

void insert_one(sql::Db& db, int who) {
  sql::Txn txn(db);
  sql::StmtScope insert(db.prepare("INSERT INTO t(who) VALUES (?)"));
  insert->bind(1, who).run();
  txn.commit();
}

}  // namespace

TEST_SUITE("store/sqlite") {
  TEST_CASE("a Txn inside another is a savepoint: the outer one alone decides what stays") {
    test::TempStore f;
    sql::Db db(f.path, sql::OpenMode::create, 1000);
    db.exec("CREATE TABLE t(who INTEGER NOT NULL)");
    {
      sql::Txn outer(db);
      insert_one(db, 1);  // its own Txn, committed into the outer one
      {
        sql::Txn inner(db);
        db.exec("INSERT INTO t(who) VALUES (2)");
      }  // not committed: only its own change is undone
      CHECK(db.query_i64("SELECT count(*) FROM t") == 1);
    }  // the outer one not committed: nothing stays
    CHECK(db.query_i64("SELECT count(*) FROM t") == 0);
    {
      sql::Txn outer(db);
      insert_one(db, 3);
      outer.commit();
    }
    CHECK(db.query_i64("SELECT group_concat(who) FROM t") == 3);
    insert_one(db, 4);  // outside any Txn, a transaction of its own again
    CHECK(db.query_i64("SELECT count(*) FROM t") == 2);
  }

  TEST_CASE("a waiting writer gets the lock while two others commit back to back") {
    test::TempStore f;
    {
      sql::Db db(f.path, sql::OpenMode::create, 1000);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("CREATE TABLE t(who INTEGER NOT NULL)");
    }
    // Two hammering writer processes: BEGIN IMMEDIATE, INSERT, COMMIT in a tight loop, so the
    // write lock is free only for the instant between one COMMIT and the next BEGIN.
    std::vector<pid_t> hammers;
    struct Reap {
      std::vector<pid_t>& pids;
      ~Reap() {
        for (pid_t pid : pids) {
          ::kill(pid, SIGKILL);
          ::waitpid(pid, nullptr, 0);
        }
      }
    } reap{hammers};
    for (int h = 1; h <= 2; ++h) {
      pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        try {
          sql::Db db(f.path, sql::OpenMode::read_write, 60000);
          db.exec("PRAGMA synchronous = FULL");
          for (;;) insert_one(db, h);
        } catch (...) {
        }
        ::_exit(1);
      }
      hammers.push_back(pid);
    }
    auto hammer_commits = [&] {
      sql::Db db(f.path, sql::OpenMode::read_only, 1000);
      return db.query_i64("SELECT count(*) FROM t WHERE who > 0");
    };
    while (hammer_commits() < 100) std::this_thread::yield();
    // The waiter must get each of its 20 transactions in; it may wait, but never time out.
    int done = 0, busy = 0;
    std::chrono::steady_clock::duration longest{};
    auto t0 = std::chrono::steady_clock::now();
    {
      sql::Db db(f.path, sql::OpenMode::read_write, 5000);  // the default --busy-timeout
      db.exec("PRAGMA synchronous = FULL");
      for (int i = 0; i < 20; ++i) {
        try {
          auto t = std::chrono::steady_clock::now();
          insert_one(db, 0);
          longest = std::max(longest, std::chrono::steady_clock::now() - t);
          ++done;
        } catch (const Error& e) {
          if (e.code() != Errc::busy) throw;
          ++busy;
        }
      }
    }
    auto waited = std::chrono::steady_clock::now() - t0;
    auto commits = hammer_commits();
    MESSAGE("the waiter took " << std::chrono::duration<double>(waited).count() << " s for 20 commits (longest "
            << std::chrono::duration<double>(longest).count() << " s); the hammers "
            "committed " << commits << " times");
    CHECK(busy == 0);
    CHECK(done == 20);
    sql::Db db(f.path, sql::OpenMode::read_only, 1000);
    CHECK(db.query_i64("SELECT count(*) FROM t WHERE who = 0") == 20);
  }
}
