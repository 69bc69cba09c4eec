// core/ndjson: event lines of the import format and JSON arguments: what is taken, what is
// ignored, and which line/byte a failure names.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "core/ndjson.hpp"
#include "core/uuid.hpp"

using namespace esctl;

namespace {
Error failure(std::string_view line, std::string_view stream = {}) {
  try {
    parse_event_line(line, 7, stream);
  } catch (const Error& e) {
    return e;
  }
  FAIL("no exception for: ", std::string(line));
  return Error(Errc::internal, "");
}
}  // namespace

TEST_SUITE("core/ndjson") {
  TEST_CASE("a full export line gives every field, minified, and ignores position and unknown keys") {
    auto ev = parse_event_line(
        R"({"position":9,"stream":"order-1","version":3,"id":"0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77",)"
        R"("type":"OrderPlaced","data":{ "total" : 1.50 , "n":[1, 2] },"meta":{"u":"ann"},)"
        R"("recorded_at":"2026-01-02T03:04:05.000006Z","attempt":2})",
        1);
    CHECK(ev.stream == "order-1");
    CHECK(ev.type == "OrderPlaced");
    CHECK(ev.data == R"({"total":1.50,"n":[1,2]})");
    CHECK(ev.meta == R"({"u":"ann"})");
    REQUIRE(ev.id);
    CHECK(format_uuid(*ev.id) == "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77");
    REQUIRE(ev.version);
    CHECK(*ev.version == 3);
    REQUIRE(ev.recorded_at);
    CHECK(*ev.recorded_at % 1000000 == 6);
  }

  TEST_CASE("data is required, meta defaults to {}, id, version and recorded_at to none") {
    auto e = failure(R"({"stream":"s","type":"T"})");
    CHECK(e.code() == Errc::invalid_input);
    CHECK(std::string(e.what()) == "line 7: missing \"data\" (an event without data says \"data\":{})");
    auto ev = parse_event_line(R"({"stream":"s","type":"T","data":{}})", 1);
    CHECK(ev.data == "{}");
    CHECK(ev.meta == "{}");
    CHECK_FALSE(ev.id);
    CHECK_FALSE(ev.version);
    CHECK_FALSE(ev.recorded_at);
  }

  TEST_CASE("scalar and array data are kept as written") {
    CHECK(parse_event_line(R"({"stream":"s","type":"T","data":"x"})", 1).data == R"("x")");
    CHECK(parse_event_line(R"({"stream":"s","type":"T","data":[1, 2e5]})", 1).data == "[1,2e5]");
    CHECK(parse_event_line(R"({"stream":"s","type":"T","data":null})", 1).data == "null");
  }

  TEST_CASE("escaped strings are decoded and spaced JSON values minified, plain ones taken as written") {
    auto ev = parse_event_line(
        R"({"stream":"order-\u0031","type":"Order\"Placed\"","data":{"s":"a b","t":[1,{}]},"meta": [ 1 ] ,)"
        R"("id":"0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77","recorded_at":"2026-01-02T03:04:05Z"})",
        1);
    CHECK(ev.stream == "order-1");
    CHECK(ev.type == "Order\"Placed\"");
    CHECK(ev.data == R"({"s":"a b","t":[1,{}]})");
    CHECK(ev.meta == "[1]");
    CHECK(failure(R"({"stream":"s","type":"T","id":"0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b7\u0037x"})").what() ==
          std::string("line 7: \"id\" '0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77x' is not a UUID"));
  }

  TEST_CASE("with a given stream, the line may omit it but may not name another") {
    CHECK(parse_event_line(R"({"type":"T","data":1})", 1, "order-1").stream == "order-1");
    CHECK(parse_event_line(R"({"stream":"order-1","type":"T","data":1})", 1, "order-1").stream == "order-1");
    auto e = failure(R"({"stream":"order-2","type":"T","data":1})", "order-1");
    CHECK(std::string(e.what()).find("order-2") != std::string::npos);
  }

  TEST_CASE("every failure is invalid input naming the line number") {
    for (const char* bad : {"", "not json", "[1]", R"({"stream":"s","type":"T",})", R"({"type":"T"})", R"({"stream":"s"})",
                            R"({"stream":1,"type":"T"})", R"({"stream":"s","type":"T","id":"nope"})",
                            R"({"stream":"s","type":"T","version":-1})", R"({"stream":"s","type":"T","version":1.5})",
                            R"({"stream":"s","type":"T","recorded_at":"yesterday"})", R"({"stream":"$s","type":"T"})",
                            R"({"stream":"","type":"T"})", R"({"stream":"s","type":""})"}) {
      INFO(bad);
      auto e = failure(bad);
      CHECK(e.code() == Errc::invalid_input);
      CHECK(std::string(e.what()).rfind("line 7: ", 0) == 0);
    }
  }

  TEST_CASE("a recorded_at that export could not write back is refused") {
    // Found by tests/fuzz/fuzz_ndjson (export | import round trip): the offset moved these
    // times out of years 0000..9999, and they were exported as unreadable or different text.
    for (const char* t : {"0000-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01", "2026-02-30T00:00:00Z"}) {
      INFO(t);
      auto e = failure(std::string(R"({"stream":"s","type":"T","recorded_at":")") + t + "\"}");
      CHECK(e.code() == Errc::invalid_input);
      CHECK(std::string(e.what()).find("is not an RFC 3339 time") != std::string::npos);
    }
  }

  TEST_CASE("checked_json minifies valid JSON and names what was wrong and where") {
    CHECK(checked_json(" { \"a\" : [ 1 , true ] } ", "data") == R"({"a":[1,true]})");
    try {
      checked_json("{\"a\":}", "data");
      FAIL("no exception");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::invalid_input);
      CHECK(std::string(e.what()).find("data is not valid JSON") == 0);
      CHECK(std::string(e.what()).find("at byte 5") != std::string::npos);
    }
  }
}
