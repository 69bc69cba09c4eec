// Tests for esctl::json: strict RFC 8259 validation, byte-exact minification, member splitting,
// string quoting/decoding and UTF-8 checks. Behaviour only: speed is not measured here.
#include "core/json_text.hpp"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

namespace json = esctl::json;

namespace {

using namespace std::string_literals;

std::string minified(std::string_view in) {
  std::string out;
  const auto err = json::minify(in, out);
  INFO("input: ", std::string(in));
  REQUIRE_MESSAGE(!err, (err ? err->message : std::string()));
  CHECK(!json::validate(in));
  return out;
}

// The error for `in`, after checking that validate and minify agree on it and that minify left
// its output buffer as it was.
json::Error rejected(std::string_view in) {
  INFO("input: ", std::string(in));
  const auto err = json::validate(in);
  REQUIRE(err.has_value());
  std::string out = "kept";
  const auto err2 = json::minify(in, out);
  REQUIRE(err2.has_value());
  CHECK(err2->offset == err->offset);
  CHECK(err2->message == err->message);
  CHECK(out == "kept");
  CHECK(err->offset <= in.size());
  CHECK(!err->message.empty());
  return *err;
}

std::vector<std::pair<std::string, std::string>> members_of(std::string_view in) {
  std::vector<std::pair<std::string, std::string>> got;
  const auto err = json::for_each_member(in, [&](std::string_view key, std::string_view value) {
    got.emplace_back(std::string(key), std::string(value));
  });
  INFO("input: ", std::string(in));
  REQUIRE_MESSAGE(!err, (err ? err->message : std::string()));
  return got;
}

std::string nested(int depth, const std::string& open, const std::string& inner, const std::string& close) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += open;
  s += inner;
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

}  // namespace

TEST_SUITE("core/json_text") {

TEST_CASE("a compact document is copied byte for byte") {
  const std::string doc = R"({"a":[1,2.5,-3e-7,true,false,null,{}],"b":{"c":"d","e":[]},"":""})";
  CHECK(minified(doc) == doc);
}

TEST_CASE("minify removes whitespace between tokens but not inside strings") {
  CHECK(minified(" {\n\t\"a b\" : [ 1 ,\r\n 2 ] , \"c\":\" x \\t y \" } \n") == R"({"a b":[1,2],"c":" x \t y "})");
  CHECK(minified("[ \"  \" , [ ] , { } ]") == R"(["  ",[],{}])");
}

TEST_CASE("any value type is accepted at the top level with surrounding whitespace") {
  CHECK(minified("  42  ") == "42");
  CHECK(minified("\n\"s\"\n") == "\"s\"");
  CHECK(minified("true") == "true");
  CHECK(minified("false") == "false");
  CHECK(minified("\tnull\r") == "null");
  CHECK(minified("[]") == "[]");
  CHECK(minified("{}") == "{}");
}

TEST_CASE("numbers are kept exactly as written") {
  for (const char* n : {"1.0", "1e400", "-0", "12345678901234567890123", "0.1000000000000000000001", "1E+2",
                        "-0.0e-0", "1e-400", "0", "-1.5E10", "123456789012345678901234567890e-30"}) {
    CHECK(minified(n) == n);
    CHECK(minified("[ "s + n + " ]") == "["s + n + "]");
    CHECK(minified("{\"n\": "s + n + "}") == "{\"n\":"s + n + "}");
  }
}

TEST_CASE("string escapes and non-ASCII text are kept as written") {
  for (const char* s : {R"("\u00e9")", R"("\u00E9")", R"("\/")", R"("\ud83d\ude00")", R"("\b\f\n\r\t\"\\")",
                        R"("\u0000")", "\"\xc3\xa9\"", "\"\xf0\x9f\x98\x80\"", "\"\xe2\x82\xac\x7f\""}) {
    CHECK(minified(s) == s);
  }
}

