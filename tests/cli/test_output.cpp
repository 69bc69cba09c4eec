// Conventions every command shares (esctl(1)): help, version, usage errors, colour rules,
// global options before or after the command, quiet exit into a closed pipe.
#include <doctest/doctest.h>

#include "support/cli.hpp"

using namespace esctl::test;

namespace {
bool has_escape(const std::string& s) { return s.find("\x1b[") != std::string::npos; }

// Runs a shell command under a pseudo-terminal (script(1)); returns what the terminal showed.
Result under_tty(const std::string& command, const RunOptions& o = {}) {
  return sh("command -v script >/dev/null || exit 77; script -qec \"" + command + "\" /dev/null", o);
}
}  // namespace

TEST_SUITE("cli/output") {
  TEST_CASE("--version names esctl and the SQLite it runs on") {
    auto r = run({"--version"});
    CHECK(r.status == 0);
    CHECK(r.out.find("esctl ") == 0);
    CHECK(r.out.find("SQLite 3.") != std::string::npos);
  }

  TEST_CASE("help is available as --help, -h and 'esctl help CMD'") {
    CHECK(run({"--help"}).out.find("append") != std::string::npos);
    auto a = run({"append", "--help"});
    auto b = run({"help", "append"});
    CHECK(a.status == 0);
    CHECK(b.status == 0);
    CHECK(a.out == b.out);
    CHECK(run({"append", "-h"}).out == a.out);
    auto bad = run({"help", "nope"});
    CHECK(bad.status == 2);
    CHECK(bad.err.find("'nope'") != std::string::npos);
  }

  TEST_CASE("unknown commands, unknown flags and bad option values are usage errors (exit 2)") {
    TempDir dir;
    auto r = run({"frobnicate"});
    CHECK(r.status == 2);
    CHECK(r.err.find("esctl: error:") == 0);
    auto flag = run({"--store", dir / "s.db", "read", "--all", "--bogus"});
    CHECK(flag.status == 2);
    CHECK(flag.err.find("(see 'esctl read --help')") != std::string::npos);
    auto nested = run({"--store", dir / "s.db", "queue", "drain", "q", "--bogus"});
    CHECK(nested.status == 2);
    CHECK_MESSAGE(nested.err.find("(see 'esctl queue drain --help')") != std::string::npos, nested.err);
    CHECK(run({"--store", dir / "s.db", "--color", "purple", "read", "--all"}).status == 2);
    auto t = run({"--store", dir / "s.db", "--busy-timeout", "5", "read", "--all"});
    CHECK(t.status == 2);
    CHECK(t.err.find("--busy-timeout") != std::string::npos);
    CHECK(read_file(dir / "s.db").empty());  // nothing was created by a failed command line
  }

  TEST_CASE("usage errors say what was wrong in plain words") {
    TempDir dir;
    std::string store = dir / "s.db";
    auto err = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {"--store", store});
      auto r = run(args);
      CHECK(r.status == 2);
      return r.err;
    };
    CHECK(err({"raed", "a-1"}) == "esctl: error: 'raed' is not an esctl command (did you mean 'read'?) (see 'esctl --help')\n");
    CHECK(err({"frobnicate"}) == "esctl: error: 'frobnicate' is not an esctl command (see 'esctl --help')\n");
    CHECK(err({"queue", "dran", "q"}) ==
          "esctl: error: 'dran' is not an esctl queue command (did you mean 'drain'?) (see 'esctl queue --help')\n");
    auto need = err({"queue"});
    CHECK(need.find("esctl: error: 'esctl queue' needs a command: create, ") == 0);
    CHECK(need.find("drain") != std::string::npos);
    CHECK(err({"read", "--all", "--bogus"}) == "esctl: error: unknown option '--bogus' (see 'esctl read --help')\n");
    CHECK(err({"read", "a-1", "b-1"}) ==
          "esctl: error: unexpected argument 'b-1' (esctl read takes no more) (see 'esctl read --help')\n");
    CHECK(err({"read", "a-1", "--count"}) == "esctl: error: --count needs a value (see 'esctl read --help')\n");
    CHECK(err({"--color", "purple", "read", "a-1"}).find("esctl: error: --color: purple not in") == 0);
    CHECK(read_file(store).empty());  // nothing was created
  }

  TEST_CASE("global options work before and after the command") {
    TempDir dir;
    REQUIRE(run({"--store", dir / "s.db", "append", "a-1", "T", "{\"n\":1}"}).status == 0);
    auto before = run({"--json", "--store", dir / "s.db", "read", "a-1"});
    auto after = run({"read", "a-1", "--json", "--store", dir / "s.db"});
    CHECK(before.status == 0);
    CHECK(before.out == after.out);
    CHECK(before.out.find("\"data\":{\"n\":1}") != std::string::npos);
    auto env = run({"read", "a-1", "--json"}, RunOptions{"", {{"ESCTL_STORE", dir / "s.db"}}, ""});
    CHECK(env.out == before.out);
    auto quiet = run({"-q", "read", "a-1", "--store", dir / "s.db"});
    CHECK(quiet.status == 0);
    CHECK(quiet.out.empty());
  }

  TEST_CASE("colour only on a terminal, forced by --color, disabled by NO_COLOR") {
    TempDir dir;
    std::string store = dir / "s.db";
    REQUIRE(run({"--store", store, "append", "a-1", "T"}).status == 0);
    CHECK_FALSE(has_escape(run({"--store", store, "read", "a-1"}).out));
    CHECK(has_escape(run({"--store", store, "--color", "always", "read", "a-1"}).out));
    CHECK_FALSE(has_escape(run({"--store", store, "--color", "never", "read", "a-1"}).out));
    std::string cmd = "\\\"$ESCTL\\\" --store '" + store + "' read a-1";
    auto tty = under_tty(cmd);
    if (tty.status == 77) return;
    CHECK(has_escape(tty.out));
    auto no_color = under_tty(cmd, RunOptions{"", {{"NO_COLOR", "1"}}, ""});
    CHECK_FALSE(has_escape(no_color.out));
    auto json = under_tty("\\\"$ESCTL\\\" --json --store '" + store + "' read a-1");
    CHECK_FALSE(has_escape(json.out));
  }

  TEST_CASE("progress is drawn on a terminal's stderr for import, drain, rebuild and verify, never when piped or with -q") {
    TempDir dir;
    const std::string store = dir / "s.db", input = dir / "in.ndjson", proj = dir / "p.sql";
    std::string nd;
    for (int i = 0; i < 20000; ++i)
      nd += "{\"stream\":\"s-" + std::to_string(i % 100) + "\",\"type\":\"T\",\"data\":{\"i\":" + std::to_string(i) + "}}\n";
    write_file(input, nd);
    write_file(proj, "-- @init\nCREATE TABLE t (stream TEXT);\n-- @on T\nINSERT INTO t VALUES (:stream);\n");
    // ESCTL_PROGRESS_DELAY=0: drawn from the first update, however fast the build is. A drawn
    // line starts with a carriage return and ends by erasing the rest of the terminal line.
    const std::string e = "ESCTL_PROGRESS_DELAY=0 \\\"$ESCTL\\\" --store '" + store + "' ";
    auto drawn = [](const Result& r, const std::string& label) {
      return r.out.find("\r" + label) != std::string::npos && r.out.find("\x1b[K") != std::string::npos;
    };
    auto imp = under_tty(e + "import '" + input + "'");
    if (imp.status == 77) return;
    CHECK(imp.status == 0);
    CHECK_MESSAGE(drawn(imp, "import ["), imp.out);
    REQUIRE(run({"--store", store, "queue", "create", "q", "--from", "start"}).status == 0);
    auto drain = under_tty(e + "queue drain q --batch 1000 --exec 'cat >/dev/null'");
    CHECK(drain.status == 0);
    CHECK_MESSAGE(drawn(drain, "drain q"), drain.out);
    auto rb = under_tty(e + "rebuild '" + (dir / "view.db") + "' --projection '" + proj + "'");
    CHECK(rb.status == 0);
    CHECK_MESSAGE(drawn(rb, "rebuild"), rb.out);
    auto v = under_tty(e + "verify");
    CHECK(v.status == 0);
    CHECK_MESSAGE(drawn(v, "verify"), v.out);
    auto quiet = under_tty(e + "-q verify");
    CHECK(quiet.status == 0);
    CHECK(quiet.out.find('\r') == std::string::npos);
    // Piped: stderr is not a terminal, so nothing but the result.
    const RunOptions now{"", {{"ESCTL_PROGRESS_DELAY", "0"}}, ""};
    auto piped = run({"--store", store, "verify"}, now);
    CHECK(piped.status == 0);
    CHECK(piped.err.find('\r') == std::string::npos);
    REQUIRE(run({"--store", store, "queue", "reset", "q", "--to", "start"}).status == 0);
    auto pdrain = run({"--store", store, "queue", "drain", "q", "--batch", "1000", "--exec", "cat >/dev/null"}, now);
    CHECK(pdrain.status == 0);
    CHECK(pdrain.err.find('\r') == std::string::npos);
  }

  TEST_CASE("a closed pipe ends the command quietly with status 0") {
    TempDir dir;
    std::string nd;
    for (int i = 0; i < 20000; ++i) nd += "{\"type\":\"T\",\"data\":{\"i\":" + std::to_string(i) + "}}\n";
    RunOptions in;
    in.input = nd;
    REQUIRE(run({"--store", dir / "s.db", "append", "big-1", "--ndjson", "-"}, in).status == 0);
    RunOptions o;
    o.env["STORE"] = dir / "s.db";
    auto r = sh("exec bash -c 'set -o pipefail; \"$ESCTL\" --store \"$STORE\" read --all | head -1; echo \"status=$?\"'", o);
    CHECK(r.err.empty());
    CHECK(r.out.find("status=0") != std::string::npos);
  }
}
