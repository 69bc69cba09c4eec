// Benchmark of `esctl --json tail -f --all`: commit -> line-printed latency (p50/p99) for commits
// made by another process, and the CPU an idle follower uses. Baseline, measured in the same
// run on the same commits: a raw SQLite reader polling `SELECT max(position)` every 10 ms (the
// naive way to follow), plus how long the append itself takes. Not a test; never run in CI.
//
// Usage: bench_tail [EVENTS=300] [IDLE_SECONDS=10]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "store/sqlite/event_store.hpp"
#include "store/store.hpp"

using Clock = std::chrono::steady_clock;
using esctl::Access;
using esctl::NewEvent;
using esctl::Store;
using esctl::StoreOptions;

namespace {

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Reader {
  const char* name;
  pid_t pid = -1;
  int fd = -1;  // its stdout
  std::string pending;
  std::size_t lines = 0;
  std::vector<double> latency_ms;
};

// Reads what is available; returns the number of complete lines seen so far.
std::size_t pump(Reader& r, int timeout_ms) {
  pollfd p{r.fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return r.lines;
  char buf[1 << 16];
  ssize_t n = ::read(r.fd, buf, sizeof buf);
  if (n > 0) {
    r.lines += static_cast<std::size_t>(std::count(buf, buf + n, '\n'));
  }
  return r.lines;
}

pid_t spawn_tail(const std::string& store, int& out_fd) {
  int p[2];
  if (::pipe(p) != 0) std::exit(1);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::close(p[0]);
    ::close(p[1]);
    ::execl(ESCTL_BIN, ESCTL_BIN, "--json", "--store", store.c_str(), "tail", "-f", "--all", "-n", "0", (char*)nullptr);
    _exit(127);
  }
  ::close(p[1]);
  out_fd = p[0];
  return pid;
}

// The naive follower: poll max(position) every 10 ms, print one line per new event.
[[noreturn]] void raw_poller(const std::string& store, int out) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(store.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) _exit(1);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT coalesce(max(position), 0) FROM events", -1, &s, nullptr);
  sqlite3_int64 last = -1;
  for (;;) {
    sqlite3_int64 head = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : last;
    sqlite3_reset(s);
    if (last >= 0)
      for (; last < head; ++last)
        if (::write(out, "x\n", 2) < 0) _exit(0);
    last = head;
    ::usleep(10000);
  }
}

pid_t spawn_raw(const std::string& store, int& out_fd) {
  int p[2];
  if (::pipe(p) != 0) std::exit(1);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    raw_poller(store, p[1]);
  }
  ::close(p[1]);
  out_fd = p[0];
  return pid;
}

