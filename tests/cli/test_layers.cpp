// The layering, checked on the sources (every library shares one include root, so the compiler
// alone would let a header-only include cross a layer): who may include whom, and that the
// backend-neutral store holds no SQL. ARCHITECTURE.md draws the same picture.
#include <doctest/doctest.h>

#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "support/cli.hpp"

using namespace esctl::test;
namespace fs = std::filesystem;

namespace {

const std::string kSrc = ESCTL_SOURCE_DIR;

struct Include {
  std::string file;    // relative to the source root
  std::string target;  // as written: "store/store.hpp", "sqlite3.h"
};

// The quoted and angled includes of the .cpp/.hpp files directly in `dir` (relative).
std::vector<Include> includes_in(const std::string& dir) {
  std::vector<Include> out;
  const std::regex inc(R"re(^\s*#\s*include\s*[<"]([^>"]+)[>"])re");
  for (const auto& f : fs::directory_iterator(kSrc + "/" + dir)) {
    const auto ext = f.path().extension();
    if (!f.is_regular_file() || (ext != ".cpp" && ext != ".hpp")) continue;
    const std::string rel = dir + "/" + f.path().filename().string();
    for (const auto& line : lines(read_file(f.path().string()))) {
      std::smatch m;
      if (std::regex_search(line, m, inc)) out.push_back({rel, m[1].str()});
    }
  }
  return out;
}

bool starts(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// The project's own headers are named by their folder ("store/..."); anything else is a system
// or third-party header, allowed unless listed in `banned`.
void check_layer(const std::string& dir, const std::vector<std::string>& allowed, const std::set<std::string>& banned = {},
                 const std::set<std::string>& exempt = {}) {
  const std::vector<std::string> ours = {"core/", "store/", "render/", "drain/", "projection/", "commands/"};
  int seen = 0;
  for (const auto& i : includes_in(dir)) {
    ++seen;
    if (exempt.count(i.file)) continue;
    CHECK_MESSAGE(banned.count(i.target) == 0, i.file, " includes ", i.target);
    bool own = false;
    for (const auto& p : ours) own = own || starts(i.target, p);
    if (!own) continue;
    bool ok = false;
    for (const auto& a : allowed) ok = ok || starts(i.target, a);
    CHECK_MESSAGE(ok, i.file, " includes ", i.target, ", across the layering");
  }
  CHECK_MESSAGE(seen > 0, dir, " has no includes: moved?");
}

}  // namespace

TEST_SUITE("cli/layers" * store_free()) {
  TEST_CASE("core includes only core") { check_layer("src/core", {"core/"}); }

  TEST_CASE("render includes only core and render") { check_layer("src/render", {"core/", "render/"}); }

  TEST_CASE("the backend-neutral store includes no backend, and neither SQLite nor any layer above it") {
    // store.cpp is the one place that knows every backend (it opens the one a location names).
    // The queue algorithm (queue.cpp) reaches its rows through QueueRows (queue_rows.hpp) only.
    check_layer("src/store", {"core/", "store/"}, {"sqlite3.h"}, {"src/store/store.cpp"});
    for (const auto& i : includes_in("src/store"))
      if (i.file != "src/store/store.cpp")
        CHECK_MESSAGE((!starts(i.target, "store/sqlite/") && !starts(i.target, "store/postgres/")), i.file, " includes ",
                      i.target);
    for (const auto& i : includes_in("src/store"))
      if (i.file == "src/store/store.cpp") {
        const bool ok = !starts(i.target, "drain/") && !starts(i.target, "projection/") && i.target != "sqlite3.h";
        CHECK_MESSAGE(ok, i.file, " includes ", i.target);
      }
  }

  TEST_CASE("the backend-neutral store's headers hold no SQL") {
    const std::regex sql(R"re("\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|BEGIN|CREATE)\s)re");
    int files = 0;
    for (const auto& f : fs::directory_iterator(kSrc + "/src/store")) {
      if (!f.is_regular_file()) continue;
      const std::string name = f.path().filename().string();
      ++files;
      const std::string text = read_file(f.path().string());
      CHECK_MESSAGE(!std::regex_search(text, sql), "src/store/", name, " has SQL text");
    }
    CHECK(files > 4);
  }

