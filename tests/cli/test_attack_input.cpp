// Attack (issue 8): hostile stream names, payloads and NDJSON. Each is stored and read back
// byte-exact or refused with exit 5 writing nothing; no crash; no file appears outside the
// store's folder; --prefix with % or _ matches literally. Not: projection files, --log input.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// Every file under `dir`, relative to it.
std::set<std::string> tree(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.insert(fs::relative(e.path(), dir).string());
  return out;
}

std::int64_t event_count(const std::string& store) {
  auto r = run({"--store", store, "--json", "stats"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return json::parse(r.out)["events"];
}

/// A folder with the store in work/ (the commands' cwd) and inputs in in/.
struct Setup {
  TempDir d;
  std::string work = d / "work", in = d / "in", store = d / "work/s.db";
  Setup() {
    fs::create_directory(work);
    fs::create_directory(in);
    REQUIRE(run({"--store", store, "init"}).status == 0);
  }
  Result esctl(std::vector<std::string> args, const std::string& input = "") const {
    args.insert(args.begin(), {"--store", store});
    return run(args, {.input = input, .cwd = work});
  }
  std::string file(const std::string& name, const std::string& content) const {
    auto p = in + "/" + name;
    write_file(p, content);
    return p;
  }
  /// Nothing but the store (and its WAL files while open) in work/, nothing new beside it.
  void check_contained() const {
    for (const auto& f : tree(work)) CHECK_MESSAGE((f == "s.db" || f == "s.db-wal" || f == "s.db-shm"), "stray file: " << f);
    std::set<std::string> top;
    for (const auto& e : fs::directory_iterator(d.path())) top.insert(e.path().filename().string());
    CHECK(top == std::set<std::string>{"in", "work"});
  }
};

}  // namespace

TEST_SUITE("cli/attack_input") {
  TEST_CASE("hostile stream names are stored and read back exactly, or refused with exit 5") {
    Setup s;
    std::vector<std::string> names = {
        "it's",        "say \"hi\"",     "a;b",         "x'); DROP TABLE events; --", "100%",        "a%b",
        "a_b",         "back\\slash",    "../escape",   "../../../tmp/x",             "/abs/path",   "-lead",
        "--double",    "ünïcødé-名前",   "emoji-😀",    "tab\\t",                     "spaces in it", "a*b?[c]",
        std::string(255, 'n'),            std::string(85 * 3, 'x'),
    };
    // 255 bytes of 3-byte characters (85 x U+540D).
    names.back().clear();
    for (int i = 0; i < 85; ++i) names.back() += "名";
    for (std::size_t i = 0; i < names.size(); ++i) {
      const auto& name = names[i];
      auto r = s.esctl({"append", "--", name, "T", fmt::format("{{\"n\":{}}}", i)});
      CHECK_MESSAGE(r.status == 0, name << ": " << r.err);
      r = s.esctl({"--json", "read", "--", name});
      REQUIRE_MESSAGE(r.status == 0, name << ": " << r.err);
      auto ev = lines(r.out);
      REQUIRE(ev.size() == 1);
      CHECK(json::parse(ev[0])["stream"] == name);
      CHECK(json::parse(ev[0])["data"]["n"] == i);
    }
    auto listed = lines(s.esctl({"--json", "streams"}).out);
    CHECK(listed.size() == names.size());

    // A leading '-' without '--' is an option: a usage error, not an append.
    CHECK(s.esctl({"append", "-x", "T"}).status == 2);
    // Refused names: 256 bytes (ASCII or multibyte), reserved '$', control characters, bad UTF-8.
    std::string multi256(254, 'm');
    multi256 += "é";  // 256 bytes, ends in a 2-byte character
    for (const std::string& bad : {std::string(256, 'n'), multi256, std::string("$all"), std::string("a\nb"),
                                   std::string("nul\x01"), std::string("bad\xff"), std::string("half\xe5\x90"),
                                   std::string("sur\xed\xa0\x80"), std::string()}) {
      auto r = s.esctl({"append", "--", bad, "T"});
      CHECK_MESSAGE(r.status == 5, "name of " << bad.size() << " bytes: " << r.err);
      CHECK(!r.err.empty());
    }
    CHECK(event_count(s.store) == static_cast<std::int64_t>(names.size()));
    s.check_contained();
    check_sound(s.store);
  }

  TEST_CASE("streams --prefix with % and _ matches them literally, never as wildcards") {
    Setup s;
    for (const char* n : {"a%b", "a_b", "axb", "ab", "a%%", "_x", "%y", "A_B"}) REQUIRE(s.esctl({"append", "--", n, "T"}).status == 0);
    auto names = [&](const std::string& prefix) {
      std::set<std::string> out;
      auto r = s.esctl({"--json", "streams", "--prefix", prefix});
      CHECK_MESSAGE(r.status == 0, r.err);
      for (const auto& l : lines(r.out)) out.insert(json::parse(l)["stream"]);
      return out;
    };
    CHECK(names("a%") == std::set<std::string>{"a%b", "a%%"});
    CHECK(names("a_") == std::set<std::string>{"a_b"});
    CHECK(names("_") == std::set<std::string>{"_x"});
    CHECK(names("%") == std::set<std::string>{"%y"});
    CHECK(names("a") == std::set<std::string>{"a%b", "a_b", "axb", "ab", "a%%"});
    CHECK(names("a_B").empty());  // and case-sensitive
  }

  TEST_CASE("hostile but valid payloads are stored and read back byte-exact, minified") {
    Setup s;
    std::string deep = std::string(1000, '[') + std::string(1000, ']');
    std::vector<std::pair<std::string, std::string>> cases = {
        {R"({ "a" : [ 1 , 2 ] ,"b":{}} )", R"({"a":[1,2],"b":{}})"},
        {R"("\u0000 escaped NUL")", R"("\u0000 escaped NUL")"},
        {R"("\ud83d\ude00 pair")", R"("\ud83d\ude00 pair")"},
        {"\"ünï 名 😀\"", "\"ünï 名 😀\""},
        {"1e400", "1e400"},
        {"-0.0", "-0.0"},
        {"123456789012345678901234567890", "123456789012345678901234567890"},
        {R"("quote \" backslash \\ slash \/")", R"("quote \" backslash \\ slash \/")"},
        {"null", "null"},
        {"[]", "[]"},
        {deep, deep},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
      auto f = s.file(fmt::format("ok{}.json", i), cases[i].first);
      auto r = s.esctl({"append", "p-1", "T", "@" + f});
      CHECK_MESSAGE(r.status == 0, cases[i].first.substr(0, 60) << ": " << r.err);
    }
    auto out = lines(s.esctl({"--json", "read", "p-1"}).out);
    REQUIRE(out.size() == cases.size());
    for (std::size_t i = 0; i < cases.size(); ++i)
      CHECK_MESSAGE(contains(out[i], "\"data\":" + cases[i].second + ",\"meta\""), cases[i].second.substr(0, 60));

    // 10 MB of data: stored, and read back byte-exact.
    std::string big = "{\"k\":[";
    for (int i = 0; big.size() < 10'000'000; ++i) big += fmt::format("{}\"{:08d}\"", i ? "," : "", i);
    big += "]}";
    auto r = s.esctl({"-q", "append", "big-1", "T", "@" + s.file("big.json", big)});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    r = s.esctl({"--json", "read", "big-1"});
    REQUIRE(r.status == 0);
    CHECK(contains(r.out, "\"data\":" + big + ",\"meta\""));
    s.check_contained();
    check_sound(s.store);
  }

  TEST_CASE("invalid payloads are refused with exit 5 and write nothing") {
    Setup s;
    REQUIRE(s.esctl({"append", "p-1", "T"}).status == 0);
    std::vector<std::string> bad = {
        "NaN", "Infinity", "-Infinity", R"({"a":NaN})", "[1,]", "{'a':1}", "", "   ", "{} x", "{}{}", "[1] [2]",
        std::string(1001, '[') + std::string(1001, ']'),
        "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",   // invalid UTF-8, raw surrogate, > U+10FFFF
        R"("\ud800")", R"("\udc00")", R"("\ud800x")", R"("\ud800\u0041")",          // lone surrogates
        std::string("{\"a\":1}\0", 8), std::string("{\"a\":\"x\0y\"}", 11), std::string("\0", 1),  // NUL bytes
        "\"\x01\"", "01", "+1", ".5", "1.", "0x10", "\"\\x41\"", "tru", "[\"unterminated",
    };
    for (std::size_t i = 0; i < bad.size(); ++i) {
      auto f = s.file(fmt::format("bad{}.json", i), bad[i]);
      auto r = s.esctl({"append", "p-1", "T", "@" + f});
      CHECK_MESSAGE(r.status == 5, "case " << i << ": " << r.err);
      CHECK(contains(r.err, "not valid JSON"));
      if (bad[i].empty()) continue;  // --meta "" means no --meta
      r = s.esctl({"append", "p-1", "T", "{}", "--meta", bad[i].find('\0') == std::string::npos ? bad[i] : "{"});
      CHECK_MESSAGE(r.status == 5, "meta case " << i << ": " << r.err);
    }
    CHECK(event_count(s.store) == 1);
    s.check_contained();
    check_sound(s.store);
  }

  TEST_CASE("data over the 64 MiB limit is refused with exit 5 before it is read or stored") {
    Setup s;
    // 200 MB file for append @FILE: refused from its size alone.
    auto f = s.in + "/huge.json";
    {
      std::FILE* out = std::fopen(f.c_str(), "wb");
      REQUIRE(out);
      std::fputs("{\"k\":\"", out);
      std::string chunk(1 << 20, 'a');
      for (int i = 0; i < 200; ++i) std::fwrite(chunk.data(), 1, chunk.size(), out);
      std::fputs("\"}", out);
      std::fclose(out);
    }
    const bool file = !postgres_backend();
    auto size_before = file ? fs::file_size(s.store) : 0;
    auto r = s.esctl({"append", "huge-1", "T", "@" + f});
    CHECK(r.status == 5);
    CHECK_MESSAGE(contains(r.err, "over the limit"), r.err);
    CHECK(contains(r.err, "64 MiB"));
    fs::remove(f);
    // Just over the limit through an NDJSON line (import) and through stdin.
    std::string over = "{\"k\":\"" + std::string((std::size_t{64} << 20) - 7, 'b') + "\"}";  // 64 MiB + 1
    r = s.esctl({"import", "-"}, "{\"stream\":\"huge-2\",\"type\":\"T\",\"data\":" + over + "}\n");
    CHECK(r.status == 5);
    CHECK_MESSAGE(contains(r.err, "over the limit"), r.err);
    r = s.esctl({"append", "huge-3", "T", "-"}, over);
    CHECK(r.status == 5);
    CHECK(contains(r.err, "over the limit"));
    CHECK(event_count(s.store) == 0);
    if (file) CHECK(fs::file_size(s.store) == size_before);
    s.check_contained();
    check_sound(s.store);
  }

  TEST_CASE("junk NDJSON for import and append --ndjson is refused with exit 5 naming the line, writing nothing") {
    Setup s;
    const std::string good = "{\"stream\":\"j-1\",\"type\":\"T\",\"data\":{}}";
    std::vector<std::string> junk = {
        "\xff\xfe\x00garbage",
        "[]",
        "\"just a string\"",
        "42",
        "{\"stream\":1,\"type\":\"T\"}",
        "{\"stream\":\"j-1\"}",
        "{\"stream\":\"j-1\",\"type\":\"T\",\"data\":NaN}",
        "{\"stream\":\"j-1\",\"type\":\"T\",\"data\":{}",
        "{\"stream\":\"j-1\",\"type\":\"T\",\"data\":{}} trailing",
        "{\"stream\":\"$all\",\"type\":\"T\"}",
        "{\"stream\":\"a\\nb\",\"type\":\"T\"}",
        "{\"stream\":\"j-1\",\"type\":\"T\",\"version\":-1}",
        "{\"stream\":\"j-1\",\"type\":\"T\",\"version\":1e999}",
        "{\"stream\":\"j-1\",\"type\":\"T\",\"version\":99999999999999999999999}",
        "{\"stream\":\"j-1\",\"type\":\"T\",\"id\":\"not-a-uuid\"}",
        "{\"stream\":\"j-1\",\"type\":\"T\",\"recorded_at\":\"yesterday\"}",
        "{\"stream\":\"j-1\",\"type\":\"T\",\"data\":\"\\ud800\"}",
        std::string("{\"stream\":\"j-1\",\"type\":\"T\",\"data\":\"a\0b\"}", 40),
        "{\"stream\":\"j-1\",\"type\":\"T\",\"data\":" + std::string(1001, '[') + std::string(1001, ']') + "}",
    };
    for (std::size_t i = 0; i < junk.size(); ++i) {
      // The junk follows a good line in the same batch: the whole batch is refused.
      auto r = s.esctl({"import", "-"}, good + "\n" + junk[i] + "\n");
      CHECK_MESSAGE(r.status == 5, "junk " << i << ": " << r.err);
      CHECK_MESSAGE(contains(r.err, "line 2"), "junk " << i << ": " << r.err);
      r = s.esctl({"append", "j-1", "--ndjson", "-"}, "{\"type\":\"T\",\"data\":{}}\n" + junk[i] + "\n");
      CHECK_MESSAGE(r.status == 5, "junk " << i << " --ndjson: " << r.err);
    }
    // Random bytes: no crash, a clean refusal.
    std::string noise;
    std::uint32_t x = 12345;
    for (int i = 0; i < 200000; ++i) {
      x = x * 1103515245 + 12345;
      noise += static_cast<char>(x >> 24);
    }
    auto r = s.esctl({"import", "-"}, noise);
    CHECK(r.status == 5);
    CHECK(event_count(s.store) == 0);
    s.check_contained();
    check_sound(s.store);
  }
}
