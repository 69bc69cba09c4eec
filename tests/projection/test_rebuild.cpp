// rebuild(): the store is read in chunks, by positions and by bytes, and the chunks together are
// exactly the events up to the head it took at the start, in position order.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "projection/projection.hpp"
#include "projection/rebuild.hpp"
#include "store/sqlite/sqlite.hpp"
#include "support/temp_store.hpp"

using namespace esctl;

namespace {

// Every handled event becomes a row: position, stream, version and the size of its data.
constexpr const char* kProjection =
    "-- @init\n"
    "CREATE TABLE seen (position INTEGER PRIMARY KEY, stream TEXT, version INTEGER, bytes INTEGER);\n"
    "-- @on Big, Small\n"
    "INSERT INTO seen VALUES (:position, :stream, :version, length(:data));\n";

/// Rows of the query db as "position stream@version bytes", in position order.
std::vector<std::string> seen(const std::string& db) {
  sql::Db q(db, sql::OpenMode::read_only, 1000, "query db");
  std::vector<std::string> out;
  auto s = q.prepare_new("SELECT position, stream, version, bytes FROM seen ORDER BY position");
  while (s.step()) out.push_back(fmt::format("{} {}@{} {}", s.i64(0), s.text(1), s.i64(2), s.i64(3)));
  return out;
}

}  // namespace

TEST_SUITE("projection/rebuild") {
  TEST_CASE("a rebuild reads chunks cut by positions and by bytes and applies every event once, in order") {
    test::TempStore t;
    std::vector<std::string> expected;
    {
      Store s(t.options(), Access::write);
      std::int64_t position = 0;
      // 1 MiB events among small ones, so a chunk of 8 MiB is cut in the middle of its positions;
      // an Other event is not handled and leaves no row.
      for (int i = 0; i < 60; ++i) {
        const bool big = i % 5 == 2;
        const std::string stream = fmt::format("s-{}", i % 3);
        const std::string data = big ? fmt::format(R"({{"pad":"{}"}})", std::string(1 << 20, 'x')) : R"({"n":1})";
        const char* type = i % 7 == 6 ? "Other" : big ? "Big" : "Small";
        auto a = s.append({NewEvent{stream, type, data}});
        REQUIRE(a.size() == 1);
        position = a[0].position;
        if (std::string(type) != "Other")
          expected.push_back(fmt::format("{} {}@{} {}", position, stream, a[0].version, data.size()));
      }
    }
    auto projection = std::make_shared<const Projection>(Projection::from_text(kProjection, "p.sql"));
    for (std::int64_t chunk : {std::int64_t{7}, std::int64_t{16384}}) {
      CAPTURE(chunk);
      Store s(t.options(), Access::read);
      RebuildOptions o;
      o.db_path = t.dir + "/q.db";
      o.chunk = chunk;
      o.batch = 4;
      std::int64_t last = 0, calls = 0;
      bool ordered = true;
      o.progress = [&](std::int64_t at, std::int64_t head) {
        ordered = ordered && at >= last && at <= head;
        last = at;
        ++calls;
      };
      auto r = rebuild(s, projection, o);
      CHECK(r.head_position == 60);
      CHECK(r.read == static_cast<std::int64_t>(expected.size()));
      CHECK(r.applied == r.read);
      CHECK(r.streams == 3);
      CHECK(ordered);
      CHECK(last == 60);
      // Progress is reported once per chunk and once at the end: 60 positions by 7 make 9 chunks;
      // by 16384 one, cut in two by its 8 MiB of events (11 handled events of 1 MiB).
      CHECK(calls == (chunk == 7 ? 9 : 2) + 1);
      CHECK(seen(o.db_path) == expected);
    }
  }
}
