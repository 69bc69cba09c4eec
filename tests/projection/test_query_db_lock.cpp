// QueryDbLock, the swap protocol between rebuild and the drainers of a query db: users share,
// a swap excludes users and keeps new ones out at the gate while it waits, rebuilds exclude each
// other; and a Projector reopens a db that was replaced, and refuses a db fed from another queue.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "core/error.hpp"
#include "projection/projection.hpp"
#include "projection/projector.hpp"
#include "projection/query_db_lock.hpp"
#include "store/sqlite/sqlite.hpp"
#include "support/fault_vfs.hpp"

using namespace esctl;

namespace {

struct Dir {
  std::string path;
  Dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "esctl-qlock-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~Dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& n) const { return path + "/" + n; }
};

template <class F>
bool busy(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.code() == Errc::busy);
    return true;
  }
  return false;
}

constexpr const char* kProjection = "-- @init\nCREATE TABLE t (position INTEGER PRIMARY KEY);\n"
                                    "-- @on T\nINSERT INTO t VALUES (:position);\n";

Event event(std::int64_t position, const std::string& stream, std::int64_t version) {
  Event e;
  e.position = position;
  e.stream = stream;
  e.version = version;
  e.type = "T";
  e.data = "{}";
  e.meta = "{}";
  return e;
}

}  // namespace

TEST_SUITE("projection/query_db_lock") {
  TEST_CASE("users share, a swap waits for them and keeps them out, a second rebuild is refused") {
    Dir d;
    std::string db = d / "q.db";
    QueryDbLock a(db, 50), b(db, 50), r(db, 50);
    CHECK(std::filesystem::exists(QueryDbLock::lock_path(db)));
    {
      QueryDbLock::Use ua(a);
      QueryDbLock::Use ub(b);  // users share
      CHECK(busy([&] { QueryDbLock::Swap s(r); }));
      // A rebuild's run does not exclude users.
      QueryDbLock::Rebuild run(r);
      QueryDbLock other(db, 50);
      CHECK(busy([&] { QueryDbLock::Rebuild second(other); }));
    }
    {
      QueryDbLock::Swap s(r);
      CHECK(busy([&] { QueryDbLock::Use u(a); }));
    }
    QueryDbLock::Use ua(a);  // free again
  }

  TEST_CASE("a waiting swap holds the gate: new users wait, the users inside finish, then the swap goes") {
    Dir d;
    std::string db = d / "q.db";
    QueryDbLock inside(db, 50), swapper(db, 30000), late(db, 20);
    std::optional<QueryDbLock::Use> held(std::in_place, inside);
    std::atomic<bool> swapped{false};
    std::thread t([&] {
      QueryDbLock::Swap s(swapper);
      swapped = true;
    });
    // Until the swap has taken the gate, a new user still gets in (and leaves at once). The
    // thread may not run for a while on a loaded machine: try for up to 30 s, not a fixed count.
    bool kept_out = false;
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!kept_out && std::chrono::steady_clock::now() < give_up)
      kept_out = busy([&] { QueryDbLock::Use u(late); });
    CHECK(kept_out);
    CHECK_FALSE(swapped.load());
    held.reset();
    t.join();
    CHECK(swapped.load());
  }

  TEST_CASE("a Projector applies to the file that replaced its db, and refuses a db fed from another queue") {
    Dir d;
    std::string db = d / "q.db", next = d / "next.db";
    auto projection = std::make_shared<const Projection>(Projection::from_text(kProjection, "p.sql"));
    ProjectorOptions options;
    options.queue = "q";
    Projector p(projection, db, options);
    auto e1 = event(1, "s", 0);
    p.apply(std::span<const Event>(&e1, 1));
    {
      Projector n(projection, next, options);  // another db for the same queue, renamed over q.db
    }
    REQUIRE(std::rename(next.c_str(), db.c_str()) == 0);
    auto e2 = event(2, "s", 1);
    auto results = p.apply(std::span<const Event>(&e2, 1));
    REQUIRE(results.size() == 1);
    CHECK(results[0].applied);
    sql::Db check(db, sql::OpenMode::read_only, 1000);
    CHECK(check.query_i64("SELECT group_concat(position) FROM t") == 2);  // the new file got it

    ProjectorOptions other = options;
    other.queue = "billing";
    try {
      Projector wrong(projection, db, other);
      FAIL("no error thrown");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::conflict);
      CHECK(std::string(e.what()).find("fed from queue 'q', not 'billing'") != std::string::npos);
    }
  }

  TEST_CASE("refusing a file that is not a query db leaves no lock file behind") {
    Dir d;
    std::string other = d / "mine.db";
    {
      sql::Db mine(other, sql::OpenMode::create, 1000);
      mine.exec("CREATE TABLE mine (x)");
    }
    auto projection = std::make_shared<const Projection>(Projection::from_text(kProjection, "p.sql"));
    CHECK_THROWS_AS(Projector(projection, other, {}), Error);
    CHECK_FALSE(std::filesystem::exists(QueryDbLock::lock_path(other)));
  }

  TEST_CASE("a Projector opening a new db that another drainer creates meanwhile uses that db") {
    // The other drainer commits the new db's tables between two of this one's transactions, at
    // each such moment in turn. Each look at the file must be one snapshot: "no _esctl_meta" and
    // "some tables" read by two statements on either side of the commit once meant "another
    // application's db", and the drainer refused it (exit 1).
    auto projection = std::make_shared<const Projection>(Projection::from_text(kProjection, "p.sql"));
    ProjectorOptions options;
    options.queue = "q";
    test::fault::Install vfs(false);
    int moments = 0;
    for (int n = 1;; ++n) {
      CAPTURE(n);
      Dir d;
      std::string db = d / "q.db";
      bool other_ran = false, other_created = false;
      test::fault::on_unlock("/q.db", n, [&] {
        other_ran = true;
        Projector other(projection, db, options);
        other_created = other.created();
      });
      Projector p(projection, db, options);
      if (!other_ran) break;  // every moment of opening was tried
      ++moments;
      CHECK(p.created() != other_created);  // exactly one of them created it
      auto e1 = event(1, "s", 0);
      auto results = p.apply(std::span<const Event>(&e1, 1));
      REQUIRE(results.size() == 1);
      CHECK(results[0].applied);
      sql::Db check(db, sql::OpenMode::read_only, 1000);
      CHECK(check.query_i64("SELECT count(*) FROM t") == 1);
    }
    CHECK(moments >= 2);
  }
}
