// Reads from a PostgreSQL store through the backend-neutral Store (filters, the last N and time
// ranges are written once there, over the backend's scans): single events, stream listings and
// stats.
#include <doctest/doctest.h>

#include "core/uuid.hpp"
#include "store/postgres/store.hpp"
#include "store/store.hpp"
#include "support/pg_db.hpp"

using namespace esctl;
using esctl::test::event;
using esctl::test::TempDatabase;

namespace {

// `e` recorded at `at` (µs since the epoch).
NewEvent recorded(NewEvent e, std::int64_t at) {
  e.recorded_at = at;
  return e;
}

std::vector<std::int64_t> positions_of(const std::function<void(const EventFn&)>& read) {
  std::vector<std::int64_t> out;
  read([&](const EventRef& e) {
    out.push_back(e.position);
    return true;
  });
  return out;
}

using P = std::vector<std::int64_t>;

}  // namespace

TEST_CASE("pg: read_all and read_last filter by stream glob / category and type") {
  TempDatabase db;
  Store s(StoreOptions{db.uri(), 5000}, Access::write);
  s.append({event("order-1", "Placed"), event("user-1", "Joined"), event("order-2", "Placed"),
            event("order-1", "Shipped"), event("user-2", "Joined")});
  EventFilter orders;
  orders.categories = {"order"};
  CHECK(positions_of([&](auto fn) { s.read_all(1, std::nullopt, orders, fn); }) == P{1, 3, 4});
  EventFilter placed;
  placed.types = {"Placed"};
  CHECK(positions_of([&](auto fn) { s.read_all(2, std::nullopt, placed, fn); }) == P{3});
  EventFilter glob;
  glob.stream_globs = {"*-2"};
  CHECK(positions_of([&](auto fn) { s.read_all(1, 1, glob, fn); }) == P{3});
  CHECK(positions_of([&](auto fn) { s.read_last(2, orders, fn); }) == P{3, 4});
  CHECK(positions_of([&](auto fn) { s.read_last(2, EventFilter{}, fn); }) == P{4, 5});
  CHECK(positions_of([&](auto fn) { s.read_last(9, placed, fn); }) == P{1, 3});
}

TEST_CASE("pg: time ranges are narrowed over the ordered prefix and filtered after it") {
  TempDatabase db;
  Store s(StoreOptions{db.uri(), 5000}, Access::write);
  s.append({recorded(event("a", "t"), 100), recorded(event("a", "t"), 200), recorded(event("a", "t"), 300)});
  s.append({recorded(event("a", "t"), 150), recorded(event("a", "t"), 400)});  // out of order: the prefix stops at 3
  auto span = s.time_span(200, 300);
  CHECK(span.ordered_through == 3);
  CHECK(span.from == 2);
  CHECK(span.to == 3);
  CHECK(positions_of([&](auto fn) { s.read_all_in_time(1, std::nullopt, EventFilter{}, 120, 300, fn); }) == P{2, 3, 4});
  CHECK(positions_of([&](auto fn) { s.read_all_in_time(1, 1, EventFilter{}, 350, std::nullopt, fn); }) == P{5});
}

TEST_CASE("pg: single events by position and id / stream listings in byte order / stats") {
  TempDatabase db;
  Store s(StoreOptions{db.uri(), 5000}, Access::write);
  auto a = s.append({event("b-1", "t"), event("a-1", "t"), event("B-1", "t"), event("a-1", "t")});
  std::string stream;
  CHECK(s.read_event_at(2, [&](const EventRef& e) {
    stream = std::string(e.stream);
    return true;
  }));
  CHECK(stream == "a-1");
  CHECK_FALSE(s.read_event_at(9, [](const EventRef&) { return true; }));
  std::int64_t pos = 0;
  CHECK(s.read_event_by_id(a[3].id.view(), [&](const EventRef& e) {
    pos = e.position;
    return true;
  }));
  CHECK(pos == 4);
  CHECK_FALSE(s.read_event_by_id(new_uuid_v7().view(), [](const EventRef&) { return true; }));
  auto all = s.streams(std::nullopt, std::nullopt);
  REQUIRE(all.size() == 3);
  CHECK(all[0].name == "B-1");  // bytes, not the database's collation
  CHECK(all[1].name == "a-1");
  CHECK(all[1].version == 1);
  CHECK(all[1].count == 2);
  CHECK(all[1].last_position == 4);
  CHECK(s.streams(std::string("a"), std::nullopt).size() == 1);
  CHECK(s.streams(std::nullopt, std::string("b")).size() == 1);
  CHECK(s.streams(std::nullopt, std::string("%")).empty());  // a prefix is not a pattern
  auto st = pg::PgStore(db.uri(), 5000, Access::read).stats();
  CHECK(st.events == 4);
  CHECK(st.streams == 3);
  CHECK(st.head_position == 4);
  CHECK(st.schema_version == pg::kSchemaVersion);
  CHECK(st.database == db.name());
  CHECK(st.store_bytes > 0);
}
