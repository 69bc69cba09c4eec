// Benchmark of rebuild isolation: on a big store, a live `queue drain --follow --exec` of one
// queue while events are appended at a steady rate, with and without a concurrent `esctl rebuild`
// of another query db. Prints, side by side: the store's WAL size over time (max, median), the
// live drain's commit-to-handler latency (p50, p99) and the rebuild's events/s against the same
// rebuild without the live load, all measured in the same run. Not a test; never run in CI.
//
// Usage: bench_rebuild_live [EVENTS=2000000] [RATES=200,1000] [ROUNDS=2] [pipe|exec]
// (the live drain's handler: one long-lived `--pipe` process, the default, or `--exec` per batch)
//
// On 2 cores the live load and the rebuild compete for CPU, so the rebuild's wall rate under
// load mixes that sharing with any disturbance through the store. Two more figures separate
// them: the rebuild's own CPU time (user + system, from wait4) against the rebuild alone, which
// the store's locks, WAL and checkpoints would raise, and the machine's busy cores in the phase.
//
// How: the appender is a thread of this program committing one event per transaction at RATE/s
// and noting, per position, the wall-clock time its append returned (the commit). The drain and
// the rebuild are the real binary. The drain's handler is this program again (`--handler FILE`):
// it notes the wall-clock time it reads each event's line. A sampler thread stats the -wal file
// every 10 ms. Each round runs, per rate: the rebuild alone, the load with the rebuild, and the
// load alone for as long as the rebuild alone took; the rebuild under load is compared with the
// rebuild alone just before it (the machine's load from elsewhere drifts).
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "store/store.hpp"

using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kProjection = R"sql(-- @init
CREATE TABLE items (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, sku TEXT, amount INTEGER);
CREATE TABLE totals (stream TEXT PRIMARY KEY, n INTEGER NOT NULL, amount INTEGER NOT NULL);

-- @on ItemAdded
INSERT INTO items VALUES (:position, :stream, :data ->> '$.sku', :data ->> '$.amount');
INSERT INTO totals VALUES (:stream, 1, :data ->> '$.amount')
  ON CONFLICT (stream) DO UPDATE SET n = n + 1, amount = amount + excluded.amount;
)sql";

std::int64_t wall_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// The drain's handler: one "POSITION RECEIVED_US" line per event read, appended to `out`.
int handler(const char* out) {
  std::string notes;
  char* line = nullptr;
  std::size_t cap = 0;
  while (::getline(&line, &cap, stdin) > 0) {
    const std::int64_t now = wall_us();
    const char* p = std::strstr(line, "\"position\":");
    if (p) notes += fmt::format("{} {}\n", std::strtoll(p + 11, nullptr, 10), now);
  }
  std::free(line);
  int fd = ::open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  bool ok = ::write(fd, notes.data(), notes.size()) == static_cast<ssize_t>(notes.size());
  ::close(fd);
  return ok ? 0 : 1;
}

// The same as a long-lived `--pipe` handler: notes each event as it reads it, answers "ack".
int pipe_handler(const char* out) {
  int fd = ::open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  char* line = nullptr;
  std::size_t cap = 0;
  while (::getline(&line, &cap, stdin) > 0) {
    const std::int64_t now = wall_us();
    const char* p = std::strstr(line, "\"position\":");
    if (p) {
      const std::string note = fmt::format("{} {}\n", std::strtoll(p + 11, nullptr, 10), now);
      if (::write(fd, note.data(), note.size()) != static_cast<ssize_t>(note.size())) return 1;
    }
    std::fputs("ack\n", stdout);
    std::fflush(stdout);
  }
  std::free(line);
  ::close(fd);
  return 0;
}

// Machine-wide CPU time (all cores) that was not idle, in seconds, from /proc/stat.
double busy_cpu_s() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> sys >> idle >> iowait >> irq >> softirq >> steal;
  return (user + nice + sys + irq + softirq + steal) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

esctl::NewEvent make_event(long i, const char* category) {
  esctl::NewEvent e;
  e.stream = fmt::format("{}-{}", category, (i * 7919) % 10000);
  e.type = i % 10 == 9 ? "CartViewed" : "ItemAdded";
  e.data = fmt::format(R"({{"sku":"SKU-{:05}","amount":{},"note":"some text to make it realistic"}})", i % 50000, i % 97);
  return e;
}

