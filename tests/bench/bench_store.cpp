// Benchmark of the store's write and read paths against raw SQLite doing the same work, in one
// run on the same data (not a test; never run in CI):
//   import  : `esctl import` of N NDJSON events (export format: ids, versions, recorded_at) over
//             S interleaved streams vs a prepared bulk INSERT into a plain rowid table (same
//             batch size, WAL, synchronous=FULL); overall rate and first-10% vs last-10% rates.
//   append  : one `esctl append` process per event vs one `sqlite3 FILE "INSERT ..."` per event,
//             both durable (fsync on commit), alternated, medians.
//   read    : `esctl read --all --json >/dev/null` vs an in-process scan of every column.
//   export  : `esctl export >/dev/null`.
//   RSS     : peak resident set of the import and export processes (wait4 rusage).
// Usage: bench_store [EVENTS=1000000] [--streams S] [--batch B] [--appends K] [--dir DIR] [--no-ids]
//                    [--compare-esctl PATH]   (a second esctl binary, alternated in the append runs)
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/time.hpp"
#include "core/uuid.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Config {
  std::int64_t events = 1000000;
  int streams = 10000;
  int batch = 1000;  // the issue's measurements: batches of 1000
  int appends = 30;
  std::string dir;
  bool ids = true;
  std::string other_esctl;  // --compare-esctl: a second binary (say, an older build) in the append runs
};

struct Row {
  std::string stream, type, data, meta;
  esctl::Uuid id;
  std::int64_t version, recorded_at;
};

struct ChildResult {
  int status = -1;
  double seconds = 0;      // wall clock
  double cpu_seconds = 0;  // user + system (the load of other processes does not count)
  long max_rss_kb = 0;     // peak RSS after exec: VmHWM, sampled until exit
};

double cpu_of(const rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double self_cpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return cpu_of(ru);
}

/// VmHWM of a running process in kB, or -1. (wait4's ru_maxrss cannot be used: a child
/// spawned with vfork semantics inherits its parent's high-water mark across exec.)
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

/// Runs argv with stdin from `in` and stdout to `out` (paths), samples its peak RSS until it
/// exits, and calls `while_running` every few milliseconds meanwhile.
ChildResult run_child(const std::vector<std::string>& args, const std::string& in, const std::string& out,
                      const std::function<void()>& while_running = {}) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  auto t0 = Clock::now();
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
    fmt::print(stderr, "bench_store: cannot run {}\n", args[0]);
    std::exit(1);
  }
  posix_spawn_file_actions_destroy(&fa);
  ChildResult r;
  int status = 0;
  rusage ru{};
  for (;;) {
    long hwm = vm_hwm_kb(pid);  // before wait4: a reaped child has no /proc entry
    pid_t done = wait4(pid, &status, WNOHANG, &ru);
    if (done == pid) break;
    r.max_rss_kb = std::max(r.max_rss_kb, hwm);
    if (while_running) while_running();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  r.seconds = seconds_since(t0);
  r.cpu_seconds = cpu_of(ru);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

void check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fmt::print(stderr, "bench_store: {}: {}\n", what, sqlite3_errmsg(db));
    std::exit(1);
  }
}

void exec(sqlite3* db, const char* sql) { check(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), db, sql); }

