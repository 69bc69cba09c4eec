// Attack (issue 8): the store's environment fails under esctl — a file size limit (disk full),
// a store the user may read but not write, and a write lock held by another process. Each
// must end in a clean error with the right exit code, leaving earlier events intact.
// Not: crashes (test_attack_crash.cpp), hostile input (test_attack_input.cpp).
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

namespace {

std::string read_all(const std::string& store) {
  auto r = run({"--store", store, "--json", "read", "--all"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return r.out;
}

std::string ndjson_events(int n, int pad) {
  std::string text;
  for (int i = 0; i < n; ++i) text += fmt::format("{{\"type\":\"T\",\"data\":{{\"i\":{},\"pad\":\"{}\"}}}}\n", i, std::string(pad, 'z'));
  return text;
}

/// Runs an esctl command line under `ulimit -f blocks` (512-byte blocks), as a user's shell
/// would: SIGXFSZ at its default (killing the process), so esctl must ignore it itself.
Result limited(int blocks, const std::string& esctl_args) {
  return sh(fmt::format("ulimit -f {}; exec \"$ESCTL\" {}", blocks, esctl_args));
}

/// The prefix that runs a command as user/group 65534 (nobody), or "" when that is impossible.
std::string as_nobody() {
  if (sh("setpriv --reuid=65534 --regid=65534 --clear-groups true").status == 0)
    return "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  if (sh("runuser -u nobody -- true").status == 0) return "runuser -u nobody -- ";
  return "";
}

}  // namespace

TEST_SUITE("cli/attack_resources" * sqlite_only()) {
  TEST_CASE("a file size limit set by a plain shell (SIGXFSZ not ignored) fails with exit 1, not a kill") {
    // Found by the chaos harness: a user's `ulimit -f` leaves SIGXFSZ at its default, which
    // killed esctl (status 153) at the first write past the limit instead of the documented exit 1.
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "early-1", "T", R"({"n":1})"}).status == 0);
    auto before = read_all(store);
    write_file(d / "big.ndjson", ndjson_events(500, 1000));
    auto r = sh(fmt::format("ulimit -f 200; exec \"$ESCTL\" --store '{}' append big-1 --ndjson '{}'", store,
                            d / "big.ndjson"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "File too large"), r.err);
    CHECK(read_all(store) == before);
    check_sound(store);
    // A handler started by drain gets SIGXFSZ back at its default, as from a shell.
    REQUIRE(run({"--store", store, "queue", "create", "q", "--from", "start"}).status == 0);
    auto h = run({"--store", store, "queue", "drain", "q", "--exec", "cat >/dev/null; "
                  "kill -XFSZ $$; echo survived >&2; exit 0"});
    CHECK_MESSAGE(!contains(h.err, "survived"), h.err);
  }

  TEST_CASE("a file size limit makes append and import fail with exit 1 naming the cause, earlier events stay") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "early-1", "T", R"({"n":1})"}).status == 0);
    REQUIRE(run({"--store", store, "append", "early-2", "T", R"({"n":2})"}).status == 0);
    auto before = read_all(store);
    write_file(d / "big.ndjson", ndjson_events(500, 1000));  // ~0.5 MB: far past a 100 KB limit
    const int blocks = 200;  // 100 KB

    auto r = limited(blocks, fmt::format("--store '{}' append big-1 --ndjson '{}'", store, d / "big.ndjson"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "File too large"), r.err);
    CHECK(contains(r.err, store));
    CHECK(read_all(store) == before);  // nothing of the failed append, earlier events intact
    check_sound(store);

    // One large event from @FILE, and an import, under the same limit.
    write_file(d / "big.json", "{\"pad\":\"" + std::string(400000, 'q') + "\"}");
    r = limited(blocks, fmt::format("--store '{}' append big-2 T @'{}'", store, d / "big.json"));
    CHECK(r.status == 1);
    CHECK(contains(r.err, "File too large"));
    std::string imp;
    for (int i = 0; i < 400; ++i) imp += fmt::format("{{\"stream\":\"imp-1\",\"type\":\"T\",\"data\":{{\"pad\":\"{}\"}}}}\n", std::string(1000, 'w'));
    write_file(d / "imp.ndjson", imp);
    r = limited(blocks, fmt::format("--store '{}' import '{}' --batch 20", store, d / "imp.ndjson"));
    CHECK(r.status == 1);
    CHECK(contains(r.err, "File too large"));
    auto after = run({"--store", store, "--json", "read", "--all"}).out;
    CHECK(after.substr(0, before.size()) == before);  // earlier events intact; whole import batches may follow
    auto imported = lines(after).size() - lines(before).size();
    CHECK(imported % 20 == 0);
    check_sound(store);

    // Space returns: the same appends succeed.
    r = run({"--store", store, "-q", "append", "big-1", "--ndjson", d / "big.ndjson"});
    CHECK_MESSAGE(r.status == 0, r.err);
    r = run({"--store", store, "-q", "append", "big-2", "T", "@" + (d / "big.json")});
    CHECK_MESSAGE(r.status == 0, r.err);
    CHECK(lines(run({"--store", store, "read", "big-1"}).out).size() == 500);
    check_sound(store);
  }

  TEST_CASE("appends repeated under a file size limit fail with exit 1 naming the limit, never killed by SIGXFSZ") {
    TempDir d;
    auto store = d / "s.db";
    write_file(d / "100k.json", "{\"pad\":\"" + std::string(100000, 'p') + "\"}");
    int ok = 0;
    Result r;
    for (int i = 0; i < 40; ++i) {
      // 1024 blocks of 512 bytes: the 512 KiB of bash's `ulimit -f 512`.
      r = sh(fmt::format("ulimit -f 1024; \"$ESCTL\" --store '{}' -q append d-1 T - < '{}'", store, d / "100k.json"));
      if (r.status != 0) break;
      ++ok;
    }
    CHECK(ok > 0);
    CHECK_MESSAGE(r.status == 1, "status ", r.status, ": ", r.err);  // 153 = killed by SIGXFSZ
    CHECK_MESSAGE(contains(r.err, "file size limit"), r.err);
    CHECK(contains(r.err, "ulimit -f"));
    CHECK(contains(r.err, store));
    // Every acknowledged event is there, the store verifies clean and takes appends without the limit.
    auto versions = run({"--store", store, "--json", "streams"});
    REQUIRE(versions.status == 0);
    CHECK(json::parse(versions.out)["version"] == ok - 1);
    check_sound(store);
    CHECK(run({"--store", store, "-q", "append", "d-1", "T"}).status == 0);
  }

  TEST_CASE("a store the user may read but not write: reads work, writes exit 1 with a message, nothing changes") {
    auto nobody = as_nobody();
    if (nobody.empty()) {
      MESSAGE("skipped: cannot run commands as an unprivileged user (needs root and setpriv or runuser)");
      return;
    }
    TempDir d;
    auto dir = d / "ro";
    std::filesystem::create_directory(dir);
    auto store = dir + "/s.db";
    REQUIRE(run({"--store", store, "append", "order-1", "Placed", R"({"n":1})"}).status == 0);
    REQUIRE(run({"--store", store, "append", "order-2", "Placed", R"({"n":2})"}).status == 0);
    ::chmod(d.path().c_str(), 0755);
    ::chmod(dir.c_str(), 0755);
    ::chmod(store.c_str(), 0644);
    auto hash = file_hash(store);
    auto listing = sh("ls -a '" + dir + "'").out;

    auto esc = [&](const std::string& args) { return sh(nobody + "\"$ESCTL\" --store '" + store + "' " + args); };
    auto r = esc("--json read --all");
    CHECK_MESSAGE(r.status == 0, r.err);
    CHECK(lines(r.out).size() == 2);
    r = esc("read order-1");
    CHECK_MESSAGE(r.status == 0, r.err);
    r = esc("streams");
    CHECK_MESSAGE(r.status == 0, r.err);
    CHECK(contains(r.out, "order-2"));
    r = esc("verify");
    CHECK_MESSAGE(r.status == 0, (r.out + r.err));

    r = esc("append order-1 Shipped");
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "read-only"), r.err);
    CHECK(contains(r.err, "permission"));
    r = sh(nobody + "\"$ESCTL\" --store '" + store + "' import -", {.input = "{\"stream\":\"x\",\"type\":\"T\",\"data\":{}}\n"});
    CHECK(r.status == 1);
    CHECK(contains(r.err, "read-only"));
    r = esc("init");  // already a store: a no-op that must not try to write
    CHECK_MESSAGE(r.status == 0, r.err);

    CHECK(file_hash(store) == hash);
    CHECK(sh("ls -a '" + dir + "'").out == listing);  // no -wal/-shm or other file left behind
    check_sound(store);
  }

  TEST_CASE("a write lock held by sqlite3 makes append and import exit 7 after --busy-timeout, readers go on") {
    TempDir d;
    auto store = d / "s.db";
    REQUIRE(run({"--store", store, "append", "s-1", "T"}).status == 0);
    REQUIRE(run({"--store", store, "append", "s-2", "T"}).status == 0);
    auto before = read_all(store);
    // sqlite3 takes the write lock, creates the marker and holds the lock until it is removed.
    auto marker = d / "locked";
    write_file(d / "hold.sh", "touch '" + marker + "'; while [ -e '" + marker + "' ]; do sleep 0.05; done\n");
    write_file(d / "attack.sh",
               "i=0; while [ ! -e '" + marker + "' ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done\n"
               "S='" + store + "'\n"
               "\"$ESCTL\" --store \"$S\" --busy-timeout 300ms append s-1 T 2>err1; echo \"append=$?\"\n"
               "echo '{\"stream\":\"s-3\",\"type\":\"T\",\"data\":{}}' | \"$ESCTL\" --store \"$S\" --busy-timeout 300ms import 2>err2; echo \"import=$?\"\n"
               "\"$ESCTL\" --store \"$S\" --busy-timeout 300ms --json read --all >reads; echo \"read=$?\"\n"
               "\"$ESCTL\" --store \"$S\" --busy-timeout 300ms streams >/dev/null; echo \"streams=$?\"\n"
               "\"$ESCTL\" --store \"$S\" --busy-timeout 300ms verify >/dev/null; echo \"verify=$?\"\n"
               "rm -f '" + marker + "'\n");
    auto r = sh("sqlite3 '" + store + "' 'BEGIN IMMEDIATE;' '.shell sh " + (d / "hold.sh") + "' 'COMMIT;' & sh '" +
                    (d / "attack.sh") + "'; rm -f '" + marker + "'; wait",
                {.cwd = d.path()});
    CHECK_MESSAGE(contains(r.out, "append=7"), (r.out + r.err));
    CHECK(contains(r.out, "import=7"));
    CHECK(contains(r.out, "read=0"));
    CHECK(contains(r.out, "streams=0"));
    CHECK(contains(r.out, "verify=0"));
    auto err1 = read_file(d / "err1");
    CHECK_MESSAGE(contains(err1, "busy"), err1);
    CHECK(contains(err1, "--busy-timeout"));
    CHECK(read_file(d / "reads") == before);
    CHECK(read_all(store) == before);
    // The lock is gone: appends work again at once.
    auto next = run({"--store", store, "--busy-timeout", "1s", "append", "s-1", "T"});
    CHECK_MESSAGE(next.status == 0, next.err);
    check_sound(store);
  }
}
