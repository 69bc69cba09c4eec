// Benchmark of `esctl rebuild`: a 1M-event store replayed through a two-statement projection,
// run as the real binary (wall time, peak RSS from wait4). Baseline, measured in the same run on
// the same events: a hand-written raw SQLite replay that reads the events in position order and
// runs the same two INSERTs into the same tables with the same pragmas and commit size. Target:
// rebuild >= 70% of the baseline's events/s, peak RSS <= 64 MB. Not a test; never run in CI.
//
// Usage: bench_rebuild [EVENTS=1000000] [STREAMS=10000] [ROUNDS=3]
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
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

constexpr const char* kInit =
    "CREATE TABLE items (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, sku TEXT, amount INTEGER);"
    "CREATE TABLE totals (stream TEXT PRIMARY KEY, n INTEGER NOT NULL, amount INTEGER NOT NULL);";
constexpr const char* kInsertItem = "INSERT INTO items VALUES (?1, ?2, ?3 ->> '$.sku', ?3 ->> '$.amount')";
constexpr const char* kUpsertTotal =
    "INSERT INTO totals VALUES (?1, 1, ?2 ->> '$.amount') "
    "ON CONFLICT (stream) DO UPDATE SET n = n + 1, amount = amount + excluded.amount";

void check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fmt::print(stderr, "sqlite error in {}: {}\n", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    std::exit(1);
  }
}

void make_store(const std::string& path, long events, long streams) {
  esctl::Store store(esctl::StoreOptions{path, 5000}, esctl::Access::write);
  std::vector<esctl::NewEvent> batch;
  for (long i = 0; i < events; ++i) {
    esctl::NewEvent e;
    e.stream = fmt::format("cart-{}", (i * 7919) % streams);
    bool other = i % 10 == 9;  // 10% of events are of a type the projection does not handle
    e.type = other ? "CartViewed" : "ItemAdded";
    e.data = fmt::format(R"({{"sku":"SKU-{:05}","amount":{},"note":"some text to make it realistic"}})", i % 50000,
                         i % 97);
    batch.push_back(std::move(e));
    if (batch.size() == 10000) {
      store.append(batch, {}, false);
      batch.clear();
    }
  }
  if (!batch.empty()) store.append(batch, {}, false);
}

