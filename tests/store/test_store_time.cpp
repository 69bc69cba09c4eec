// store/store time ranges: the time-ordered prefix kept by append, the positions a --since/--until
// search narrows a read to, and reads by time that stay correct past the ordered prefix.
#include <doctest/doctest.h>

#include "store/sqlite/event_store.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/verify.hpp"
#include "store/store.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
using esctl::test::TempStore;

namespace {

NewEvent at(std::int64_t recorded_at, const std::string& stream = "s-1") {
  NewEvent e;
  e.stream = stream;
  e.type = "T";
  e.recorded_at = recorded_at;
  return e;
}

std::vector<std::int64_t> positions_in(Store& s, std::optional<std::int64_t> since, std::optional<std::int64_t> until) {
  std::vector<std::int64_t> out;
  s.read_all_in_time(1, std::nullopt, EventFilter{}, since, until, [&](const EventRef& e) {
    out.push_back(e.position);
    return true;
  });
  return out;
}

}  // namespace

TEST_SUITE("store/store_time") {
  TEST_CASE("appends in time order extend the ordered prefix and the search narrows to the range") {
    TempStore t;
    Store s(t.options(), Access::write);
    for (int i = 1; i <= 100; ++i) s.append({at(i * 10, "s-" + std::to_string(i % 7))}, {}, false);
    auto span = s.time_span(500, 700);  // positions 50..70
    CHECK(span.ordered_through == 100);
    CHECK(span.from == 50);
    CHECK(span.to == 70);
    span = s.time_span(495, 705);
    CHECK(span.from == 50);
    CHECK(span.to == 70);
    span = s.time_span(2000, std::nullopt);
    CHECK(span.from == 101);
    span = s.time_span(std::nullopt, 5);
    CHECK(span.to == 0);
    CHECK(positions_in(s, 500, 520) == std::vector<std::int64_t>{50, 51, 52});
    CHECK(positions_in(s, 2000, std::nullopt).empty());
  }

  TEST_CASE("an event recorded before its predecessor ends the ordered prefix for good") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({at(10), at(20), at(30)}, {}, false);
    CHECK(s.time_span(std::nullopt, std::nullopt).ordered_through == 3);
    s.append({at(40), at(5), at(50)}, {}, false);  // position 5 goes back in time
    CHECK(s.time_span(std::nullopt, std::nullopt).ordered_through == 4);
    s.append({at(60)}, {}, false);
    CHECK(s.time_span(std::nullopt, std::nullopt).ordered_through == 4);
    // Past the prefix every event is checked: position 5 is found, in position order.
    CHECK(positions_in(s, std::nullopt, 10) == std::vector<std::int64_t>{1, 5});
    CHECK(positions_in(s, 45, std::nullopt) == std::vector<std::int64_t>{6, 7});
    CHECK(positions_in(s, 20, 40) == std::vector<std::int64_t>{2, 3, 4});
  }

  TEST_CASE("equal recorded_at values keep the order and are all inside an inclusive range") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({at(10), at(20), at(20), at(20), at(30)}, {}, false);
    CHECK(s.time_span(std::nullopt, std::nullopt).ordered_through == 5);
    CHECK(positions_in(s, 20, 20) == std::vector<std::int64_t>{2, 3, 4});
  }

  TEST_CASE("a failed append leaves the ordered prefix as it was") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({at(10)}, {}, false);
    NewEvent bad = at(5);
    bad.version = 7;  // does not fit: the whole append is refused
    CHECK_THROWS(s.append({at(20), bad}, {}, true));
    CHECK(s.time_span(std::nullopt, std::nullopt).ordered_through == 1);
    s.append({at(30)}, {}, false);
    CHECK(s.time_span(std::nullopt, std::nullopt).ordered_through == 2);
  }

  TEST_CASE("verify reports a time_order row that the events contradict") {
    TempStore t;
    Store s(t.options(), Access::write);
    s.append({at(10), at(30), at(20), at(40)}, {}, false);
    CHECK(s.time_span(std::nullopt, std::nullopt).ordered_through == 2);
    auto kinds = [&] {
      std::vector<std::string> out;
      VerifyOptions o;
      o.path = t.path;
      verify_store(o, [&](const Violation& v) { out.push_back(v.kind); });
      return out;
    };
    CHECK(kinds().empty());
    sqlite::connection(s).exec("UPDATE time_order SET ordered_through = 4, max_recorded_at = 40");
    CHECK(kinds() == std::vector<std::string>{"time_order"});
    sqlite::connection(s).exec("UPDATE time_order SET ordered_through = 9, max_recorded_at = 40");
    CHECK(kinds() == std::vector<std::string>{"time_order"});
  }
}
