// README.md against the binary: every ```sh block after the set-up section (the walkthrough and
// the examples of the later sections) is run, in order, in a fresh directory with `esctl` on PATH,
// so the documented commands cannot rot. Not a test of esctl's behaviour in depth: the other
// tests in tests/cli do that; this one checks that the README's commands succeed and show what
// the README says they show.
//
// Conventions (stated in README.md just before the walkthrough):
//   ```sh             run in the foreground; each `## ` section runs in its own subshell (so its
//                     `export`s stay inside it) but all share the directory, in README order
//   ```sh background  each line is a long-running command for another terminal: started in
//                     the background in its own process group, checked to be still running at
//                     the end, then stopped with SIGTERM
//   anything else     (text, console) not run
// Blocks before the first `## ` heading (the set-up commands, which apt-get install, and the
// install step; tests/cli/test_docs.cpp installs into a temporary prefix) are never run.
// The section "PostgreSQL stores" runs on the PostgreSQL pass of the CLI tests only, against
// the throwaway test server (libpq's PGHOST and PGUSER name it); every other section runs on
// the SQLite pass only.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <set>
#include <thread>

#include "store/postgres/pg.hpp"
#include "support/cli.hpp"
#include "support/pg_db.hpp"

using namespace esctl::test;

namespace {

struct Block {
  std::string section;  ///< the `## ` heading it is under
  std::string info;     ///< the fence's info string: "sh", "sh background", "text", ...
  std::string text;
  int line = 0;  ///< README.md line of the opening fence
};

std::vector<Block> readme_blocks(const std::string& readme) {
  std::vector<Block> out;
  std::string section;
  bool in_code = false;
  Block cur;
  int n = 0;
  for (const auto& l : lines(readme)) {
    ++n;
    if (l.rfind("```", 0) == 0) {
      if (!in_code) {
        cur = Block{section, l.substr(3), "", n};
        while (!cur.info.empty() && cur.info.back() == ' ') cur.info.pop_back();
      } else if (!section.empty()) {
        out.push_back(cur);
      }
      in_code = !in_code;
      continue;
    }
    if (in_code) cur.text += l + "\n";
    else if (l.rfind("## ", 0) == 0) section = l.substr(3);
  }
  return out;
}

// The bash script that runs the blocks; background commands go to bg-N.sh, their pids (process
// group ids) to bg.pids, their output to bg-N.out and, when they end, their status to bg-N.rc.
std::string build_script(const std::vector<Block>& blocks, const std::string& dir, int& backgrounds) {
  std::string s = "set -eo pipefail\n";
  std::string open_section;
  for (const auto& b : blocks) {
    if (b.info != "sh" && b.info != "sh background") continue;
    if (b.section != open_section) {
      if (!open_section.empty()) s += ")\n";
      s += "(\n";
      open_section = b.section;
    }
    s += "echo '>>> README.md:" + std::to_string(b.line) + "' >&2\n";
    if (b.info == "sh") {
      s += b.text;
      continue;
    }
    for (const auto& l : lines(b.text)) {
      if (l.find_first_not_of(' ') == std::string::npos || l[l.find_first_not_of(' ')] == '#') continue;
      std::string n = std::to_string(++backgrounds);
      write_file(dir + "/bg-" + n + ".sh", l + "\n");
      // A watchdog ends the group after 60 s should the test itself die; the trap lets the
      // wrapper outlive SIGTERM long enough to record that its command ended.
      write_file(dir + "/bg-" + n + ".run",
                 "(sleep 60; kill -TERM 0) &\ntrap : TERM\nbash bg-" + n + ".sh > bg-" + n + ".out 2>&1 < /dev/null\n"
                 "echo $? > bg-" + n + ".rc\n");
      s += "setsid bash bg-" + n + ".run > /dev/null 2>&1 < /dev/null &\necho $! >> bg.pids\n";
    }
  }
  if (!open_section.empty()) s += ")\n";
  return s;
}

const std::string kPgSection = "PostgreSQL stores";

// The blocks the current backend runs (see the top of this file).
std::vector<Block> for_this_backend(const std::vector<Block>& blocks) {
  std::vector<Block> out;
  for (const auto& b : blocks)
    if ((b.section == kPgSection) == postgres_backend()) out.push_back(b);
  return out;
}

// The README's PostgreSQL walkthrough against the test server: its database `shop` is made by
// the walkthrough itself (createdb), so it is dropped before and after.
void run_pg_section(const std::vector<Block>& blocks) {
  const std::string server = pg_server_uri();
  const auto user_at = server.find("://") + 3, at = server.find('@'), host_at = server.find("host=");
  REQUIRE((at != std::string::npos && host_at != std::string::npos));
  auto drop_shop = [&] {
    esctl::pg::Conn admin(server, 10000);
    admin.exec_script("DROP DATABASE IF EXISTS shop WITH (FORCE)");
  };
  drop_shop();
  struct DropAfter {
    std::function<void()> f;
    ~DropAfter() { f(); }
  } drop_after{drop_shop};

  TempDir tmp;
  std::filesystem::create_directories(tmp / "bin");
  std::filesystem::create_symlink(bin(), tmp / "bin/esctl");
  int backgrounds = 0;
  write_file(tmp / "readme.sh", build_script(blocks, tmp.path(), backgrounds));
  REQUIRE(backgrounds == 0);
  RunOptions o;
  o.cwd = tmp.path();
  const char* path = std::getenv("PATH");
  o.env["PATH"] = tmp / "bin" + ":" + (path ? path : "/usr/bin:/bin");
  o.env["PGHOST"] = server.substr(host_at + 5, server.find('&', host_at) - (host_at + 5));
  o.env["PGUSER"] = server.substr(user_at, at - user_at);
  auto r = sh("exec bash readme.sh", o);
  REQUIRE_MESSAGE(r.status == 0, "README commands failed (status " << r.status << "); the last '>>>' line names the block\n"
                                     << r.err << "\nstdout:\n" << r.out);
  CHECK_MESSAGE(contains(r.out, "order-1@1 #3\n"), r.out);  // STREAM@VERSION #POSITION, as on a file
  CHECK(contains(r.out, "order-1@1 OrderShipped"));
  CHECK(contains(r.out, "verify: ok"));
  CHECK(contains(r.out, "imported 1 event"));
  CHECK(contains(r.out, "imported 4 events"));
  CHECK(contains(r.out, "the same events, byte for byte"));
}

bool exists(const std::string& p) { return std::filesystem::exists(p); }

// Stops the background groups however the test case ends.
struct Backgrounds {
  std::string dir;
  int count = 0;
  std::vector<int> groups() const {
    std::vector<int> out;
    for (const auto& l : lines(read_file(dir + "/bg.pids"))) out.push_back(std::atoi(l.c_str()));
    return out;
  }
  void stop() {
    for (int g : groups())
      if (g > 1) ::kill(-g, SIGTERM);
    for (int i = 0; i < 50; ++i) {  // until every wrapper has recorded its command's end
      bool all = true;
      for (int n = 1; n <= count; ++n) all = all && exists(dir + "/bg-" + std::to_string(n) + ".rc");
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~Backgrounds() { stop(); }
};

}  // namespace

TEST_SUITE("cli/readme") {
  TEST_CASE("every sh block of the README runs, in order, and shows what the README says") {
    auto blocks = readme_blocks(read_file(std::string(ESCTL_SOURCE_DIR) + "/README.md"));
    int runnable = 0;
    std::set<std::string> sections;
    for (const auto& b : blocks) {
      static const std::set<std::string> known{"sh", "sh background", "text", "console"};
      CHECK_MESSAGE(known.count(b.info), "README.md:" << b.line << ": code block without a known info string ('"
                                                      << b.info << "'): mark it sh, sh background, text or console");
      if (b.info.rfind("sh", 0) == 0) {
        ++runnable;
        sections.insert(b.section);
      }
    }
    // The walkthrough and the other sections' examples are there and marked runnable.
    REQUIRE(runnable >= 15);
    REQUIRE(sections.count("A ten-minute walkthrough"));
    REQUIRE(sections.count(kPgSection));
    blocks = for_this_backend(blocks);
    if (postgres_backend()) return run_pg_section(blocks);

    TempDir tmp;
    std::filesystem::create_directories(tmp / "bin");
    std::filesystem::create_symlink(bin(), tmp / "bin/esctl");
    // Stand-ins for what the examples leave to the reader: a projector, a batch handler and
    // the replay input of "Verify in CI".
    for (const char* handler : {"project", "apply-batch"}) {
      write_file(tmp / handler, "#!/bin/sh\ncat > /dev/null\n");
      std::filesystem::permissions(tmp / handler, std::filesystem::perms::owner_exec, std::filesystem::perm_options::add);
    }
    std::filesystem::create_directories(tmp / "fixtures");
    write_file(tmp / "fixtures/events.ndjson",
               "{\"stream\":\"cart-1\",\"type\":\"ItemAdded\",\"data\":{\"sku\":\"A1\"}}\n"
               "{\"stream\":\"cart-1\",\"type\":\"ItemAdded\",\"data\":{\"sku\":\"B7\"}}\n"
               "{\"stream\":\"cart-2\",\"type\":\"ItemAdded\",\"data\":{\"sku\":\"A1\"}}\n");

    Backgrounds bg{tmp.path()};
    std::string script = build_script(blocks, tmp.path(), bg.count);
    write_file(tmp / "readme.sh", script);
    RunOptions o;
    o.cwd = tmp.path();
    const char* path = std::getenv("PATH");
    o.env["PATH"] = tmp / "bin" + ":" + (path ? path : "/usr/bin:/bin");
    auto r = sh("exec bash readme.sh", o);
    auto err_tail = r.err.substr(r.err.size() > 3000 ? r.err.size() - 3000 : 0);
    REQUIRE_MESSAGE(r.status == 0, "README commands failed (status " << r.status << "); the last '>>>' line names the block\n"
                                       << err_tail << "\nstdout:\n" << r.out);
    REQUIRE(bg.count >= 2);

    // Appends print STREAM@VERSION #POSITION.
    CHECK(r.out.find("order-2@1 #4\n") != std::string::npos);
    // The query db after the first drain, then after the rebuild with the extended projection
    // and the next drain.
    auto placed = r.out.find("order-2|bob|12.5|placed\n");
    auto cancelled = r.out.find("order-2|bob|12.5|cancelled\n");
    CHECK(placed != std::string::npos);
    CHECK(cancelled != std::string::npos);
    CHECK(placed < cancelled);
    CHECK(r.out.find("order-3|ann|8.0|shipped\n", cancelled) != std::string::npos);
    CHECK(r.out.find("queue 'orders-view' continues after position 5") != std::string::npos);
    CHECK(r.out.find("verify: ok") != std::string::npos);
    // The relay copied three orders, and the replay of its queue added none.
    CHECK(r.out.find("imported 3 events (0 already stored, skipped)") != std::string::npos);
    CHECK(r.out.find("imported 0 events (3 already stored, skipped)") != std::string::npos);
    // The --pipe projector's read model: ann's two orders, bob's one.
    CHECK_MESSAGE(r.out.find("ann|38.0\nbob|12.5\n") != std::string::npos, r.out);
    // The exit-codes example.
    CHECK(r.out.find("exit 4\n") != std::string::npos);

    // The followers: the walkthrough's `tail -f` (the first background command) saw the order
    // appended after it started, and the following relay copied order-4 into billing.db.
    bool tailed = false, relayed = false;
    for (int i = 0; i < 200 && !(tailed && relayed); ++i) {  // up to 10 s on a loaded machine
      tailed = read_file(tmp / "bg-1.out").find("order-3@0 OrderPlaced") != std::string::npos;
      relayed = relayed || run({"--store", tmp / "billing.db", "read", "order-4"}).status == 0;
      if (!(tailed && relayed)) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK_MESSAGE(tailed, read_file(tmp / "bg-1.out"));
    CHECK(relayed);
    // Every background command was still running (a typo would have ended it at once).
    for (int n = 1; n <= bg.count; ++n) {
      auto id = std::to_string(n);
      CHECK_MESSAGE(!exists(tmp / ("bg-" + id + ".rc")), "background command '" << read_file(tmp / ("bg-" + id + ".sh"))
                                                          << "' ended early:\n" << read_file(tmp / ("bg-" + id + ".out")));
    }
    bg.stop();
  }
}
