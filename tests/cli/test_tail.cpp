// esctl tail (esctl-tail(1)): the last N events with each filter, then -f following commits by
// other processes: order, no gaps or repeats, big atomic batches, SIGPIPE/SIGINT, and a follower
// that never pins the WAL.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

std::string shell_quoted(const std::string& s) { return "'" + s + "'"; }

void append(const std::string& store, const std::string& stream, const std::string& type, const std::string& data = "{}") {
  auto r = run({"--store", store, "append", stream, type, data});
  REQUIRE_MESSAGE(r.status == 0, r.err);
}

/// Waits (generously: sanitizer builds on a busy machine are slow) until `file` holds at least
/// `n` complete lines; returns its content either way.
std::string wait_for_lines(const std::string& file, std::size_t n) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::string text;
  for (;;) {
    text = read_file(file);
    std::size_t complete = 0;
    for (char c : text) complete += c == '\n';
    if (complete >= n || std::chrono::steady_clock::now() > deadline) return text;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

/// Ends a follower with SIGINT and returns its exit status.
int interrupt(int pid) {
  ::kill(pid, SIGINT);
  return wait_for(pid);
}

std::vector<std::int64_t> field(const std::vector<json>& events, const char* name) {
  std::vector<std::int64_t> out;
  for (const auto& e : events) out.push_back(e.at(name).get<std::int64_t>());
  return out;
}

bool strictly_increasing(const std::vector<std::int64_t>& v) {
  for (std::size_t i = 1; i < v.size(); ++i)
    if (v[i] <= v[i - 1]) return false;
  return true;
}

}  // namespace

