// Benchmark of import cost as the store grows (not a test; never run in CI): imports N chunks of
// E events, one after another, into ONE store, and prints per chunk the import rate, user and
// system CPU, and what the import read from the store file: read(2)/pread(2) calls and bytes
// (each a page that fell out of SQLite's page cache: a cache miss) and bytes that came from the
// disk rather than the kernel's page cache. A store whose cost grows with its size shows up as
// later chunks slower than the first with more system time or more reads.
//
// The data: E events per chunk over S streams interleaved round-robin (every stream advances in
// every chunk), ~230 bytes each in export format (stream, version, id, type, data, meta,
// recorded_at), time-ordered UUIDv7 ids, as `export` of a live store writes them.
//
// Usage: bench_scale [--chunks N=16] [--events E=1000000] [--streams S=10000] [--batch B=1000]
//                    [--dir DIR] [--keep]
// The store needs about 230 MB per million events; DIR defaults to a fresh directory in $TMPDIR.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/time.hpp"
#include "core/uuid.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  int chunks = 16;
  std::int64_t events = 1000000;
  int streams = 10000;
  int batch = 1000;
  std::string dir;
  bool keep = false;
};

/// What /proc/PID/io says of a process: every read(2)-family call and its bytes (page cache
/// included), and the bytes that had to come from the device.
struct Io {
  long long syscr = 0, rchar = 0, read_bytes = 0, wchar = 0;
};

Io read_io(pid_t pid) {
  Io io;
  std::FILE* f = std::fopen(fmt::format("/proc/{}/io", pid).c_str(), "r");
  if (!f) return io;
  char line[128];
  while (std::fgets(line, sizeof line, f)) {
    std::sscanf(line, "syscr: %lld", &io.syscr);
    std::sscanf(line, "rchar: %lld", &io.rchar);
    std::sscanf(line, "read_bytes: %lld", &io.read_bytes);
    std::sscanf(line, "wchar: %lld", &io.wchar);
  }
  std::fclose(f);
  return io;
}

