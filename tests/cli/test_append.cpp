// esctl append (esctl-append(1)) through the binary: output forms, DATA sources, each --expect
// mode and its conflict, idempotency by id, atomic --ndjson, name and JSON checks, and many
// processes appending at once.
#include <doctest/doctest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

Result append(const std::string& store, std::vector<std::string> args, const RunOptions& opt = {}) {
  std::vector<std::string> argv{"--store", store, "append"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, opt);
}

}  // namespace

TEST_SUITE("cli/append") {
  TEST_CASE("append prints STREAM@VERSION #POSITION and creates the store on first use") {
    TempDir d;
    auto store = d / "new.db";
    auto r = append(store, {"order-1", "OrderPlaced", R"({"total": 1.50})"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out == "order-1@0 #1\n");
    CHECK(r.err.empty());
    r = append(store, {"order-2", "OrderPlaced"});
    CHECK(r.out == "order-2@0 #2\n");
    r = append(store, {"order-1", "OrderShipped"});
    CHECK(r.out == "order-1@1 #3\n");
    auto ev = all_events(store);
    REQUIRE(ev.size() == 3);
    CHECK(ev[0]["data"] == json::parse(R"({"total":1.50})"));
    CHECK(ev[1]["data"] == json::object());
    CHECK(ev[0]["meta"] == json::object());
  }

  TEST_CASE("--json prints stream, version, position and the generated UUIDv7 id") {
    TempDir d;
    auto r = append(d / "s.db", {"s", "T", "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto j = json::parse(r.out);
    CHECK(j["stream"] == "s");
    CHECK(j["version"] == 0);
    CHECK(j["position"] == 1);
    std::string id = j["id"];
    REQUIRE(id.size() == 36);
    CHECK(id[14] == '7');
    CHECK(all_events(d / "s.db")[0]["id"] == id);
  }

  TEST_CASE("--meta and --id are stored as given") {
    TempDir d;
    auto r = append(d / "s.db", {"s", "T", "[1, 2]", "--meta", R"({"user": "ann"})", "--id",
                                 "0190A6E4-6D5A-7C4E-9A51-3F0C2D1E8B77"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto ev = all_events(d / "s.db");
    CHECK(ev[0]["data"] == json::parse("[1,2]"));
    CHECK(ev[0]["meta"] == json::parse(R"({"user":"ann"})"));
    CHECK(ev[0]["id"] == "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77");
  }

  TEST_CASE("DATA is read from stdin with '-' and from a file with @FILE, scalars are data too") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(append(store, {"s", "T", "-"}, RunOptions{R"( {"from": "stdin"} )", {}, ""}).status == 0);
    write_file(d / "data.json", "{\n  \"from\": \"file\"\n}\n");
    REQUIRE(append(store, {"s", "T", "@" + (d / "data.json")}).status == 0);
    REQUIRE(append(store, {"s", "T", "42"}).status == 0);
    REQUIRE(append(store, {"s", "T", "\"text\""}).status == 0);
    auto ev = all_events(store);
    REQUIRE(ev.size() == 4);
    CHECK(ev[0]["data"]["from"] == "stdin");
    CHECK(ev[1]["data"]["from"] == "file");
    CHECK(ev[2]["data"] == 42);
    CHECK(ev[3]["data"] == "text");
  }

  TEST_CASE("a missing @FILE exits 4 and writes nothing") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(append(store, {"s", "T"}).status == 0);
    auto r = append(store, {"s", "T", "@" + (d / "missing.json")});
    CHECK(r.status == 4);
    CHECK(contains(r.err, "missing.json"));
    CHECK(all_events(store).size() == 1);
  }

  TEST_CASE("invalid JSON in DATA, stdin, @FILE or --meta exits 5 naming the problem and writes nothing") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(append(store, {"s", "T"}).status == 0);
    auto r = append(store, {"s", "T", "{\"a\": }"});
    CHECK(r.status == 5);
    CHECK(contains(r.err, "data is not valid JSON"));
    CHECK(contains(r.err, "byte 6"));
    CHECK(append(store, {"s", "T", "-"}, RunOptions{"{", {}, ""}).status == 5);
    write_file(d / "bad.json", "[1,]");
    r = append(store, {"s", "T", "@" + (d / "bad.json")});
    CHECK(r.status == 5);
    CHECK(contains(r.err, "bad.json"));
    r = append(store, {"s", "T", "{}", "--meta", "nope"});
    CHECK(r.status == 5);
    CHECK(contains(r.err, "--meta"));
    CHECK(append(store, {"s", "T", "{} {}"}).status == 5);
    CHECK(all_events(store).size() == 1);
  }

  TEST_CASE("bad stream names exit 5: empty, reserved '$', over 255 bytes, control characters, invalid UTF-8") {
    TempDir d;
    auto store = d / "s.db";
    for (std::string bad : {std::string(), std::string("$all"), std::string(256, 'x'), std::string("a\nb"),
                            std::string("tab\there"), std::string("\xff\xfe")}) {
      INFO(bad);
      auto r = append(store, {bad, "T"});
      CHECK(r.status == 5);
      CHECK(contains(r.err, "invalid stream name"));
    }
    auto ok = append(store, {std::string(255, 'x'), "T"});
    CHECK_MESSAGE(ok.status == 0, ok.err);
    CHECK(all_events(store).size() == 1);
  }

  TEST_CASE("bad event types exit 5, a bad --id or --expect value is a usage error") {
    TempDir d;
    auto store = d / "s.db";
    CHECK(append(store, {"s", "bad\ntype"}).status == 5);
    auto r = append(store, {"s", "T", "--id", "not-a-uuid"});
    CHECK(r.status == 2);
    CHECK(contains(r.err, "--id"));
    r = append(store, {"s", "T", "--expect", "some"});
    CHECK(r.status == 2);
    CHECK(contains(r.err, "--expect"));
    CHECK(append(store, {"s", "T", "--expect", "-1"}).status == 2);
    CHECK(append(store, {"s"}).status == 2);
  }

  TEST_CASE("--expect any appends whatever state the stream is in") {
    TempDir d;
    auto store = d / "s.db";
    CHECK(append(store, {"s", "T", "--expect", "any"}).status == 0);
    CHECK(append(store, {"s", "T", "--expect", "any"}).status == 0);
    CHECK(all_events(store).size() == 2);
  }

  TEST_CASE("--expect none conflicts on an existing stream with exit 3, naming its version, writing nothing") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(append(store, {"s", "T", "--expect", "none"}).status == 0);
    REQUIRE(append(store, {"s", "T"}).status == 0);
    auto r = append(store, {"s", "T", "--expect", "none"});
    CHECK(r.status == 3);
    CHECK(r.out.empty());
    CHECK(contains(r.err, "stream 's' is at version 1"));
    CHECK(contains(r.err, "expected-version conflict"));
    CHECK(all_events(store).size() == 2);
  }

  TEST_CASE("--expect exists conflicts on a missing stream with exit 3 and creates nothing") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(append(store, {"other", "T"}).status == 0);
    auto r = append(store, {"s", "T", "--expect", "exists"});
    CHECK(r.status == 3);
    CHECK(contains(r.err, "stream 's' does not exist"));
    CHECK(run({"--store", store, "read", "s"}).status == 4);
    REQUIRE(append(store, {"s", "T"}).status == 0);
    CHECK(append(store, {"s", "T", "--expect", "exists"}).status == 0);
  }

  TEST_CASE("--expect N passes at version N and otherwise exits 3 naming the actual version") {
    TempDir d;
    auto store = d / "s.db";
    auto r = append(store, {"s", "T", "--expect", "0"});
    CHECK(r.status == 3);
    CHECK(contains(r.err, "does not exist"));
    REQUIRE(append(store, {"s", "T"}).status == 0);
    REQUIRE(append(store, {"s", "T"}).status == 0);
    r = append(store, {"s", "T", "--expect", "0"});
    CHECK(r.status == 3);
    CHECK(contains(r.err, "is at version 1"));
    CHECK(contains(r.err, "version 0"));
    r = append(store, {"s", "T", "--expect", "1"});
    CHECK(r.status == 0);
    CHECK(r.out == "s@2 #3\n");
    CHECK(all_events(store).size() == 3);
  }

  TEST_CASE("re-appending the same id and content is a no-op that reports the stored place, even with --expect") {
    TempDir d;
    auto store = d / "s.db";
    const std::string id = "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77";
    REQUIRE(append(store, {"s", "T", R"({"a": 1})", "--id", id, "--expect", "none"}).status == 0);
    REQUIRE(append(store, {"s", "U"}).status == 0);
    // A retry of the first append: same id, same content (whitespace aside), same expectation.
    auto r = append(store, {"s", "T", R"({ "a" : 1 })", "--id", id, "--expect", "none", "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto j = json::parse(r.out);
    CHECK(j["version"] == 0);
    CHECK(j["position"] == 1);
    CHECK(j["id"] == id);
    CHECK(all_events(store).size() == 2);
  }

  TEST_CASE("the same id with different data, type or stream exits 3 and writes nothing") {
    TempDir d;
    auto store = d / "s.db";
    const std::string id = "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77";
    REQUIRE(append(store, {"s", "T", R"({"a": 1})", "--id", id}).status == 0);
    for (std::vector<std::string> args : {std::vector<std::string>{"s", "T", R"({"a": 2})"},
                                          std::vector<std::string>{"s", "U", R"({"a": 1})"},
                                          std::vector<std::string>{"other", "T", R"({"a": 1})"}}) {
      args.insert(args.end(), {"--id", id});
      auto r = append(store, args);
      CHECK(r.status == 3);
      CHECK(contains(r.err, "already used by a different event"));
    }
    CHECK(all_events(store).size() == 1);
  }

  TEST_CASE("--ndjson appends every line to the stream in one transaction, in order") {
    TempDir d;
    auto store = d / "s.db";
    std::string input =
        "{\"type\": \"A\", \"data\": {\"n\": 1}}\n\n{\"type\": \"B\", \"data\": {}, \"meta\": {\"m\": true}}\r\n"
        "{\"stream\": \"s\", \"type\": \"C\", \"data\": [3]}\n";
    auto r = append(store, {"s", "--ndjson", "-"}, RunOptions{input, {}, ""});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out == "s@0 #1\ns@1 #2\ns@2 #3\n");
    write_file(d / "more.ndjson", "{\"type\": \"D\", \"data\": {}}\n");
    r = append(store, {"s", "--ndjson", d / "more.ndjson", "--expect", "2"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    auto ev = all_events(store);
    REQUIRE(ev.size() == 4);
    CHECK(ev[1]["type"] == "B");
    CHECK(ev[1]["meta"]["m"] == true);
    CHECK(ev[2]["data"] == json::parse("[3]"));
    CHECK(ev[3]["type"] == "D");
  }

  TEST_CASE("--ndjson with a bad line anywhere exits 5 naming the line and writes nothing") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(append(store, {"s", "T"}).status == 0);
    for (std::string bad : {std::string("{\"type\": \"B\", \"data\": }"), std::string("{\"data\": {}}"),
                            std::string("{\"stream\": \"other\", \"type\": \"B\"}"), std::string("[]")}) {
      INFO(bad);
      const std::string a = "{\"type\": \"A\", \"data\": {}}\n";
      std::string input = a + a + bad + "\n" + a;
      auto r = append(store, {"s", "--ndjson"}, RunOptions{input, {}, ""});
      CHECK(r.status == 5);
      CHECK(contains(r.err, "line 3"));
    }
    CHECK(all_events(store).size() == 1);
  }

  TEST_CASE("--ndjson with a failing --expect or a conflicting id writes none of its events") {
    TempDir d;
    auto store = d / "s.db";
    const std::string id = "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77";
    REQUIRE(append(store, {"s", "T", "--id", id}).status == 0);
    std::string input = "{\"type\": \"A\", \"data\": {}}\n{\"type\": \"A\", \"data\": {}}\n";
    CHECK(append(store, {"s", "--ndjson", "--expect", "none"}, RunOptions{input, {}, ""}).status == 3);
    input += "{\"type\": \"Other\", \"data\": {}, \"id\": \"" + id + "\"}\n";
    CHECK(append(store, {"s", "--ndjson"}, RunOptions{input, {}, ""}).status == 3);
    CHECK(all_events(store).size() == 1);
    CHECK(append(store, {"s", "--ndjson"}, RunOptions{"\n\n", {}, ""}).status == 5);
    CHECK(append(store, {"s", "T", "--ndjson"}, RunOptions{input, {}, ""}).status == 2);
  }

  TEST_CASE("8 processes appending to one stream at once all succeed with contiguous versions") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(append(store, {"warmup", "T"}).status == 0);
    std::string script = "for i in 1 2 3 4 5 6 7 8; do ( for k in 1 2 3 4 5; do \"$ESCTL\" --store '" + store +
                         "' --busy-timeout 60s append shared-1 T \"{\\\"p\\\": $i}\" || echo FAIL; done ) & done; wait";
    auto r = sh(script);
    CHECK(r.status == 0);
    CHECK_MESSAGE(!contains(r.out, "FAIL"), (r.out + r.err));
    auto ev = parse_lines(run({"--store", store, "--json", "read", "shared-1"}).out);
    REQUIRE(ev.size() == 40);
    std::int64_t last_position = 0;
    for (std::size_t v = 0; v < ev.size(); ++v) {
      CHECK(ev[v]["version"] == v);
      CHECK(ev[v]["position"].get<std::int64_t>() > last_position);
      last_position = ev[v]["position"];
    }
  }

  TEST_CASE("8 processes racing on the same --expect N: exactly one wins, the other 7 exit 3") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(append(store, {"race-1", "T"}).status == 0);
    REQUIRE(append(store, {"race-1", "T"}).status == 0);
    std::string script = "for i in 1 2 3 4 5 6 7 8; do ( \"$ESCTL\" --store '" + store +
                         "' --busy-timeout 60s append race-1 Won --expect 1 >/dev/null 2>&1; echo \"rc=$?\" ) & done; wait";
    auto r = sh(script);
    int won = 0, conflicts = 0, other = 0;
    for (const auto& l : lines(r.out)) {
      if (l == "rc=0") ++won;
      else if (l == "rc=3") ++conflicts;
      else ++other;
    }
    CHECK(won == 1);
    CHECK(conflicts == 7);
    CHECK(other == 0);
    auto ev = parse_lines(run({"--store", store, "--json", "read", "race-1"}).out);
    REQUIRE(ev.size() == 3);
    CHECK(ev[2]["type"] == "Won");
  }

  TEST_CASE("global options are accepted before and after the command") {
    TempDir d;
    auto store = d / "s.db";
    auto before = run({"--json", "--store", store, "append", "s", "T"});
    auto after = run({"append", "s", "T", "--store", store, "--json"});
    REQUIRE_MESSAGE(before.status == 0, before.err);
    REQUIRE_MESSAGE(after.status == 0, after.err);
    CHECK(json::parse(before.out)["version"] == 0);
    CHECK(json::parse(after.out)["version"] == 1);
    auto quiet = run({"append", "-q", "s", "T", "--store", store});
    CHECK(quiet.status == 0);
    CHECK(quiet.out.empty());
    auto env = run({"append", "s", "T"}, RunOptions{"", {{"ESCTL_STORE", store}}, ""});
    CHECK(env.out == "s@3 #4\n");
    auto cwd = run({"append", "s", "T"}, RunOptions{"", {}, d.path()});
    CHECK(cwd.out == "s@0 #1\n");  // the default store, ./events.db, is another file
    CHECK(std::filesystem::exists(d / "events.db"));
  }

  TEST_CASE("usage errors exit 2: unknown flag, bad --busy-timeout, and 'help append' prints the help") {
    TempDir d;
    auto store = d / "s.db";
    auto r = append(store, {"s", "T", "--frobnicate"});
    CHECK(r.status == 2);
    CHECK(contains(r.err, "--frobnicate"));
    for (const char* bad : {"5", "soon", "-1s", "5x"}) {
      INFO(bad);
      r = run({"--store", store, "--busy-timeout", bad, "append", "s", "T"});
      CHECK(r.status == 2);
      CHECK(contains(r.err, "--busy-timeout"));
    }
    CHECK_FALSE(std::filesystem::exists(store));
    r = run({"help", "append"});
    CHECK(r.status == 0);
    CHECK(contains(r.out, "--expect"));
    CHECK(contains(r.out, "--ndjson"));
    CHECK(run({"append", "--help"}).out == r.out);
  }
}