TEST_CASE("minify appends to existing output and restores it on error") {
  std::string out = "prefix:";
  CHECK(!json::minify("[ 1 ]", out));
  CHECK(out == "prefix:[1]");
  const auto err = json::minify("[ 1 , 2 , x ]", out);
  REQUIRE(err);
  CHECK(out == "prefix:[1]");
}

TEST_CASE("empty and whitespace-only input is rejected at its end") {
  CHECK(rejected("").offset == 0);
  CHECK(rejected(" \n\t\r").offset == 4);
}

TEST_CASE("only space, tab, line feed and carriage return count as whitespace") {
  CHECK(rejected("\v1").offset == 0);
  CHECK(rejected("[1,\f2]").offset == 3);
  CHECK(rejected("[1,\xc2\xa0 2]").message == "unexpected byte 0xc2");
  CHECK(rejected("\xef\xbb\xbf{}").offset == 0);  // a byte order mark is not whitespace
}

TEST_CASE("non-RFC number forms are rejected") {
  for (const char* bad : {"NaN", "nan", "Infinity", "-Infinity", "01", "-01", "00", "+1", ".5", "1.", "1.e5",
                          "-", "1e", "1e+", "1E-", "0x10", "1_000", "--1", "- 1", "[1.]", "[01]", "{\"a\":-}"}) {
    rejected(bad);
  }
  CHECK(rejected("01").message == "leading zeros are not allowed in numbers");
  CHECK(rejected("[-01]").offset == 2);
  CHECK(rejected("+1").message == "unexpected character '+'");
  CHECK(rejected("1.").offset == 2);
  CHECK(rejected("1.").message == "expected a digit after '.'");
  CHECK(rejected("[1e+]").offset == 4);
  CHECK(rejected("-Infinity").offset == 1);
  CHECK(rejected("0x10").offset == 1);
}

TEST_CASE("misspelled literals are rejected at the first wrong byte") {
  CHECK(rejected("nul").offset == 3);
  CHECK(rejected("[tru]").offset == 4);
  CHECK(rejected("True").offset == 0);
  CHECK(rejected("nulll").message == "trailing characters after JSON value");
  CHECK(rejected("[falsy]").message == "unexpected character 'y', expected 'false'");
}

TEST_CASE("single quotes, comments and trailing commas are rejected") {
  CHECK(rejected("'a'").offset == 0);
  CHECK(rejected("{'a':1}").offset == 1);
  CHECK(rejected("[1 // one\n]").offset == 3);
  CHECK(rejected("/* c */ 1").offset == 0);
  CHECK(rejected("[1] # c").offset == 4);
  const auto array_comma = rejected("[1,2,]");
  CHECK(array_comma.offset == 5);
  CHECK(array_comma.message == "trailing comma before ']'");
  const auto object_comma = rejected("{\"a\":1, }");
  CHECK(object_comma.offset == 8);
  CHECK(object_comma.message == "trailing comma before '}'");
  CHECK(rejected("[,1]").offset == 1);
  CHECK(rejected("[1,,2]").offset == 3);
}

TEST_CASE("structural mistakes are rejected where they occur") {
  CHECK(rejected("{\"a\" 1}").offset == 5);
  CHECK(rejected("{\"a\":1 \"b\":2}").offset == 7);
  CHECK(rejected("[1 2]").message == "unexpected character '2', expected ',' or ']'");
  CHECK(rejected("[}").offset == 1);
  CHECK(rejected("{]").offset == 1);
  CHECK(rejected("[1}").offset == 2);
  CHECK(rejected("{\"a\":1]").offset == 6);
  CHECK(rejected("{1:2}").offset == 1);
  CHECK(rejected("{a:1}").offset == 1);
  CHECK(rejected("{\"a\"}").offset == 4);
  CHECK(rejected("{\"a\":}").offset == 5);
  CHECK(rejected("]").offset == 0);
  CHECK(rejected(":").offset == 0);
}