long vm_hwm_kb(pid_t pid) {
  std::FILE* f = std::fopen(fmt::format("/proc/{}/status", pid).c_str(), "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
  std::fclose(f);
  return kb;
}

struct Run {
  int status = -1;
  double wall = 0, user = 0, sys = 0;
  long rss_kb = 0;
  Io io;  ///< as last sampled, a few ms before the process exited
};

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

/// Runs argv (stdout to /dev/null), sampling its peak RSS and I/O counters until it exits.
Run run(const std::vector<std::string>& args) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  auto t0 = Clock::now();
  pid_t pid;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
    fmt::print(stderr, "bench_scale: cannot run {}\n", args[0]);
    std::exit(1);
  }
  posix_spawn_file_actions_destroy(&fa);
  Run r;
  int status = 0;
  rusage ru{};
  for (;;) {
    long hwm = vm_hwm_kb(pid);  // sampled before wait4: a reaped child has no /proc entry
    Io io = read_io(pid);
    if (wait4(pid, &status, WNOHANG, &ru) == pid) break;
    r.rss_kb = std::max(r.rss_kb, hwm);
    if (io.syscr > 0) r.io = io;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  r.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  r.user = seconds(ru.ru_utime);
  r.sys = seconds(ru.ru_stime);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

/// Writes chunk `k`: events k*E .. (k+1)*E-1, stream i % S at version i / S.
void write_chunk(const Config& c, int k, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    fmt::print(stderr, "bench_scale: cannot write {}\n", path);
    std::exit(1);
  }
  static const char* kTypes[] = {"OrderPlaced", "ItemAdded", "ItemRemoved", "PaymentTaken", "OrderShipped"};
  const std::int64_t t0 = esctl::now_us() - 86400LL * 1000000;
  std::string line;
  for (std::int64_t j = 0; j < c.events; ++j) {
    const std::int64_t i = static_cast<std::int64_t>(k) * c.events + j;
    const std::int64_t s = i % c.streams, v = i / c.streams;
    line = fmt::format(
        R"({{"stream":"order-{}","version":{},"id":"{}","type":"{}","data":{{"customer":"c-{}","sku":"sku-{}",)"
        R"("qty":{},"price":{}.50,"currency":"EUR","note":"event {} of stream {}"}},"meta":{{"by":"bench"}},)"
        R"("recorded_at":"{}"}})"
        "\n",
        s, v, esctl::format_uuid(esctl::new_uuid_v7()), kTypes[i % 5], s * 7 % 9973, 100 + i % 900, 1 + i % 9,
        i % 97, v, s, esctl::format_rfc3339(t0 + i));
    std::fwrite(line.data(), 1, line.size(), f);
  }
  std::fclose(f);
}

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "bench_scale: {} needs a value\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--chunks") c.chunks = std::stoi(next());
    else if (a == "--events") c.events = std::stoll(next());
    else if (a == "--streams") c.streams = std::stoi(next());
    else if (a == "--batch") c.batch = std::stoi(next());
    else if (a == "--dir") c.dir = next();
    else if (a == "--keep") c.keep = true;
    else {
      fmt::print(stderr, "usage: bench_scale [--chunks N] [--events E] [--streams S] [--batch B] [--dir DIR] [--keep]\n");
      std::exit(2);
    }
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  Config c = parse(argc, argv);
  namespace fs = std::filesystem;
  bool made_dir = c.dir.empty();
  if (made_dir) {
    std::string tmpl = (fs::temp_directory_path() / "bench_scale.XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      fmt::print(stderr, "bench_scale: cannot make a temporary directory\n");
      return 1;
    }
    c.dir = tmpl;
  }
  const std::string store = c.dir + "/store.db", chunk = c.dir + "/chunk.ndjson";
  fmt::print("bench_scale: {} chunks of {} events over {} streams, --batch {}, store {}\n", c.chunks, c.events,
             c.streams, c.batch, store);
  fmt::print("{:>5} {:>8} {:>9} {:>6} {:>6} {:>6} {:>9} {:>9} {:>8} {:>8} {:>6} {:>6}\n", "chunk", "store MB",
             "events/s", "x 1st", "user s", "sys s", "reads", "read MB", "disk MB", "write MB", "B/ev", "RSS MB");
  double first_rate = 0;
  std::int64_t last_size = 0;
  for (int k = 0; k < c.chunks; ++k) {
    write_chunk(c, k, chunk);
    Run r = run({ESCTL_BIN, "--store", store, "import", chunk, "--batch", std::to_string(c.batch), "-q"});
    if (r.status != 0) {
      fmt::print(stderr, "bench_scale: import of chunk {} exited {}\n", k, r.status);
      return 1;
    }
    const double rate = static_cast<double>(c.events) / r.wall;
    if (k == 0) first_rate = rate;
    std::error_code ec;
    const auto size = static_cast<std::int64_t>(fs::file_size(store, ec));
    const double per_event = static_cast<double>(size - last_size) / static_cast<double>(c.events);
    last_size = size;
    // rchar counts the chunk file too: subtract it to leave what came from the store.
    const auto chunk_bytes = static_cast<long long>(fs::file_size(chunk, ec));
    fmt::print("{:>5} {:>8.0f} {:>9.0f} {:>6.2f} {:>6.2f} {:>6.2f} {:>9} {:>9.1f} {:>8.1f} {:>8.1f} {:>6.0f} {:>6.1f}\n",
               k + 1, static_cast<double>(size) / 1e6, rate, rate / first_rate, r.user, r.sys, r.io.syscr,
               static_cast<double>(std::max(0LL, r.io.rchar - chunk_bytes)) / 1e6,
               static_cast<double>(r.io.read_bytes) / 1e6, static_cast<double>(r.io.wchar) / 1e6, per_event,
               static_cast<double>(r.rss_kb) / 1024.0);
    std::fflush(stdout);
  }
  fs::remove(chunk);
  if (made_dir && !c.keep) fs::remove_all(c.dir);
  else fmt::print("bench_scale: store kept at {}\n", store);
  return 0;
}
