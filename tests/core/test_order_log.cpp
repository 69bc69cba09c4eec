// Tests for the delivery-log checker behind `esctl verify --log`: line parsing, per-stream first
// delivery order, redeliveries under at-least-once, and gaps with --no-gaps.
#include "core/order_log.hpp"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"

using esctl::Errc;
using esctl::LogEntry;
using esctl::OrderLog;
using esctl::Violation;

namespace {

// Feeds (stream, version) deliveries in order; returns the violations, each with its line.
std::vector<Violation> feed(OrderLog& log, const std::vector<std::pair<std::string, std::int64_t>>& deliveries) {
  std::vector<Violation> out;
  std::int64_t line = 0;
  for (const auto& [stream, version] : deliveries)
    if (auto v = log.add(LogEntry{stream, version, std::nullopt}, ++line)) out.push_back(*v);
  return out;
}

Errc parse_error(std::string_view line) {
  try {
    esctl::parse_log_line(line, 7);
  } catch (const esctl::Error& e) {
    CHECK(std::string(e.what()).rfind("line 7: ", 0) == 0);
    return e.code();
  }
  FAIL("no error for: " << std::string(line));
  return Errc::internal;
}

}  // namespace

TEST_SUITE("core/order_log") {
  TEST_CASE("a log line yields its stream, version and position, ignoring other members") {
    auto e = esctl::parse_log_line(R"({"position":12,"stream":"order-1","version":3,"type":"Placed","data":{"x":[1]}})", 1);
    REQUIRE(e);
    CHECK(e->stream == "order-1");
    CHECK(e->version == 3);
    CHECK(e->position == 12);
    auto escaped = esctl::parse_log_line(R"({"stream":"caf\u00e9-1","version":0})", 2);
    REQUIRE(escaped);
    CHECK(escaped->stream == "caf\xc3\xa9-1");
    CHECK(!escaped->position);
  }

  TEST_CASE("blank lines are skipped and malformed lines are invalid input naming the line") {
    CHECK(!esctl::parse_log_line("", 1));
    CHECK(!esctl::parse_log_line("  \r", 1));
    CHECK(parse_error("not json") == Errc::invalid_input);
    CHECK(parse_error(R"({"stream":"a","version":1)") == Errc::invalid_input);
    CHECK(parse_error(R"(["a",1])") == Errc::invalid_input);
    CHECK(parse_error(R"({"version":1})") == Errc::invalid_input);
    CHECK(parse_error(R"({"stream":"a"})") == Errc::invalid_input);
    CHECK(parse_error(R"({"stream":7,"version":1})") == Errc::invalid_input);
    CHECK(parse_error(R"({"stream":"a","version":-1})") == Errc::invalid_input);
    CHECK(parse_error(R"({"stream":"a","version":1.5})") == Errc::invalid_input);
    CHECK(parse_error(R"({"stream":"a","version":"1"})") == Errc::invalid_input);
    CHECK(parse_error(R"({"stream":"a","version":99999999999999999999})") == Errc::invalid_input);
  }

  TEST_CASE("in-order deliveries of interleaved streams have no violations") {
    OrderLog log(true);
    auto v = feed(log, {{"a", 0}, {"b", 0}, {"a", 1}, {"b", 1}, {"b", 2}, {"a", 2}});
    CHECK(v.empty());
    CHECK(log.counts().lines == 6);
    CHECK(log.counts().streams == 2);
    CHECK(log.counts().first_deliveries == 6);
    CHECK(log.counts().redeliveries == 0);
  }

  TEST_CASE("a first delivery below the stream's highest version is an order violation") {
    OrderLog log(false);
    auto v = feed(log, {{"a", 0}, {"a", 2}, {"b", 0}, {"a", 1}, {"a", 3}});
    REQUIRE(v.size() == 1);
    CHECK(v[0].kind == "delivery_order");
    CHECK(v[0].stream == "a");
    CHECK(v[0].version == 1);
    CHECK(v[0].line == 4);
    CHECK(v[0].detail.find("after version 2 (line 2)") != std::string::npos);
    CHECK(log.counts().redeliveries == 0);
  }

  TEST_CASE("a redelivered batch is counted, not a violation") {
    OrderLog log(true);
    // A handler crashed after seeing 3,4,5: the whole batch comes again, then the stream goes on.
    auto v = feed(log, {{"s", 3}, {"s", 4}, {"s", 5}, {"t", 0}, {"s", 3}, {"s", 4}, {"s", 5}, {"s", 6}});
    CHECK(v.empty());
    CHECK(log.counts().first_deliveries == 5);
    CHECK(log.counts().redeliveries == 3);
  }

  TEST_CASE("a redelivery of an old version after newer ones is still only a redelivery") {
    OrderLog log(true);
    auto v = feed(log, {{"s", 0}, {"s", 1}, {"s", 2}, {"s", 1}, {"s", 0}, {"s", 3}});
    CHECK(v.empty());
    CHECK(log.counts().redeliveries == 2);
  }

  TEST_CASE("a skipped version is a violation only with no_gaps") {
    const std::vector<std::pair<std::string, std::int64_t>> d = {{"a", 0}, {"a", 1}, {"a", 3}, {"a", 4}, {"a", 8}};
    OrderLog lenient(false);
    CHECK(feed(lenient, d).empty());
    OrderLog strict(true);
    auto v = feed(strict, d);
    REQUIRE(v.size() == 2);
    CHECK(v[0].kind == "delivery_gap");
    CHECK(v[0].version == 3);
    CHECK(v[0].line == 3);
    CHECK(v[0].detail.find("version 2 was never delivered") != std::string::npos);
    CHECK(v[1].version == 8);
    CHECK(v[1].detail.find("versions 5..7 were never delivered") != std::string::npos);
  }

  TEST_CASE("a log may start mid-stream even with no_gaps") {
    OrderLog log(true);
    CHECK(feed(log, {{"a", 40}, {"a", 41}, {"b", 7}}).empty());
  }

  TEST_CASE("a late version that fills a gap is out of order, and its repeat is a redelivery") {
    OrderLog log(true);
    auto v = feed(log, {{"a", 0}, {"a", 2}, {"a", 1}, {"a", 1}, {"a", 2}, {"a", 3}});
    REQUIRE(v.size() == 2);
    CHECK(v[0].kind == "delivery_gap");
    CHECK(v[0].version == 2);
    CHECK(v[1].kind == "delivery_order");
    CHECK(v[1].version == 1);
    CHECK(log.counts().redeliveries == 2);
  }

  TEST_CASE("seen versions are tracked exactly across many gaps") {
    OrderLog log(false);
    std::vector<std::pair<std::string, std::int64_t>> d;
    for (int i = 0; i < 1000; i += 2) d.emplace_back("a", i);  // every even version
    CHECK(feed(log, d).empty());
    // Every even version again: redeliveries; then an odd one: a first delivery out of order.
    std::vector<std::pair<std::string, std::int64_t>> again(d.rbegin(), d.rend());
    again.emplace_back("a", 501);
    auto v = feed(log, again);
    REQUIRE(v.size() == 1);
    CHECK(v[0].version == 501);
    CHECK(log.counts().redeliveries == 500);
    // Filling the odd versions joins the ranges; each is then a redelivery.
    std::vector<std::pair<std::string, std::int64_t>> odd;
    for (int i = 1; i < 999; i += 2) odd.emplace_back("a", i);
    CHECK(feed(log, odd).size() == odd.size() - 1);  // all out of order except 501, seen already
    CHECK(log.counts().redeliveries == 501);
    // 0..998 are now all seen (one range): repeats; 999 is the next version: in order.
    CHECK(feed(log, {{"a", 0}, {"a", 499}, {"a", 500}, {"a", 998}, {"a", 999}}).empty());
    CHECK(log.counts().redeliveries == 505);
    CHECK(log.counts().first_deliveries == 1000);
  }
}