TEST_CASE("truncated texts are rejected at their end and unterminated strings at their quote") {
  for (const char* bad : {"[", "{", "[1", "[1,", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":1,", "[[[]]", "tr"}) {
    CHECK(rejected(bad).offset == std::string_view(bad).size());
  }
  const auto s = rejected("[\"abc");
  CHECK(s.offset == 1);
  CHECK(s.message == "unterminated string");
  CHECK(rejected("\"abc\\").message == "unterminated string");
  CHECK(rejected("\"\\u12").message == "unterminated string");
  CHECK(rejected("\"abcdefghijklmnopqrstuvwxyz").offset == 0);
}

TEST_CASE("trailing characters after the value are rejected") {
  const auto err = rejected("{} x");
  CHECK(err.offset == 3);
  CHECK(err.message == "trailing characters after JSON value");
  CHECK(rejected("1 2").offset == 2);
  CHECK(rejected("[]]").offset == 2);
  CHECK(rejected("\"a\"\"b\"").offset == 3);
  CHECK(rejected("{}\n{}").offset == 3);
}

TEST_CASE("every unescaped control character inside a string is rejected") {
  for (int c = 0; c < 0x20; ++c) {
    std::string doc = "[\"ab";
    doc.push_back(static_cast<char>(c));
    doc += "\"]";
    const auto err = rejected(doc);
    CHECK(err.offset == 4);
    CHECK(err.message.find("unescaped control character") == 0);
  }
  // Long strings reach the control character through the 8-byte-at-a-time path.
  CHECK(rejected("\"0123456789\x1f" "0123456789abcdef\"").offset == 11);
  CHECK(rejected("\"0123456789abcdef\n0123456789abcdef\"").offset == 17);
  CHECK(rejected("\"0123456789abcdef\n\"").message == "unescaped control character U+000A in string");
  CHECK(minified("\"\x7f\"") == "\"\x7f\"");  // DEL is not a control character in JSON
}

TEST_CASE("NUL bytes are rejected inside and outside strings") {
  CHECK(rejected("\"a\0b\""s).offset == 2);
  CHECK(rejected("\"a\0b\""s).message == "unescaped control character U+0000 in string");
  CHECK(rejected("[1,\0 2]"s).offset == 3);
  CHECK(rejected("[1,\0 2]"s).message == "unexpected byte 0x00");
  CHECK(rejected("1\0"s).offset == 1);
  CHECK(rejected("\0"s).offset == 0);
}

TEST_CASE("invalid escape sequences are rejected at the backslash") {
  for (const char* bad : {R"("\x41")", R"("\U0041")", R"("\'")", R"("\a")", R"("\0")", R"("\u12G4")",
                          R"("\u 123")", R"("\u-123")", "\"\\\n\"", "\"\\\xc3\xa9\""}) {
    const auto err = rejected(bad);
    CHECK(err.offset == 1);
    CHECK(err.message.find("invalid") == 0);
  }
  CHECK(rejected(R"(["ok", "\x41"])").message == "invalid escape '\\x'");
  CHECK(rejected(R"("\u12G4")").message == "invalid \\u escape: expected 4 hex digits");
}

TEST_CASE("lone and mis-ordered surrogate escapes are rejected") {
  const auto alone = rejected(R"("\ud800")");
  CHECK(alone.offset == 1);
  CHECK(alone.message == "lone surrogate \\ud800");
  CHECK(rejected(R"("x\ud800y")").offset == 2);
  CHECK(rejected(R"("\udc00")").message == "lone surrogate \\udc00");
  CHECK(rejected(R"("\udc00\ud800")").offset == 1);
  CHECK(rejected(R"("\ud800\ud800")").offset == 1);
  CHECK(rejected(R"("\ud800\u0041")").offset == 1);
  CHECK(rejected(R"("\udbff\n")").offset == 1);
  CHECK(rejected(R"("\uDFFF")").message == "lone surrogate \\uDFFF");
  CHECK(rejected(R"("\ud800\uzzzz")").offset == 7);
  CHECK(minified(R"("\ud800\udc00\udbff\udfff")") == R"("\ud800\udc00\udbff\udfff")");
}

