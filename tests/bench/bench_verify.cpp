// Benchmark for `esctl verify`: builds a store of N events (default 1M) over 10k interleaved
// streams with ~200-byte JSON payloads, then times `esctl verify` (wall clock, peak RSS from
// wait4) next to raw SQLite doing the floor of the same work in the same run: PRAGMA quick_check
// and one full scan of the events table. Warm page cache for all. Not a test; never run in CI.
//
//   bench_verify [EVENTS] [DIR]     (DIR defaults to $TMPDIR or /tmp; the store is removed after)
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "store/store.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void build(const std::string& path, std::int64_t events, int streams) {
  esctl::Store store(esctl::StoreOptions{path, 5000}, esctl::Access::write);
  const std::int64_t batch = 50000;
  std::vector<esctl::NewEvent> b;
  b.reserve(batch);
  for (std::int64_t i = 0; i < events;) {
    b.clear();
    for (std::int64_t k = 0; k < batch && i < events; ++k, ++i) {
      esctl::NewEvent e;
      e.stream = fmt::format("order-{}", i % streams);
      e.type = "OrderLineAdded";
      e.data = fmt::format(
          "{{\"order\":{},\"line\":{},\"sku\":\"SKU-{:08d}\",\"qty\":{},\"price\":{}.{:02d},\"currency\":\"EUR\","
          "\"note\":\"benchmark payload of roughly two hundred bytes, padded out to size\",\"tags\":[\"a\",\"b\"]}}",
          i % streams, i / streams, (i * 7919) % 100000000, 1 + i % 9, i % 500, i % 100);
      e.meta = "{\"by\":\"bench\"}";
      b.push_back(std::move(e));
    }
    store.append(b);
  }
}

struct Proc {
  double seconds;
  double cpu_seconds;  // user + system: less sensitive than wall time to a busy machine
  long max_rss_kb;
  int status;
};

double cpu_of(const rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

Proc run(const std::vector<std::string>& args) {
  std::fflush(stdout);  // the child must not inherit (and print again) what is buffered
  auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::freopen("/dev/null", "w", stdout);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int st = 0;
  rusage ru{};
  wait4(pid, &st, 0, &ru);
  return Proc{seconds_since(t0), cpu_of(ru), ru.ru_maxrss, WIFEXITED(st) ? WEXITSTATUS(st) : 128};
}

double raw_quick_check(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  auto t0 = Clock::now();
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, nullptr);
  std::string result;
  while (sqlite3_step(s) == SQLITE_ROW) result = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  double t = seconds_since(t0);
  sqlite3_close(db);
  if (result != "ok") fmt::print(stderr, "quick_check: {}\n", result);
  return t;
}

double raw_scan(const std::string& path, std::int64_t& rows) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  auto t0 = Clock::now();
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT position, stream_id, version, prev, id, data, meta, recorded_at FROM events ORDER BY position",
                     -1, &s, nullptr);
  std::int64_t bytes = 0;
  rows = 0;
  while (sqlite3_step(s) == SQLITE_ROW) {
    bytes += sqlite3_column_bytes(s, 4) + sqlite3_column_bytes(s, 5) + sqlite3_column_bytes(s, 6) + sqlite3_column_int64(s, 3);
    ++rows;
  }
  sqlite3_finalize(s);
  double t = seconds_since(t0);
  sqlite3_close(db);
  if (bytes == 42) std::puts("");  // keep the work observable
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t events = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = argc > 2 ? argv[2] : (tmp && *tmp ? tmp : "/tmp");
  std::string path = dir + fmt::format("/esctl-bench-verify-{}.db", ::getpid());
  const int streams = 10000, reps = 3;

  auto t0 = Clock::now();
  build(path, events, streams);
  double build_s = seconds_since(t0);
  auto size = std::filesystem::file_size(path);
  fmt::print("store: {} events, {} streams, {:.1f} MB, built in {:.1f} s ({:.0f} events/s)\n", events, streams,
             static_cast<double>(size) / 1e6, build_s, static_cast<double>(events) / build_s);

  std::int64_t rows = 0;
  raw_scan(path, rows);  // warm the page cache
  std::vector<double> qc, scan, verify, verify_cpu, full;
  long rss = 0, full_rss = 0;
  for (int i = 0; i < reps; ++i) {
    qc.push_back(raw_quick_check(path));
    scan.push_back(raw_scan(path, rows));
    auto v = run({ESCTL_BIN, "--store", path, "verify"});
    if (v.status != 0) fmt::print(stderr, "esctl verify exited {}\n", v.status);
    verify.push_back(v.seconds);
    verify_cpu.push_back(v.cpu_seconds);
    rss = std::max(rss, v.max_rss_kb);
  }
  auto f = run({ESCTL_BIN, "--store", path, "verify", "--full"});
  full.push_back(f.seconds);
  full_rss = f.max_rss_kb;

  double base = median(qc) + median(scan);
  fmt::print("baseline  PRAGMA quick_check          {:7.3f} s (median of {})\n", median(qc), reps);
  fmt::print("baseline  full scan of events          {:7.3f} s ({} rows)\n", median(scan), rows);
  fmt::print("baseline  sum                          {:7.3f} s\n", base);
  fmt::print("esctl verify                           {:7.3f} s (median of {}), {:.2f}x baseline, {:.0f} events/s, "
             "{:.3f} s CPU, peak RSS {:.1f} MB\n",
             median(verify), reps, median(verify) / base, static_cast<double>(events) / median(verify),
             median(verify_cpu), static_cast<double>(rss) / 1024.0);
  fmt::print("esctl verify --full (integrity_check)  {:7.3f} s, {:.3f} s CPU, peak RSS {:.1f} MB\n", full[0],
             f.cpu_seconds, static_cast<double>(full_rss) / 1024.0);
  fmt::print("targets: verify <= 5 s: {}; peak RSS <= 64 MB: {}\n", median(verify) <= 5.0 ? "met" : "MISSED",
             rss <= 64 * 1024 ? "met" : "MISSED");
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  return 0;
}
