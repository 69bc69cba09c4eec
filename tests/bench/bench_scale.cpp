// Benchmark of import cost as the store grows (not a test; never run in CI): imports N chunks of
// E events, one after another, into ONE store, and prints per chunk the import rate, user and
// system CPU, read(2)-family calls and bytes (from the kernel: WAL frames a checkpoint copies,
// pages that fell out of SQLite's page cache) and bytes that came from the disk, minor page
// faults, and SQLite's own page-cache counters (hits, misses, pages written). Rates depend on
// the machine's load; the counts do not, so a cost that grows with the store shows up in them
// even on a busy machine (the last column is the machine's load average). It also prints the
// machine's free memory and the page cache charged to the benchmark's memory cgroup before each
// chunk, and during it the child's major faults, the pages the kernel scanned to reclaim memory
// and the file pages read back after reclaim evicted them (machine-wide): once the page cache
// has used up free memory (or the cgroup's limit), every new page of the store costs the kernel
// a reclaim, in any program.
// After each chunk it prints the size of each b-tree (dbstat).
//
// By default each chunk is imported by a forked child running esctl's own append path (the one
// `esctl import` runs: parse each line, Store::append per --batch lines), so the counters of its
// connection can be read; --binary runs the built `esctl import` instead (no SQLite counters).
//
// The data: E events per chunk over S streams interleaved round-robin (every stream advances in
// every chunk), ~230 bytes each in export format (stream, version, id, type, data, meta,
// recorded_at), time-ordered UUIDv7 ids, as `export` of a live store writes them; with
// --random-ids, random UUIDv4 ids instead, as clients that choose their own ids often send.
//
// Usage: bench_scale [--chunks N=16] [--events E=1000000] [--streams S=10000] [--batch B=1000]
//                    [--dir DIR] [--start K] [--keep] [--binary] [--no-sizes] [--random-ids]
//                    [--cache-mb M]
// --cache-mb M sets the page cache of the in-process import's connection to M MiB instead of
// esctl's own setting, to see what a larger (or smaller) cache would change.
// --start K begins with chunk K (0-based): with --dir and --keep, a later run continues a store.
// --keep also keeps the last chunk's file (chunk.ndjson), e.g. to import it again under strace.
// The store needs about 230 MB per million events; DIR defaults to a fresh directory in $TMPDIR.
// Memory pressure on a machine with plenty of RAM: start it in a memory cgroup whose limit is
// below the store's size (cgroup v1: mkdir a child of the memory controller's cgroup, write the
// limit to memory.limit_in_bytes and the shell's pid to cgroup.procs); page cache is charged to
// the cgroup, so the kernel reclaims the store's pages as on a small machine.
#include <fcntl.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/mman.h>
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
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/ndjson.hpp"
#include "core/time.hpp"
#include "core/uuid.hpp"
#include "store/store.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  int chunks = 16;
  std::int64_t events = 1000000;
  int streams = 10000;
  int batch = 1000;
  int start = 0;  ///< index of the first chunk: > 0 continues a store kept by an earlier run
  std::string dir;
  bool keep = false;
  bool binary = false;  ///< run `esctl import` instead of the append path in a forked child
  bool sizes = true;    ///< print b-tree sizes after each chunk
  bool random_ids = false;  ///< UUIDv4 ids (random, as many clients make them) instead of UUIDv7
  int cache_mb = 0;         ///< in process: the connection's page cache in MiB (0: esctl's own)
};

