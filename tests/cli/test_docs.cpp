// Docs and completions against the binary (like git's t0450): every command and option that
// `--help` lists must be in its man page and offered by the bash and fish completions; the
// completion scripts parse; bash completes names read from a real store.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include "support/cli.hpp"

using namespace esctl::test;

namespace {

const std::string kSrc = ESCTL_SOURCE_DIR;

// Names in a help section ("Subcommands:" lists commands; "Options:" lists flags).
std::vector<std::string> help_commands(const std::string& help) {
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

std::set<std::string> help_options(const std::string& help) {
  std::set<std::string> out;
  static const std::regex opt(R"((^|[ ,])(--?[A-Za-z][A-Za-z0-9-]*))");
  for (const auto& l : lines(help)) {
    auto first = l.find_first_not_of(' ');
    if (first == std::string::npos || l[first] != '-') continue;
    std::string head = l.substr(first, l.find("  ", first) - first);  // option column only
    for (std::sregex_iterator it(head.begin(), head.end(), opt), end; it != end; ++it) {
      std::string o = (*it)[2];
      if (o != "-h" && o != "--help") out.insert(o);
    }
  }
  return out;
}

std::string roff_option(const std::string& o) {
  std::string r;
  for (char c : o) r += c == '-' ? std::string("\\-") : std::string(1, c);
  return r;
}

struct Cmd {
  std::string name, sub;
  std::string page() const { return kSrc + "/man/esctl-" + name + ".1"; }
  std::vector<std::string> argv() const { return sub.empty() ? std::vector<std::string>{name} : std::vector<std::string>{name, sub}; }
  std::string label() const { return sub.empty() ? name : name + " " + sub; }
};

std::vector<Cmd> all_commands() {
  std::vector<Cmd> out;
  for (const auto& c : help_commands(run({"--help"}).out)) {
    if (c == "help") continue;
    out.push_back({c, ""});
    if (c == "queue")
      for (const auto& s : help_commands(run({"queue", "--help"}).out)) out.push_back({c, s});
  }
  return out;
}

// Candidates bash offers for `line` (completing its last word), via the real _esctl function.
// COMP_WORDS is split as interactive bash splits it: at blanks, and around each run of the
// COMP_WORDBREAKS characters @><=;|&(: (so `--store=postgresql://u@/db?host=/run` is 11 words),
// quoted text staying whole.
std::vector<std::string> bash_complete(const std::string& line, const std::string& store = "") {
  std::string script = "source '" + kSrc + "/completions/esctl.bash'\n"
                       "COMP_WORDS=(); w=''; kind=''; q=''\n"  // kind: '' none, b a run of breaks, t text
                       "for ((k = 0; k < ${#LINE}; k++)); do c=${LINE:k:1}\n"
                       "  if [[ -n $q ]]; then w+=$c; [[ $c == \"$q\" ]] && q=''; continue; fi\n"
                       "  case $c in\n"
                       "    ' ') [[ -n $kind ]] && COMP_WORDS+=(\"$w\"); w=''; kind='' ;;\n"
                       "    [@\\>\\<=\\;\\|\\&\\(:]) [[ $kind == t ]] && { COMP_WORDS+=(\"$w\"); w=''; }; w+=$c; kind=b ;;\n"
                       "    *) [[ $kind == b ]] && { COMP_WORDS+=(\"$w\"); w=''; }; w+=$c; kind=t\n"
                       "       [[ $c == [\\'\\\"] ]] && q=$c ;;\n"
                       "  esac\n"
                       "done\n"
                       "COMP_WORDS+=(\"$w\")\n"
                       "COMP_WORDS[0]=\"$ESCTL\"\n"
                       "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n"
                       "COMP_LINE=$ESCTL${LINE#esctl}; COMP_POINT=${#COMP_LINE}\n"
                       "_esctl esctl \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"\n"
                       "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
  RunOptions o;
  o.env["LINE"] = line;
  if (!store.empty()) o.env["ESCTL_STORE"] = store;
  auto r = sh("exec bash -c '" + std::regex_replace(script, std::regex("'"), "'\\''") + "'", o);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return lines(r.out);
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_SUITE("cli/docs" * store_free()) {
  TEST_CASE("every command has a man page that documents every option its --help lists") {
    auto cmds = all_commands();
    REQUIRE(cmds.size() >= 11);
    for (const auto& c : cmds) {
      auto args = c.argv();
      args.push_back("--help");
      auto help = run(args);
      REQUIRE_MESSAGE(help.status == 0, c.label());
      std::string page = read_file(c.page());
      CHECK_MESSAGE(!page.empty(), "missing man page " << c.page());
      for (const auto& o : help_options(help.out))
        CHECK_MESSAGE(page.find(roff_option(o)) != std::string::npos,
                      "man page of '" << c.label() << "' lacks " << o);
    }
    auto main_page = read_file(kSrc + "/man/esctl.1");
    for (const auto& o : help_options(run({"--help"}).out))
      CHECK_MESSAGE(main_page.find(roff_option(o)) != std::string::npos, "esctl(1) lacks " << o);
    CHECK(!read_file(kSrc + "/man/esctl-projection.5").empty());
  }

  TEST_CASE("man pages render without warnings") {
    auto r = sh("command -v groff >/dev/null || exit 77; for f in '" + kSrc +
                             "'/man/*.[15]; do groff -man -ww -z \"$f\" 2>&1 || exit 1; done");
    if (r.status == 77) return;  // groff not installed: nothing to check here
    CHECK_MESSAGE(r.status == 0, r.out << r.err);
    CHECK_MESSAGE(r.out.empty(), r.out);
  }

  TEST_CASE("bash completion offers every command, queue subcommand and option") {
    auto cmds = all_commands();
    auto top = bash_complete("esctl ");
    for (const auto& c : cmds) {
      if (c.sub.empty()) CHECK_MESSAGE(has(top, c.name), "bash does not complete command " << c.name);
    }
    auto subs = bash_complete("esctl queue ");
    for (const auto& c : cmds)
      if (!c.sub.empty()) CHECK_MESSAGE(has(subs, c.sub), "bash does not complete queue " << c.sub);
    for (const auto& c : cmds) {
      auto args = c.argv();
      args.push_back("--help");
      auto offered = bash_complete("esctl " + c.label() + " -");
      for (const auto& o : help_options(run(args).out))
        CHECK_MESSAGE(has(offered, o), "bash does not offer " << o << " for '" << c.label() << "'");
      for (const auto& g : {"--store", "--json", "--quiet", "--color", "--busy-timeout"})
        CHECK_MESSAGE(has(offered, g), "bash does not offer global " << g << " after '" << c.label() << "'");
    }
  }

  TEST_CASE("bash completes option values and names read from the store") {
    TempDir dir;
    std::string store = dir / "s.db";
    REQUIRE(run({"--store", store, "append", "order-1", "Placed"}).status == 0);
    REQUIRE(run({"--store", store, "append", "orbit-9", "Launched"}).status == 0);
    auto expect = bash_complete("esctl append s T --expect ");
    CHECK(has(expect, "any"));
    CHECK(has(expect, "none"));
    CHECK(has(expect, "exists"));
    auto color = bash_complete("esctl --color a");
    CHECK(color == std::vector<std::string>{"auto", "always"});
    auto streams = bash_complete("esctl --store " + store + " read or");
    CHECK(has(streams, "order-1"));
    CHECK(has(streams, "orbit-9"));
    auto env_streams = bash_complete("esctl read orb", store);
    CHECK(env_streams == std::vector<std::string>{"orbit-9"});
    // Queue names, once queues exist.
    if (run({"--store", store, "queue", "create", "billing", "--from", "start"}).status == 0) {
      auto queues = bash_complete("esctl --store " + store + " queue status b");
      CHECK(queues == std::vector<std::string>{"billing"});
    }
  }

  TEST_CASE("zsh and fish completion scripts parse, and fish offers every option") {
    auto z = sh("command -v zsh >/dev/null || exit 77; zsh -n '" + kSrc + "/completions/_esctl'");
    if (z.status != 77) CHECK_MESSAGE(z.status == 0, z.err);
    auto f = sh("command -v fish >/dev/null || exit 77; fish -n '" + kSrc + "/completions/esctl.fish'");
    if (f.status == 77) return;
    CHECK_MESSAGE(f.status == 0, f.err);
    for (const auto& c : all_commands()) {
      auto args = c.argv();
      args.push_back("--help");
      RunOptions o;
      o.env["LINE"] = "esctl " + c.label() + " -";
      auto r = sh("fish --no-config -c \"source '" + kSrc +
                                   "/completions/esctl.fish'; complete -C \\\"$LINE\\\"\"",
                               o);
      REQUIRE_MESSAGE(r.status == 0, r.err);
      std::vector<std::string> offered;
      for (const auto& l : lines(r.out)) offered.push_back(l.substr(0, l.find('\t')));
      for (const auto& opt : help_options(run(args).out))
        CHECK_MESSAGE(has(offered, opt), "fish does not offer " << opt << " for '" << c.label() << "'");
    }
  }

  TEST_CASE("cmake --install puts binary, man pages and completions in their standard places") {
    TempDir dir;
    auto r = sh("cmake --install \"$(dirname \"$ESCTL\")\" --prefix '" + dir.path() + "' >/dev/null");
    REQUIRE_MESSAGE(r.status == 0, r.err);
    for (const auto& f : {"bin/esctl", "share/man/man1/esctl.1", "share/man/man1/esctl-queue.1",
                          "share/man/man5/esctl-projection.5", "share/bash-completion/completions/esctl",
                          "share/zsh/site-functions/_esctl", "share/fish/vendor_completions.d/esctl.fish"})
      CHECK_MESSAGE(!read_file(dir / f).empty(), "not installed: " << f);
    for (const auto& c : all_commands())
      if (c.sub.empty()) CHECK_MESSAGE(!read_file(dir / ("share/man/man1/esctl-" + c.name + ".1")).empty(), c.name);
    auto v = sh("'" + dir.path() + "/bin/esctl' --version");
    CHECK(v.out.find("SQLite") != std::string::npos);
    // The installed binary works on its own (README's install step: a prefix such as ~/.local).
    auto init = sh("cd '" + dir.path() + "' && bin/esctl init && bin/esctl append order-1 Placed && bin/esctl streams");
    CHECK_MESSAGE(init.status == 0, init.err);
    CHECK(init.out.find("order-1") != std::string::npos);
    // man finds the pages under the prefix, as the README's `man 5 esctl-projection` needs.
    auto man = sh("command -v man >/dev/null || exit 77; man -M '" + dir.path() +
                  "/share/man' -w 5 esctl-projection && man -M '" + dir.path() + "/share/man' -w esctl-queue");
    if (man.status != 77) {
      CHECK_MESSAGE(man.status == 0, man.err);
      CHECK(man.out.find(dir.path() + "/share/man/man5/esctl-projection.5") != std::string::npos);
      CHECK(man.out.find(dir.path() + "/share/man/man1/esctl-queue.1") != std::string::npos);
    }
  }

  TEST_CASE("no test case name has a semicolon, which CTest would split into names that match nothing") {
    // doctest_discover_tests registers each case by name as a CMake list item: "a; b" would
    // become two CTest tests that each run zero cases and pass.
    const std::regex named(R"re(TEST_CASE\("([^"]*)"\))re");
    int cases = 0;
    for (const auto& f : std::filesystem::recursive_directory_iterator(kSrc + "/tests")) {
      if (f.path().extension() != ".cpp") continue;
      std::string text = read_file(f.path().string());
      for (std::sregex_iterator m(text.begin(), text.end(), named), end; m != end; ++m) {
        ++cases;
        CHECK_MESSAGE((*m)[1].str().find(';') == std::string::npos, f.path().filename().string(), ": ", (*m)[1].str());
      }
    }
    CHECK(cases > 100);
  }
}

// Runs on both backends: on the PostgreSQL pass the store is a URI (postgresql://user@/db?host=DIR),
// whose `:`, `@` and `=` bash splits into separate completion words; zsh and fish get the same
// store names to hand to `esctl __complete`.
TEST_SUITE("cli/completion") {
  TEST_CASE("bash completes names of a store named with colon, at and equals signs: --store X, --store=X, quoted, ESCTL_STORE") {
    using Names = std::vector<std::string>;
    TempDir dir;
    const std::string store = store_location(dir / "x:y@z=w.db");  // a file name with the same breaks on SQLite
    REQUIRE(run({"--store", store, "append", "order-1", "Placed"}).status == 0);
    REQUIRE(run({"--store", store, "append", "orbit-9", "Launched"}).status == 0);
    REQUIRE(run({"--store", store, "queue", "create", "billing", "--from", "start"}).status == 0);
    CHECK(bash_complete("esctl --store " + store + " read orb") == Names{"orbit-9"});
    CHECK(bash_complete("esctl --store=" + store + " queue status b") == Names{"billing"});
    CHECK(bash_complete("esctl --store '" + store + "' --busy-timeout=5s queue status ") == Names{"billing"});
    CHECK(bash_complete("esctl -q --store " + store + " verify --stream orb") == Names{"orbit-9"});
    CHECK(bash_complete("esctl read orb", store) == Names{"orbit-9"});  // $ESCTL_STORE
    CHECK(bash_complete("esctl queue status b", store) == Names{"billing"});
  }

  TEST_CASE("zsh and fish complete names of a store named with colon, at and equals signs: --store X, --store=X, quoted") {
    using Names = std::vector<std::string>;
    TempDir dir;
    const std::string store = store_location(dir / "x:y@z=w.db");
    REQUIRE(run({"--store", store, "append", "orbit-9", "Launched"}).status == 0);
    REQUIRE(run({"--store", store, "queue", "create", "billing", "--from", "start"}).status == 0);
    RunOptions o;  // the shells find the binary under test as `esctl` on PATH
    const std::string on_path = "PATH=\"$(dirname \"$ESCTL\"):$PATH\"; ";
    // zsh: the completion file's functions, with the completion system's builtins replaced by
    // stand-ins that print the candidates; `words` split as zsh splits a command line.
    const std::string zsh_names = "eval \"$(sed '$d' '" + kSrc + "/completions/_esctl')\"\n"
                                  "_call_program() { shift; eval \"$@\"; }\n"
                                  "_wanted() { shift 3; \"$@\"; }\n"
                                  "compadd() { while [[ $1 == -* ]]; do [[ $1 == - ]] && { shift; break }; shift; done\n"
                                  "  local a; for a; print -rl -- ${(P)a}; }\n"
                                  "words=(${(z)LINE}); CURRENT=${#words}; PREFIX=$words[CURRENT]; _esctl_bin=$words[1]\n"
                                  "local -a reply _esctl_store; _esctl_store_opt; _esctl_store=($reply)\n"
                                  "$FN\n";
    auto zsh = [&](const std::string& line, const std::string& fn) {
      o.env["LINE"] = line;
      o.env["FN"] = fn;
      o.input = zsh_names;
      auto r = sh(on_path + "exec zsh -f /dev/stdin", o);
      REQUIRE_MESSAGE(r.status == 0, r.err);
      return lines(r.out);
    };
    auto fish = [&](const std::string& line) {
      o.env["LINE"] = line;
      o.input.clear();
      auto r = sh(on_path + "fish --no-config -c \"source '" + kSrc +
                      "/completions/esctl.fish'; complete -C \\\"$LINE\\\"\"",
                  o);
      REQUIRE_MESSAGE(r.status == 0, r.err);
      Names out;
      for (const auto& l : lines(r.out)) out.push_back(l.substr(0, l.find('\t')));
      return out;
    };
    const bool have_zsh = sh("command -v zsh").status == 0, have_fish = sh("command -v fish").status == 0;
    if (have_zsh) {
      CHECK(zsh("esctl --store " + store + " read orb", "_esctl_streams") == Names{"orbit-9"});
      CHECK(zsh("esctl --store='" + store + "' read orb", "_esctl_streams") == Names{"orbit-9"});
      CHECK(zsh("esctl --store=" + store + " queue status b", "_esctl_queues") == Names{"billing"});
    }
    if (have_fish) {
      CHECK(fish("esctl --store " + store + " read orb") == Names{"orbit-9"});
      CHECK(fish("esctl --store=" + store + " queue status b") == Names{"billing"});
      CHECK(fish("esctl --store '" + store + "' queue status b") == Names{"billing"});
    }
  }
}
