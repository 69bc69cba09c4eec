#include "support/cli.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "store/location.hpp"
#include "store/postgres/pg.hpp"
#include "support/pg_db.hpp"

extern char** environ;

namespace esctl::test {
namespace {

std::vector<std::string> environment(const RunOptions& opt) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    auto key = kv.substr(0, kv.find('='));
    if (opt.env.count(key) || key == "ESCTL_STORE" || key == "NO_COLOR") continue;
    env.push_back(kv);
  }
  for (const auto& [k, v] : opt.env) env.push_back(k + "=" + (k == "ESCTL_STORE" ? store_location(v) : v));
  return env;
}

// The databases made for store paths (PostgreSQL backend), by path; dropped by ~TempDir.
std::map<std::string, std::string>& store_databases() {
  static std::map<std::string, std::string> dbs;
  return dbs;
}

// `argv` with every store location replaced by store_location().
std::vector<std::string> with_store_locations(std::vector<std::string> argv) {
  if (!postgres_backend()) return argv;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--store" && i + 1 < argv.size()) argv[i + 1] = store_location(argv[i + 1]);
    else if (argv[i].rfind("--store=", 0) == 0) argv[i] = "--store=" + store_location(argv[i].substr(8));
  }
  return argv;
}

/// Spawn attributes that start a program as a user's shell does: every signal at its default
/// disposition (this test process ignores SIGPIPE, and an ignored signal survives exec) and
/// none blocked.
struct ShellLikeSignals {
  posix_spawnattr_t attr;
  ShellLikeSignals() {
    posix_spawnattr_init(&attr);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  }
  ~ShellLikeSignals() { posix_spawnattr_destroy(&attr); }
};

std::vector<char*> cstrs(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

Result run_argv(std::vector<std::string> argv, const RunOptions& opt) {
  int in[2], out[2], err[2];
  if (pipe(in) || pipe(out) || pipe(err)) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) posix_spawn_file_actions_addclose(&fa, fd);
  if (!opt.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, opt.cwd.c_str());
  auto env = environment(opt);
  auto envp = cstrs(env);
  auto args = cstrs(argv);
  pid_t pid;
  ShellLikeSignals sigs;
  int rc = posix_spawn(&pid, args[0], &fa, &sigs.attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) throw std::runtime_error("spawn failed: " + argv[0]);
  Result r;
  // Feed stdin and drain both outputs together so no pipe ever fills up and deadlocks.
  std::size_t fed = 0;
  if (opt.input.empty()) close(in[1]);
  signal(SIGPIPE, SIG_IGN);
  bool out_open = true, err_open = true, in_open = !opt.input.empty();
  while (out_open || err_open) {
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out[0], POLLIN, 0};
    if (err_open) fds[n++] = {err[0], POLLIN, 0};
    if (in_open) fds[n++] = {in[1], POLLOUT, 0};
    if (poll(fds, static_cast<nfds_t>(n), -1) < 0) continue;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == in[1]) {
        ssize_t w = write(in[1], opt.input.data() + fed, std::min<std::size_t>(65536, opt.input.size() - fed));
        if (w > 0) fed += static_cast<std::size_t>(w);
        if (w < 0 || fed == opt.input.size()) {
          close(in[1]);
          in_open = false;
        }
        continue;
      }
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      auto& sink = fds[i].fd == out[0] ? r.out : r.err;
      if (got > 0) sink.append(buf, static_cast<std::size_t>(got));
      else {
        close(fds[i].fd);
        (fds[i].fd == out[0] ? out_open : err_open) = false;
      }
    }
  }
  if (in_open) close(in[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.status = decode(status);
  return r;
}

}  // namespace

// ESCTL_TEST_BIN runs the tests against another build (e.g. the previous release, to see a new
// test fail on the old code).
std::string bin() {
  const char* other = std::getenv("ESCTL_TEST_BIN");
  return other && *other ? other : ESCTL_BIN;
}

bool postgres_backend() {
  static const bool on = [] {
    const char* b = std::getenv("ESCTL_TEST_BACKEND");
    if (!b || !*b || std::string_view(b) == "sqlite") return false;
    if (std::string_view(b) != "postgres" && !is_postgres_uri(b))
      throw std::runtime_error("ESCTL_TEST_BACKEND must be sqlite or postgres, not " + std::string(b));
    if (pg_server_uri().empty())
      throw std::runtime_error("ESCTL_TEST_BACKEND=postgres needs ESCTL_TEST_PG (the URI of the test server)");
    return true;
  }();
  return on;
}

doctest::skip sqlite_only() { return doctest::skip(postgres_backend()); }

doctest::skip store_free() { return doctest::skip(postgres_backend()); }

