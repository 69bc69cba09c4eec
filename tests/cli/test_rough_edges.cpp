// Rough edges a first-time user meets: what --help shows, --json --version, units and plurals in
// human output, natural order of stream names, what esctl says while it waits (tail -f of a
// stream to come, import from a terminal), and a store path in a folder that does not exist.
#include <signal.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <filesystem>
#include <regex>

#include "support/cli.hpp"

using namespace esctl::test;

namespace {

// "Subcommands:" of a help text.
std::vector<std::string> subcommands(const std::string& help) {
  std::vector<std::string> out;
  bool in = false;
  for (const auto& l : lines(help)) {
    if (l.rfind("Subcommands:", 0) == 0) {
      in = true;
      continue;
    }
    if (in && !l.empty() && l[0] != ' ') break;  // the next section (the global options)
    if (in && l.size() > 2 && l[0] == ' ' && l[2] != ' ') out.push_back(l.substr(2, l.find(' ', 2) - 2));
  }
  return out;
}

// Every command's argv, with queue's subcommands.
std::vector<std::vector<std::string>> every_command() {
  std::vector<std::vector<std::string>> out;
  for (const auto& c : subcommands(run({"--help"}).out)) {
    out.push_back({c});
    for (const auto& s : subcommands(run({c, "--help"}).out)) out.push_back({c, s});
  }
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

TEST_SUITE("cli/rough edges") {
  TEST_CASE("every command's --help names option values by what they are, never TEXT") {
    auto cmds = every_command();
    REQUIRE(cmds.size() >= 15);
    static const std::regex cli11_types(R"(\b(TEXT|INT|UINT|FLOAT|NUMBER)\b)");
    for (auto args : cmds) {
      args.push_back("--help");
      auto r = run(args);
      REQUIRE_MESSAGE(r.status == 0, joined(args));
      for (const auto& l : lines(r.out))
        CHECK_MESSAGE(!std::regex_search(l, cli11_types), "'esctl " << joined(args) << "' shows: " << l);
    }
    auto top = run({"--help"}).out;
    CHECK(contains(top, "--store PATH"));
    CHECK(contains(top, "--busy-timeout DUR"));
    CHECK(contains(run({"import", "--help"}).out, "--batch N"));
    CHECK(contains(run({"queue", "drain", "--help"}).out, "--exec CMD"));
    CHECK(contains(run({"queue", "drain", "--help"}).out, "--batch N"));
    CHECK(contains(run({"read", "--help"}).out, "--count N"));
  }

  TEST_CASE("every command's --help lists the global options") {
    for (auto args : every_command()) {
      if (args[0] == "help") continue;  // `esctl help` only prints other help
      args.push_back("--help");
      auto out = run(args).out;
      for (std::string g : {"--store PATH", "--json", "--quiet", "--color WHEN", "--busy-timeout DUR"})
        CHECK_MESSAGE(contains(out, g), "'esctl " << joined(args) << "' does not list " << g);
    }
    // The same help whichever way it is asked for, with the global options in it.
    CHECK(run({"help", "read"}).out == run({"read", "--help"}).out);
    CHECK(run({"--json", "read", "--help"}).out == run({"read", "--help"}).out);
  }

  TEST_CASE("--json --version is a JSON object, plain --version stays plain") {
    auto plain = run({"--version"});
    CHECK(plain.status == 0);
    CHECK(plain.out.rfind("esctl ", 0) == 0);
    for (auto args : std::vector<std::vector<std::string>>{{"--json", "--version"}, {"--version", "--json"}}) {
      auto r = run(args);
      CHECK(r.status == 0);
      auto j = parse_lines(r.out);
      REQUIRE(j.size() == 1);
      CHECK(j[0]["version"].is_string());
      CHECK(contains(plain.out, j[0]["version"].get<std::string>()));
      CHECK(j[0]["sqlite"].get<std::string>().rfind("3.", 0) == 0);
    }
  }

  TEST_CASE("stats shows the file size in human units, bytes with --json, and says 'no queues' once" * sqlite_only()) {
    TempDir dir;
    std::string store = dir / "s.db";
    REQUIRE(run({"--store", store, "init"}).status == 0);
    auto r = run({"--store", store, "stats"});
    REQUIRE(r.status == 0);
    CHECK_MESSAGE(std::regex_search(r.out, std::regex(R"(file size: +[0-9.]+ (B|KiB|MiB|GiB)\b)")), r.out);
    CHECK_MESSAGE(!contains(r.out, " bytes"), r.out);
    CHECK_MESSAGE(!contains(r.out, "queues: 0"), r.out);
    CHECK(contains(r.out, "no queues"));
    auto j = parse_lines(run({"--store", store, "--json", "stats"}).out);
    REQUIRE(j.size() == 1);
    CHECK(j[0]["file_bytes"].is_number_integer());
    CHECK(j[0]["file_bytes"].get<std::int64_t>() > 1024);
    CHECK(j[0]["queue_count"] == 0);
    // With a queue: its count and its table.
    REQUIRE(run({"--store", store, "queue", "create", "billing"}).status == 0);
    auto q = run({"--store", store, "stats"});
    CHECK_MESSAGE(contains(q.out, "billing"), q.out);
    CHECK(!contains(q.out, "no queues"));
  }

  TEST_CASE("human output says '1 event', not '1 events'") {
    TempDir dir;
    std::string store = dir / "s.db";
    REQUIRE(run({"--store", store, "append", "order-1", "Placed"}).status == 0);
    auto init = run({"--store", store, "init"});
    CHECK_MESSAGE(contains(init.out, "(1 event)"), init.out);
    auto imp = run({"--store", dir / "t.db", "import"},
                   RunOptions{R"({"stream":"a-1","type":"T","data":{}})" "\n", {}, {}});
    CHECK_MESSAGE(contains(imp.out, "imported 1 event "), imp.out);
    CHECK_MESSAGE(contains(imp.out, "in 1 batch,"), imp.out);
    // " 1 events" with its leading space: the rate ("171 events/s") may end in 1.
    CHECK_MESSAGE(!contains(imp.out, " 1 events"), imp.out);
    CHECK_MESSAGE(!contains(imp.out, "(1 events"), imp.out);
    auto empty = run({"--store", dir / "e.db", "init"});
    CHECK_MESSAGE(contains(empty.out, "(0 events)"), empty.out);
  }

  TEST_CASE("streams are listed in natural order, human and --json") {
    TempDir dir;
    std::string store = dir / "s.db";
    for (const char* s : {"order-10", "order-2", "order-1", "item-3", "order-100", "order-9b", "order-9a"})
      REQUIRE(run({"--store", store, "append", s, "T"}).status == 0);
    const std::vector<std::string> want = {"item-3", "order-1", "order-2", "order-9a", "order-9b", "order-10",
                                           "order-100"};
    std::vector<std::string> got;
    for (const auto& j : parse_lines(run({"--store", store, "--json", "streams"}).out)) got.push_back(j["stream"]);
    CHECK(got == want);
    std::vector<std::string> human;
    auto rows = lines(run({"--store", store, "streams"}).out);
    for (std::size_t i = 1; i < rows.size(); ++i) human.push_back(rows[i].substr(0, rows[i].find(' ')));
    CHECK(human == want);
  }

  TEST_CASE("tail -f of a stream that does not exist yet says it waits, on a terminal's stderr only") {
    TempDir dir;
    std::string store = dir / "s.db";
    REQUIRE(run({"--store", store, "init"}).status == 0);
    // On a terminal: the note, then the event once it comes. script(1) logs the terminal to a
    // file as it goes (-f), which serves as the barrier between the steps.
    RunOptions o;
    o.env["S"] = store;
    o.env["D"] = dir.path();
    auto tty = sh("command -v script >/dev/null || exit 77\n"
                  "script -qfec '$ESCTL --store $S tail -f order-7 & echo $! > $D/pid; wait' $D/log >/dev/null &\n"
                  "sp=$!\n"
                  "for i in $(seq 600); do grep -q 'waiting for' $D/log 2>/dev/null && break; sleep 0.05; done\n"
                  "$ESCTL --store $S -q append order-7 Placed\n"
                  "for i in $(seq 600); do grep -q 'order-7@0' $D/log && break; sleep 0.05; done\n"
                  "kill -INT $(cat $D/pid); wait $sp; cat $D/log",
                  o);
    if (tty.status == 77) return;
    CHECK_MESSAGE(contains(tty.out, "esctl: waiting for stream 'order-7' (it has no events yet)"), tty.out);
    CHECK_MESSAGE(contains(tty.out, "order-7@0"), tty.out);
    CHECK(tty.out.find("waiting for") < tty.out.find("order-7@0"));
    // Not on a terminal: stderr stays clean for scripts.
    int pid = spawn({"--store", store, "tail", "-f", "order-8"}, dir / "out", dir / "err");
    REQUIRE(run({"--store", store, "-q", "append", "order-8", "Placed"}).status == 0);
    for (int i = 0; i < 600 && !contains(read_file(dir / "out"), "order-8@0"); ++i) usleep(50000);
    kill(pid, SIGINT);
    wait_for(pid);
    CHECK(contains(read_file(dir / "out"), "order-8@0"));
    CHECK(read_file(dir / "err").empty());
  }

  TEST_CASE("import from a terminal says what it expects on stderr") {
    TempDir dir;
    RunOptions o;
    o.env["S"] = dir / "s.db";
    o.env["D"] = dir.path();
    // stdin is the terminal: the note comes before import waits for input; SIGINT then ends it.
    auto r = sh("command -v script >/dev/null || exit 77\n"
                "script -qfec '$ESCTL --store $S import </dev/tty & echo $! > $D/pid; wait' $D/log >/dev/null &\n"
                "sp=$!\n"
                "for i in $(seq 600); do grep -q 'Ctrl-D' $D/log 2>/dev/null && break; sleep 0.05; done\n"
                "kill -INT $(cat $D/pid); wait $sp; cat $D/log",
                o);
    if (r.status == 77) return;
    CHECK_MESSAGE(contains(r.out, "esctl: reading NDJSON events from the terminal; end with Ctrl-D"), r.out);
    // From a pipe or a file: no such note.
    auto piped = run({"--store", dir / "t.db", "import"}, RunOptions{R"({"stream":"a-1","type":"T","data":{}})" "\n", {}, {}});
    CHECK(piped.status == 0);
    CHECK_MESSAGE(piped.err.empty(), piped.err);
  }

  TEST_CASE("a store in a folder that does not exist: the error names the folder and the fix" * sqlite_only()) {
    TempDir dir;
    for (const char* cmd : {"init", "append"}) {
      std::vector<std::string> args = {"--store", dir / "nope/x.db", cmd};
      if (std::string(cmd) == "append") args.insert(args.end(), {"order-1", "Placed"});
      auto r = run(args);
      CHECK(r.status == 4);
      CHECK_MESSAGE(contains(r.err, "folder '" + dir.path() + "/nope' does not exist"), r.err);
      CHECK_MESSAGE(contains(r.err, "mkdir -p"), r.err);
      CHECK_MESSAGE(!contains(r.err, "unable to open database file"), r.err);
    }
    CHECK(run({"--store", dir / "nope/x.db", "stats"}).status == 4);
    CHECK(!std::filesystem::exists(dir / "nope"));
  }
}

TEST_SUITE("cli/docs stand alone" * store_free()) {
  TEST_CASE("no file of the repository cites the product contract or style guide it does not contain") {
    namespace fs = std::filesystem;
    // Spelled so that this file does not match itself.
    static const std::regex cited(std::string("S") + R"(PEC(\.md| ?§| section)|S)" + R"(TYLE\.md)");
    const fs::path root = ESCTL_SOURCE_DIR;
    int files = 0;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
      const fs::path& p = it->path();
      if (it->is_directory()) {
        // Build trees (they hold a CMakeCache.txt) and git's own files are not the repository's text.
        if (p.filename() == ".git" || fs::exists(p / "CMakeCache.txt") || p.filename() == "corpus")
          it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file() || it->file_size() > 1 << 20) continue;
      ++files;
      auto text = read_file(p.string());
      std::smatch m;
      CHECK_MESSAGE(!std::regex_search(text, m, cited), p.string() << " cites " << m.str());
    }
    CHECK(files > 50);
  }
}