TEST_CASE("invalid UTF-8 inside strings is rejected at the offending sequence") {
  for (const auto& bad : {"\xc0\x80"s, "\xc1\xbf"s, "\xe0\x80\xaf"s, "\xed\xa0\x80"s, "\xf0\x8f\xbf\xbf"s,
                          "\xf4\x90\x80\x80"s, "\xf5\x80\x80\x80"s, "\xff"s, "\x80"s, "\xc3"s, "\xe2\x82"s,
                          "\xf0\x9f\x98"s}) {
    const auto err = rejected("[\"ab" + bad + "\"]");
    CHECK(err.offset == 4);
    CHECK(err.message == "invalid UTF-8");
    // Long strings are scanned 8 bytes at a time; the offset must not move.
    CHECK(rejected("\"0123456789" + bad + "0123456789abcdef\"").offset == 11);
    CHECK(rejected("\"0123456789" + bad + "\"").offset == 11);
  }
  CHECK(rejected("\"\xc3\xa9\xc3\"").offset == 3);
  CHECK(rejected("{\"k\xff\":1}").offset == 3);
}

TEST_CASE("bytes outside ASCII are rejected between tokens") {
  CHECK(rejected("\xc3\xa9").message == "unexpected byte 0xc3");
  CHECK(rejected("[1,\xe2\x82\xac]").offset == 3);
}

TEST_CASE("1000 levels of nesting are accepted and 1001 are rejected") {
  const std::string arrays = nested(json::kMaxDepth, "[", "1", "]");
  CHECK(minified(arrays) == arrays);
  const std::string objects = nested(json::kMaxDepth, "{\"a\":", "1", "}");
  CHECK(minified(objects) == objects);
  const auto deep = rejected(nested(json::kMaxDepth + 1, "[", "", "]"));
  CHECK(deep.offset == 1000);
  CHECK(deep.message == "nesting deeper than 1000 levels");
  CHECK(rejected(nested(500, "[{\"a\":", "[]", "}]")).message == "nesting deeper than 1000 levels");
}

TEST_CASE("100000-deep nesting is rejected without exhausting the stack") {
  CHECK(rejected(nested(100000, "[", "", "]")).offset == 1000);
  CHECK(rejected(nested(100000, "{\"a\":", "", "}")).offset == 5000);
  CHECK(rejected(std::string(100000, '[')).offset == 1000);
  CHECK(rejected(std::string(100000, ']')).offset == 0);
  const auto fm = json::for_each_member(nested(100000, "{\"a\":", "null", "}"), [](auto, auto) { FAIL("called"); });
  REQUIRE(fm);
  CHECK(fm->message == "nesting deeper than 1000 levels");
}

TEST_CASE("for_each_member yields decoded keys and trimmed raw values in order") {
  const auto got = members_of(" {\"stream\" : \"order-1\" ,\n \"n\": 1.50 , \"ok\":true,\"x\":null } ");
  REQUIRE(got.size() == 4);
  CHECK(got[0] == std::pair("stream"s, "\"order-1\""s));
  CHECK(got[1] == std::pair("n"s, "1.50"s));
  CHECK(got[2] == std::pair("ok"s, "true"s));
  CHECK(got[3] == std::pair("x"s, "null"s));
}

TEST_CASE("for_each_member passes nested values through unminified") {
  const auto got = members_of(R"({"data": { "a" : [1, {"b": "c"}] }, "meta":{}, "arr":[ ], "s":"x\ty"})");
  REQUIRE(got.size() == 4);
  CHECK(got[0] == std::pair("data"s, R"({ "a" : [1, {"b": "c"}] })"s));
  CHECK(got[1] == std::pair("meta"s, "{}"s));
  CHECK(got[2] == std::pair("arr"s, "[ ]"s));
  CHECK(got[3] == std::pair("s"s, R"("x\ty")"s));
}