/// Builds the data set: N events of ~200 bytes of JSON over S streams picked at random.
std::vector<Row> make_rows(const Config& c) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> pick(0, c.streams - 1), small(1, 9), sku(100, 999);
  static const char* kTypes[] = {"OrderPlaced", "ItemAdded", "ItemRemoved", "PaymentTaken", "OrderShipped"};
  std::vector<std::int64_t> next(static_cast<std::size_t>(c.streams), 0);
  std::vector<Row> rows;
  rows.reserve(static_cast<std::size_t>(c.events));
  std::int64_t t = esctl::now_us();
  for (std::int64_t i = 0; i < c.events; ++i) {
    int s = pick(rng);
    Row r;
    r.stream = fmt::format("order-{}", s);
    r.type = kTypes[i % 5];
    r.data = fmt::format(
        R"({{"customer":"c-{}","items":[{{"sku":"sku-{}","qty":{},"price":{}.{}0}},{{"sku":"sku-{}","qty":{},"price":{}.50}}],)"
        R"("currency":"EUR","channel":"web","note":"bench event {} of stream {}"}})",
        s * 7 % 9973, sku(rng), small(rng), sku(rng) / 10, small(rng), sku(rng), small(rng), sku(rng) / 10, i, s);
    r.meta = R"({"by":"bench"})";
    r.id = esctl::new_uuid_v7();
    r.version = next[static_cast<std::size_t>(s)]++;
    r.recorded_at = t + i;
    rows.push_back(std::move(r));
  }
  return rows;
}

void write_ndjson(const std::vector<Row>& rows, const std::string& path, bool ids) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  std::string line;
  for (const auto& r : rows) {
    line = fmt::format(R"({{"stream":"{}","version":{},)", r.stream, r.version);
    if (ids) line += fmt::format(R"("id":"{}",)", esctl::format_uuid(r.id));
    line += fmt::format(R"("type":"{}","data":{},"meta":{},"recorded_at":"{}"}})", r.type, r.data, r.meta,
                        esctl::format_rfc3339(r.recorded_at));
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), f);
  }
  std::fclose(f);
}

struct Rates {
  double total = 0, first10 = 0, last10 = 0, seconds = 0, cpu_seconds = 0;
};

/// The plain-table bulk insert: the same rows, the same batch size, the same durability.
Rates baseline_insert(const std::vector<Row>& rows, const std::string& path, int batch) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-16384;");
  exec(db,
       "CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL, "
       "id BLOB NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, meta TEXT NOT NULL, recorded_at INTEGER NOT NULL)");
  sqlite3_stmt* ins = nullptr;
  check(sqlite3_prepare_v2(db,
                           "INSERT INTO events (stream, version, id, type, data, meta, recorded_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                           -1, &ins, nullptr),
        db, "prepare");
  const auto n = static_cast<std::int64_t>(rows.size());
  const std::int64_t tenth = std::max<std::int64_t>(1, n / 10);
  auto t0 = Clock::now();
  double cpu0 = self_cpu();
  double t_first = 0, t_last_start = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (i % batch == 0) exec(db, "BEGIN");
    const Row& r = rows[static_cast<std::size_t>(i)];
    sqlite3_bind_text(ins, 1, r.stream.data(), static_cast<int>(r.stream.size()), SQLITE_STATIC);
    sqlite3_bind_int64(ins, 2, r.version);
    sqlite3_bind_blob(ins, 3, r.id.bytes.data(), 16, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, r.type.data(), static_cast<int>(r.type.size()), SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, r.data.data(), static_cast<int>(r.data.size()), SQLITE_STATIC);
    sqlite3_bind_text(ins, 6, r.meta.data(), static_cast<int>(r.meta.size()), SQLITE_STATIC);
    sqlite3_bind_int64(ins, 7, r.recorded_at);
    check(sqlite3_step(ins), db, "insert");
    sqlite3_reset(ins);
    if ((i + 1) % batch == 0 || i + 1 == n) {
      exec(db, "COMMIT");
      double t = seconds_since(t0);
      if (t_first == 0 && i + 1 >= tenth) t_first = t;
      if (t_last_start == 0 && i + 1 >= n - tenth) t_last_start = t;
    }
  }
  Rates out;
  out.seconds = seconds_since(t0);
  out.cpu_seconds = self_cpu() - cpu0;
  sqlite3_finalize(ins);
  sqlite3_close(db);
  out.total = static_cast<double>(n) / out.seconds;
  out.first10 = static_cast<double>(tenth) / t_first;
  out.last10 = static_cast<double>(tenth) / (out.seconds - t_last_start);
  return out;
}