// CPU time of a process: /proc/PID/schedstat (ns precision) where the kernel has it, else the
// utime+stime clock ticks of /proc/PID/stat.
double cpu_seconds(pid_t pid) {
  {
    std::ifstream sched(fmt::format("/proc/{}/schedstat", pid));
    double ns = 0;
    if (sched >> ns) return ns / 1e9;
  }
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream in(text.substr(text.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  const int events = argc > 1 ? std::atoi(argv[1]) : 300;
  const int idle_s = argc > 2 ? std::atoi(argv[2]) : 10;
  std::string dir = (std::filesystem::temp_directory_path() / "esctl-bench-tail-XXXXXX").string();
  if (!::mkdtemp(dir.data())) return 1;
  std::string store_path = dir + "/bench.db";
  ::signal(SIGPIPE, SIG_IGN);

  { Store init(StoreOptions{store_path, 5000}, Access::write); init.append({NewEvent{"warm-0", "Warm"}}); }
  Reader tail{"esctl tail -f"}, raw{"raw poll 10ms"};
  tail.pid = spawn_tail(store_path, tail.fd);
  raw.pid = spawn_raw(store_path, raw.fd);

  Store writer(StoreOptions{store_path, 5000}, Access::write);
  // Handshake: append until both followers print, so both are past their start-up.
  for (int i = 0; tail.lines == 0 || raw.lines == 0; ++i) {
    if (i > 100) {
      fmt::print(stderr, "followers did not start\n");
      return 1;
    }
    writer.append({NewEvent{"warm-0", "Warm"}});
    pump(tail, 200);
    pump(raw, 200);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  pump(tail, 0);
  pump(raw, 0);
  std::size_t base_tail = tail.lines, base_raw = raw.lines;
  // Drain stragglers from the handshake.
  for (int i = 0; i < 5; ++i) {
    base_tail = pump(tail, 50);
    base_raw = pump(raw, 50);
  }

  std::vector<double> append_ms;
  std::mt19937 rng(42);
  auto run_phase = [&](int n, int gap_min_ms, int gap_max_ms) {
    std::uniform_int_distribution<int> gap(gap_min_ms, gap_max_ms);
    for (int i = 0; i < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(gap(rng)));
      NewEvent e{fmt::format("bench-{}", i % 7), "Tick"};
      e.data = fmt::format("{{\"i\":{}}}", i);
      auto t0 = Clock::now();
      writer.append({e});
      auto committed = Clock::now();
      append_ms.push_back(ms(committed - t0));
      ++base_tail;
      ++base_raw;
      // Both readers are watched at once: read whichever has data first.
      bool tail_done = false, raw_done = false;
      auto deadline = committed + std::chrono::seconds(10);
      while ((!tail_done || !raw_done) && Clock::now() < deadline) {
        pollfd p[2] = {{tail.fd, POLLIN, 0}, {raw.fd, POLLIN, 0}};
        if (::poll(p, 2, 100) <= 0) continue;
        if (!tail_done && (p[0].revents & POLLIN) && pump(tail, 0) >= base_tail) {
          tail_done = true;
          tail.latency_ms.push_back(std::max(0.0, ms(Clock::now() - committed)));
        }
        if (!raw_done && (p[1].revents & POLLIN) && pump(raw, 0) >= base_raw) {
          raw_done = true;
          raw.latency_ms.push_back(std::max(0.0, ms(Clock::now() - committed)));
        }
      }
      if (!tail_done || !raw_done) {
        fmt::print(stderr, "event {} was not printed within 10 s\n", i);
        std::exit(1);
      }
    }
  };

  fmt::print("esctl tail -f benchmark: {} events, commits by another process (SQLite {}, synchronous=FULL)\n",
             events, esctl::sqlite::library_version());
  run_phase(events, 5, 30);
  auto busy_tail = tail.latency_ms, busy_raw = raw.latency_ms;
  tail.latency_ms.clear();
  raw.latency_ms.clear();
  const int sparse = std::max(5, events / 15);
  run_phase(sparse, 1100, 1500);  // after each gap the follower is back in its slow idle state

  auto row = [](const char* what, const std::vector<double>& v) {
    fmt::print("  {:<44} p50 {:7.2f} ms   p99 {:7.2f} ms   max {:7.2f} ms   (n={})\n", what, percentile(v, 0.5),
               percentile(v, 0.99), percentile(v, 1.0), v.size());
  };
  fmt::print("commit -> line read, commits 5-30 ms apart:\n");
  row("esctl tail -f", busy_tail);
  row("baseline: raw SQLite poll every 10 ms", busy_raw);
  fmt::print("commit -> line read, commits 1.1-1.5 s apart (idle follower wakes):\n");
  row("esctl tail -f", tail.latency_ms);
  row("baseline: raw SQLite poll every 10 ms", raw.latency_ms);
  fmt::print("for scale:\n");
  row("the append itself (library, one event, fsync)", append_ms);
  std::vector<double> all_tail = busy_tail;
  all_tail.insert(all_tail.end(), tail.latency_ms.begin(), tail.latency_ms.end());
  fmt::print("  esctl tail -f, all {} events: p50 {:.2f} ms, p99 {:.2f} ms (targets: 10 ms, 50 ms)\n", all_tail.size(),
             percentile(all_tail, 0.5), percentile(all_tail, 0.99));

  // Idle CPU: let the follower leave its post-write fast-check window first.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  double c_tail = cpu_seconds(tail.pid), c_raw = cpu_seconds(raw.pid);
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(idle_s));
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  double p_tail = 100.0 * (cpu_seconds(tail.pid) - c_tail) / wall;
  double p_raw = 100.0 * (cpu_seconds(raw.pid) - c_raw) / wall;
  fmt::print("idle CPU over {:.1f} s:\n", wall);
  fmt::print("  {:<44} {:6.3f} % of a core (target <= 1 %)\n", "esctl tail -f", p_tail);
  fmt::print("  {:<44} {:6.3f} % of a core\n", "baseline: raw SQLite poll every 10 ms", p_raw);

  ::kill(tail.pid, SIGINT);
  ::kill(raw.pid, SIGTERM);
  int st = 0;
  ::waitpid(tail.pid, &st, 0);
  fmt::print("esctl tail -f exit status after SIGINT: {}\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  ::waitpid(raw.pid, nullptr, 0);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