TEST_CASE("for_each_member tells which raw values are already minified") {
  const std::string in = "{ \"a\" : {\"b\":[1,2]} , \"c\":{ \"d\":1},\"e\":[1 ,2],\"f\":\" x \",\"g\":\n1 }";
  std::vector<std::pair<std::string, bool>> got;
  const auto err = json::for_each_member(in, [&](std::string_view key, std::string_view raw, bool minified) {
    got.emplace_back(std::string(key), minified);
    std::string m;
    REQUIRE_FALSE(json::minify(raw, m));
    CHECK((m == raw) == minified);  // the flag is exact: minify would change the value iff it is false
  });
  REQUIRE_FALSE(err);
  REQUIRE(got.size() == 5);
  CHECK(got[0] == std::pair("a"s, true));   // whitespace around key, colon and comma is not the value's
  CHECK(got[1] == std::pair("c"s, false));
  CHECK(got[2] == std::pair("e"s, false));
  CHECK(got[3] == std::pair("f"s, true));   // spaces inside a string are content
  CHECK(got[4] == std::pair("g"s, true));
}

TEST_CASE("for_each_member decodes escaped keys") {
  const auto got = members_of(R"({"a\"b":1,"\u00e9":2,"\ud83d\ude00":3,"t\tab\\":4,"":5,"\/":6})");
  REQUIRE(got.size() == 6);
  CHECK(got[0].first == "a\"b");
  CHECK(got[1].first == "\xc3\xa9");
  CHECK(got[2].first == "\xf0\x9f\x98\x80");
  CHECK(got[3].first == "t\tab\\");
  CHECK(got[4].first == "");
  CHECK(got[5].first == "/");
  CHECK(got[5].second == "6");
}

TEST_CASE("for_each_member passes duplicate keys through in order") {
  const auto got = members_of(R"({"a":1,"a":2})");
  REQUIRE(got.size() == 2);
  CHECK(got[0].second == "1");
  CHECK(got[1].second == "2");
}

TEST_CASE("for_each_member reports every member of a large object") {
  std::string doc = "{";
  for (int i = 0; i < 100; ++i) doc += (i ? "," : "") + ("\"k" + std::to_string(i) + "\":[" + std::to_string(i) + "]");
  doc += "}";
  const auto got = members_of(doc);
  REQUIRE(got.size() == 100);
  for (int i = 0; i < 100; ++i) {
    CHECK(got[i].first == "k" + std::to_string(i));
    CHECK(got[i].second == "[" + std::to_string(i) + "]");
  }
}

TEST_CASE("for_each_member on an empty object calls nothing") {
  CHECK(members_of(" { } ").empty());
}

TEST_CASE("for_each_member rejects non-object input") {
  for (const char* bad : {"[]", "[{\"a\":1}]", "1", "\"s\"", "null", "", "   ", "x"}) {
    INFO(bad);
    bool called = false;
    const auto err = json::for_each_member(bad, [&](auto, auto) { called = true; });
    REQUIRE(err);
    CHECK(err->message == "expected a JSON object");
    CHECK_FALSE(called);
  }
  CHECK(json::for_each_member("  [1]", [](auto, auto) {})->offset == 2);
}

TEST_CASE("for_each_member calls nothing when the object is malformed") {
  for (const char* bad : {"{\"a\":1,\"b\":}", "{\"a\":1} x", "{\"a\":1,\"b\":2", "{\"a\":1,\"b\":\"\\ud800\"}",
                          "{\"a\":1,}", "{\"a\":01}"}) {
    INFO(bad);
    bool called = false;
    const auto err = json::for_each_member(bad, [&](auto, auto) { called = true; });
    REQUIRE(err);
    CHECK(err->offset == json::validate(bad)->offset);
    CHECK_FALSE(called);
  }
}

TEST_CASE("append_quoted escapes quotes, backslashes and control characters") {
  std::string out = "x=";
  json::append_quoted(out, "a\"b\\c\n\t\r\b\f\x01\x1f\x7f/\xc3\xa9");
  CHECK(out == "x=\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f/\xc3\xa9\"");
  out.clear();
  json::append_quoted(out, "\0"s);
  CHECK(out == "\"\\u0000\"");
  out.clear();
  json::append_quoted(out, "");
  CHECK(out == "\"\"");
}