TEST_SUITE("cli/tail") {
  TEST_CASE("tail prints the last N events of a stream, oldest first, 10 by default") {
    TempDir dir;
    std::string store = dir / "s.db";
    std::string batch;
    for (int i = 0; i < 15; ++i) batch += "{\"type\":\"T\",\"data\":{\"i\":" + std::to_string(i) + "}}\n";
    REQUIRE(run({"--store", store, "append", "order-1", "--ndjson", "-"}, RunOptions{batch, {}, ""}).status == 0);
    append(store, "order-2", "T");

    auto three = run({"--json", "--store", store, "tail", "order-1", "-n", "3"});
    CHECK(three.status == 0);
    auto ev = parse_lines(three.out);
    REQUIRE(ev.size() == 3);
    CHECK(field(ev, "version") == std::vector<std::int64_t>{12, 13, 14});
    CHECK(ev[0]["data"]["i"] == 12);
    CHECK(ev[0]["stream"] == "order-1");

    auto deflt = parse_lines(run({"--json", "--store", store, "tail", "order-1"}).out);
    REQUIRE(deflt.size() == 10);
    CHECK(deflt.front()["version"] == 5);
    CHECK(deflt.back()["version"] == 14);

    CHECK(run({"--json", "--store", store, "tail", "order-1", "--count", "3"}).out == three.out);
    CHECK(run({"--store", store, "tail", "order-1", "-n", "0"}).out.empty());
    auto more = parse_lines(run({"--json", "--store", store, "tail", "order-1", "-n", "100"}).out);
    CHECK(more.size() == 15);

    // Human lines carry position, stream@version and type, as `read` prints them.
    auto human = lines(run({"--store", store, "tail", "order-1", "-n", "1"}).out);
    REQUIRE(human.size() == 1);
    CHECK(human[0].find("order-1@14") != std::string::npos);
    CHECK(human[0] == lines(run({"--store", store, "read", "order-1", "--from", "14"}).out).at(0));
  }

  TEST_CASE("tail --all, --category and --type pick the last matching events across streams") {
    TempDir dir;
    std::string store = dir / "s.db";
    append(store, "order-1", "Placed");     // 1
    append(store, "user-1", "Joined");      // 2
    append(store, "order-2", "Placed");     // 3
    append(store, "order-1", "Shipped");    // 4
    append(store, "user-2", "Joined");      // 5
    append(store, "order", "Placed");       // 6 (a name without '-' is its own category)
    append(store, "orders-1", "Placed");    // 7 (another category)

    auto all = parse_lines(run({"--json", "--store", store, "tail", "--all", "-n", "3"}).out);
    CHECK(field(all, "position") == std::vector<std::int64_t>{5, 6, 7});
    auto implicit = run({"--json", "--store", store, "tail", "-n", "3"});
    CHECK(parse_lines(implicit.out) == all);

    auto cat = parse_lines(run({"--json", "--store", store, "tail", "--category", "order", "-n", "3"}).out);
    CHECK(field(cat, "position") == std::vector<std::int64_t>{3, 4, 6});

    auto placed = parse_lines(run({"--json", "--store", store, "tail", "--category", "order", "--type", "Placed"}).out);
    CHECK(field(placed, "position") == std::vector<std::int64_t>{1, 3, 6});

    auto types = parse_lines(run({"--json", "--store", store, "tail", "--type", "Joined", "--type", "Shipped"}).out);
    CHECK(field(types, "position") == std::vector<std::int64_t>{2, 4, 5});

    auto stream_type = parse_lines(run({"--json", "--store", store, "tail", "order-1", "--type", "Placed"}).out);
    CHECK(field(stream_type, "position") == std::vector<std::int64_t>{1});

    CHECK(run({"--store", store, "tail", "--category", "nothing"}).out.empty());
  }

  TEST_CASE("a stream name with glob characters is matched literally") {
    TempDir dir;
    std::string store = dir / "s.db";
    append(store, "a*", "T");
    append(store, "ab", "T");
    auto r = parse_lines(run({"--json", "--store", store, "tail", "a*"}).out);
    REQUIRE(r.size() == 1);
    CHECK(r[0]["stream"] == "a*");
  }

  TEST_CASE("tail fails on a missing stream (4), a missing store (4), a bad name (5) and bad usage (2)") {
    TempDir dir;
    std::string store = dir / "s.db";
    auto no_store = run({"--store", store, "tail", "-f"});
    CHECK(no_store.status == 4);
    CHECK(no_store.err.find("no store") != std::string::npos);
    append(store, "order-1", "T");
    auto missing = run({"--store", store, "tail", "order-9"});
    CHECK(missing.status == 4);
    CHECK(missing.err.find("'order-9'") != std::string::npos);
    CHECK(run({"--store", store, "tail", "order-9", "-n", "0"}).status == 4);
    CHECK(run({"--store", store, "tail", "$bad"}).status == 5);
    CHECK(run({"--store", store, "tail", "order-1", "--all"}).status == 2);
    CHECK(run({"--store", store, "tail", "--all", "--category", "order"}).status == 2);
    auto bad_n = run({"--store", store, "tail", "-n", "x"});
    CHECK(bad_n.status == 2);
    CHECK(bad_n.err.find("'x'") != std::string::npos);
    CHECK(run({"--store", store, "tail", "-n", "-1"}).status == 2);
  }

  TEST_CASE("tail -f refuses a store it could only open as a frozen snapshot, instead of waiting forever" * sqlite_only()) {
    TempDir dir;
    std::string store = dir / "s.db";
    append(store, "s-1", "T");
    // As an unprivileged user, with no writer active, the store and its folder are read-only:
    // esctl reads it as an immutable snapshot, which can never show new events.
    auto r = sh("command -v setpriv >/dev/null && [ \"$(id -u)\" = 0 ] || exit 77; "
                "setpriv --reuid 65534 --regid 65534 --clear-groups \"$ESCTL\" --version >/dev/null 2>&1 || exit 77; "
                "chmod 755 " +
                shell_quoted(dir.path()) + " && chmod 644 " + shell_quoted(store) +
                " && ls " + shell_quoted(store + "-wal") + " 2>/dev/null && exit 78; "
                "run() { timeout 60 setpriv --reuid 65534 --regid 65534 --clear-groups \"$ESCTL\" --store " + shell_quoted(store) +
                " \"$@\"; }; run tail -n 1 || exit 1; run tail -f; echo \"rc=$?\"");
    if (r.status == 77 || r.status == 78) return;  // not root / a -wal was left behind: nothing to check
    CHECK(r.out.find("s-1@0") != std::string::npos);  // plain tail reads the snapshot
    CHECK(r.out.find("rc=1") != std::string::npos);
    CHECK(r.err.find("cannot follow store") != std::string::npos);
  }

  TEST_CASE("tail -f prints events appended by other processes, in order, none skipped or repeated") {
    TempDir dir;
    std::string store = dir / "s.db";
    append(store, "a-0", "Start");
    int pid = spawn({"--json", "--store", store, "tail", "-f", "--all", "-n", "1"}, dir / "out", dir / "err");
    REQUIRE(!lines(wait_for_lines(dir / "out", 1)).empty());  // the follower is running
    // Four writers appending at once, 15 events each, some in 3-event atomic batches.
    auto w = sh("s=" + shell_quoted(store) + "; for j in 1 2 3 4; do ( for i in 1 2 3 4 5; do "
                "printf '{\"type\":\"T\",\"data\":{\"i\":%s}}\\n{\"type\":\"T\",\"data\":{}}\\n{\"type\":\"T\",\"data\":{}}\\n' $i | "
                "\"$ESCTL\" -q --store \"$s\" append w-$j --ndjson - || exit 1; done ) & done; wait");
    REQUIRE_MESSAGE(w.status == 0, w.err);
    auto out = wait_for_lines(dir / "out", 61);
    CHECK(interrupt(pid) == 130);
    auto ev = parse_lines(out);
    REQUIRE(ev.size() == 61);
    CHECK(ev[0]["type"] == "Start");
    auto pos = field(ev, "position");
    CHECK(strictly_increasing(pos));
    CHECK(pos.back() == 61);  // every position 1..61: nothing skipped
    for (int j = 1; j <= 4; ++j) {
      std::vector<std::int64_t> versions;
      for (const auto& e : ev)
        if (e["stream"] == "w-" + std::to_string(j)) versions.push_back(e["version"]);
      CHECK(versions.size() == 15);
      for (std::size_t v = 0; v < versions.size(); ++v) CHECK(versions[v] == static_cast<std::int64_t>(v));
    }
    CHECK(read_file(dir / "err").empty());
  }

  TEST_CASE("a follower started before its stream or any event exists prints them when they come") {
    TempDir dir;
    std::string store = dir / "s.db";
    REQUIRE(run({"--store", store, "init"}).status == 0);
    int one = spawn({"--json", "--store", store, "tail", "-f", "order-1"}, dir / "one", dir / "one.err");
    int cat = spawn({"--json", "--store", store, "tail", "-f", "--category", "order", "--type", "Placed"}, dir / "cat",
                    dir / "cat.err");
    // No handshake is possible with an empty store, so give both a moment to start; events that
    // land before a follower started are still printed (they are in its last 10).
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    append(store, "user-1", "Joined");
    append(store, "order-2", "Placed");
    append(store, "order-1", "Placed");
    append(store, "order-1", "Shipped");
    auto a = parse_lines(wait_for_lines(dir / "one", 2));
    auto b = parse_lines(wait_for_lines(dir / "cat", 2));
    CHECK(interrupt(one) == 130);
    CHECK(interrupt(cat) == 130);
    REQUIRE(a.size() == 2);
    CHECK(a[0]["type"] == "Placed");
    CHECK(a[1]["type"] == "Shipped");
    CHECK(field(a, "version") == std::vector<std::int64_t>{0, 1});
    REQUIRE(b.size() == 2);
    CHECK(b[0]["stream"] == "order-2");
    CHECK(b[1]["stream"] == "order-1");
    CHECK(read_file(dir / "one.err").empty());
  }

  TEST_CASE("a 10,000-event batch appended while following arrives whole and in order") {
    TempDir dir;
    std::string store = dir / "s.db";
    append(store, "marker", "Start");
    int pid = spawn({"--json", "--store", store, "tail", "-f", "--all", "-n", "1"}, dir / "out");
    REQUIRE(lines(wait_for_lines(dir / "out", 1)).size() == 1);
    std::string batch;
    for (int i = 0; i < 10000; ++i) batch += "{\"type\":\"Tick\",\"data\":{\"i\":" + std::to_string(i) + "}}\n";
    REQUIRE(run({"-q", "--store", store, "append", "big-1", "--ndjson", "-"}, RunOptions{batch, {}, ""}).status == 0);
    append(store, "marker", "End");
    auto out = wait_for_lines(dir / "out", 10002);
    CHECK(interrupt(pid) == 130);
    auto ev = parse_lines(out);
    REQUIRE(ev.size() == 10002);
    CHECK(ev.front()["type"] == "Start");
    CHECK(ev.back()["type"] == "End");
    bool in_order = true;
    for (int i = 0; i < 10000; ++i) {
      const auto& e = ev[static_cast<std::size_t>(i) + 1];
      in_order = in_order && e["stream"] == "big-1" && e["version"] == i && e["data"]["i"] == i &&
                 e["position"] == i + 2;
    }
    CHECK(in_order);
  }

  TEST_CASE("tail -f into a closed pipe ends quietly with status 0, also while idle") {
    TempDir dir;
    std::string store = dir / "s.db";
    for (int i = 0; i < 5; ++i) append(store, "s-1", "T");
    // -n 3 | head -3: everything is written, then the follower sits idle when head leaves; it
    // must notice the closed pipe without waiting for another event. `timeout` turns a hang
    // into a failure (status 124/130) instead of a stuck test.
    for (const auto& [n, take] : {std::pair{"3", "3"}, std::pair{"5", "1"}}) {
      auto r = sh("{ timeout 60 \"$ESCTL\" --store " + shell_quoted(store) + " tail -f -n " + n + "; echo $? > " +
                  shell_quoted(dir / "rc") + "; } 2>" + shell_quoted(dir / "err") + " | head -" + take);
      CHECK(r.status == 0);
      CHECK(lines(r.out).size() == static_cast<std::size_t>(std::stoi(take)));
      CHECK(read_file(dir / "rc") == "0\n");
      CHECK(read_file(dir / "err").empty());
    }
    // Without -f as well.
    auto r = sh("{ \"$ESCTL\" --store " + shell_quoted(store) + " tail -n 5; echo $? > " + shell_quoted(dir / "rc") + "; } 2>" +
                shell_quoted(dir / "err") + " | head -1");
    CHECK(r.status == 0);
    CHECK(read_file(dir / "rc") == "0\n");
    CHECK(read_file(dir / "err").empty());
  }

  TEST_CASE("SIGINT ends a follower with status 130, after whole lines only") {
    TempDir dir;
    std::string store = dir / "s.db";
    append(store, "s-1", "T", "{\"n\":1}");
    append(store, "s-1", "T", "{\"n\":2}");
    int pid = spawn({"--store", store, "tail", "-f", "s-1"}, dir / "out", dir / "err");
    REQUIRE(lines(wait_for_lines(dir / "out", 2)).size() == 2);
    CHECK(interrupt(pid) == 130);
    auto out = read_file(dir / "out");
    CHECK(out.back() == '\n');
    CHECK(lines(out).size() == 2);
    CHECK(read_file(dir / "err").empty());
  }

  TEST_CASE("a running follower does not pin the WAL: a checkpoint truncates it, and following goes on" * sqlite_only()) {
    TempDir dir;
    std::string store = dir / "s.db";
    append(store, "s-0", "Start");
    int pid = spawn({"--json", "--store", store, "tail", "-f", "--all", "-n", "1"}, dir / "out", dir / "err");
    REQUIRE(lines(wait_for_lines(dir / "out", 1)).size() == 1);
    auto w = sh("for i in $(seq 1 12); do \"$ESCTL\" -q --store " + shell_quoted(store) + " append s-1 T || exit 1; done");
    REQUIRE_MESSAGE(w.status == 0, w.err);
    REQUIRE(lines(wait_for_lines(dir / "out", 13)).size() == 13);
    struct stat st {};
    REQUIRE(::stat((store + "-wal").c_str(), &st) == 0);
    CHECK(st.st_size > 0);
    // busy=0: the checkpoint copied every frame and truncated the WAL, which a reader holding a
    // snapshot would prevent (for up to the 5 s busy timeout, then busy=1).
    auto ck = sh("command -v sqlite3 >/dev/null || exit 77; sqlite3 -cmd '.timeout 5000' " + shell_quoted(store) +
                 " 'PRAGMA wal_checkpoint(TRUNCATE)'");
    if (ck.status != 77) {
      REQUIRE_MESSAGE(ck.status == 0, ck.err);
      CHECK(ck.out.substr(0, 2) == "0|");
      REQUIRE(::stat((store + "-wal").c_str(), &st) == 0);
      CHECK(st.st_size == 0);
    }
    // After the checkpoint the WAL starts over from its beginning; the follower still sees it.
    for (int i = 0; i < 3; ++i) append(store, "s-2", "After");
    auto ev = parse_lines(wait_for_lines(dir / "out", 16));
    CHECK(interrupt(pid) == 130);
    REQUIRE(ev.size() == 16);
    CHECK(strictly_increasing(field(ev, "position")));
    CHECK(ev.back()["type"] == "After");
    CHECK(ev.back()["position"] == 16);
  }
}
