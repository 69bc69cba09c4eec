// esctl queue (esctl-queue(1)), management through the binary: create with --from and filters, ls and
// status (--json keys, lag), ack/nack/retry rules and their errors, reset and delete touching
// one queue only (another's status stays byte-identical), names, exit codes, stats, completion.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

struct Store {
  TempDir dir;
  std::string path = dir / "events.db";

  Result q(std::vector<std::string> args, const RunOptions& opt = {}) const {
    args.insert(args.begin(), {"--store", path, "queue"});
    return run(args, opt);
  }
  Result ok(std::vector<std::string> args) const {
    auto r = q(std::move(args));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    return r;
  }
  std::int64_t append(const std::string& stream, const std::string& type = "T", const std::string& data = "{}") const {
    auto r = run({"--store", path, "--json", "append", stream, type, data});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    return json::parse(r.out)["position"].get<std::int64_t>();
  }
  json status(const std::string& name) const { return json::parse(ok({"status", name, "--json"}).out); }
  std::vector<json> pull(const std::string& name, int max = 1) const {
    std::vector<json> out;
    for (const auto& l : lines(ok({"pull", name, "--max", std::to_string(max), "--json"}).out)) out.push_back(json::parse(l));
    return out;
  }
  std::vector<std::int64_t> pull_positions(const std::string& name, int max = 10) const {
    std::vector<std::int64_t> out;
    for (const auto& e : pull(name, max)) out.push_back(e["position"].get<std::int64_t>());
    return out;
  }
};

}  // namespace

