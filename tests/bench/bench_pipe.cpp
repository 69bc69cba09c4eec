// Benchmark of `queue drain --pipe` against `export` and `drain --exec`. Not a test; never run in CI.
// On N events (default 1M, ~200 B each, 10k interleaved streams), in one run, each with
// --batch 1000 and the queue reset to the start before each drain:
//   export --all > /dev/null                       the baseline: reading and formatting every event
//   drain --exec 'cat >/dev/null'                  a shell per batch
//   drain --pipe BENCH --ack-handler               (a) a compiled handler: `ack` per line, written
//                                                  whenever its input has nothing more buffered
//   drain --pipe "python3 -u -c ..."               (b) Python answering `ack` per line
// Each row runs REPEATS times, interleaved (export, exec, pipe a, pipe b, export, ...), so that a
// busy machine slows every row alike; it prints the median events/s, its ratio to export's
// median, the median CPU time (user + system, of esctl and the handler processes it waited for:
// steadier than wall time on a shared machine) and the peak RSS over the repeats (the larger of
// esctl and its handlers). The store is made with `esctl import`, so only the binary is measured.
//
// Usage: bench_pipe [EVENTS=1000000] [REPEATS=3]   (bench_pipe --ack-handler is handler (a))
// With BENCH_PIPE_BEFORE=PATH (another esctl binary, e.g. one built before a change) every row
// is also run with PATH, in the same rounds, each ratio against the export of its own binary.
// BENCH_PIPE_ONLY=TEXT keeps export and the drains whose name contains TEXT (e.g. "(a)").
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

extern char** environ;

using Clock = std::chrono::steady_clock;

namespace {

// Handler (a): reads what is there, answers `ack` for each complete line, and writes the answers
// when its input has nothing more buffered (or 64 KiB of answers are waiting).
int ack_handler() {
  static char in[1 << 16];
  std::string out;
  for (;;) {
    ssize_t n = ::read(0, in, sizeof in);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i)
      if (in[i] == '\n') out += "ack\n";
    pollfd p{0, POLLIN, 0};
    if (out.size() >= (1 << 16) || ::poll(&p, 1, 0) == 0) {
      std::size_t off = 0;
      while (off < out.size()) {
        ssize_t w = ::write(1, out.data() + off, out.size() - off);
        if (w <= 0) return 1;
        off += static_cast<std::size_t>(w);
      }
      out.clear();
    }
  }
  return 0;
}

struct Ran {
  int status = -1;
  double seconds = 0;
  double cpu_seconds = 0;
  long max_rss_kb = 0;
};

// Runs argv with stdin from `input_file` (or /dev/null) and stdout to /dev/null.
Ran run(const std::vector<std::string>& argv, const std::string& input_file = "/dev/null") {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, input_file.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Ran r;
  auto t0 = Clock::now();
  pid_t pid;
  if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) std::exit(1);
  posix_spawn_file_actions_destroy(&fa);
  int st = 0;
  rusage ru{};
  ::wait4(pid, &st, 0, &ru);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.max_rss_kb = ru.ru_maxrss;
  r.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  return r;
}

void must(const Ran& r, const std::string& what) {
  if (r.status != 0) {
    fmt::print(stderr, "{} failed with status {}\n", what, r.status);
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--ack-handler") == 0) return ack_handler();
  const std::int64_t n = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const int repeats = std::max(1, argc > 2 ? std::atoi(argv[2]) : 3);
  const std::string self = std::filesystem::canonical("/proc/self/exe").string();
  auto dir = std::filesystem::temp_directory_path() / fmt::format("esctl-bench-pipe-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const std::string store = (dir / "events.db").string();
  auto esctl = [&](std::vector<std::string> args, const std::string& bin = ESCTL_BIN) {
    args.insert(args.begin(), {bin, "--store", store});
    return args;
  };

  {
    const std::string input = (dir / "events.ndjson").string();
    std::ofstream f(input);
    const std::string data =
        R"({"customer":"c-12345","total":123.45,"items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"benchmark"})";
    for (std::int64_t i = 0; i < n; ++i)
      f << R"({"stream":"order-)" << i % 10000 << R"(","type":"OrderPlaced","data":)" << data << "}\n";
    f.close();
    must(run(esctl({"import", "-"}), input), "import");
    std::filesystem::remove(input);
  }
  fmt::print("store: {} events, 10000 streams, {:.0f} MB\n", n,
             static_cast<double>(std::filesystem::file_size(store)) / 1e6);
  must(run(esctl({"queue", "create", "bench", "--from", "start"})), "queue create");

  struct Row {
    std::string name;
    std::vector<std::string> args;
    bool drain;
    std::string bin = ESCTL_BIN;
  };
  const std::string py = "python3 -u -c 'import sys\nfor line in sys.stdin: sys.stdout.write(\"ack\\n\")'";
  std::vector<Row> rows = {
      {"export --all", {"export", "--all"}, false},
      {"drain --exec 'cat >/dev/null'", {"queue", "drain", "bench", "--batch", "1000", "--exec", "cat >/dev/null"}, true},
      {"drain --pipe (a) compiled ack", {"queue", "drain", "bench", "--batch", "1000", "--pipe", "'" + self + "' --ack-handler"}, true},
      {"drain --pipe (b) python3 -u", {"queue", "drain", "bench", "--batch", "1000", "--pipe", py}, true},
  };
  if (const char* only = std::getenv("BENCH_PIPE_ONLY"); only && *only)
    rows.erase(std::remove_if(rows.begin(), rows.end(),
                              [&](const Row& r) { return r.drain && r.name.find(only) == std::string::npos; }),
               rows.end());
  if (const char* before = std::getenv("BENCH_PIPE_BEFORE"); before && *before) {
    const std::size_t now = rows.size();
    for (std::size_t i = 0; i < now; ++i) {
      Row r = rows[i];
      r.name += " (before)";
      r.bin = before;
      rows.push_back(r);
    }
  }
  std::vector<std::vector<Ran>> ran(rows.size());
  for (int rep = 0; rep < repeats; ++rep) {
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].drain) must(run(esctl({"queue", "reset", "bench", "--to", "start"})), "reset");
      Ran r = run(esctl(rows[i].args, rows[i].bin));
      must(r, rows[i].name);
      ran[i].push_back(r);
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  double export_rate = 0;
  fmt::print("{} repeats, medians\n", repeats);
  fmt::print("{:<42} {:>10} {:>12} {:>9} {:>9} {:>10}\n", "run", "seconds", "events/s", "x export", "cpu s",
             "peak RSS");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::vector<double> secs, cpu;
    long rss = 0;
    for (const auto& r : ran[i]) {
      secs.push_back(r.seconds);
      cpu.push_back(r.cpu_seconds);
      rss = std::max(rss, r.max_rss_kb);
    }
    double rate = static_cast<double>(n) / median(secs);
    if (!rows[i].drain) export_rate = rate;
    fmt::print("{:<42} {:>10.2f} {:>12.0f} {:>9.2f} {:>9.2f} {:>7.1f} MB\n", rows[i].name, median(secs), rate,
               rate / export_rate, median(cpu), static_cast<double>(rss) / 1024);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