std::string store_location(const std::string& path) {
  if (!postgres_backend() || path.empty() || is_postgres_uri(path)) return path;
  const std::string key = std::filesystem::absolute(path).lexically_normal().string();
  auto& dbs = store_databases();
  auto it = dbs.find(key);
  if (it == dbs.end()) {
    std::uint64_t h = 14695981039346656037ull;  // FNV-1a of the path: one database per path
    for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
    char name[40];
    std::snprintf(name, sizeof name, "esctl_c_%d_%016llx", static_cast<int>(getpid()), static_cast<unsigned long long>(h));
    pg::Conn admin(pg_server_uri(), 10000);
    admin.exec_script((std::string("CREATE DATABASE ") + name).c_str());
    it = dbs.emplace(key, name).first;
  }
  const std::string server = pg_server_uri();
  const auto at = server.find("/postgres");
  return server.substr(0, at) + "/" + it->second + server.substr(at + 9);
}

Result run(const std::vector<std::string>& args, const RunOptions& opt) {
  std::vector<std::string> argv{bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_argv(with_store_locations(std::move(argv)), opt);
}

Result sh(const std::string& script, const RunOptions& opt) {
  RunOptions o = opt;
  o.env["ESCTL"] = bin();
  // Store paths handed over in variables (`--store "$STORE"`) are mapped as well.
  if (postgres_backend())
    for (auto& [key, value] : o.env)
      if (key != "ESCTL_STORE" && !value.empty() && !is_postgres_uri(value) &&
          store_databases().count(std::filesystem::absolute(value).lexically_normal().string()))
        value = store_location(value);
  // PostgreSQL backend: the store paths the script names are replaced by their databases' URIs:
  // those after --store (quoted or not), and any that esctl was already given.
  std::string text = script;
  if (postgres_backend()) {
    static const std::regex store_opt(R"re((--store(?:=|\s+))(?:'([^']*)'|"([^"$`\\]*)"|([^\s'";|&()<>$`]+)))re");
    std::string mapped;
    auto from = text.cbegin();
    for (std::sregex_iterator it(text.begin(), text.end(), store_opt), end; it != end; ++it) {
      const auto& m = *it;
      const std::string path = m[2].matched ? m[2].str() : m[3].matched ? m[3].str() : m[4].str();
      mapped.append(from, m[0].first).append(m[1].str());
      mapped += is_postgres_uri(path) || path.empty() ? m[0].str().substr(m[1].length()) : "'" + store_location(path) + "'";
      from = m[0].second;
    }
    mapped.append(from, text.cend());
    text = mapped;
  }
  if (postgres_backend())
    for (const auto& [path, db] : store_databases())
      for (std::size_t at = 0; (at = text.find(path, at)) != std::string::npos;) {
        const std::string uri = store_location(path);
        text.replace(at, path.size(), uri);
        at += uri.size();
      }
  return run_argv({"/bin/sh", "-c", text}, o);
}

int spawn(const std::vector<std::string>& args, const std::string& out_file, const std::string& err_file,
          const RunOptions& opt) {
  std::vector<std::string> argv{bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  argv = with_store_locations(std::move(argv));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!opt.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, opt.cwd.c_str());
  auto env = environment(opt);
  auto envp = cstrs(env);
  auto a = cstrs(argv);
  pid_t pid;
  ShellLikeSignals sigs;
  int rc = posix_spawn(&pid, a[0], &fa, &sigs.attr, a.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("spawn failed");
  return pid;
}

int wait_for(int pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return decode(status);
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "esctl-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  auto& dbs = store_databases();
  const std::string inside = std::filesystem::path(path_).lexically_normal().string() + "/";
  for (auto it = dbs.lower_bound(inside); it != dbs.end() && it->first.rfind(inside, 0) == 0;) {
    try {
      pg::Conn admin(pg_server_uri(), 10000);
      admin.exec_script(("DROP DATABASE IF EXISTS " + it->second + " WITH (FORCE)").c_str());
    } catch (...) {
    }
    it = dbs.erase(it);
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary);
  f << content;
}

std::string file_hash(const std::string& path) {
  auto r = run_argv({"/usr/bin/sha256sum", path}, {});
  return r.out.substr(0, 64);
}

std::vector<nlohmann::json> parse_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  for (const auto& l : lines(text)) out.push_back(nlohmann::json::parse(l));
  return out;
}

std::vector<nlohmann::json> all_events(const std::string& store) {
  auto r = run({"--store", store, "--json", "read", "--all"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return parse_lines(r.out);
}

void check_sound(const std::string& store) {
  auto v = run({"--store", store, "verify"});
  CHECK_MESSAGE(v.status == 0, store, ": ", v.out, v.err);
  if (postgres_backend()) return;
  // The store path goes through the environment, so no quoting can go wrong.
  auto ic = sh("sqlite3 \"$STORE\" 'PRAGMA integrity_check'", RunOptions{"", {{"STORE", store}}, ""});
  CHECK_MESSAGE(ic.out == "ok\n", store, ": ", ic.out, ic.err);
}

}  // namespace esctl::test