TEST_CASE("append_quoted output decodes back to the same bytes for every ASCII byte") {
  std::string all;
  for (int c = 0; c < 0x80; ++c) {
    const std::string one(1, static_cast<char>(c));
    std::string quoted;
    json::append_quoted(quoted, one);
    INFO("byte ", c, " quoted as ", quoted);
    CHECK(!json::validate(quoted));
    CHECK(json::decode_string(quoted) == one);
    all += one;
  }
  std::string quoted;
  json::append_quoted(quoted, all + "\xf0\x9f\x98\x80 tail");
  CHECK(json::decode_string(quoted) == all + "\xf0\x9f\x98\x80 tail");
}

TEST_CASE("decode_string resolves escapes and surrogate pairs into UTF-8") {
  CHECK(json::decode_string(R"("plain")") == "plain");
  CHECK(json::decode_string(R"("")") == "");
  CHECK(json::decode_string(R"("\u00e9\u20AC\ud83d\ude00")") == "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  CHECK(json::decode_string(R"("\u0041\u007f\u0080\u07ff\u0800\uffff")") ==
        "A\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");
  CHECK(json::decode_string(R"("\udbff\udfff")") == "\xf4\x8f\xbf\xbf");
  CHECK(json::decode_string(R"("\u0000")") == "\0"s);
  CHECK(json::decode_string(R"("\"\\\/\b\f\n\r\t")") == "\"\\/\b\f\n\r\t");
}

TEST_CASE("decode_string rejects anything but exactly one valid literal") {
  for (const auto& bad : {""s, "\""s, "abc"s, "'a'"s, " \"a\""s, "\"a\" "s, "\"a\"b\""s, "\"a"s, R"("\ud800")"s,
                          R"("\x")"s, "\"\n\""s, "\"\xff\""s, "\"a\0\""s}) {
    INFO(bad);
    CHECK_FALSE(json::decode_string(bad).has_value());
  }
}

TEST_CASE("valid_utf8 accepts well-formed text at every boundary") {
  for (const auto& ok : {""s, "ascii only, longer than eight bytes"s, "\0"s, "\x7f"s, "\xc2\x80"s, "\xdf\xbf"s,
                         "\xe0\xa0\x80"s, "\xed\x9f\xbf"s, "\xee\x80\x80"s, "\xef\xbf\xbf"s, "\xf0\x90\x80\x80"s,
                         "\xf4\x8f\xbf\xbf"s, "0123456789\xc3\xa9" "0123456789"s}) {
    CHECK(json::valid_utf8(ok));
  }
}

TEST_CASE("valid_utf8 rejects overlongs, surrogates, values past U+10FFFF and truncated sequences") {
  for (const auto& bad : {"\xc0\x80"s, "\xc1\xbf"s, "\xe0\x9f\xbf"s, "\xf0\x8f\xbf\xbf"s,  // overlong
                          "\xed\xa0\x80"s, "\xed\xbf\xbf"s,                                  // surrogates
                          "\xf4\x90\x80\x80"s, "\xf5\x80\x80\x80"s, "\xff"s, "\xfe"s,        // too large
                          "\x80"s, "\xbf"s,                                                  // lone continuation
                          "\xc3"s, "\xe2\x82"s, "\xf0\x9f\x98"s, "\xc3\x41"s, "\xe2\x28\xa1"s,  // truncated
                          "01234567\xc3"s, "0123456789abcdef\xed\xa0\x80"s, "abc\xc0\x80" "defghijklmnop"s,
                          "abcdefghijk\xed\xa0\x80" "lmnopqrstuvw"s, "a\xff" "bcdefghijklmnop"s}) {
    INFO(bad);
    CHECK_FALSE(json::valid_utf8(bad));
  }
}

}  // TEST_SUITE
