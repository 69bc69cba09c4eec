// Benchmark of esctl on a PostgreSQL store, against what PostgreSQL does alone, measured in the
// same run on the same events. Not a test; never run in CI. It starts a throwaway server of its
// own with the default durability (fsync and synchronous commit on; `pg_cluster.sh start DIR
// --durable`) and prints, each next to its baseline:
//   import of N events (NDJSON as `export` writes it)  vs  psql \copy of the same lines into a
//                                                          one-column text table with no index
//                                                          (and, for scale, \copy of the rows
//                                                          esctl stored into a table with the
//                                                          same three unique indexes)
//   append, one process per event                      vs  psql -c "INSERT ..." per event
//   read --all --json > /dev/null                      (events/s; vs the \copy rate for scale)
//   queue drain --pipe (an ack per line) of D events   vs  read --all --json of the same store
//   tail -f --all: commit -> line latency p50/p99      vs  a libpq poller of max(position) every 10 ms
// and the peak RSS of each esctl run (target <= 64 MB). The machine may be shared: compare the
// ratios, which are measured side by side.
//
// Usage: bench_pg [EVENTS=1000000] [DRAIN_EVENTS=200000] [APPENDS=200] [TAIL_EVENTS=200]
// (bench_pg --ack-handler is the drain's handler: an `ack` for each line it reads.)
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "store/postgres/pg.hpp"
#include "store/store.hpp"

extern char** environ;

using Clock = std::chrono::steady_clock;
namespace pg = esctl::pg;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The drain's handler: answers `ack` for every complete line, after each read.
int ack_handler() {
  std::vector<char> in(1 << 16);
  std::string acks;
  for (;;) {
    const ssize_t n = ::read(0, in.data(), in.size());
    if (n == 0 || (n < 0 && errno != EINTR)) return 0;
    if (n < 0) continue;
    acks.clear();
    for (ssize_t i = 0; i < n; ++i)
      if (in[static_cast<std::size_t>(i)] == '\n') acks += "ack\n";
    for (std::size_t off = 0; off < acks.size();) {
      const ssize_t w = ::write(1, acks.data() + off, acks.size() - off);
      if (w <= 0) return 1;
      off += static_cast<std::size_t>(w);
    }
  }
}

struct Ran {
  int status = -1;
  double seconds = 0;
  double rss_mb = 0;  // peak resident set of the process
};

// Runs argv with stdout to `out` (a path) and stdin from `in`; waits; its status, time and peak RSS.
Ran run(const std::vector<std::string>& argv, const std::string& out = "/dev/null", const std::string& in = "/dev/null") {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Ran r;
  const auto t0 = Clock::now();
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) {
    fmt::print(stderr, "cannot start {}\n", argv[0]);
    std::exit(1);
  }
  posix_spawn_file_actions_destroy(&fa);
  int st = 0;
  rusage ru{};
  ::wait4(pid, &st, 0, &ru);
  r.seconds = seconds_since(t0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  return r;
}

Ran must(const std::vector<std::string>& argv, const std::string& out = "/dev/null", const std::string& in = "/dev/null") {
  Ran r = run(argv, out, in);
  if (r.status != 0) {
    std::string line;
    for (const auto& a : argv) line += " " + a;
    fmt::print(stderr, "failed ({}):{}\n", r.status, line);
    std::exit(1);
  }
  return r;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

double peak_rss = 0;
void row(const std::string& what, double rate, const std::string& unit, double baseline, const Ran& r) {
  peak_rss = std::max(peak_rss, r.rss_mb);
  fmt::print("  {:<46} {:>10.0f} {}   ratio {:.2f}   peak RSS {:.1f} MB\n", what, rate, unit, rate / baseline, r.rss_mb);
}

// The follower latency: `fd` is its stdout; returns when `n` lines have come in total.
struct LineCounter {
  int fd;
  std::size_t lines = 0;
  /// Reads until `n` lines have come or, with nothing to read, `deadline` has passed.
  void until(std::size_t n, Clock::time_point deadline) {
    char buf[1 << 16];
    while (lines < n) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::clamp<long long>(left, 0, 100))) <= 0) {
        if (left <= 0) return;
        continue;
      }
      const ssize_t got = ::read(fd, buf, sizeof buf);
      if (got <= 0) return;
      lines += static_cast<std::size_t>(std::count(buf, buf + got, '\n'));
    }
  }
};