/// Watches an esctl import from outside: when did the store hold 10% and 90% of the events?
class Watcher {
 public:
  Watcher(const std::string& path, std::int64_t n) : path_(path), n_(n), t0_(Clock::now()) {}
  void poll() {
    auto now = Clock::now();
    if (now < next_) return;
    next_ = now + std::chrono::milliseconds(20);
    if (!db_ && sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      sqlite3_close(db_);
      db_ = nullptr;
      return;
    }
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, "SELECT coalesce(max(position), 0) FROM events", -1, &s, nullptr) != SQLITE_OK) {
      sqlite3_finalize(s);
      return;
    }
    std::int64_t have = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    double t = seconds_since(t0_);
    if (t10_ == 0 && have >= n_ / 10) {
      t10_ = t;
      n10_ = have;
    }
    if (t90_ == 0 && have >= n_ - n_ / 10) {
      t90_ = t;
      n90_ = have;
    }
  }
  ~Watcher() { sqlite3_close(db_); }
  Rates rates(double total_seconds) const {
    Rates r;
    r.seconds = total_seconds;
    r.total = static_cast<double>(n_) / total_seconds;
    r.first10 = t10_ > 0 ? static_cast<double>(n10_) / t10_ : 0;
    r.last10 = t90_ > 0 ? static_cast<double>(n_ - n90_) / (total_seconds - t90_) : 0;
    return r;
  }

 private:
  std::string path_;
  std::int64_t n_;
  Clock::time_point t0_, next_{};
  sqlite3* db_ = nullptr;
  double t10_ = 0, t90_ = 0;
  std::int64_t n10_ = 0, n90_ = 0;
};