TEST_SUITE("cli/queue_basic") {
  TEST_CASE("a queue created with the default --from end does not deliver events appended before it") {
    Store s;
    s.append("order-1");
    s.ok({"create", "q"});
    CHECK(s.pull("q").empty());
    auto p = s.append("order-2");
    CHECK(s.pull_positions("q") == std::vector<std::int64_t>{p});
  }

  TEST_CASE("--from start delivers the backlog, --from POSITION the events after it") {
    Store s;
    for (int i = 0; i < 5; ++i) s.append("a-" + std::to_string(i));
    s.ok({"create", "all", "--from", "start"});
    s.ok({"create", "tail", "--from", "3"});
    CHECK(s.pull_positions("all") == std::vector<std::int64_t>{1, 2, 3, 4, 5});
    CHECK(s.pull_positions("tail") == std::vector<std::int64_t>{4, 5});
    auto r = s.q({"create", "far", "--from", "99"});
    CHECK(r.status == 2);
    CHECK(r.err.find("beyond") != std::string::npos);
  }

  TEST_CASE("filters: stream globs or categories, and types") {
    Store s;
    s.append("order-1", "Placed");   // 1
    s.append("order-2", "Shipped");  // 2
    s.append("cart-1", "Placed");    // 3
    s.append("user-7", "Placed");    // 4
    s.append("orderly", "Placed");   // 5: category "orderly", not "order"
    s.ok({"create", "cat", "--from", "start", "--category", "order"});
    s.ok({"create", "glob", "--from", "start", "--stream", "*-1"});
    s.ok({"create", "union", "--from", "start", "--stream", "user-*", "--category", "cart"});
    s.ok({"create", "typed", "--from", "start", "--category", "order", "--category", "cart", "--type", "Placed"});
    s.ok({"create", "types", "--from", "start", "--type", "Shipped", "--type", "Nope"});
    CHECK(s.pull_positions("cat") == std::vector<std::int64_t>{1, 2});
    CHECK(s.pull_positions("glob") == std::vector<std::int64_t>{1, 3});
    CHECK(s.pull_positions("union") == std::vector<std::int64_t>{3, 4});
    CHECK(s.pull_positions("typed") == std::vector<std::int64_t>{1, 3});
    CHECK(s.pull_positions("types") == std::vector<std::int64_t>{2});
    CHECK(s.status("cat")["filter"]["categories"] == json::array({"order"}));
  }

  TEST_CASE("bad queue names exit 2, an unknown queue exits 4, a taken name exits 3") {
    Store s;
    s.ok({"create", "ok.name_1-x"});
    for (const std::string bad : std::vector<std::string>{"has space", "", "x/y", std::string(65, 'a'), "é"}) {
      CAPTURE(bad);
      CHECK(s.q({"create", bad}).status == 2);
      CHECK(s.q({"status", bad}).status == 2);
    }
    CHECK(s.q({"create", std::string(64, 'a')}).status == 0);
    for (const std::vector<std::string> args :
         {std::vector<std::string>{"status", "nope"}, {"pull", "nope"}, {"ack", "nope", "1"}, {"nack", "nope", "1"},
          {"parked", "nope"}, {"retry", "nope", "--all"}, {"reset", "nope", "--to", "start"}, {"delete", "nope"},
          {"drain", "nope", "--exec", "cat"}}) {
      CAPTURE(args[0]);
      auto r = s.q(args);
      CHECK(r.status == 4);
      CHECK(r.err.find("'nope'") != std::string::npos);
    }
    auto r = s.q({"create", "ok.name_1-x"});
    CHECK(r.status == 3);
    CHECK(r.err.find("already exists") != std::string::npos);
  }

  TEST_CASE("a value the store refuses is reported with the flag that gave it (values the command refuses itself: below)") {
    Store s;
    s.append("a-1");
    s.ok({"create", "q"});
    auto err = [&](std::vector<std::string> args) {
      auto r = s.q(std::move(args));
      CHECK(r.status == 2);
      return r.err;
    };
    CHECK(contains(err({"create", "b", "--ack-timeout", "0ms"}), "invalid --ack-timeout: it must be longer than 0ms"));
    CHECK(contains(err({"create", "c", "--type", ""}),
                   "empty --stream, --category or --type value: give a glob, category or type"));
    CHECK(contains(err({"create", "d", "--from", "9"}),
                   "--from position 9 is beyond the store's head position 1 (use '--from end' to start after the last event)"));
    CHECK(contains(err({"reset", "q", "--to", "9"}),
                   "--to position 9 is beyond the store's head position 1 (use '--to end' to start after the last event)"));
    CHECK(s.status("q")["cursor"] == 1);
    CHECK(lines(s.ok({"ls", "--json"}).out).size() == 1);  // q alone: nothing was created
  }

  TEST_CASE("bad option values exit 2 and change nothing") {
    Store s;
    s.ok({"create", "q"});
    CHECK(s.q({"create", "a", "--max-attempts", "0"}).status == 2);
    CHECK(s.q({"create", "b", "--ack-timeout", "5"}).status == 2);
    CHECK(s.q({"create", "c", "--on-poison", "explode"}).status == 2);
    CHECK(s.q({"create", "d", "--from", "middle"}).status == 2);
    CHECK(s.q({"pull", "q", "--max", "0"}).status == 2);
    CHECK(s.q({"pull", "q", "--lease", "soon"}).status == 2);
    CHECK(s.q({"ack", "q", "x"}).status == 2);
    CHECK(s.q({"ack", "q", "0"}).status == 2);
    CHECK(s.q({"nack", "q", "1", "--delay", "later"}).status == 2);
    CHECK(s.q({"retry", "q"}).status == 2);
    CHECK(s.q({"retry", "q", "1", "--all"}).status == 2);
    CHECK(s.q({"reset", "q"}).status == 2);
    CHECK(s.q({"drain", "q"}).status == 2);
    CHECK(s.q({"drain", "q", "--exec", "cat", "--projection", "p.sql", "--into", "x.db"}).status == 2);
    CHECK(s.q({"drain", "q", "--projection", "p.sql"}).status == 2);
    CHECK(s.q({"drain", "q", "--exec", "cat", "--batch", "0"}).status == 2);
    CHECK(s.q({"drain", "q", "--exec", "cat", "--parallel", "0"}).status == 2);
    CHECK(s.q({}).status == 2);
    CHECK(s.q({"frobnicate"}).status == 2);
    auto names = lines(s.ok({"ls", "--json"}).out);
    CHECK(names.size() == 1);
  }

  TEST_CASE("commands that only read need a store, pull creates none") {
    TempDir d;
    for (const std::vector<std::string> args :
         {std::vector<std::string>{"ls"}, {"status", "q"}, {"parked", "q"}}) {
      auto r = run({"--store", d / "missing.db", "queue", args[0], args.size() > 1 ? args[1] : "--json"});
      CHECK(r.status == 4);
    }
    CHECK(run({"--store", d / "new.db", "queue", "create", "q"}).status == 0);
  }

  TEST_CASE("status --json has the documented keys, and lag counts every unacked matching event") {
    Store s;
    for (int i = 0; i < 4; ++i) s.append("s-" + std::to_string(i));
    s.ok({"create", "q", "--from", "start", "--max-attempts", "1", "--ack-timeout", "1h"});
    auto got = s.pull("q", 2);
    s.ok({"nack", "q", std::to_string(got[0]["position"].get<int>()), "--reason", "bad"});
    auto st = s.status("q");
    for (const char* k : {"name", "cursor", "head", "lag", "pending", "leased", "retrying", "parked",
                          "oldest_unacked_position", "oldest_unacked_at", "start", "filter", "max_attempts",
                          "ack_timeout_ms", "on_poison"})
      CHECK_MESSAGE(st.contains(k), k);
    CHECK(st["lag"] == 4);
    CHECK(st["parked"] == 1);
    CHECK(st["leased"] == 1);
    CHECK(st["pending"] == 2);
    CHECK(st["retrying"] == 0);
    CHECK(st["head"] == 4);
    CHECK(st["cursor"] == 2);
    CHECK(st["oldest_unacked_position"] == 1);
    CHECK(st["max_attempts"] == 1);
    CHECK(st["on_poison"] == "block");
    auto human = s.ok({"status", "q"}).out;
    CHECK(human.find("lag:            4") != std::string::npos);
    CHECK(human.find("parked:       1") != std::string::npos);
    CHECK(human.find("oldest unacked: position 1") != std::string::npos);
  }

  TEST_CASE("ls shows every queue in one table, and one JSON object per queue") {
    Store s;
    s.append("a-1");
    s.ok({"create", "one", "--from", "start"});
    s.ok({"create", "two"});
    auto table = lines(s.ok({"ls"}).out);
    REQUIRE(table.size() == 3);
    CHECK(table[0].rfind("NAME", 0) == 0);
    CHECK(table[0].find("LAG") != std::string::npos);
    CHECK(table[1].rfind("one", 0) == 0);
    CHECK(table[2].rfind("two", 0) == 0);
    auto js = lines(s.ok({"ls", "--json"}).out);
    REQUIRE(js.size() == 2);
    CHECK(json::parse(js[0])["lag"] == 1);
    CHECK(json::parse(js[1])["lag"] == 0);
    CHECK(json::parse(js[0]) == s.status("one"));
  }

  TEST_CASE("ack: repeating it is a no-op, a position never delivered or not in the queue exits 2") {
    Store s;
    s.ok({"create", "q", "--type", "T"});
    auto p1 = s.append("s-1");
    auto other = s.append("s-1", "Other");
    auto p3 = s.append("s-1");
    CHECK(s.pull_positions("q", 1) == std::vector<std::int64_t>{p1});
    s.ok({"ack", "q", std::to_string(p1)});
    s.ok({"ack", "q", std::to_string(p1)});
    auto r = s.q({"ack", "q", std::to_string(p3)});
    CHECK(r.status == 2);
    CHECK(r.err.find("has not delivered") != std::string::npos);
    CHECK(s.q({"ack", "q", std::to_string(other)}).status == 2);
    CHECK(s.q({"ack", "q", "999"}).status == 2);
    CHECK(s.status("q")["lag"] == 1);
  }

  TEST_CASE("a nacked event comes back with attempt 2 and its lease time") {
    Store s;
    s.ok({"create", "q"});
    auto p = s.append("s-1");
    auto first = s.pull("q");
    REQUIRE(first.size() == 1);
    CHECK(first[0]["attempt"] == 1);
    CHECK(first[0]["lease_expires_at"].is_string());
    CHECK(first[0]["stream"] == "s-1");
    s.ok({"nack", "q", std::to_string(p)});
    auto again = s.pull("q");
    REQUIRE(again.size() == 1);
    CHECK(again[0]["position"] == p);
    CHECK(again[0]["attempt"] == 2);
    s.ok({"ack", "q", std::to_string(p)});
    CHECK(s.q({"nack", "q", std::to_string(p)}).status == 2);  // already acked
    CHECK(s.status("q")["lag"] == 0);
  }

  TEST_CASE("pull prints events like read, nothing deliverable prints nothing and succeeds") {
    Store s;
    s.ok({"create", "q"});
    CHECK(s.ok({"pull", "q"}).out.empty());
    s.append("s-1", "Placed", "{\"a\":1}");
    auto out = s.ok({"pull", "q"}).out;
    auto read = run({"--store", s.path, "read", "s-1"}).out;
    CHECK(out == read);
  }

  TEST_CASE("parked lists parked events with attempts and reason, retry puts them back with attempt 1") {
    Store s;
    s.ok({"create", "q", "--max-attempts", "2"});
    auto p = s.append("s-1");
    for (int i = 0; i < 2; ++i) {
      auto got = s.pull("q");
      REQUIRE(got.size() == 1);
      s.ok({"nack", "q", std::to_string(p), "--reason", "bad data " + std::to_string(i)});
    }
    CHECK(s.pull("q").empty());
    auto parked = lines(s.ok({"parked", "q", "--json"}).out);
    REQUIRE(parked.size() == 1);
    auto j = json::parse(parked[0]);
    CHECK(j["position"] == p);
    CHECK(j["attempts"] == 2);
    CHECK(j["reason"] == "bad data 1");
    CHECK(j["parked_at"].is_string());
    auto table = s.ok({"parked", "q"}).out;
    CHECK(table.find("bad data 1") != std::string::npos);
    CHECK(s.q({"retry", "q", "12345"}).status == 2);
    CHECK(s.ok({"retry", "q", std::to_string(p)}).out.find("retried 1") != std::string::npos);
    auto again = s.pull("q");
    REQUIRE(again.size() == 1);
    CHECK(again[0]["attempt"] == 1);
    CHECK(s.ok({"parked", "q", "--json"}).out.empty());
    CHECK(json::parse(s.ok({"retry", "q", "--all", "--json"}).out)["retried"] == 0);
  }

  TEST_CASE("reset and delete of one queue leave another's status byte-identical") {
    Store s;
    for (int i = 0; i < 6; ++i) s.append("s-" + std::to_string(i % 2));
    s.ok({"create", "a", "--from", "start"});
    s.ok({"create", "b", "--from", "start", "--max-attempts", "1", "--ack-timeout", "1h"});
    // Give b some state of every kind.
    auto got = s.pull("b", 1);
    s.ok({"nack", "b", std::to_string(got[0]["position"].get<int>())});  // parked
    s.pull("b", 2);                                                      // leased, one stream held
    auto before = s.ok({"status", "b", "--json"}).out;
    auto before_ls = s.ok({"ls", "--json"}).out;
    // Work a: drain, reset, delete.
    s.pull("a", 3);
    s.ok({"reset", "a", "--to", "start"});
    CHECK(s.ok({"status", "b", "--json"}).out == before);
    CHECK(s.status("a")["lag"] == 6);
    CHECK(s.status("a")["leased"] == 0);
    s.ok({"reset", "a", "--to", "end", "--force"});  // skips the 6 unacked events
    CHECK(s.status("a")["lag"] == 0);
    s.ok({"reset", "a", "--to", "4"});
    CHECK(s.pull_positions("a") == std::vector<std::int64_t>{5, 6});
    CHECK(s.ok({"status", "b", "--json"}).out == before);
    s.ok({"delete", "a", "--force"});  // 5 and 6 are leased
    CHECK(s.ok({"status", "b", "--json"}).out == before);
    CHECK(s.q({"status", "a"}).status == 4);
    CHECK(lines(s.ok({"ls", "--json"}).out) == std::vector<std::string>{lines(before_ls)[1]});
    CHECK(s.q({"reset", "b", "--to", "77"}).status == 2);
  }

  TEST_CASE("reset --to past unacked events refuses without --force naming the count, --dry-run changes nothing") {
    Store s;
    for (int i = 0; i < 10; ++i) s.append("s-" + std::to_string(i % 2));
    s.ok({"create", "q", "--from", "start", "--max-attempts", "1", "--on-poison", "park"});
    // 1, 2 acked; 3 parked; 4 leased; 5..10 never delivered: 8 unacked.
    auto two = s.pull_positions("q", 2);
    REQUIRE(two == std::vector<std::int64_t>{1, 2});
    s.ok({"ack", "q", "1", "2"});
    REQUIRE(s.pull_positions("q", 1) == std::vector<std::int64_t>{3});
    s.ok({"nack", "q", "3"});
    REQUIRE(s.pull_positions("q", 1) == std::vector<std::int64_t>{4});
    REQUIRE(s.status("q")["lag"] == 8);
    auto status = s.ok({"status", "q", "--json"}).out;
    auto exported = run({"--store", s.path, "export"}).out;
    auto unchanged = [&] {
      CHECK(s.ok({"status", "q", "--json"}).out == status);
      CHECK(run({"--store", s.path, "export"}).out == exported);
    };

    auto r = s.q({"reset", "q", "--to", "end"});
    CHECK(r.status == 2);
    CHECK_MESSAGE(contains(r.err, "would drop 8 unacked events"), r.err);
    CHECK(contains(r.err, "--force"));
    CHECK(r.out.empty());
    unchanged();
    r = s.q({"reset", "q", "--to", "3"});  // 3 (parked) is at the point
    CHECK(r.status == 2);
    CHECK(contains(r.err, "would drop 1 unacked event "));
    unchanged();

    auto dry = [&](const std::string& to) {
      auto d = s.ok({"reset", "q", "--to", to, "--dry-run", "--json"});
      unchanged();
      return json::parse(d.out);
    };
    auto j = dry("end");
    CHECK(j["dry_run"] == true);
    CHECK(j["skipped"] == 8);
    CHECK(j["redelivered"] == 0);
    CHECK(j["deliverable"] == 0);
    j = dry("5");
    CHECK(j["skipped"] == 3);  // 3, 4, 5
    CHECK(j["deliverable"] == 5);
    CHECK(j["redelivered"] == 0);
    j = dry("start");
    CHECK(j["skipped"] == 0);
    CHECK(j["deliverable"] == 10);
    CHECK(j["redelivered"] == 2);  // 1 and 2 were acked
    auto human = s.ok({"reset", "q", "--to", "end", "--dry-run"}).out;
    CHECK_MESSAGE(contains(human, "8 unacked events skipped"), human);
    CHECK(contains(human, "dry run"));
    unchanged();

    // A replay skips nothing: no --force needed; it says what becomes deliverable again.
    r = s.ok({"reset", "q", "--to", "start"});
    CHECK_MESSAGE(contains(r.out, "10 events deliverable (2 delivered again), 0 unacked events skipped"), r.out);
    CHECK(s.status("q")["lag"] == 10);
    r = s.ok({"reset", "q", "--to", "end", "--force", "--json"});
    j = json::parse(r.out);
    CHECK(j["dry_run"] == false);
    CHECK(j["skipped"] == 10);
    CHECK(s.status("q")["lag"] == 0);
    // Nothing unacked: no --force needed.
    s.ok({"reset", "q", "--to", "end"});
  }

  TEST_CASE("delete of a queue with unacked events refuses without --force, --dry-run prints what it drops") {
    Store s;
    for (int i = 0; i < 4; ++i) s.append("s-" + std::to_string(i));
    s.ok({"create", "q", "--from", "start"});
    s.pull("q", 1);  // 1 leased, 2..4 pending
    auto status = s.ok({"status", "q", "--json"}).out;
    auto ls = s.ok({"ls", "--json"}).out;
    auto r = s.q({"delete", "q"});
    CHECK(r.status == 2);
    CHECK_MESSAGE(contains(r.err, "has 4 unacked events (3 pending, 1 leased, 0 retrying, 0 parked)"), r.err);
    CHECK(contains(r.err, "--force"));
    CHECK(s.ok({"status", "q", "--json"}).out == status);
    auto d = json::parse(s.ok({"delete", "q", "--dry-run", "--json"}).out);
    CHECK(d["dry_run"] == true);
    CHECK(d["dropped"] == 4);
    CHECK(d["leased"] == 1);
    CHECK(contains(s.ok({"delete", "q", "--dry-run"}).out, "would delete queue 'q': 4 unacked events dropped"));
    CHECK(s.ok({"status", "q", "--json"}).out == status);
    CHECK(s.ok({"ls", "--json"}).out == ls);
    r = s.ok({"delete", "q", "--force"});
    CHECK(contains(r.out, "deleted queue 'q': 4 unacked events dropped"));
    CHECK(s.q({"status", "q"}).status == 4);
    // An idle queue goes without --force.
    s.ok({"create", "idle"});
    CHECK(json::parse(s.ok({"delete", "idle", "--json"}).out)["dropped"] == 0);
  }

  TEST_CASE("retry --dry-run prints how many parked events would go back and changes nothing") {
    Store s;
    auto p = s.append("s-1");
    s.append("s-2");
    s.ok({"create", "q", "--from", "start", "--max-attempts", "1", "--on-poison", "park"});
    for (auto got : s.pull_positions("q", 2)) s.ok({"nack", "q", std::to_string(got)});
    REQUIRE(s.status("q")["parked"] == 2);
    auto status = s.ok({"status", "q", "--json"}).out;
    auto parked = s.ok({"parked", "q", "--json"}).out;
    auto j = json::parse(s.ok({"retry", "q", "--all", "--dry-run", "--json"}).out);
    CHECK(j["retried"] == 2);
    CHECK(j["dry_run"] == true);
    CHECK(contains(s.ok({"retry", "q", std::to_string(p), "--dry-run"}).out, "would retry 1 parked event of queue 'q'"));
    CHECK(s.q({"retry", "q", "999", "--dry-run"}).status == 2);
    CHECK(s.ok({"status", "q", "--json"}).out == status);
    CHECK(s.ok({"parked", "q", "--json"}).out == parked);
    CHECK(json::parse(s.ok({"retry", "q", "--all", "--json"}).out)["retried"] == 2);
    CHECK(s.status("q")["parked"] == 0);
  }

  TEST_CASE("creating a queue --from start on a big store writes one row, and the store reads back unchanged") {
    Store s;
    std::string input;
    for (int i = 0; i < 20000; ++i) input += "{\"type\":\"T\",\"data\":{}}\n";
    REQUIRE(run({"--store", s.path, "append", "big-1", "--ndjson", "-"}, {input}).status == 0);
    s.ok({"create", "q", "--from", "start", "--category", "big"});
    auto st = s.status("q");
    CHECK(st["lag"] == 20000);
    CHECK(st["cursor"] == 0);
  }

  TEST_CASE("stats lists the queues with their lag") {
    Store s;
    s.append("a-1");
    s.ok({"create", "q1", "--from", "start"});
    s.ok({"create", "q2"});
    auto j = json::parse(run({"--store", s.path, "--json", "stats"}).out);
    REQUIRE(j.contains("queues"));
    REQUIRE(j["queues"].size() == 2);
    CHECK(j["queues"][0]["name"] == "q1");
    CHECK(j["queues"][0]["lag"] == 1);
    CHECK(j["queues"][1]["lag"] == 0);
    auto human = run({"--store", s.path, "stats"}).out;
    CHECK(human.find("q1") != std::string::npos);
  }

  TEST_CASE("queue names for completion come from the store") {
    Store s;
    s.ok({"create", "billing"});
    s.ok({"create", "bi.x"});
    s.ok({"create", "mailer"});
    CHECK(lines(run({"--store", s.path, "__complete", "queues", "bi"}).out) == std::vector<std::string>{"bi.x", "billing"});
    CHECK(lines(run({"--store", s.path, "__complete", "queues"}).out).size() == 3);
  }
}
