// Benchmark of a rebuild under concurrent appends: the store's WAL size over time and the
// rebuild's events/s, against the same rebuild without load and the WAL of the appends alone
// (its steady state), all in the same run. In-process: the rebuild
// runs on this thread, an appender thread commits one event per transaction on its own
// connection, a sampler thread stats the -wal file every 5 ms. Not a test; never run in CI.
//
// Usage: bench_rebuild_wal [EVENTS=300000] [ROUNDS=3]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "projection/projection.hpp"
#include "projection/rebuild.hpp"
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

esctl::NewEvent make_event(long i) {
  esctl::NewEvent e;
  e.stream = fmt::format("cart-{}", (i * 7919) % 10000);
  e.type = i % 10 == 9 ? "CartViewed" : "ItemAdded";
  e.data = fmt::format(R"({{"sku":"SKU-{:05}","amount":{},"note":"some text to make it realistic"}})", i % 50000, i % 97);
  return e;
}

void make_store(const std::string& path, long events) {
  esctl::Store store(esctl::StoreOptions{path, 5000}, esctl::Access::write);
  std::vector<esctl::NewEvent> batch;
  for (long i = 0; i < events; ++i) {
    batch.push_back(make_event(i));
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

struct Sample {
  double events_per_s = 0;
  double max_wal_mb = 0;
  long appended = 0;
};

// Runs `work` (or sleeps `idle_s` if none) while an appender commits one event per transaction
// (when `load`) and a sampler watches the WAL.
template <class F>
Sample measure(const std::string& store, bool load, F&& work) {
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> max_wal{0};
  std::atomic<long> appended{0};
  std::thread sampler([&] {
    while (!stop) {
      max_wal = std::max<std::int64_t>(max_wal, wal_bytes(store));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::thread appender;
  if (load)
    appender = std::thread([&] {
      esctl::Store s(esctl::StoreOptions{store, 60000}, esctl::Access::write);
      for (long i = 0; !stop; ++i) {
        s.append({make_event(i)}, {}, false);
        ++appended;
      }
    });
  Sample out;
  out.events_per_s = work();
  stop = true;
  if (appender.joinable()) appender.join();
  sampler.join();
  out.max_wal_mb = static_cast<double>(max_wal.load()) / 1e6;
  out.appended = appended;
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  long events = argc > 1 ? std::atol(argv[1]) : 300000;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  auto dir = std::filesystem::temp_directory_path() / fmt::format("esctl-bench-rebuild-wal-{}", ::getpid());
  std::filesystem::create_directories(dir);
  std::string store = (dir / "s.db").string(), db = (dir / "q.db").string();
  fmt::print("creating a store of {} events (90% ItemAdded)...\n", events);
  make_store(store, events);
  auto projection = std::make_shared<const esctl::Projection>(esctl::Projection::from_text(kProjection, "p.sql"));

  auto rebuild = [&](std::int64_t chunk) {
    esctl::Store s(esctl::StoreOptions{store, 60000}, esctl::Access::read);
    esctl::RebuildOptions o;
    o.db_path = db;
    o.chunk = chunk;
    auto r = esctl::rebuild(s, projection, o);
    return static_cast<double>(r.head_position) / r.seconds;  // positions read per second
  };
  struct Row {
    const char* name;
    bool load;
    std::int64_t chunk;  // 0: no rebuild, appends only for as long as the last rebuild took
    std::vector<double> rate, wal;
  };
  esctl::RebuildOptions defaults;
  std::vector<Row> rows{{"rebuild, no load, chunked", false, defaults.chunk, {}, {}},
                        {"rebuild under appends, chunked", true, defaults.chunk, {}, {}},
                        {"appends alone (steady state)", true, 0, {}, {}}};
  double last_s = 1;
  for (int round = 0; round < rounds; ++round) {
    for (auto& row : rows) {
      std::filesystem::remove(db);
      Sample s = measure(store, row.load, [&] {
        if (row.chunk == 0) {
          std::this_thread::sleep_for(std::chrono::duration<double>(last_s));
          return 0.0;
        }
        auto t0 = Clock::now();
        double rate = rebuild(row.chunk);
        last_s = std::chrono::duration<double>(Clock::now() - t0).count();
        return rate;
      });
      row.rate.push_back(s.events_per_s);
      row.wal.push_back(s.max_wal_mb);
      fmt::print("round {} {:<38} {:>9.0f} events/s, WAL peak {:6.1f} MB, {} appends meanwhile\n", round + 1, row.name,
                 s.events_per_s, s.max_wal_mb, s.appended);
    }
  }
  fmt::print("\nmedians of {} rounds (store positions read per second; WAL peak size):\n", rounds);
  for (auto& row : rows)
    fmt::print("  {:<38} {:>9.0f} events/s   WAL peak {:6.1f} MB\n", row.name, median(row.rate), median(row.wal));
  std::filesystem::remove_all(dir);
  return 0;
}