/// SQLite's page-cache counters of the child's store connection (sqlite3_db_status), handed to
/// the parent through shared memory.
struct CacheCounters {
  int hit = -1, miss = -1, write = -1, spill = -1;
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

/// Reclaim counters, machine-wide (/proc/vmstat): pages scanned to reclaim memory (pgscan_file +
/// pgscan_anon: kswapd, direct and cgroup reclaim alike) and file pages read back after reclaim
/// had evicted them (workingset_refault_file). Non-zero while a chunk imports means new
/// page-cache pages (the store's new pages, the chunk file) cost reclaim, whatever esctl does.
struct Reclaim {
  long long scanned = 0, refaults = 0;
};

Reclaim reclaim_counters() {
  Reclaim r;
  std::FILE* f = std::fopen("/proc/vmstat", "r");
  if (!f) return r;
  char name[64];
  long long v = 0;
  while (std::fscanf(f, "%63s %lld", name, &v) == 2) {
    if (std::strcmp(name, "pgscan_file") == 0 || std::strcmp(name, "pgscan_anon") == 0) r.scanned += v;
    if (std::strcmp(name, "workingset_refault_file") == 0) r.refaults = v;
  }
  std::fclose(f);
  return r;
}

/// The memory cgroup this process is in: its memory.stat file and its limit in MB (-1: none or
/// unknown). Run the benchmark in a cgroup with a limit below the store's size to see the import
/// under memory pressure on a machine with plenty of RAM: page cache is charged to the cgroup.
struct Cgroup {
  std::string stat_path;
  long limit_mb = -1;
};

Cgroup own_cgroup() {
  Cgroup cg;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    std::string dir;
    if (controllers == "memory") dir = "/sys/fs/cgroup/memory" + path;  // v1
    else if (controllers.empty() && line.compare(0, 2, "0:") == 0) dir = "/sys/fs/cgroup" + path;  // v2
    else continue;
    std::error_code ec;
    if (!std::filesystem::exists(dir + "/memory.stat", ec)) continue;
    cg.stat_path = dir + "/memory.stat";
    std::ifstream lim(dir + (controllers == "memory" ? "/memory.limit_in_bytes" : "/memory.max"));
    long long bytes = -1;
    if (lim >> bytes && bytes > 0 && bytes < (1LL << 50)) cg.limit_mb = static_cast<long>(bytes >> 20);
    if (controllers == "memory") break;  // v1 wins over a v2 line
  }
  return cg;
}

/// MB of page cache charged to the cgroup ("cache" in v1, "file" in v2), -1 if unknown.
long cgroup_cache_mb(const Cgroup& cg) {
  if (cg.stat_path.empty()) return -1;
  std::ifstream in(cg.stat_path);
  std::string name;
  long long v = 0;
  while (in >> name >> v)
    if (name == "cache" || name == "file") return static_cast<long>(v >> 20);
  return -1;
}

/// The machine's 1-minute load average (/proc/loadavg), -1 if unknown: rates are comparable only
/// at similar loads.
double load_average() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  in >> load;
  return load;
}

long mem_free_mb() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[128];
  long kb = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemFree: %ld kB", &kb) == 1) break;
  std::fclose(f);
  return kb < 0 ? -1 : kb / 1024;
}

struct Run {
  int status = -1;
  double wall = 0, user = 0, sys = 0;
  long rss_kb = 0;
  long minflt = 0, majflt = 0;
  Io io;  ///< as last sampled, a few ms before the process exited
};

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

/// Waits for `pid` (started at t0), sampling its peak RSS and I/O counters until it exits.
Run watch(pid_t pid, Clock::time_point t0) {
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
  r.minflt = ru.ru_minflt;
  r.majflt = ru.ru_majflt;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

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
  return watch(pid, t0);
}

sqlite3* g_child_db = nullptr;  // the store connection of an in-process import (child only)

/// Registered with sqlite3_auto_extension: remembers the connection the Store opens.
int remember_connection(sqlite3* db, char** /*error*/, const void* /*api*/) {
  g_child_db = db;
  return SQLITE_OK;
}

