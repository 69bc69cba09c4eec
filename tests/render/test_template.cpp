// render/template: --format placeholders, member paths, braces, escapes and the usage errors.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "render/template.hpp"

using namespace esctl;

namespace {
const std::string kId("\x01\x8f\x00\x00\x00\x00\x70\x00\x80\x00\x00\x00\x00\x00\x00\x2a", 16);

EventRef sample() {
  EventRef e;
  e.position = 42;
  e.stream = "order-7";
  e.version = 3;
  e.id = kId;
  e.type = "OrderPlaced";
  e.data = R"({"customer":"ann \"a\"","total":12.50,"items":[{"sku":"A1","n":2},{"sku":"B2"}],"ok":true,"none":null,"a\u002eb":1})";
  e.meta = R"({"trace":{"id":"t-9"}})";
  e.recorded_at_us = 1'700'000'000'123'456;
  return e;
}

std::string render(std::string_view t, bool deliveries = false, const DeliveryFields* d = nullptr) {
  std::string out;
  EventTemplate::parse(t, deliveries).render(out, sample(), d);
  return out;
}

Errc usage_code(std::string_view t, bool deliveries = false) {
  try {
    EventTemplate::parse(t, deliveries);
  } catch (const Error& e) {
    return e.code();
  }
  return Errc::internal;
}
}  // namespace

TEST_SUITE("render/template") {
  TEST_CASE("every event placeholder renders its field") {
    CHECK(render("{position} {stream} {version} {type}") == "42 order-7 3 OrderPlaced");
    CHECK(render("{id}") == "018f0000-0000-7000-8000-00000000002a");
    CHECK(render("{recorded_at}") == "2023-11-14T22:13:20.123456Z");
    CHECK(render("{data}") == std::string(sample().data));
    CHECK(render("{meta}") == R"({"trace":{"id":"t-9"}})");
  }

  TEST_CASE("member paths give strings unquoted, other values as JSON, absent as empty") {
    CHECK(render("{data.customer}") == "ann \"a\"");
    CHECK(render("{data.total}") == "12.50");
    CHECK(render("{data.items.0.sku}|{data.items.1.sku}|{data.items.2.sku}") == "A1|B2|");
    CHECK(render("{data.items.1}") == R"({"sku":"B2"})");
    CHECK(render("{data.ok} {data.none}") == "true null");
    CHECK(render("{data.missing}|{data.customer.x}|{data.items.x}|{meta.trace.id}") == "|||t-9");
    CHECK(render("{data.a.b}") == "");  // a dotted path never names a key holding a dot
  }

  TEST_CASE("an escaped key is matched by its decoded name") {
    EventRef e = sample();
    e.data = R"({"caf\u00e9":"yes"})";
    std::string out;
    EventTemplate::parse("{data.café}", false).render(out, e);
    CHECK(out == "yes");
  }

  TEST_CASE("doubled braces and escapes are literal text") {
    CHECK(render("{{{version}}}") == "{3}");
    CHECK(render("a\\tb\\nc\\\\d") == "a\tb\nc\\d");
    CHECK(render("plain") == "plain");
    CHECK(render("") == "");
  }

  TEST_CASE("attempt and lease render for deliveries") {
    DeliveryFields d{2, "lease-token"};
    CHECK(render("{attempt} {lease}", true, &d) == "2 lease-token");
    CHECK(render("{attempt}|{lease}", true, nullptr) == "|");
  }

  TEST_CASE("unknown placeholders, stray braces and unknown escapes are usage errors") {
    CHECK(usage_code("{nope}") == Errc::usage);
    CHECK(usage_code("{data.}") == Errc::usage);
    CHECK(usage_code("{data..x}") == Errc::usage);
    CHECK(usage_code("{}") == Errc::usage);
    CHECK(usage_code("{position") == Errc::usage);
    CHECK(usage_code("position}") == Errc::usage);
    CHECK(usage_code("\\x") == Errc::usage);
    CHECK(usage_code("trailing\\") == Errc::usage);
    CHECK(usage_code("{attempt}") == Errc::usage);
    CHECK(usage_code("{lease}") == Errc::usage);
    CHECK_NOTHROW(EventTemplate::parse("{attempt}{lease}", true));
    try {
      EventTemplate::parse("x {nope} y", false);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("unknown placeholder '{nope}'") != std::string::npos);
    }
  }
}
