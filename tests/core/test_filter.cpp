// core/filter: stream globs and categories form a union, types narrow it, empty means any.
#include <doctest/doctest.h>

#include "core/filter.hpp"

using namespace esctl;

TEST_SUITE("core/filter") {
  TEST_CASE("an empty filter matches every event") {
    EventFilter f;
    CHECK(f.empty());
    CHECK(f.matches("order-1", "OrderPlaced"));
    CHECK(f.matches("x", "y"));
  }

  TEST_CASE("a category matches streams named like it or starting with it and a dash") {
    EventFilter f;
    f.categories = {"order"};
    CHECK(f.matches_stream("order-1"));
    CHECK(f.matches_stream("order"));
    CHECK_FALSE(f.matches_stream("orders-1"));
    CHECK_FALSE(f.matches_stream("order_1"));
    CHECK_FALSE(f.matches_stream("customer-1"));
  }

  TEST_CASE("globs match the whole stream name and are a union with categories") {
    EventFilter f;
    f.stream_globs = {"cust*-1?"};
    f.categories = {"order"};
    CHECK(f.matches_stream("customer-12"));
    CHECK_FALSE(f.matches_stream("customer-1"));
    CHECK(f.matches_stream("order-9"));
    CHECK_FALSE(f.matches_stream("invoice-12"));
  }

  TEST_CASE("types narrow the stream selection to exact type names") {
    EventFilter f;
    f.categories = {"order"};
    f.types = {"OrderPlaced", "OrderShipped"};
    CHECK(f.matches("order-1", "OrderPlaced"));
    CHECK(f.matches("order-1", "OrderShipped"));
    CHECK_FALSE(f.matches("order-1", "orderplaced"));
    CHECK_FALSE(f.matches("customer-1", "OrderPlaced"));
  }
}