void make_store(const std::string& path, long events) {
  esctl::Store store(esctl::StoreOptions{path, 5000}, esctl::Access::write);
  std::vector<esctl::NewEvent> batch;
  for (long i = 0; i < events; ++i) {
    batch.push_back(make_event(i, "cart"));
    if (batch.size() == 10000) {
      store.append(batch, {}, false);
      batch.clear();
    }
  }
  if (!batch.empty()) store.append(batch, {}, false);
}

std::int64_t wal_bytes(const std::string& store) {
  struct stat st {};
  return ::stat((store + "-wal").c_str(), &st) == 0 ? st.st_size : 0;
}

/// Starts the real binary with `args`, its output to `log`; returns its pid.
pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(ESCTL_BIN));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(ESCTL_BIN, argv.data());
    _exit(127);
  }
  return pid;
}

int wait_for(pid_t pid, double* cpu_s = nullptr) {
  int status = 0;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  if (cpu_s)
    *cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
             static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Checkpoints the store and truncates its WAL, so that every phase starts from the same WAL.
void truncate_wal(const std::string& store) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(store.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  sqlite3_busy_timeout(db, 10000);
  sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Bench {
  std::string dir, store, qdb, projection, notes, self;
  pid_t drain = -1;  // the live drain, stopped if the bench fails

  struct Phase {
    double wal_max_mb = 0, wal_median_mb = 0;
    double p50_ms = 0, p99_ms = 0;
    std::size_t events = 0, lost = 0;
    double rebuild_events_per_s = 0, rebuild_s = 0;
    double appended_per_s = 0;  // achieved (the appender skips ahead when it falls behind)
    double vs_alone = 0;        // rebuild events/s against the rebuild alone of the same round
    double rebuild_cpu_s = 0;   // the rebuild process's user + system CPU
    double cpu_vs_alone = 0;    // rebuild CPU against the rebuild alone of the same round
    double busy_cores = 0;      // machine-wide non-idle CPU over the phase, in cores
    std::vector<double> wal_per_second;  // max MB in each second
  };

  /// Runs the rebuild (as the real binary) if `rebuild`, else waits `idle_s`; meanwhile appends
  /// `rate` events/s (0: none) and watches the WAL.
  Phase run(int rate, bool rebuild, double idle_s) {
    truncate_wal(store);
    std::filesystem::remove(qdb);
    std::atomic<bool> stop{false};
    const double busy0 = busy_cpu_s();
    std::vector<std::pair<double, std::int64_t>> wal;  // seconds since start, bytes
    const auto t0 = Clock::now();
    std::thread sampler([&] {
      while (!stop) {
        wal.emplace_back(std::chrono::duration<double>(Clock::now() - t0).count(), wal_bytes(store));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    std::vector<std::pair<std::int64_t, std::int64_t>> commits;  // position, commit time (µs)
    std::thread appender;
    if (rate > 0)
      appender = std::thread([&] {
        esctl::Store s(esctl::StoreOptions{store, 60000}, esctl::Access::write);
        const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
        auto next = Clock::now();
        for (long i = 0; !stop; ++i) {
          std::this_thread::sleep_until(next);
          auto r = s.append({make_event(i, "live")}, {}, false);
          commits.emplace_back(r.front().position, wall_us());
          next += period;
          if (Clock::now() > next + 10 * period) next = Clock::now();  // fell behind: no burst
        }
      });
    Phase out;
    if (rebuild) {
      const std::string log = dir + "/rebuild.out";
      std::filesystem::remove(log);
      pid_t pid = spawn({"--json", "--store", store, "rebuild", "--projection", projection, qdb}, log);
      const int rc = wait_for(pid, &out.rebuild_cpu_s);
      const std::string text = read_text(log);
      if (rc != 0) {
        fmt::print(stderr, "rebuild failed ({}): {}\n", rc, text);
        if (drain > 0) ::kill(drain, SIGINT);
        std::exit(1);
      }
      auto field = [&](const char* key) {
        auto at = text.find(fmt::format("\"{}\":", key));
        return at == std::string::npos ? 0.0 : std::strtod(text.c_str() + at + std::strlen(key) + 3, nullptr);
      };
      out.rebuild_events_per_s = field("events_per_s");
      out.rebuild_s = field("seconds");
    } else {
      std::this_thread::sleep_for(std::chrono::duration<double>(idle_s));
    }
    stop = true;
    if (appender.joinable()) appender.join();
    sampler.join();
    const double phase_s = std::chrono::duration<double>(Clock::now() - t0).count();
    out.appended_per_s = static_cast<double>(commits.size()) / phase_s;
    out.busy_cores = (busy_cpu_s() - busy0) / phase_s;

    std::vector<double> sizes;
    for (const auto& [t, b] : wal) {
      sizes.push_back(static_cast<double>(b) / 1e6);
      auto sec = static_cast<std::size_t>(t);
      if (out.wal_per_second.size() <= sec) out.wal_per_second.resize(sec + 1, 0);
      out.wal_per_second[sec] = std::max(out.wal_per_second[sec], sizes.back());
    }
    out.wal_max_mb = sizes.empty() ? 0 : *std::max_element(sizes.begin(), sizes.end());
    out.wal_median_mb = median(sizes);

    // Wait until the handler has seen every event appended in this phase (or 30 s).
    std::map<std::int64_t, std::int64_t> received;
    for (auto deadline = Clock::now() + std::chrono::seconds(30);;) {
      received.clear();
      std::istringstream in(read_text(notes));
      std::int64_t pos = 0, at = 0;
      while (in >> pos >> at) received.emplace(pos, at);  // the first delivery counts
      bool all = std::all_of(commits.begin(), commits.end(), [&](const auto& c) { return received.count(c.first); });
      if (all || Clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::vector<double> latency;
    for (const auto& [pos, committed] : commits) {
      auto it = received.find(pos);
      if (it == received.end()) {
        ++out.lost;
        continue;
      }
      latency.push_back(static_cast<double>(it->second - committed) / 1000.0);
    }
    out.events = latency.size();
    out.p50_ms = quantile(latency, 0.50);
    out.p99_ms = quantile(latency, 0.99);
    return out;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--handler") == 0) return handler(argv[2]);
  if (argc == 3 && std::strcmp(argv[1], "--pipe-handler") == 0) return pipe_handler(argv[2]);
  const long events = argc > 1 ? std::atol(argv[1]) : 2000000;
  std::vector<int> rates;
  {
    std::istringstream in(argc > 2 ? argv[2] : "200,1000");
    for (std::string r; std::getline(in, r, ',');) rates.push_back(std::atoi(r.c_str()));
  }
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 2;
  const bool pipe = !(argc > 4 && std::strcmp(argv[4], "exec") == 0);

  Bench b;
  b.dir = (std::filesystem::temp_directory_path() / fmt::format("esctl-bench-rebuild-live-{}", ::getpid())).string();
  std::filesystem::create_directories(b.dir);
  b.store = b.dir + "/s.db";
  b.qdb = b.dir + "/q.db";
  b.projection = b.dir + "/p.sql";
  b.notes = b.dir + "/received.txt";
  b.self = std::filesystem::canonical("/proc/self/exe").string();
  std::ofstream(b.projection) << kProjection;

  fmt::print("creating a store of {} events (90% ItemAdded)...\n", events);
  auto t0 = Clock::now();
  make_store(b.store, events);
  fmt::print("  {:.1f} s\n", std::chrono::duration<double>(Clock::now() - t0).count());

  const std::string log = b.dir + "/drain.out";
  if (int rc = wait_for(spawn({"--store", b.store, "queue", "create", "live", "--from", "end", "--category", "live"}, log));
      rc != 0) {
    fmt::print(stderr, "queue create failed ({}): {}\n", rc, read_text(log));
    return 1;
  }
  const pid_t drain = b.drain =
      spawn({"--store", b.store, "queue", "drain", "live", "--follow", pipe ? "--pipe" : "--exec",
             fmt::format("exec '{}' {} '{}'", b.self, pipe ? "--pipe-handler" : "--handler", b.notes)},
            log);
  b.run(50, false, 1.0);  // warm-up: the drain is following

  struct Row {
    std::string name;
    int rate;  // appends per second, 0: none
    bool rebuild;
    std::vector<Bench::Phase> runs;
  };
  std::vector<Row> rows;
  for (int rate : rates) {
    rows.push_back({"no load: rebuild", 0, true, {}});
    rows.push_back({fmt::format("{}/s: rebuild", rate), rate, true, {}});
    rows.push_back({fmt::format("{}/s: no rebuild", rate), rate, false, {}});
  }
  for (int round = 1; round <= rounds; ++round) {
    double alone_s = 5, alone_rate = 0, alone_cpu = 0;
    for (auto& row : rows) {
      Bench::Phase p = b.run(row.rate, row.rebuild, alone_s);
      if (row.rate == 0) {
        alone_s = p.rebuild_s;
        alone_rate = p.rebuild_events_per_s;
      }
      if (row.rate == 0) alone_cpu = p.rebuild_cpu_s;
      if (row.rebuild && alone_rate > 0) p.vs_alone = p.rebuild_events_per_s / alone_rate;
      if (row.rebuild && alone_cpu > 0) p.cpu_vs_alone = p.rebuild_cpu_s / alone_cpu;
      std::string timeline;
      for (double mb : p.wal_per_second) timeline += fmt::format(" {:.1f}", mb);
      fmt::print("round {} {:<20} WAL max {:5.1f} MB median {:5.1f} MB | appended {:4.0f}/s, drain p50 {:7.2f} ms p99 "
                 "{:7.2f} ms ({} events, {} not received) | rebuild {:6.0f} events/s in {:5.1f} s ({:.0f}% of alone), "
                 "CPU {:.2f} s ({:.0f}% of alone) | machine busy {:.2f} cores\n"
                 "  WAL MB per second:{}\n",
                 round, row.name, p.wal_max_mb, p.wal_median_mb, p.appended_per_s, p.p50_ms, p.p99_ms, p.events, p.lost,
                 p.rebuild_events_per_s, p.rebuild_s, 100 * p.vs_alone, p.rebuild_cpu_s, 100 * p.cpu_vs_alone,
                 p.busy_cores, timeline);
      std::fflush(stdout);
      row.runs.push_back(std::move(p));
    }
  }
  ::kill(drain, SIGINT);
  wait_for(drain);

  auto med = [](const Row& r, double Bench::Phase::*f) {
    std::vector<double> v;
    for (const auto& p : r.runs) v.push_back(p.*f);
    return median(v);
  };
  fmt::print("\nmedians of {} rounds, store of {} events (target: rebuild under load >= 90% of the rebuild alone "
             "just before it):\n",
             rounds, events);
  fmt::print("  {:<20} {:>9} {:>11} {:>9} {:>10} {:>10} {:>14} {:>9} {:>12} {:>6}\n", "", "WAL max", "WAL median",
             "appended", "drain p50", "drain p99", "rebuild", "vs alone", "CPU vs alone", "busy");
  for (const auto& r : rows) {
    fmt::print("  {:<20} {:>6.1f} MB {:>8.1f} MB {:>9} {:>10} {:>10} {:>14} {:>9} {:>12} {:>6.2f}\n", r.name,
               med(r, &Bench::Phase::wal_max_mb), med(r, &Bench::Phase::wal_median_mb),
               r.rate ? fmt::format("{:.0f}/s", med(r, &Bench::Phase::appended_per_s)) : "-",
               r.rate ? fmt::format("{:.2f} ms", med(r, &Bench::Phase::p50_ms)) : "-",
               r.rate ? fmt::format("{:.2f} ms", med(r, &Bench::Phase::p99_ms)) : "-",
               r.rebuild ? fmt::format("{:.0f} ev/s", med(r, &Bench::Phase::rebuild_events_per_s)) : "-",
               r.rebuild && r.rate ? fmt::format("{:.0f}%", 100 * med(r, &Bench::Phase::vs_alone)) : "-",
               r.rebuild && r.rate ? fmt::format("{:.0f}%", 100 * med(r, &Bench::Phase::cpu_vs_alone)) : "-",
               med(r, &Bench::Phase::busy_cores));
  }
  std::filesystem::remove_all(b.dir);
  return 0;
}