pid_t spawn_to_pipe(const std::vector<std::string>& argv, int& out_fd) {
  int p[2];
  if (::pipe(p) != 0) std::exit(1);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::close(p[0]);
    ::close(p[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(p[1]);
  out_fd = p[0];
  return pid;
}

// The baseline follower: a libpq session polling max(position) every 10 ms, one line per new event.
[[noreturn]] void poller(const std::string& uri) {
  pg::Conn c(uri, 5000);
  std::int64_t last = -1;
  for (;;) {
    const std::int64_t head = c.exec("SELECT value FROM esctl.counters WHERE name = 'position'").i64(0, 0);
    for (; last >= 0 && last < head; ++last)
      if (::write(1, "x\n", 2) < 0) _exit(0);
    last = head;
    ::usleep(10000);
  }
}

// The server and its directory, removed at exit (also after a failure).
std::string g_cluster, g_dir;
void stop_server() {
  if (g_dir.empty()) return;
  const std::string cmd = "sh '" + g_cluster + "' stop '" + g_dir + "/pg' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) fmt::print(stderr, "could not stop the server in {}/pg\n", g_dir);
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

void on_signal(int sig) {
  stop_server();
  _exit(128 + sig);
}

int bench(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
  try {
    return bench(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_pg: {}\n", e.what());
    return 1;
  }
}

namespace {

int bench(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--ack-handler") == 0) return ack_handler();
  const long events = argc > 1 ? std::atol(argv[1]) : 1000000;
  const long drain_events = std::min(events, argc > 2 ? std::atol(argv[2]) : 200000);
  const int appends = argc > 3 ? std::atoi(argv[3]) : 200;
  const int tail_events = argc > 4 ? std::atoi(argv[4]) : 200;
  ::signal(SIGPIPE, SIG_IGN);
  const std::string self = std::filesystem::canonical("/proc/self/exe").string();
  const std::string esctl = ESCTL_BIN, cluster = std::string(ESCTL_SOURCE_DIR) + "/tests/support/pg_cluster.sh";
  std::string dir = "/tmp/esctl-bpg-XXXXXX";  // short: the server's Unix socket lives in it
  if (!::mkdtemp(dir.data())) return 1;
  g_cluster = cluster;
  g_dir = dir;
  std::atexit(stop_server);
  ::signal(SIGINT, on_signal);
  ::signal(SIGTERM, on_signal);
  const std::string server = dir + "/pg", work = dir + "/work";
  std::filesystem::create_directories(work);
  ::chmod(dir.c_str(), 0777);  // the server may run as another user (pg_cluster.sh, as root)
  must({"sh", cluster, "start", server, "--durable"});
  const std::string admin_uri = "postgresql://esctl@/postgres?host=" + server;
  {
    pg::Conn admin(admin_uri, 5000);
    admin.exec_script("CREATE DATABASE bench");
    admin.exec_script("CREATE DATABASE copy_baseline");
    fmt::print("PostgreSQL {} (fsync {}, synchronous_commit {}), {} events\n",
               admin.exec("SELECT current_setting('server_version')").text(0, 0),
               admin.exec("SELECT current_setting('fsync')").text(0, 0),
               admin.exec("SELECT current_setting('synchronous_commit')").text(0, 0), events);
  }
  const std::string uri = "postgresql://esctl@/bench?host=" + server;
  const std::string copy_uri = "postgresql://esctl@/copy_baseline?host=" + server;

  // The events, as `export` writes them: made in a SQLite store by esctl, then exported.
  const std::string input = work + "/in.ndjson", ndjson = work + "/events.ndjson";
  {
    std::string text;
    std::mt19937 rng(7);
    FILE* f = std::fopen(input.c_str(), "w");
    for (long i = 0; i < events; ++i) {
      const unsigned s = rng() % 10000;
      text = fmt::format(R"({{"stream":"order-{}","type":"OrderPlaced","data":{{"order":{},"customer":"c-{}","total":{}.{:02},"items":[{{"sku":"s-{}","qty":{}}}],"note":"benchmark event"}}}})",
                         s, i, rng() % 50000, rng() % 1000, rng() % 100, rng() % 9000, 1 + rng() % 5);
      std::fputs(text.c_str(), f);
      std::fputc('\n', f);
    }
    std::fclose(f);
    must({esctl, "--store", work + "/src.db", "-q", "import", input});
    must({esctl, "--store", work + "/src.db", "export", "--all"}, ndjson);
    std::filesystem::remove(input);
  }
  fmt::print("events file: {:.1f} MB of export NDJSON\n\n", static_cast<double>(std::filesystem::file_size(ndjson)) / 1e6);

  // 1. import vs COPY.
  must({"psql", "-q", "-X", copy_uri, "-c", "CREATE TABLE raw (line text)"});
  const Ran copy = must({"psql", "-q", "-X", copy_uri, "-c", "\\copy raw (line) FROM '" + ndjson + "'"});
  const Ran import = must({esctl, "--store", uri, "-q", "import", ndjson});
  const double copy_rate = static_cast<double>(events) / copy.seconds;
  fmt::print("import (events/s; ratio to the baseline, target >= 0.5):\n");
  fmt::print("  {:<46} {:>10.0f} lines/s  ({:.1f} s)\n", "baseline: psql \\copy into a text column", copy_rate, copy.seconds);
  row(fmt::format("esctl import ({:.1f} s)", import.seconds), static_cast<double>(events) / import.seconds, "ev/s  ", copy_rate,
      import);
  // For scale: the rows esctl stored, copied into a table with esctl.events' columns and its
  // three unique indexes (position, id, stream and version) that idempotency and integrity need.
  must({"psql", "-q", "-X", uri, "-c", "\\copy (SELECT * FROM esctl.events ORDER BY position) TO '" + work + "/rows.tsv'"});
  must({"psql", "-q", "-X", copy_uri, "-c",
        "CREATE TABLE shaped (position bigint PRIMARY KEY, stream_id bigint NOT NULL, version bigint NOT NULL, "
        "id uuid NOT NULL, type text NOT NULL, data text NOT NULL, meta text NOT NULL, recorded_at bigint NOT NULL); "
        "CREATE UNIQUE INDEX ON shaped (id); CREATE UNIQUE INDEX ON shaped (stream_id, version)"});
  const Ran shaped = must({"psql", "-q", "-X", copy_uri, "-c", "\\copy shaped FROM '" + work + "/rows.tsv'"});
  fmt::print("  {:<46} {:>10.0f} rows/s   ratio {:.2f}  ({:.1f} s)\n", "for scale: \\copy of esctl's rows, 3 unique indexes",
             static_cast<double>(events) / shaped.seconds, copy.seconds / shaped.seconds, shaped.seconds);
  std::filesystem::remove(work + "/rows.tsv");

  // 2. One process per event.
  std::vector<double> esctl_ms, psql_ms;
  Ran worst_append;
  for (int i = 0; i < appends; ++i) {
    Ran a = must({esctl, "--store", uri, "-q", "append", "single-1", "Tick", fmt::format("{{\"i\":{}}}", i)});
    Ran b = must({"psql", "-q", "-X", copy_uri, "-c", fmt::format("INSERT INTO raw (line) VALUES ('{{\"i\":{}}}')", i)});
    esctl_ms.push_back(a.seconds * 1000);
    psql_ms.push_back(b.seconds * 1000);
    if (a.rss_mb > worst_append.rss_mb) worst_append = a;
  }
  fmt::print("one process per event ({} each, alternating; ms per call):\n", appends);
  fmt::print("  {:<46} p50 {:6.1f} ms  p99 {:6.1f} ms\n", "baseline: psql -c \"INSERT ...\"", percentile(psql_ms, 0.5),
             percentile(psql_ms, 0.99));
  fmt::print("  {:<46} p50 {:6.1f} ms  p99 {:6.1f} ms   ratio (baseline/esctl, p50) {:.2f}   peak RSS {:.1f} MB\n",
             "esctl append", percentile(esctl_ms, 0.5), percentile(esctl_ms, 0.99),
             percentile(psql_ms, 0.5) / percentile(esctl_ms, 0.5), worst_append.rss_mb);
  peak_rss = std::max(peak_rss, worst_append.rss_mb);

  // 3. Reading everything.
  const long stored = events + appends;
  const Ran read = must({esctl, "--store", uri, "--json", "read", "--all"});
  const double read_rate = static_cast<double>(stored) / read.seconds;
  fmt::print("reading (events/s; ratio to the \\copy rate):\n");
  row(fmt::format("esctl read --all --json ({:.1f} s)", read.seconds), read_rate, "ev/s  ", copy_rate, read);

  // 4. Draining the last D events through a --pipe handler.
  must({esctl, "--store", uri, "-q", "queue", "create", "q", "--from", std::to_string(stored - drain_events)});
  const Ran drain = must({esctl, "--store", uri, "-q", "queue", "drain", "q", "--batch", "1000", "--pipe", self + " --ack-handler"});
  fmt::print("queue drain --pipe of {} events, --batch 1000 (events/s; ratio to read --all --json):\n", drain_events);
  row(fmt::format("esctl queue drain --pipe ({:.1f} s)", drain.seconds), static_cast<double>(drain_events) / drain.seconds,
      "ev/s  ", read_rate, drain);

  // 5. Follower latency: commits by this process, 5-30 ms apart, one event each.
  {
    int tail_fd = -1, poll_fd = -1;
    const pid_t tail = spawn_to_pipe({esctl, "--json", "--store", uri, "tail", "-f", "--all", "-n", "0"}, tail_fd);
    int p[2];
    if (::pipe(p) != 0) return 1;
    const pid_t raw = ::fork();
    if (raw == 0) {
      g_dir.clear();  // the server is the parent's to stop
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::dup2(p[1], 1);
      ::close(p[0]);
      ::close(p[1]);
      poller(uri);
    }
    ::close(p[1]);
    poll_fd = p[0];
    esctl::StoreOptions o;
    o.location = uri;
    esctl::Store writer(o, esctl::Access::write);
    LineCounter t{tail_fd}, r{poll_fd};
    // Handshake: append until both print, so both are past their start-up.
    for (int i = 0; t.lines == 0 || r.lines == 0; ++i) {
      if (i > 100) return 1;
      writer.append({esctl::NewEvent{"warm-0", "Warm"}});
      t.until(t.lines + 1, Clock::now() + std::chrono::milliseconds(200));
      r.until(r.lines + 1, Clock::now() + std::chrono::milliseconds(200));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    t.until(SIZE_MAX, Clock::now() + std::chrono::milliseconds(200));
    r.until(SIZE_MAX, Clock::now() + std::chrono::milliseconds(200));
    std::vector<double> tail_ms, raw_ms;
    std::mt19937 rng(11);
    for (int i = 0; i < tail_events; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 26));
      writer.append({esctl::NewEvent{"tick-" + std::to_string(i % 7), "Tick"}});
      const auto committed = Clock::now();
      const std::size_t want_t = t.lines + 1, want_r = r.lines + 1;
      // Both are watched: whichever prints first is read first.
      bool t_done = false, r_done = false;
      while (!t_done || !r_done) {
        pollfd fds[2] = {{tail_fd, POLLIN, 0}, {poll_fd, POLLIN, 0}};
        if (::poll(fds, 2, 10000) <= 0) {
          fmt::print(stderr, "event {} was not printed within 10 s\n", i);
          return 1;
        }
        if (!t_done && fds[0].revents) {
          t.until(want_t, Clock::now());
          if (t.lines >= want_t) tail_ms.push_back(seconds_since(committed) * 1000), t_done = true;
        }
        if (!r_done && fds[1].revents) {
          r.until(want_r, Clock::now());
          if (r.lines >= want_r) raw_ms.push_back(seconds_since(committed) * 1000), r_done = true;
        }
      }
    }
    ::kill(tail, SIGINT);
    ::kill(raw, SIGTERM);
    int st = 0;
    rusage ru{};
    ::wait4(tail, &st, 0, &ru);
    ::waitpid(raw, nullptr, 0);
    const double tail_rss = static_cast<double>(ru.ru_maxrss) / 1024.0;
    peak_rss = std::max(peak_rss, tail_rss);
    fmt::print("tail -f --all, commit -> line read, {} commits 5-30 ms apart:\n", tail_events);
    fmt::print("  {:<46} p50 {:6.2f} ms  p99 {:6.2f} ms\n", "baseline: libpq poll of the head every 10 ms",
               percentile(raw_ms, 0.5), percentile(raw_ms, 0.99));
    fmt::print("  {:<46} p50 {:6.2f} ms  p99 {:6.2f} ms   peak RSS {:.1f} MB   exit after SIGINT {}\n", "esctl tail -f",
               percentile(tail_ms, 0.5), percentile(tail_ms, 0.99), tail_rss,
               WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  }

  fmt::print("\npeak RSS of any esctl run: {:.1f} MB (target <= 64 MB)\n", peak_rss);
  return 0;
}

}  // namespace
