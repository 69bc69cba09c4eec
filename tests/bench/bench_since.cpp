// Benchmark of `read --all --since`: finding the last few events by time on a large store.
// Compares, on the same store, the search over the time-ordered prefix against `read --all
// --from P` at a known position (the floor: one b-tree descent) and against the scan that the
// fallback does (the same store with its time_order row reset, as after an out-of-order import).
// Not a test; never run in CI.
//
// Usage: bench_since [EVENTS=2000000] [DIR=/tmp]
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/time.hpp"
#include "store/store.hpp"

using Clock = std::chrono::steady_clock;

namespace {

/// Runs esctl with `args`, stdout to /dev/null; returns wall milliseconds.
double time_run(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string bin = ESCTL_BIN;
  argv.push_back(bin.data());
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(stdout);  // or the child flushes our buffered lines too
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    std::freopen("/dev/null", "w", stdout);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fmt::print(stderr, "esctl failed: {}\n", fmt::join(args, " "));
    std::exit(1);
  }
  return ms;
}

double median_of(int runs, const std::vector<std::string>& args) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) v.push_back(time_run(args));
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t events = argc > 1 ? std::atoll(argv[1]) : 2000000;
  const std::string dir = argc > 2 ? argv[2] : "/tmp";
  const std::string path = dir + "/bench_since_" + std::to_string(::getpid()) + ".db";
  const std::int64_t base = esctl::now_us() - events * 1000;  // one event per ms, ending now

  {
    esctl::Store store(esctl::StoreOptions{path, 5000}, esctl::Access::write);
    auto t0 = Clock::now();
    std::vector<esctl::NewEvent> batch;
    for (std::int64_t i = 0; i < events; ++i) {
      esctl::NewEvent e;
      e.stream = fmt::format("order-{}", i % 10000);
      e.type = i % 3 ? "OrderUpdated" : "OrderPlaced";
      e.data = fmt::format(R"({{"customer":"c-{}","total":{},"items":[{{"sku":"A{}","qty":{}}}],"note":"{}"}})", i % 977,
                           i % 1000, i % 50, i % 7, std::string(100, 'x'));
      e.recorded_at = base + i * 1000;
      batch.push_back(std::move(e));
      if (batch.size() == 10000) {
        store.append(batch, {}, false);
        batch.clear();
      }
    }
    if (!batch.empty()) store.append(batch, {}, false);
    fmt::print("built {} events in {:.1f}s ({} MiB)\n", events,
               std::chrono::duration<double>(Clock::now() - t0).count(),
               std::filesystem::file_size(path) / (1 << 20));
  }

  const int runs = 5;
  const std::int64_t last = 5;
  std::string since = esctl::format_rfc3339(base + (events - last) * 1000);
  std::string from = std::to_string(events - last + 1);
  auto store_args = [&](std::vector<std::string> a) {
    a.insert(a.begin(), {"--store", path});
    return a;
  };
  double t_from = median_of(runs, store_args({"read", "--all", "--from", from}));
  double t_since = median_of(runs, store_args({"read", "--all", "--since", since}));
  double t_until = median_of(runs, store_args({"read", "--all", "--until", esctl::format_rfc3339(base + 4000)}));
  double t_day = median_of(runs, store_args({"read", "--all", "--since", esctl::format_rfc3339(base + (events / 2) * 1000),
                                             "--count", "5"}));

  // The fallback: the same events, with nothing known to be in time order.
  {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db, "UPDATE time_order SET ordered_through = 0, max_recorded_at = -9223372036854775808", nullptr,
                 nullptr, nullptr);
    sqlite3_close(db);
  }
  double t_scan = median_of(3, store_args({"read", "--all", "--since", since}));

  fmt::print("median of {} runs, last {} of {} events (wall ms, process start included):\n", runs, last, events);
  fmt::print("  read --all --from P           {:8.1f}\n", t_from);
  fmt::print("  read --all --since T (search) {:8.1f}\n", t_since);
  fmt::print("  read --all --until T (search, first 5) {:8.1f}\n", t_until);
  fmt::print("  read --all --since mid --count 5 (search) {:8.1f}\n", t_day);
  fmt::print("  read --all --since T (scan)   {:8.1f}\n", t_scan);
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
}