// The baseline: what someone would write by hand with the SQLite C API.
long raw_replay(const std::string& store_path, const std::string& out_path) {
  std::filesystem::remove(out_path);
  sqlite3 *in = nullptr, *out = nullptr;
  check(sqlite3_open_v2(store_path.c_str(), &in, SQLITE_OPEN_READONLY, nullptr), in, "open store");
  check(sqlite3_open_v2(out_path.c_str(), &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr), out, "open out");
  check(sqlite3_exec(out,
                     "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE; "
                     "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY",
                     nullptr, nullptr, nullptr),
        out, "pragmas");
  check(sqlite3_exec(out, "BEGIN", nullptr, nullptr, nullptr), out, "begin");
  check(sqlite3_exec(out, kInit, nullptr, nullptr, nullptr), out, "init");
  std::vector<std::string> names;
  sqlite3_stmt* s = nullptr;
  check(sqlite3_prepare_v2(in, "SELECT id, name FROM streams", -1, &s, nullptr), in, "names");
  while (sqlite3_step(s) == SQLITE_ROW) {
    auto id = static_cast<std::size_t>(sqlite3_column_int64(s, 0));
    if (id >= names.size()) names.resize(id + 1);
    names[id] = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
  }
  sqlite3_finalize(s);
  sqlite3_stmt *item = nullptr, *total = nullptr;
  check(sqlite3_prepare_v2(out, kInsertItem, -1, &item, nullptr), out, "prepare item");
  check(sqlite3_prepare_v2(out, kUpsertTotal, -1, &total, nullptr), out, "prepare total");
  check(sqlite3_prepare_v2(in, "SELECT position, stream_id, type, data FROM events ORDER BY position", -1, &s, nullptr),
        in, "select");
  long n = 0;
  while (sqlite3_step(s) == SQLITE_ROW) {
    auto type = reinterpret_cast<const char*>(sqlite3_column_text(s, 2));
    if (std::string_view(type) != "ItemAdded") continue;
    const std::string& name = names[static_cast<std::size_t>(sqlite3_column_int64(s, 1))];
    auto data = reinterpret_cast<const char*>(sqlite3_column_text(s, 3));
    int data_len = sqlite3_column_bytes(s, 3);
    sqlite3_bind_int64(item, 1, sqlite3_column_int64(s, 0));
    sqlite3_bind_text(item, 2, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
    sqlite3_bind_text(item, 3, data, data_len, SQLITE_STATIC);
    check(sqlite3_step(item), out, "item");
    sqlite3_reset(item);
    sqlite3_bind_text(total, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
    sqlite3_bind_text(total, 2, data, data_len, SQLITE_STATIC);
    check(sqlite3_step(total), out, "total");
    sqlite3_reset(total);
    if (++n % 10000 == 0) {
      check(sqlite3_exec(out, "COMMIT; BEGIN", nullptr, nullptr, nullptr), out, "commit");
    }
  }
  check(sqlite3_exec(out, "COMMIT", nullptr, nullptr, nullptr), out, "commit");
  sqlite3_finalize(s);
  sqlite3_finalize(item);
  sqlite3_finalize(total);
  sqlite3_close(in);
  sqlite3_close(out);
  return n;
}

struct Run {
  double seconds = 0;
  long max_rss_kb = 0;
};

Run esctl_rebuild(const std::string& store, const std::string& db, const std::string& projection) {
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::execl(ESCTL_BIN, ESCTL_BIN, "--store", store.c_str(), "rebuild", db.c_str(), "--projection", projection.c_str(),
            (char*)nullptr);
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  Run r;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.max_rss_kb = ru.ru_maxrss;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fmt::print(stderr, "esctl rebuild failed (status {})\n", status);
    std::exit(1);
  }
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  long events = argc > 1 ? std::atol(argv[1]) : 1000000;
  long streams = argc > 2 ? std::atol(argv[2]) : 10000;
  int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  auto dir = std::filesystem::temp_directory_path() / fmt::format("esctl-bench-rebuild-{}", ::getpid());
  std::filesystem::create_directories(dir);
  std::string store = (dir / "s.db").string(), proj = (dir / "p.sql").string();
  std::ofstream(proj) << kProjection;

  fmt::print("creating a store of {} events over {} streams (90% ItemAdded)...\n", events, streams);
  auto t0 = Clock::now();
  make_store(store, events, streams);
  fmt::print("  {:.1f}s, {:.0f} MB\n", std::chrono::duration<double>(Clock::now() - t0).count(),
             static_cast<double>(std::filesystem::file_size(store)) / 1e6);

  std::vector<double> raw_rate, esctl_rate;
  long applied = 0, max_rss = 0;
  for (int round = 0; round < rounds; ++round) {
    auto r0 = Clock::now();
    applied = raw_replay(store, (dir / "raw.db").string());
    double raw_s = std::chrono::duration<double>(Clock::now() - r0).count();
    Run e = esctl_rebuild(store, (dir / "q.db").string(), proj);
    raw_rate.push_back(static_cast<double>(events) / raw_s);
    esctl_rate.push_back(static_cast<double>(events) / e.seconds);
    max_rss = std::max(max_rss, e.max_rss_kb);
    fmt::print("round {}: raw replay {:.2f}s ({:.0f} events/s), esctl rebuild {:.2f}s ({:.0f} events/s), "
               "peak RSS {:.1f} MB\n",
               round + 1, raw_s, raw_rate.back(), e.seconds, esctl_rate.back(), e.max_rss_kb / 1024.0);
  }
  double raw_m = median(raw_rate), esctl_m = median(esctl_rate);
  fmt::print("\nevents read per second (median of {}; {} of {} events applied by 2 statements each):\n", rounds, applied,
             events);
  fmt::print("  baseline raw SQLite replay  {:>10.0f}\n", raw_m);
  fmt::print("  esctl rebuild               {:>10.0f}   {:.0f}% of baseline (target >= 70%)\n", esctl_m,
             100.0 * esctl_m / raw_m);
  fmt::print("  esctl rebuild peak RSS      {:>10.1f} MB (target <= 64 MB)\n", max_rss / 1024.0);
  std::filesystem::remove_all(dir);
  return 0;
}
