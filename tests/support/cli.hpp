// Running the built esctl binary in tests: arguments, stdin, environment, captured stdout,
// stderr and exit status; plus a scratch directory per test that is removed afterwards.
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace esctl::test {

struct Result {
  int status = -1;  ///< exit code, or 128+signal if killed
  std::string out, err;
};

struct RunOptions {
  std::string input;                        ///< fed to stdin (then closed)
  std::map<std::string, std::string> env;   ///< added to the environment
  std::string cwd;                          ///< working directory (default: unchanged)
};

/// Runs `esctl ARGS...` (the binary under test) and waits for it.
Result run(const std::vector<std::string>& args, const RunOptions& opt = {});
/// Runs `/bin/sh -c script` with ESCTL on PATH-like variable $ESCTL set to the binary.
Result sh(const std::string& script, const RunOptions& opt = {});
/// Starts `esctl ARGS...` without waiting; returns its pid (stdout/stderr to the given files).
int spawn(const std::vector<std::string>& args, const std::string& out_file, const std::string& err_file = "/dev/null",
          const RunOptions& opt = {});
/// Waits for a spawned pid; returns its status as in Result.
int wait_for(int pid);

/// The path of the esctl binary under test.
std::string bin();

/// True when the tests run against PostgreSQL stores: ESCTL_TEST_BACKEND=postgres, with the
/// throwaway server of ESCTL_TEST_PG (tests/support/pg_cluster.sh), or ESCTL_TEST_BACKEND set
/// to that server's URI. Then every store location
/// a test hands esctl (`--store PATH`, `--store=PATH`, $ESCTL_STORE) is replaced by the URI
/// of a database of its own (one per PATH, created on first use, dropped with the TempDir that
/// holds PATH), so the same tests run against both backends. Tests about files (WAL, modes,
/// foreign files) check this and run on SQLite only.
bool postgres_backend();
/// The location esctl is given for the store `path`: `path`, or its database's URI.
std::string store_location(const std::string& path);

/// Backend decorators: the one place that says which tests a backend leaves out, on a test
/// (`TEST_CASE("..." * sqlite_only())`) or a whole `TEST_SUITE`. doctest skips what they
/// mark, and a test program asked to run only such tests exits 77 (CTest: skipped).
/// sqlite_only(): the test is about SQLite files (WAL, file modes and locks, foreign or
/// damaged files, sqlite3 edits, schema upgrades of old files); skipped on PostgreSQL.
doctest::skip sqlite_only();
/// store_free(): the test runs no store at all (docs, layering, --help); it runs in the SQLite
/// pass only, since a second backend would run the very same thing again.
doctest::skip store_free();

/// A fresh temporary directory, removed (recursively) when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Lines of `text` (without newlines; no trailing empty line).
std::vector<std::string> lines(const std::string& text);
/// SHA-256 of a file via sha256sum (for "unchanged" checks).
std::string file_hash(const std::string& path);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);
/// Each line of `text` parsed as JSON (NDJSON output).
std::vector<nlohmann::json> parse_lines(const std::string& text);
/// Every event of `store` as JSON objects (`read --all --json`); REQUIREs that the read works.
std::vector<nlohmann::json> all_events(const std::string& store);
inline bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }
/// After an attack: `esctl verify` passes and SQLite's integrity_check says ok (doctest CHECKs;
/// on PostgreSQL stores only the first).
void check_sound(const std::string& store);

}  // namespace esctl::test