/// Imports `chunk` into `store` in a forked child through Store::append, `batch` lines per call,
/// as `esctl import` does; the child leaves its connection's cache counters in `out`.
Run run_in_process(const std::string& store, const std::string& chunk, int batch, int cache_mb, CacheCounters* out) {
  std::fflush(stdout);
  const auto t0 = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    fmt::print(stderr, "bench_scale: cannot fork\n");
    std::exit(1);
  }
  if (pid > 0) return watch(pid, t0);
  int code = 0;
  try {
    sqlite3_auto_extension(reinterpret_cast<void (*)()>(&remember_connection));
    esctl::Store s(esctl::StoreOptions{store}, esctl::Access::write);
    if (cache_mb > 0 && g_child_db)
      sqlite3_exec(g_child_db, fmt::format("PRAGMA cache_size = -{}", cache_mb * 1024).c_str(), nullptr, nullptr, nullptr);
    std::vector<char> buffer(1 << 20);  // 1 MiB reads, as esctl import's (set before open to take effect)
    std::ifstream in;
    in.rdbuf()->pubsetbuf(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    in.open(chunk, std::ios::binary);
    std::vector<esctl::NewEvent> events;
    std::string line;
    std::int64_t line_no = 0;
    while (std::getline(in, line)) {
      events.push_back(esctl::parse_event_line(line, ++line_no));
      if (static_cast<int>(events.size()) == batch) {
        s.append(events, {}, true);
        events.clear();
      }
    }
    if (!events.empty()) s.append(events, {}, true);
    if (g_child_db) {
      int cur = 0, high = 0;
      sqlite3_db_status(g_child_db, SQLITE_DBSTATUS_CACHE_HIT, &cur, &high, 0), out->hit = cur;
      sqlite3_db_status(g_child_db, SQLITE_DBSTATUS_CACHE_MISS, &cur, &high, 0), out->miss = cur;
      sqlite3_db_status(g_child_db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &high, 0), out->write = cur;
      sqlite3_db_status(g_child_db, SQLITE_DBSTATUS_CACHE_SPILL, &cur, &high, 0), out->spill = cur;
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_scale: in-process import: {}\n", e.what());
    code = 1;
  }
  std::fflush(stderr);
  _exit(code);
}

/// MB of each b-tree of the store (dbstat), by name.
std::map<std::string, double> btree_mb(const std::string& store) {
  std::map<std::string, double> out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(store.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT name, sum(pgsize) FROM dbstat GROUP BY name", -1, &st, nullptr) == SQLITE_OK)
      while (sqlite3_step(st) == SQLITE_ROW)
        out[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] = static_cast<double>(sqlite3_column_int64(st, 1)) / 1e6;
    sqlite3_finalize(st);
  }
  sqlite3_close_v2(db);
  return out;
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
  std::mt19937_64 rng(std::random_device{}());
  auto next_id = [&] {
    esctl::Uuid u = esctl::new_uuid_v7();
    if (c.random_ids) {
      for (std::size_t b = 0; b < u.bytes.size(); b += 8) {
        const std::uint64_t r = rng();
        std::memcpy(u.bytes.data() + b, &r, 8);
      }
      u.bytes[6] = static_cast<std::uint8_t>((u.bytes[6] & 0x0f) | 0x40);  // version 4
      u.bytes[8] = static_cast<std::uint8_t>((u.bytes[8] & 0x3f) | 0x80);  // RFC 9562 variant
    }
    return u;
  };
  for (std::int64_t j = 0; j < c.events; ++j) {
    const std::int64_t i = static_cast<std::int64_t>(k) * c.events + j;
    const std::int64_t s = i % c.streams, v = i / c.streams;
    line = fmt::format(
        R"({{"stream":"order-{}","version":{},"id":"{}","type":"{}","data":{{"customer":"c-{}","sku":"sku-{}",)"
        R"("qty":{},"price":{}.50,"currency":"EUR","note":"event {} of stream {}"}},"meta":{{"by":"bench"}},)"
        R"("recorded_at":"{}"}})"
        "\n",
        s, v, esctl::format_uuid(next_id()), kTypes[i % 5], s * 7 % 9973, 100 + i % 900, 1 + i % 9,
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
    else if (a == "--start") c.start = std::stoi(next());
    else if (a == "--keep") c.keep = true;
    else if (a == "--binary") c.binary = true;
    else if (a == "--no-sizes") c.sizes = false;
    else if (a == "--random-ids") c.random_ids = true;
    else if (a == "--cache-mb") c.cache_mb = std::stoi(next());
    else {
      fmt::print(stderr, "usage: bench_scale [--chunks N] [--events E] [--streams S] [--batch B] [--dir DIR] [--start K] [--keep] "
                         "[--binary] [--no-sizes] [--random-ids] [--cache-mb M]\n");
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
  fmt::print("bench_scale: {} chunks of {} events over {} streams, --batch {}, {}{}{}, store {}\n", c.chunks,
             c.events, c.streams, c.batch, c.random_ids ? "random ids, " : "",
             c.binary ? "esctl import" : "append path in process",
             c.cache_mb > 0 ? fmt::format(", page cache {} MiB", c.cache_mb) : "", store);
  const Cgroup cg = own_cgroup();
  if (cg.limit_mb > 0) fmt::print("bench_scale: in a memory cgroup limited to {} MB (page cache counts)\n", cg.limit_mb);
  // x1st: the rate against the first chunk's (load moves it); cpu x1st: the first chunk's CPU time
  // against this one's (so also < 1 when a chunk costs more), which load moves much less.
  fmt::print("{:>5} {:>8} {:>9} {:>5} {:>6} {:>5} {:>7} {:>7} {:>7} {:>6} {:>7} {:>4} {:>5} {:>7} {:>9} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>8} {:>7} {:>5}\n",
             "chunk", "store MB", "events/s", "x1st", "user s", "sys s", "cpu x1st", "reads", "read MB", "diskMB", "writeMB",
             "B/ev", "RSSMB", "minflt", "c.hit", "c.miss", "c.write", "spill", "freeMB", "cgMB", "majflt", "scanned", "refault", "load");
  double first_rate = 0, first_cpu = 0;
  std::error_code no_store;
  std::int64_t last_size = static_cast<std::int64_t>(fs::file_size(store, no_store));
  if (no_store) last_size = 0;
  auto* counters = static_cast<CacheCounters*>(
      mmap(nullptr, sizeof(CacheCounters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  for (int k = c.start; k < c.start + c.chunks; ++k) {
    write_chunk(c, k, chunk);
    *counters = CacheCounters{};
    const long free_mb = mem_free_mb();
    const long cg_mb = cgroup_cache_mb(cg);
    const Reclaim reclaim_before = reclaim_counters();
    Run r = c.binary ? run({ESCTL_BIN, "--store", store, "import", chunk, "--batch", std::to_string(c.batch), "-q"})
                     : run_in_process(store, chunk, c.batch, c.cache_mb, counters);
    if (r.status != 0) {
      fmt::print(stderr, "bench_scale: import of chunk {} exited {}\n", k, r.status);
      return 1;
    }
    const Reclaim reclaim_after = reclaim_counters();
    const double rate = static_cast<double>(c.events) / r.wall;
    if (k == c.start) first_rate = rate, first_cpu = r.user + r.sys;
    std::error_code ec;
    const auto size = static_cast<std::int64_t>(fs::file_size(store, ec));
    const double per_event = static_cast<double>(size - last_size) / static_cast<double>(c.events);
    last_size = size;
    // rchar counts the chunk file too: subtract it to leave what came from the store.
    const auto chunk_bytes = static_cast<long long>(fs::file_size(chunk, ec));
    // SQLite's counters are known only in process (-1: --binary).
    auto count = [](int n) { return n < 0 ? std::string("-") : std::to_string(n); };
    fmt::print("{:>5} {:>8.0f} {:>9.0f} {:>5.2f} {:>6.2f} {:>5.2f} {:>8.2f} {:>7} {:>7.1f} {:>6.1f} {:>7.1f} {:>4.0f} {:>5.1f} {:>7} "
               "{:>9} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>8} {:>7} {:>5.1f}\n",
               k + 1, static_cast<double>(size) / 1e6, rate, rate / first_rate, r.user, r.sys,
               first_cpu / (r.user + r.sys), r.io.syscr,
               static_cast<double>(std::max(0LL, r.io.rchar - chunk_bytes)) / 1e6,
               static_cast<double>(r.io.read_bytes) / 1e6, static_cast<double>(r.io.wchar) / 1e6, per_event,
               static_cast<double>(r.rss_kb) / 1024.0, r.minflt, count(counters->hit), count(counters->miss),
               count(counters->write), count(counters->spill), free_mb, cg_mb, r.majflt, reclaim_after.scanned - reclaim_before.scanned,
               reclaim_after.refaults - reclaim_before.refaults, load_average());
    if (c.sizes) {
      std::string line = "      b-trees MB:";
      for (const auto& [name, mb] : btree_mb(store))
        if (mb >= 0.1) line += fmt::format(" {} {:.1f}", name, mb);  // the empty queue tables are noise
      fmt::print("{}\n", line);
    }
    std::fflush(stdout);
  }
  if (!c.keep) fs::remove(chunk);
  if (made_dir && !c.keep) fs::remove_all(c.dir);
  else fmt::print("bench_scale: store kept at {}\n", store);
  return 0;
}
