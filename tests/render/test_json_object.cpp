// render/json_object: command summaries as JSON, members in order, strings escaped, absent
// values null, nested values taken as JSON text; every output parses.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "render/json_object.hpp"

using namespace esctl;

TEST_SUITE("render/json_object") {
  TEST_CASE("members keep their order and types, strings are escaped, absent values are null") {
    JsonObject inner;
    inner.string("a", "x");
    std::optional<std::int64_t> none;
    std::optional<std::string> no_text;
    auto text = JsonObject()
                    .string("name", "q \"1\"\\\n\x01")
                    .number("lag", -3)
                    .number("oldest", none)
                    .number("some", std::optional<std::int64_t>(7))
                    .string_or_null("stream", no_text)
                    .boolean("ok", false)
                    .fixed("elapsed", 1.23456, 3)
                    .fixed("rate", 99.6, 0)
                    .raw("inner", inner.str())
                    .raw("list", json_array_of({inner.str(), "{}"}))
                    .time("at", std::optional<std::int64_t>(0))
                    .time("never", none)
                    .line();
    REQUIRE(text.back() == '\n');
    auto j = nlohmann::json::parse(text);
    std::vector<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    CHECK(text.find("\"name\"") < text.find("\"lag\""));
    CHECK(text.find("\"at\"") < text.find("\"never\""));
    CHECK(j["name"] == "q \"1\"\\\n\x01");
    CHECK(j["lag"] == -3);
    CHECK(j["oldest"].is_null());
    CHECK(j["some"] == 7);
    CHECK(j["stream"].is_null());
    CHECK(j["ok"] == false);
    CHECK(text.find("\"elapsed\":1.235") != std::string::npos);
    CHECK(j["rate"] == 100);
    CHECK(j["inner"]["a"] == "x");
    CHECK(j["list"].size() == 2);
    CHECK(j["at"] == "1970-01-01T00:00:00.000000Z");
    CHECK(j["never"].is_null());
    CHECK(keys.size() == 12);
  }

  TEST_CASE("an empty object and empty arrays are valid JSON") {
    CHECK(JsonObject().str() == "{}");
    CHECK(json_array_of({}) == "[]");
    CHECK(nlohmann::json::parse(JsonObject().raw("l", json_array_of({})).str())["l"].empty());
  }
}
