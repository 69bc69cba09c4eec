// core/names: stream name rules (length, reserved '$', UTF-8, control characters), event
// types, categories and queue names.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "core/names.hpp"

using namespace esctl;

TEST_SUITE("core/names") {
  TEST_CASE("stream names of 1 to 255 bytes of UTF-8 are accepted") {
    CHECK_FALSE(stream_name_problem("a"));
    CHECK_FALSE(stream_name_problem("order-42"));
    CHECK_FALSE(stream_name_problem("caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80"));
    CHECK_FALSE(stream_name_problem(std::string(255, 'x')));
    CHECK_FALSE(stream_name_problem("a$b"));
  }

  TEST_CASE("empty, over-long, reserved, control-character and invalid UTF-8 names are refused with the rule") {
    CHECK(stream_name_problem("")->find("empty") != std::string::npos);
    CHECK(stream_name_problem(std::string(256, 'x'))->find("255") != std::string::npos);
    CHECK(stream_name_problem("$all")->find("reserved") != std::string::npos);
    CHECK(stream_name_problem("a\nb")->find("control") != std::string::npos);
    CHECK(stream_name_problem(std::string("a\0b", 3))->find("control") != std::string::npos);
    CHECK(stream_name_problem("a\x7f")->find("control") != std::string::npos);
    CHECK(stream_name_problem("a\xc2\x85")->find("control") != std::string::npos);  // U+0085, a C1 control
    for (const char* bad : {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"}) {
      INFO(bad);
      CHECK(stream_name_problem(bad)->find("UTF-8") != std::string::npos);
    }
  }

  TEST_CASE("check_stream_name throws invalid_input and shows control characters escaped") {
    try {
      check_stream_name("bad\tname");
      FAIL("no exception");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::invalid_input);
      CHECK(std::string(e.what()).find("bad\\x09name") != std::string::npos);
    }
  }

  TEST_CASE("the category is the part before the first dash, or the whole name") {
    CHECK(category_of("order-42") == "order");
    CHECK(category_of("order-42-b") == "order");
    CHECK(category_of("order") == "order");
    CHECK(category_of("-x") == "");
  }

  TEST_CASE("event types are 1 to 255 bytes without control characters") {
    CHECK_NOTHROW(check_event_type("OrderPlaced"));
    CHECK_NOTHROW(check_event_type(std::string(255, 't')));
    CHECK_THROWS_AS(check_event_type(""), Error);
    CHECK_THROWS_AS(check_event_type(std::string(256, 't')), Error);
    CHECK_THROWS_AS(check_event_type("a\nb"), Error);
    CHECK_THROWS_AS(check_event_type("\xff"), Error);
  }

  TEST_CASE("queue names are [A-Za-z0-9._-]{1,64} and anything else is a usage error") {
    CHECK_NOTHROW(check_queue_name("billing.v2_x-1"));
    CHECK_NOTHROW(check_queue_name(std::string(64, 'q')));
    for (std::string bad : {std::string(), std::string(65, 'q'), std::string("a b"), std::string("a/b"), std::string("é")}) {
      INFO(bad);
      try {
        check_queue_name(bad);
        FAIL("no exception");
      } catch (const Error& e) {
        CHECK(e.code() == Errc::usage);
      }
    }
  }
}
