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
#include <sstream>
#include <stdexcept>

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
  for (const auto& [k, v] : opt.env) env.push_back(k + "=" + v);
  return env;
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

Result run(const std::vector<std::string>& args, const RunOptions& opt) {
  std::vector<std::string> argv{bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_argv(argv, opt);
}

Result sh(const std::string& script, const RunOptions& opt) {
  RunOptions o = opt;
  o.env["ESCTL"] = bin();
  return run_argv({"/bin/sh", "-c", script}, o);
}

int spawn(const std::vector<std::string>& args, const std::string& out_file, const std::string& err_file,
          const RunOptions& opt) {
  std::vector<std::string> argv{bin()};
  argv.insert(argv.end(), args.begin(), args.end());
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

void check_sound(const std::string& store) {
  auto v = run({"--store", store, "verify"});
  CHECK_MESSAGE(v.status == 0, store, ": ", v.out, v.err);
  // The store path goes through the environment, so no quoting can go wrong.
  auto ic = sh("sqlite3 \"$STORE\" 'PRAGMA integrity_check'", RunOptions{"", {{"STORE", store}}, ""});
  CHECK_MESSAGE(ic.out == "ok\n", store, ": ", ic.out, ic.err);
}

}  // namespace esctl::test