  TEST_CASE("the SQLite backend includes only core, the store and itself") {
    check_layer("src/store/sqlite", {"core/", "store/"});
  }

  TEST_CASE("the PostgreSQL backend includes only core, the store and itself") {
    check_layer("src/store/postgres", {"core/", "store/"}, {"sqlite3.h"});
    for (const auto& i : includes_in("src/store/postgres"))
      CHECK_MESSAGE(!starts(i.target, "store/sqlite/"), i.file, " includes ", i.target);
  }

  TEST_CASE("the drain layer runs no SQL of its own: it includes no backend") {
    check_layer("src/drain", {"core/", "store/", "projection/", "drain/"}, {"sqlite3.h", "libpq-fe.h"});
    for (const auto& i : includes_in("src/drain"))
      CHECK_MESSAGE((!starts(i.target, "store/sqlite/") && !starts(i.target, "store/postgres/")), i.file, " includes ",
                    i.target);
  }

  TEST_CASE("the drain layer holds no SQL text") {
    const std::regex sql(R"re("\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|BEGIN|CREATE)\s)re");
    int files = 0;
    for (const auto& f : fs::directory_iterator(kSrc + "/src/drain")) {
      if (!f.is_regular_file()) continue;
      ++files;
      CHECK_MESSAGE(!std::regex_search(read_file(f.path().string()), sql), "src/drain/", f.path().filename().string(),
                    " has SQL text");
    }
    CHECK(files > 4);
  }

  TEST_CASE("process handling lives in the drain layer, not in the store") {
    const std::regex spawn(R"re(\b(posix_spawn\w*|waitpid|fork|pipe2)\s*\()re");
    for (const auto& f : fs::recursive_directory_iterator(kSrc + "/src/store")) {
      if (!f.is_regular_file()) continue;
      CHECK_MESSAGE(!std::regex_search(read_file(f.path().string()), spawn), f.path().string(), " handles processes");
    }
  }

  TEST_CASE("the public store has no accessor to a backend's connection") {
    for (const char* header : {"/src/store/store.hpp", "/src/store/backend.hpp", "/src/store/queue.hpp"}) {
      const std::string text = read_file(kSrc + header);
      CHECK_MESSAGE(!std::regex_search(text, std::regex(R"re(\bdb\s*\(\s*\))re")), header, " has a db() accessor");
      CHECK_MESSAGE(text.find("sqlite3") == std::string::npos, header, " names SQLite's API");
    }
  }

  TEST_CASE("projections use the store and, for their query dbs, only the SQLite connection wrapper") {
    check_layer("src/projection", {"core/", "store/", "projection/"});
    for (const auto& i : includes_in("src/projection"))
      if (starts(i.target, "store/sqlite/"))
        CHECK_MESSAGE(i.target == "store/sqlite/sqlite.hpp", i.file, " includes ", i.target);
  }

  TEST_CASE("commands reach the store through its neutral interface only") {
    check_layer("commands", {"core/", "store/", "render/", "drain/", "projection/", "commands/"}, {"sqlite3.h"});
    for (const auto& i : includes_in("commands"))
      CHECK_MESSAGE((!starts(i.target, "store/sqlite/") && !starts(i.target, "store/postgres/")), i.file, " includes ",
                    i.target);
  }

  TEST_CASE("every file and folder ARCHITECTURE.md names exists") {
    const std::string text = read_file(kSrc + "/ARCHITECTURE.md");
    const std::regex path(R"re(\b((?:src|commands|tests)/[A-Za-z0-9_./]*[A-Za-z0-9_/]))re");
    int named = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), path); it != std::sregex_iterator(); ++it) {
      std::string p = (*it)[1].str();
      if (p.find("NAME") != std::string::npos) continue;  // a placeholder: commands/NAME.cpp
      ++named;
      CHECK_MESSAGE(fs::exists(kSrc + "/" + p), "ARCHITECTURE.md names ", p, ", which does not exist");
    }
    CHECK(named > 20);
  }
}