double raw_scan(const std::string& path, std::int64_t& rows) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* s = nullptr;
  check(sqlite3_prepare_v2(db,
                           "SELECT position, stream_id, version, id, type, data, meta, recorded_at FROM events "
                           "ORDER BY position",
                           -1, &s, nullptr),
        db, "scan");
  auto t0 = Clock::now();
  std::size_t bytes = 0;
  rows = 0;
  while (sqlite3_step(s) == SQLITE_ROW) {
    bytes += static_cast<std::size_t>(sqlite3_column_int64(s, 0) + sqlite3_column_int64(s, 1) + sqlite3_column_int64(s, 2));
    bytes += static_cast<std::size_t>(sqlite3_column_bytes(s, 3)) + (sqlite3_column_blob(s, 3) != nullptr);
    for (int c = 4; c <= 6; ++c)
      bytes += static_cast<std::size_t>(sqlite3_column_bytes(s, c)) + (sqlite3_column_text(s, c) != nullptr);
    bytes += static_cast<std::size_t>(sqlite3_column_int64(s, 7) & 1);
    ++rows;
  }
  double secs = seconds_since(t0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  if (bytes == 42) std::puts("");  // keep the loop's work observable
  return secs;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

const char* verdict(bool ok) { return ok ? "ok" : "MISSED"; }

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "bench_store: {} needs a value\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--streams") c.streams = std::stoi(value());
    else if (a == "--batch") c.batch = std::stoi(value());
    else if (a == "--appends") c.appends = std::stoi(value());
    else if (a == "--dir") c.dir = value();
    else if (a == "--no-ids") c.ids = false;
    else if (a == "--compare-esctl") c.other_esctl = value();
    else if (a == "-h" || a == "--help") {
      fmt::print("usage: bench_store [EVENTS=1000000] [--streams 10000] [--batch 1000] [--appends 30] [--dir DIR] [--no-ids] [--compare-esctl PATH]\n");
      return 0;
    } else c.events = std::stoll(a);
  }
  const std::string esctl = ESCTL_BIN;
  bool own_dir = c.dir.empty();
  if (own_dir) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "esctl-bench-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return 1;
    c.dir = tmpl;
  }
  std::filesystem::create_directories(c.dir);
  auto path = [&](const char* name) { return c.dir + "/" + name; };
  for (const char* f : {"store.db", "store.db-wal", "store.db-shm", "plain.db", "plain.db-wal", "plain.db-shm"})
    std::filesystem::remove(path(f));

  fmt::print("esctl store benchmark: {} events over {} streams, batches of {}, {} ids, in {}\n", c.events, c.streams,
             c.batch, c.ids ? "UUIDv7" : "generated", c.dir);
  fmt::print("  esctl: {}\n  SQLite: {}\n\n", esctl, sqlite3_libversion());
  auto rows = make_rows(c);
  write_ndjson(rows, path("events.ndjson"), c.ids);
  fmt::print("data: {} bytes of NDJSON ({:.0f} B/line)\n\n", std::filesystem::file_size(path("events.ndjson")),
             static_cast<double>(std::filesystem::file_size(path("events.ndjson"))) / static_cast<double>(c.events));

  // 1. Import vs the plain-table baseline.
  Rates base = baseline_insert(rows, path("plain.db"), c.batch);
  rows.clear();
  rows.shrink_to_fit();
  Watcher watch(path("store.db"), c.events);
  auto imp = run_child({esctl, "--store", path("store.db"), "-q", "import", "--batch", std::to_string(c.batch)},
                       path("events.ndjson"), "/dev/null", [&] { watch.poll(); });
  if (imp.status != 0) {
    fmt::print(stderr, "bench_store: esctl import failed with status {}\n", imp.status);
    return 1;
  }
  Rates er = watch.rates(imp.seconds);
  er.cpu_seconds = imp.cpu_seconds;
  const double n = static_cast<double>(c.events);
  fmt::print("import ({} events)                 events/s   first 10%   last 10%   first/last   seconds   CPU events/s\n",
             c.events);
  fmt::print("  raw SQLite, plain rowid table  {:>10.0f}  {:>10.0f}  {:>9.0f}  {:>10.2f}x  {:>8.2f}  {:>12.0f}\n", base.total,
             base.first10, base.last10, base.first10 / base.last10, base.seconds, n / base.cpu_seconds);
  fmt::print("  esctl import                   {:>10.0f}  {:>10.0f}  {:>9.0f}  {:>10.2f}x  {:>8.2f}  {:>12.0f}\n", er.total,
             er.first10, er.last10, er.last10 > 0 ? er.first10 / er.last10 : 0.0, er.seconds, n / er.cpu_seconds);
  double share = er.total / base.total;
  double slowdown = er.last10 > 0 ? er.first10 / er.last10 : 99;
  fmt::print("  esctl / baseline: {:.0f}% (target >= 50%: {});  last 10% slower than first by {:.2f}x (target <= 1.5x: {})\n",
             share * 100, verdict(share >= 0.5), slowdown, verdict(slowdown <= 1.5));
  fmt::print("  peak RSS of esctl import: {:.1f} MB (target <= 64 MB: {})\n\n", imp.max_rss_kb / 1024.0,
             verdict(imp.max_rss_kb <= 64 * 1024));

  // 2. Reading everything.
  std::int64_t scanned = 0;
  double scan_cpu0 = self_cpu();
  double scan_s = raw_scan(path("store.db"), scanned);
  double scan_cpu = self_cpu() - scan_cpu0;
  auto rd = run_child({esctl, "--store", path("store.db"), "--json", "read", "--all"}, "/dev/null", "/dev/null");
  auto ex = run_child({esctl, "--store", path("store.db"), "export"}, "/dev/null", "/dev/null");
  double read_rate = n / rd.seconds;
  fmt::print("read everything                    events/s   seconds   peak RSS   CPU events/s\n");
  fmt::print("  raw scan, every column         {:>10.0f}  {:>8.2f}          -  {:>12.0f}\n",
             static_cast<double>(scanned) / scan_s, scan_s, static_cast<double>(scanned) / scan_cpu);
  fmt::print("  esctl read --all --json        {:>10.0f}  {:>8.2f}  {:>6.1f} MB  {:>12.0f}\n", read_rate, rd.seconds,
             rd.max_rss_kb / 1024.0, n / rd.cpu_seconds);
  fmt::print("  esctl export                   {:>10.0f}  {:>8.2f}  {:>6.1f} MB  {:>12.0f}\n", n / ex.seconds, ex.seconds,
             ex.max_rss_kb / 1024.0, n / ex.cpu_seconds);
  fmt::print("  read --all --json >= 1M events/s: {};  export peak RSS <= 64 MB: {}\n\n", verdict(read_rate >= 1e6),
             verdict(ex.max_rss_kb <= 64 * 1024));

  // 3. One process per append, alternating with the sqlite3 shell doing one INSERT.
  bool have_sqlite3 = system("command -v sqlite3 >/dev/null 2>&1") == 0;
  std::vector<double> esctl_s, shell_s, esctl_cpu, shell_cpu, other_s, other_cpu;
  for (int i = 0; i < c.appends; ++i) {
    auto stream = fmt::format("order-{}", i % c.streams);
    auto a = run_child({esctl, "--store", path("store.db"), "append", stream, "ItemAdded",
                        R"({"sku":"sku-1","qty":1,"price":9.50})"},
                       "/dev/null", "/dev/null");
    if (a.status != 0) {
      fmt::print(stderr, "bench_store: esctl append failed with status {}\n", a.status);
      return 1;
    }
    esctl_s.push_back(a.seconds);
    esctl_cpu.push_back(a.cpu_seconds);
    if (!c.other_esctl.empty()) {
      auto o = run_child({c.other_esctl, "--store", path("store.db"), "append", stream, "ItemAdded",
                          R"({"sku":"sku-1","qty":1,"price":9.50})"},
                         "/dev/null", "/dev/null");
      if (o.status != 0) {
        fmt::print(stderr, "bench_store: {} append failed with status {}\n", c.other_esctl, o.status);
        return 1;
      }
      other_s.push_back(o.seconds);
      other_cpu.push_back(o.cpu_seconds);
    }
    if (have_sqlite3) {
      auto sql = fmt::format(
          "PRAGMA synchronous=FULL; INSERT INTO events (stream, version, id, type, data, meta, recorded_at) "
          "VALUES ('{}', {}, randomblob(16), 'ItemAdded', '{{\"sku\":\"sku-1\",\"qty\":1,\"price\":9.50}}', '{{}}', {})",
          stream, i, esctl::now_us());
      auto s = run_child({"sqlite3", path("plain.db"), sql}, "/dev/null", "/dev/null");
      shell_s.push_back(s.seconds);
      shell_cpu.push_back(s.cpu_seconds);
    }
  }
  if (c.appends <= 0) {  // --appends 0: import and read only
    if (own_dir) std::filesystem::remove_all(c.dir);
    return 0;
  }
  double em = median(esctl_s) * 1000, sm = median(shell_s) * 1000;
  fmt::print("append, one process per event ({} runs)   median ms   median CPU ms\n", c.appends);
  if (have_sqlite3)
    fmt::print("  sqlite3 FILE \"INSERT ...\"           {:>8.2f}   {:>12.2f}\n", sm, median(shell_cpu) * 1000);
  fmt::print("  esctl append                         {:>8.2f}   {:>12.2f}\n", em, median(esctl_cpu) * 1000);
  if (!c.other_esctl.empty())
    fmt::print("  {} append  {:>8.2f}   {:>12.2f}{}\n", c.other_esctl, median(other_s) * 1000,
               median(other_cpu) * 1000, have_sqlite3 ? fmt::format("   ({:.2f}x sqlite3)", median(other_s) * 1000 / sm) : "");
  if (have_sqlite3)
    fmt::print("  esctl / sqlite3: {:.2f}x (target <= 1.0x: {})\n", em / sm, verdict(em / sm <= 1.0));
  else
    fmt::print("  (no sqlite3 shell on PATH: no baseline)\n");

  if (own_dir) std::filesystem::remove_all(c.dir);
  return 0;
}
