// Durability under power loss and I/O errors, through the fault-injection VFS stacked under the
// WAL VFS (and, to compare, without it). Each scenario (appends, --ndjson batches, import, queue
// pull/ack/nack, checkpoints with a reader present, rebuild and its rename) is run once to count
// its I/O calls, then again with a power loss at many random calls, or with each Nth
// read/write/sync/truncate/lock failing (rebuild's rename, unlinks and fsyncs included: the fault
// VFS models them through core/fs_ops.hpp). After each, the store is reopened with SQLite's
// default VFS (integrity_check) and with esctl (verify, reads, queue pulls) and must hold every
// acknowledged write whole, nothing half-visible, queue state that is a valid earlier one, and a
// rebuilt query db that is the old one or the new one, whole.
//
// ESCTL_FAULT_POINTS=N sets the crash points per scenario and VFS (default 100) and the faults
// per scenario, VFS and kind of call (default 30; every call when there are fewer);
// ESCTL_FAULT_SEED=S varies the random choices.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"
#include "core/uuid.hpp"
#include "projection/projection.hpp"
#include "projection/projector.hpp"
#include "projection/rebuild.hpp"
#include "store/queue.hpp"
#include "store/sqlite/schema.hpp"
#include "store/sqlite/event_store.hpp"
#include "store/sqlite/sqlite.hpp"
#include "store/store.hpp"
#include "store/verify.hpp"
#include "support/fault_vfs.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
namespace fault = esctl::test::fault;
namespace fs = std::filesystem;

namespace {

std::int64_t env_int(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}
/// Crash points per scenario and VFS, or injected faults per scenario, VFS and kind of call.
std::int64_t points(std::int64_t fallback) { return std::max<std::int64_t>(1, env_int("ESCTL_FAULT_POINTS", fallback)); }
std::uint64_t base_seed() { return static_cast<std::uint64_t>(env_int("ESCTL_FAULT_SEED", 20261206)); }

// ---- Adapters over the store API (kept small: queue signatures are still moving) ----

PullResult do_pull(Queues& q, const std::string& name, std::int64_t max, std::int64_t lease_ms, const Clock& c) {
  PullOptions o;
  o.max = max;
  o.lease_ms = lease_ms;
  return q.pull(name, o, c);
}
void do_ack(Queues& q, const std::string& name, const std::vector<std::int64_t>& positions) { q.ack(name, positions); }
void do_nack(Queues& q, const std::string& name, const std::vector<std::int64_t>& positions, const Clock& c) {
  q.nack(name, positions, 0, "fault test", c);
}

/// The projection of the drain scenario: counts how often each event was applied.
std::shared_ptr<const Projection> counting_projection() {
  static const auto p = std::make_shared<const Projection>(Projection::from_text(
      "-- @init\nCREATE TABLE seen (pos INTEGER PRIMARY KEY, n INTEGER NOT NULL);\n"
      "-- @on *\nINSERT INTO seen (pos, n) VALUES (:position, 1) ON CONFLICT (pos) DO UPDATE SET n = n + 1;\n",
      "seen.sql"));
  return p;
}

/// Applies a pulled batch to the query db; the positions to ack.
std::vector<std::int64_t> apply_batch(Projector& p, const PullResult& r) {
  std::vector<Event> events;
  for (const auto& d : r.deliveries) events.push_back(d.event);
  std::vector<std::int64_t> ok;
  for (const auto& a : p.apply(events))
    if (a.ok) ok.push_back(a.position);
  return ok;
}

// ---- What was acknowledged before the fault ----

struct Attempt {
  std::vector<NewEvent> events;
  bool acked = false;
  std::vector<Appended> result;
};

struct Model {
  std::vector<Attempt> appends;
  std::set<std::int64_t> acked;        // positions whose ack returned
  std::set<std::int64_t> maybe_acked;  // and the ack in flight at the fault
  std::int64_t setup_events = 0;       // events of the setup (all acknowledged)
  bool queue = false;
  std::string qdb;                       // a query db fed from queue q (drain with a projection)
  /// If not empty, qdb was rebuilt: it must apply exactly the events at positions 1..K, once
  /// each, for K one of these (the old db's or the new one's head; -1: it may be absent).
  std::vector<std::int64_t> qdb_heads;
  /// The queue that the db with head K records ("": none), for the heads listed here.
  std::map<std::int64_t, std::string> qdb_queue_of;
  std::string rebuild_failure;  // the message of the rebuild that failed, if one did
  std::vector<std::string> queues_made;  // queues whose create returned
  std::int64_t absorbed = 0;  // injected failures inside a call that then reported success
  std::vector<std::string> absorbed_what;
};

void note_absorbed(Model& m, std::int64_t before) {
  const auto& all = fault::failed_calls();
  for (auto i = static_cast<std::size_t>(before); i < all.size(); ++i) m.absorbed_what.push_back(all[i]);
  m.absorbed += fault::failures() - before;
}

/// Runs one acknowledged call, counting injected failures it hid behind its success.
template <class F>
auto acknowledged(Model& m, F&& call) {
  const auto before = fault::failures();
  if constexpr (std::is_void_v<decltype(call())>) {
    call();
    note_absorbed(m, before);
  } else {
    auto out = call();
    note_absorbed(m, before);
    return out;
  }
}

/// Appends `events` as one attempt, recording it before and its outcome after.
void append(Store& s, Model& m, std::vector<NewEvent> events, bool check_versions = true) {
  m.appends.push_back(Attempt{std::move(events), false, {}});
  auto out = acknowledged(m, [&] { return s.append(m.appends.back().events, {}, check_versions); });
  m.appends.back().acked = true;
  m.appends.back().result = std::move(out);
}

NewEvent event(const std::string& stream, int i, std::size_t data_bytes = 40) {
  NewEvent e;
  e.stream = stream;
  e.type = i % 3 ? "Changed" : "Created";
  std::string pad(data_bytes, static_cast<char>('a' + i % 26));
  e.data = fmt::format("{{\"i\":{},\"pad\":\"{}\"}}", i, pad);
  e.id = new_uuid_v7();
  return e;
}

// ---- Checks after the fault ----

/// PRAGMA integrity_check through SQLite's default VFS, as any other program would open the file.
std::string plain_integrity(const std::string& path) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    out = db ? sqlite3_errmsg(db) : "cannot open";
  } else {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    else
      out = sqlite3_errmsg(db);
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return out;
}

std::string verify_findings(const std::string& path) {
  VerifyOptions o;
  o.location = path;
  o.full = true;
  std::string out;
  verify_store(o, [&](const Violation& v) { out += v.kind + ": " + v.detail + "\n"; });
  return out;
}

/// Every acknowledged append is there, whole, at its version and position; an attempt not
/// acknowledged is there whole or not at all; nothing else is there.
void check_events(Store& s, const Model& m) {
  std::map<std::string, Event> by_id;  // raw id -> stored event
  std::int64_t count = 0;
  s.read_all(1, std::nullopt, EventFilter{}, [&](const EventRef& e) {
    by_id.emplace(std::string(e.id), Event::from(e));
    ++count;
    return true;
  });
  std::int64_t expected = m.setup_events;
  for (std::size_t a = 0; a < m.appends.size(); ++a) {
    const Attempt& at = m.appends[a];
    std::size_t present = 0;
    for (std::size_t i = 0; i < at.events.size(); ++i) {
      const NewEvent& ne = at.events[i];
      auto it = by_id.find(std::string(ne.id->view()));
      if (it == by_id.end()) continue;
      ++present;
      const Event& got = it->second;
      CAPTURE(a);
      CAPTURE(i);
      CHECK(got.stream == ne.stream);
      CHECK(got.type == ne.type);
      CHECK(got.data == ne.data);
      if (at.acked) {
        CHECK(got.position == at.result[i].position);
        CHECK(got.version == at.result[i].version);
      }
    }
    CAPTURE(a);
    if (at.acked) CHECK_MESSAGE(present == at.events.size(), "an acknowledged append is missing");
    else CHECK_MESSAGE((present == 0 || present == at.events.size()), "an unacknowledged append is half there");
    expected += static_cast<std::int64_t>(present);
  }
  CHECK_MESSAGE(count == expected, "events that nobody appended");
}

/// Drains queue q after the fault, as a restarted consumer would (new boot: every lease is
/// over), and checks nothing was lost or reordered: every event not acked before the fault is
/// delivered, each stream in version order, and none that was acked (if `strict`: a fault of
/// this process, not a power loss) comes back.
void check_queue(Store& s, const Model& m, bool strict) {
  Queues q(s);
  Clock c = Clock::pinned_now();
  c.boot += 1;
  c.mono_us = 1;
  std::map<std::int64_t, Event> all;
  s.read_all(1, std::nullopt, EventFilter{}, [&](const EventRef& e) {
    all.emplace(e.position, Event::from(e));
    return true;
  });
  std::unique_ptr<Projector> projector;
  if (!m.qdb.empty()) {
    if (fs::exists(m.qdb) && fs::file_size(m.qdb) > 0) {
      const std::string integrity = plain_integrity(m.qdb);
      REQUIRE_MESSAGE(integrity == "ok", "SQLite's integrity check of the query db: ", integrity);
    }
    projector = std::make_unique<Projector>(counting_projection(), m.qdb);
  }
  std::vector<std::int64_t> delivered;
  for (int guard = 0; guard < 1000; ++guard) {
    q.retry_all("q");
    auto r = do_pull(q, "q", 10, 60000, c);
    if (r.deliveries.empty()) break;
    std::vector<std::int64_t> ps;
    for (const auto& d : r.deliveries) ps.push_back(d.event.position);
    delivered.insert(delivered.end(), ps.begin(), ps.end());
    if (projector) REQUIRE(apply_batch(*projector, r).size() == ps.size());
    do_ack(q, "q", ps);
  }
  if (projector) {
    // Effectively-once: every event applied exactly once, however often it was delivered.
    projector.reset();
    sql::Db qdb(m.qdb, sql::OpenMode::read_only, 5000);
    auto rows = qdb.prepare_new("SELECT pos, n FROM seen ORDER BY pos");
    std::set<std::int64_t> applied;
    while (rows.step()) {
      CAPTURE(rows.i64(0));
      CHECK_MESSAGE(rows.i64(1) == 1, "an event applied twice to the query db");
      applied.insert(rows.i64(0));
    }
    for (const auto& [p, e] : all) {
      CAPTURE(p);
      CHECK_MESSAGE(applied.count(p), "an event is missing from the query db");
    }
  }
  std::set<std::int64_t> got(delivered.begin(), delivered.end());
  CHECK_MESSAGE(got.size() == delivered.size(), "an event delivered twice after the fault");
  std::map<std::string, std::int64_t> last_version;
  for (auto p : delivered) {
    const Event& e = all.at(p);
    auto [it, fresh] = last_version.try_emplace(e.stream, e.version);
    CAPTURE(p);
    if (!fresh) CHECK_MESSAGE(e.version > it->second, "a stream delivered out of order after the fault");
    it->second = e.version;
  }
  for (const auto& [p, e] : all) {
    CAPTURE(p);
    if (!m.maybe_acked.count(p)) CHECK_MESSAGE(got.count(p), "an unacked event is lost from the queue");
    if (strict && m.acked.count(p)) CHECK_MESSAGE(!got.count(p), "an acknowledged ack was lost");
  }
  // Per stream: whatever was not delivered again was acked (or its ack was in flight).
}

/// The rebuilt query db is the old one or the new one, whole: it opens, passes SQLite's integrity
/// check, has applied each event at positions 1..K once, for K one of m.qdb_heads, and what it
/// records agrees: its last position is K, its per-stream checkpoint is the last version of each
/// stream up to K, and it names the queue of that db (m.qdb_queue_of).
void check_rebuilt_db(Store& s, const Model& m) {
  const std::string heads = fmt::format("{}", fmt::join(m.qdb_heads, ", "));
  CAPTURE(heads);
  if (!fs::exists(m.qdb) || fs::file_size(m.qdb) == 0) {
    CHECK_MESSAGE(std::count(m.qdb_heads.begin(), m.qdb_heads.end(), -1) == 1, "the query db is gone");
    return;
  }
  const std::string integrity = plain_integrity(m.qdb);
  REQUIRE_MESSAGE(integrity == "ok", "SQLite's integrity check of the query db: ", integrity);
  sql::Db qdb(m.qdb, sql::OpenMode::read_only, 5000);
  auto rows = qdb.prepare_new("SELECT pos, n FROM seen ORDER BY pos");
  std::int64_t k = 0;
  while (rows.step()) {
    CAPTURE(rows.i64(0));
    CHECK_MESSAGE(rows.i64(1) == 1, "an event applied twice to the rebuilt query db");
    CHECK_MESSAGE(rows.i64(0) == k + 1, "a hole in the rebuilt query db");
    k = rows.i64(0);
  }
  CAPTURE(k);
  CHECK_MESSAGE(std::count(m.qdb_heads.begin(), m.qdb_heads.end(), k) == 1,
                "the query db is neither the old one nor the new one");
  auto meta = [&](const char* key) {
    auto q = qdb.prepare_new("SELECT value FROM _esctl_meta WHERE key = ?1");
    q.bind(1, key);
    return q.step() && !q.is_null(0) ? std::string(q.text(0)) : std::string();
  };
  CHECK_MESSAGE(meta("last_position") == std::to_string(k), "the query db's recorded position is not its head");
  if (auto it = m.qdb_queue_of.find(k); it != m.qdb_queue_of.end())
    CHECK_MESSAGE(meta("queue") == it->second, "the query db records another queue");
  std::map<std::string, std::int64_t> expected, recorded;
  s.read_all(1, k, EventFilter{}, [&](const EventRef& e) {
    expected[std::string(e.stream)] = e.version;
    return true;
  });
  auto applied = qdb.prepare_new("SELECT stream, version FROM _esctl_applied");
  while (applied.step()) recorded[std::string(applied.text(0))] = applied.i64(1);
  CHECK_MESSAGE(recorded == expected, "the query db's checkpoint disagrees with the events it applied");
}

void check_store(const std::string& path, const Model& m, bool strict) {
  if (!fs::exists(path) || fs::file_size(path) == 0) {
    // Only possible before anything was acknowledged in a store the scenario created.
    bool any = m.setup_events > 0;
    for (const auto& a : m.appends) any = any || a.acked;
    REQUIRE_MESSAGE(!any, "the store is gone but appends were acknowledged");
  } else {
    const std::string integrity = plain_integrity(path);
    REQUIRE_MESSAGE(integrity == "ok", "SQLite's integrity check: ", integrity);
  }
  {
    // A store whose creation was cut is finished by the next writer, as `esctl init` would.
    Store s(StoreOptions{path, 5000}, Access::write);
  }
  const std::string findings = verify_findings(path);
  CHECK_MESSAGE(findings.empty(), "verify: ", findings);
  Store s(StoreOptions{path, 5000}, Access::read);
  CHECK(sqlite::connection(s).query_i64("PRAGMA user_version") == kSchemaVersion);
  check_events(s, m);
  if (!m.qdb_heads.empty()) check_rebuilt_db(s, m);
  if (m.queue) check_queue(s, m, strict);
  Queues q(s);
  for (const auto& name : m.queues_made) {
    CAPTURE(name);
    CHECK_NOTHROW(q.get(name));
  }
}

// ---- Scenarios ----

struct Scenario {
  const char* name;
  std::function<void(const std::string& path, Model& m)> setup;  // before the faults; may be empty
  std::function<void(const std::string& path, Model& m)> run;    // throws Error at the fault
  bool commits_to_store = true;  // false: only reads the store (the WAL VFS makes no difference)
};

Scenario single_appends() {
  return {"single appends to a new store", {}, [](const std::string& path, Model& m) {
            Store s(StoreOptions{path, 5000}, Access::write);
            for (int i = 0; i < 12; ++i) append(s, m, {event(fmt::format("order-{}", i % 3), i)});
          }};
}

Scenario ndjson_batches() {
  return {"--ndjson batches",
          [](const std::string& path, Model& m) {
            Store s(StoreOptions{path, 5000}, Access::write);
            s.append({event("cart-1", 0), event("cart-2", 1)});
            m.setup_events = 2;
          },
          [](const std::string& path, Model& m) {
            Store s(StoreOptions{path, 5000}, Access::write);
            for (int b = 0; b < 5; ++b) {
              std::vector<NewEvent> batch;
              for (int i = 0; i < 8; ++i) batch.push_back(event(fmt::format("cart-{}", b % 2 + 1), b * 8 + i, 300));
              append(s, m, std::move(batch));
            }
          }};
}

Scenario import_batches() {
  // Batches bigger than the WAL VFS's 64 KiB buffer, with versions checked, as `import` does.
  return {"import (versions checked, batches > 64 KiB)",
          [](const std::string& path, Model&) { Store s(StoreOptions{path, 5000}, Access::write); },
          [](const std::string& path, Model& m) {
            Store s(StoreOptions{path, 5000}, Access::write);
            std::map<std::string, std::int64_t> next;
            for (int b = 0; b < 4; ++b) {
              std::vector<NewEvent> batch;
              for (int i = 0; i < 30; ++i) {
                NewEvent e = event(fmt::format("acct-{}", (b * 30 + i) % 7), b * 30 + i, 2500);
                e.recorded_at = 1700000000000000 + b * 30 + i;
                e.version = next[e.stream]++;
                batch.push_back(std::move(e));
              }
              append(s, m, std::move(batch));
            }
          }};
}

Scenario queue_ops() {
  return {"queue pull/ack/nack/park",
          [](const std::string& path, Model& m) {
            Store s(StoreOptions{path, 5000}, Access::write);
            for (int i = 0; i < 24; ++i) s.append({event(fmt::format("job-{}", i % 4), i)});
            m.setup_events = 24;
            Queues q(s);
            QueueSpec spec;
            spec.name = "q";
            spec.max_attempts = 2;
            spec.ack_timeout_ms = 1000;
            q.create(spec, StartPoint{StartPoint::start});
          },
          [](const std::string& path, Model& m) {
            m.queue = true;
            Store s(StoreOptions{path, 5000}, Access::write);
            Queues q(s);
            Clock c = Clock::pinned_now();  // moved by hand below
            std::mt19937 rng(7);
            for (int round = 0; round < 14; ++round) {
              auto r = do_pull(q, "q", 1 + round % 4, 500, c);
              for (const auto& d : r.deliveries) {
                const auto p = d.event.position;
                switch (rng() % 4) {
                  case 0:
                  case 1:
                    m.maybe_acked.insert(p);
                    acknowledged(m, [&] { do_ack(q, "q", {p}); });
                    m.acked.insert(p);
                    break;
                  case 2: do_nack(q, "q", {p}, c); break;
                  default: break;  // left leased: expires
                }
              }
              c = c.plus_ms(300);
            }
          }};
}

Scenario checkpoint_with_reader() {
  return {"appends with checkpoints while a reader holds a snapshot",
          [](const std::string& path, Model& m) {
            Store s(StoreOptions{path, 5000}, Access::write);
            s.append({event("log", 0)});
            m.setup_events = 1;
          },
          [](const std::string& path, Model& m) {
            Store w(StoreOptions{path, 5000}, Access::write);
            sqlite::connection(w).exec("PRAGMA wal_autocheckpoint = 6");
            Store r(StoreOptions{path, 5000}, Access::read);
            std::optional<sql::Txn> snapshot;
            for (int i = 1; i <= 16; ++i) {
              if (i % 5 == 1) {
                snapshot.emplace(sqlite::connection(r), sql::Txn::deferred);
                r.last_position();  // the read snapshot starts here
              } else if (i % 5 == 3) {
                snapshot.reset();
              }
              append(w, m, {event("log", i, 6000)});
              if (i % 4 == 0) sqlite::connection(w).exec(snapshot ? "PRAGMA wal_checkpoint(PASSIVE)" : "PRAGMA wal_checkpoint(TRUNCATE)");
            }
          }};
}

Scenario queue_setup(const char* name, std::function<void(const std::string&, Model&)> run) {
  return {name,
          [](const std::string& path, Model& m) {
            Store s(StoreOptions{path, 5000}, Access::write);
            for (int i = 0; i < 20; ++i) s.append({event(fmt::format("job-{}", i % 4), i)});
            m.setup_events = 20;
            Queues q(s);
            QueueSpec spec;
            spec.name = "q";
            spec.max_attempts = 3;
            spec.ack_timeout_ms = 1000;
            q.create(spec, StartPoint{StartPoint::start});
          },
          std::move(run)};
}

Scenario drain_projection() {
  return queue_setup("drain with a projection", [](const std::string& path, Model& m) {
    m.queue = true;
    m.qdb = path + ".query.db";
    Store s(StoreOptions{path, 5000}, Access::write);
    Queues q(s);
    Projector p(counting_projection(), m.qdb);
    Clock c = Clock::now();
    for (;;) {
      auto r = do_pull(q, "q", 4, 30000, c);
      if (r.deliveries.empty()) break;
      auto ok = apply_batch(p, r);
      for (auto pos : ok) m.maybe_acked.insert(pos);
      acknowledged(m, [&] { do_ack(q, "q", ok); });
      for (auto pos : ok) m.acked.insert(pos);
    }
  });
}

Scenario queue_admin() {
  return queue_setup("queue create/reset/retry", [](const std::string& path, Model& m) {
    m.queue = true;
    Store s(StoreOptions{path, 5000}, Access::write);
    Queues q(s);
    Clock c = Clock::now();
    for (int i = 0; i < 3; ++i) {
      QueueSpec spec;
      spec.name = fmt::format("admin-{}", i);
      spec.max_attempts = 1;
      acknowledged(m, [&] { q.create(spec, StartPoint{StartPoint::start}); });
      m.queues_made.push_back(spec.name);
      auto r = do_pull(q, spec.name, 3, 1000, c);
      if (!r.deliveries.empty()) do_nack(q, spec.name, {r.deliveries.front().event.position}, c);  // parked
      q.retry_all(spec.name);
      q.reset(spec.name, StartPoint{StartPoint::end});
    }
    // Queue q: a replay from the start makes every event deliverable again.
    q.reset("q", StartPoint{StartPoint::start});
  });
}

/// Runs `sql` on the file at `path` with SQLite's default VFS; returns the error text, or "".
std::string plain_exec(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  std::string err;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) err = sqlite3_errmsg(db);
  else if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) err = sqlite3_errmsg(db);
  sqlite3_close(db);
  return err;
}

Scenario schema_upgrade() {
  return {"schema upgrade from version 1, then appends",
          [](const std::string& path, Model& m) {
            {
              Store s(StoreOptions{path, 5000}, Access::write);
              for (int i = 0; i < 40; ++i) s.append({event(fmt::format("s{}-x", i % 7), i, 200)});
              m.setup_events = 40;
            }
            // What esctl wrote before schema version 2: the stream heads inside the streams rows
            // (and none of version 3's lease tokens, counters and time order).
            const std::string err = plain_exec(
                path,
                "BEGIN;"
                "DROP TABLE counters; DROP INDEX queue_items_leased; DROP TABLE time_order;"
                "ALTER TABLE queue_items DROP COLUMN lease; ALTER TABLE queue_runs DROP COLUMN lease;"
                "ALTER TABLE queues DROP COLUMN deliverable_since;"
                "CREATE TABLE streams_v1 (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, category TEXT NOT NULL,"
                " head INTEGER NOT NULL, head_position INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
                "INSERT INTO streams_v1 SELECT s.id, s.name, s.category, h.head, h.head_position, e.recorded_at"
                " FROM streams s JOIN stream_heads h ON h.stream_id = s.id JOIN events e ON e.position = h.head_position;"
                "DROP VIEW event_log; DROP TABLE streams; DROP TABLE stream_heads;"
                "ALTER TABLE streams_v1 RENAME TO streams;"
                "CREATE INDEX streams_by_category ON streams(category);"
                "CREATE VIEW event_log AS SELECT e.position, s.name AS stream, e.version FROM events e"
                " JOIN streams s ON s.id = e.stream_id;"
                "DROP INDEX events_marks;"
                "CREATE UNIQUE INDEX events_marks ON events(stream_id, version) WHERE version % 64 = 0;"
                "PRAGMA user_version = 1; COMMIT;");
            REQUIRE_MESSAGE(err.empty(), err);
          },
          [](const std::string& path, Model& m) {
            Store s(StoreOptions{path, 5000}, Access::write);  // migrates
            for (int i = 0; i < 4; ++i) append(s, m, {event(fmt::format("s{}-x", i), 100 + i)});
          }};
}

/// Rebuilds the query db beside the store at `path` with the counting projection, in small
/// chunks and batches (more I/O calls to crash at); `queue` as `rebuild --queue`. A failure's
/// message goes to `m` (if given).
void rebuild_qdb(Store& s, const std::string& qdb, const std::string& queue, Model* m = nullptr) {
  RebuildOptions o;
  o.db_path = qdb;
  o.queue = queue;
  o.chunk = 8;
  o.batch = 5;
  try {
    rebuild(s, counting_projection(), o);
  } catch (const Error& e) {
    if (m) m->rebuild_failure = e.what();
    throw;
  }
}

Scenario rebuild_replacing() {
  return {"rebuild replacing a query db",
          [](const std::string& path, Model& m) {
            Store s(StoreOptions{path, 5000}, Access::write);
            for (int i = 0; i < 24; ++i) s.append({event(fmt::format("acct-{}", i % 4), i, 300)});
            rebuild_qdb(s, path + ".query.db", "");  // the old db: positions 1..24
            for (int i = 24; i < 36; ++i) s.append({event(fmt::format("acct-{}", i % 4), i, 300)});
            m.setup_events = 36;
          },
          [](const std::string& path, Model& m) {
            m.qdb = path + ".query.db";
            m.qdb_heads = {24, 36};
            m.qdb_queue_of = {{24, ""}, {36, ""}};
            Store s(StoreOptions{path, 5000}, Access::write);
            acknowledged(m, [&] { rebuild_qdb(s, m.qdb, "", &m); });
            m.qdb_heads = {36};  // acknowledged: the new db, even after a power loss
          },
          false};
}

Scenario rebuild_queue() {
  return queue_setup("rebuild --queue, handing the queue over", [](const std::string& path, Model& m) {
    m.queue = true;
    m.qdb = path + ".query.db";
    {
      // A drain of the queue's first 8 events made the old db.
      Store s(StoreOptions{path, 5000}, Access::write);
      Queues q(s);
      Projector p(counting_projection(), m.qdb);
      Clock c = Clock::now();
      for (int b = 0; b < 2; ++b) {
        auto ok = apply_batch(p, do_pull(q, "q", 4, 30000, c));
        for (auto pos : ok) m.maybe_acked.insert(pos);
        acknowledged(m, [&] { do_ack(q, "q", ok); });
        for (auto pos : ok) m.acked.insert(pos);
      }
    }
    m.qdb_heads = {8, 20};
    m.qdb_queue_of = {{8, ""}, {20, "q"}};  // the drain recorded no queue; the rebuild records its --queue
    Store s(StoreOptions{path, 5000}, Access::write);
    // The hand-over settles the queue's events up to the head: the new db has them.
    for (std::int64_t p = 1; p <= 20; ++p) m.maybe_acked.insert(p);
    acknowledged(m, [&] { rebuild_qdb(s, m.qdb, "q", &m); });
    m.qdb_heads = {20};
  });
}

std::vector<Scenario> scenarios() {
  std::vector<Scenario> all{single_appends(),   ndjson_batches(),    import_batches(),
                            queue_ops(),        drain_projection(),  queue_admin(),
                            checkpoint_with_reader(), rebuild_replacing(), rebuild_queue()};
  // The version 1 layout is made from version 3's; a newer schema needs its own downgrade here.
  if (kSchemaVersion == 3) all.push_back(schema_upgrade());
  return all;
}

/// A fresh copy of the scenario's starting store in a new folder (the setup is run once).
struct Fixture {
  test::TempStore tmpl;
  Model setup_model;
  const Scenario& sc;
  explicit Fixture(const Scenario& s) : sc(s) {
    fault::reset();
    if (sc.setup) sc.setup(tmpl.path, setup_model);
  }
  void copy_to(const std::string& path) const {
    for (const char* suffix : {"", ".query.db"})
      if (fs::exists(tmpl.path + suffix))
        fs::copy_file(tmpl.path + suffix, path + suffix, fs::copy_options::overwrite_existing);
  }
};

/// Runs `sc` on `path` (a fresh copy of its setup): returns the error that stopped it, if any.
std::optional<Error> run(const Scenario& sc, const std::string& path, Model& m) {
  try {
    sc.run(path, m);
  } catch (const Error& e) {
    return e;
  }
  return std::nullopt;
}

/// Power losses at random writes, syncs and truncates of scenario `sc`, with and without the WAL VFS.
void power_loss_sweep(const Scenario& sc) {
    const auto n = points(100);
  std::map<std::string, std::int64_t> with_wal_vfs;  // writes/syncs/truncates with the WAL VFS
  for (bool wal_vfs : {true, false}) {
    fault::Install vfs(wal_vfs);
    {
      const std::string scenario = sc.name;
      CAPTURE(scenario);
      CAPTURE(wal_vfs);
      Fixture fx(sc);
      // The whole run, to count its writes, syncs and truncates.
      std::int64_t total;
      std::vector<std::int64_t> outside;  // renames, deletes and fsyncs made outside SQLite
      {
        test::TempStore t;
        fx.copy_to(t.path);
        fault::reset();
        Model m = fx.setup_model;
        auto err = run(sc, t.path, m);
        REQUIRE_MESSAGE(!err.has_value(), std::string(err ? err->what() : ""));
        total = fault::calls(fault::kMutating);
        outside = fault::outside_calls();
        fault::reset();
        check_store(t.path, m, true);
      }
      REQUIRE(total > 0);
      // The WAL VFS must really be in the path: it writes a commit in fewer calls.
      if (wal_vfs) with_wal_vfs[sc.name] = total;
      else if (sc.commits_to_store)
        CHECK_MESSAGE(total > with_wal_vfs[sc.name], "the WAL VFS made no difference: bypassed?");
      std::mt19937_64 rng(base_seed() ^ std::hash<std::string>{}(sc.name) ^ (wal_vfs ? 1 : 2));
      std::int64_t crashed = 0, renames_kept = 0, renames_undone = 0;
      // Always: the first and the last call, total + 1 (the power fails after the run, all of it
      // acknowledged), and each rename, delete and fsync made outside SQLite (call c + 1: it
      // fails, not done) and the call after it (c + 2: done, e.g. a rename whose folder is not
      // synced yet). Then every call when there are few, else random ones.
      std::vector<std::int64_t> fixed{1, total, total + 1};
      for (auto c : outside)
        for (auto at : {c + 1, c + 2})
          if (at <= total + 1 && std::find(fixed.begin(), fixed.end(), at) == fixed.end()) fixed.push_back(at);
      for (std::int64_t i = 0; i < n; ++i) {
        const auto k = static_cast<std::size_t>(i);
        const std::int64_t at = k < fixed.size() ? fixed[k]
                                : total < n      ? i % (total + 1) + 1
                                                 : static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(total)) + 1;
        test::TempStore t;
        fx.copy_to(t.path);
        fault::reset();
        fault::crash_at(at);
        Model m = fx.setup_model;
        auto err = run(sc, t.path, m);
        crashed += fault::crashed();
        fault::CrashOptions o;
        o.seed = rng();
        o.keep = std::array{0.0, 0.3, 0.7, 1.0}[rng() % 4];
        o.reorder = rng() % 2;
        auto report = fault::reboot(o);
        renames_kept += report.renames_kept;
        renames_undone += report.renames_lost;
        CAPTURE(at);
        CAPTURE(report.summary());
        const std::string why = err ? err->what() : "no error";
        CAPTURE(why);
        if (err) CHECK(err->code() == Errc::io);
        check_store(t.path, m, false);
        fault::reset();
      }
      MESSAGE(fmt::format("power loss: {} ({} VFS): {} crash points over {} writes/syncs/truncates, {} hit{}",
                          sc.name, wal_vfs ? "WAL" : "default", n, total, crashed,
                          renames_kept + renames_undone
                              ? fmt::format("; renames kept {}, undone {}", renames_kept, renames_undone)
                              : ""));
    }
  }
}

/// Each kind of I/O call of scenario `sc` failed at the Nth call, with and without the WAL VFS.
void io_fault_sweep(const Scenario& sc) {
    const auto n = points(30);
  struct Sweep {
    unsigned kind;
    int rc;
    bool sticky;
    const char* what;
  };
  const Sweep sweeps[] = {
      {fault::kRead, SQLITE_IOERR_READ, false, "read error"},
      {fault::kWrite, SQLITE_IOERR_WRITE, false, "write error"},
      {fault::kWrite, SQLITE_FULL, true, "disk full (stays full)"},
      {fault::kSync, SQLITE_IOERR_FSYNC, false, "fsync error"},
      {fault::kTruncate, SQLITE_IOERR_TRUNCATE, false, "truncate, delete or rename error"},
      {fault::kLock, SQLITE_IOERR_LOCK, false, "lock error"},
      {fault::kLock, SQLITE_BUSY, false, "lock busy"},
  };
  for (bool wal_vfs : {true, false}) {
    fault::Install vfs(wal_vfs);
    {
      const std::string scenario = sc.name;
      CAPTURE(scenario);
      CAPTURE(wal_vfs);
      Fixture fx(sc);
      std::map<unsigned, std::int64_t> count;
      {
        test::TempStore t;
        fx.copy_to(t.path);
        fault::reset();
        Model m = fx.setup_model;
        auto err = run(sc, t.path, m);
        REQUIRE_MESSAGE(!err.has_value(), std::string(err ? err->what() : ""));
        for (const auto& s : sweeps) count[s.kind] = fault::calls(s.kind);
        fault::reset();
      }
      std::mt19937_64 rng(base_seed() ^ std::hash<std::string>{}(sc.name));
      for (const auto& sw : sweeps) {
        CAPTURE(sw.what);
        const std::int64_t total = count[sw.kind];
        std::int64_t runs = 0, failed = 0, absorbed = 0, hidden = 0;
        for (std::int64_t i = 0; i < std::min(n, total); ++i) {
          const std::int64_t at = total <= n ? i + 1 : static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(total)) + 1;
          CAPTURE(at);
          test::TempStore t;
          fx.copy_to(t.path);
          fault::reset();
          fault::fail_at(at, sw.kind, sw.rc, sw.sticky);
          Model m = fx.setup_model;
          auto err = run(sc, t.path, m);
          const bool fired = fault::failures() > 0;
          fault::fail_at(0, 0, SQLITE_OK);
          ++runs;
          if (err) {
            ++failed;
            CAPTURE(err->what());
            const std::string said = err->what();
            CHECK_MESSAGE((!said.empty() && said.back() != '.' && said.back() != '\n'), "not a one-line message: ", said);
            if (sw.kind == fault::kLock) CHECK((err->code() == Errc::io || err->code() == Errc::busy));
            else CHECK(err->code() == Errc::io);
          } else if (fired) {
            ++absorbed;  // the failed call was not needed (a checkpoint at close), or retried (locks)
          }
          // A failure inside a call that reported success (an fsync of the checkpoint that
          // follows a commit, a lock retried) is fine only if what that call acknowledged is
          // durable: a power loss right now (every unsynced write lost) must keep it.
          hidden += m.absorbed;
          std::string absorbed_what;
          for (const auto& w : m.absorbed_what) absorbed_what += w + "; ";
          CAPTURE(absorbed_what);
          test::TempStore now;  // the files as the fault left them, for the process-level check
          for (const char* suffix : {"", "-wal", ".query.db", ".query.db-journal"})
            if (fs::exists(t.path + suffix)) fs::copy_file(t.path + suffix, now.path + suffix);
          Model m_now = m;
          if (!m_now.qdb.empty()) m_now.qdb = now.path + ".query.db";
          if (err && m.qdb_heads.size() == 2) {
            // A failed rebuild says what the query db is now: unchanged (the old db), or already
            // the rebuilt one (it failed after the rename); else (it failed before it began) the old.
            const auto& said = m.rebuild_failure;
            const bool unchanged = said.find("' is unchanged") != std::string::npos;
            const bool replaced = said.find("' is the rebuilt one") != std::string::npos;
            if (!said.empty())
              CHECK_MESSAGE(unchanged != replaced, "a failed rebuild does not say what the query db is now: ", said);
            m_now.qdb_heads = {replaced ? m.qdb_heads.back() : m.qdb_heads.front()};
            // Its temporary file is gone, unless deleting it was the call that failed.
            const auto& failed = fault::failed_calls();
            const bool delete_failed = std::any_of(failed.begin(), failed.end(), [](const std::string& w) {
              return w.rfind("delete of .s.db.query.db.rebuild-", 0) == 0;
            });
            for (const auto& entry : fs::directory_iterator(t.dir)) {
              const std::string name = entry.path().filename().string();
              CAPTURE(name);
              if (!delete_failed) CHECK_MESSAGE(name.find(".rebuild-") == std::string::npos, "a failed rebuild left its temporary file");
            }
          }
          fault::CrashOptions o;
          o.keep = 0;
          fault::reboot(o);
          check_store(t.path, m, false);
          fault::reset();
          // Without a power loss, nothing acknowledged is lost, not even a queue ack.
          check_store(now.path, m_now, true);
          fault::reset();
        }
        MESSAGE(fmt::format("I/O faults: {} ({} VFS), {}: {} of {} calls, {} failed the operation, {} did not "
                            "({} inside an acknowledged call)",
                            sc.name, wal_vfs ? "WAL" : "default", sw.what, runs, total, failed, absorbed, hidden));
      }
    }
  }
}

/// The scenario named `name` (by its first words).
Scenario scenario(const std::string& name) {
  for (auto& sc : scenarios())
    if (std::string(sc.name).rfind(name, 0) == 0) return sc;
  FAIL("no scenario " << name);
  return {};
}

}  // namespace

TEST_SUITE("store/power_loss") {
  // Every acknowledged write survives a power loss at any I/O call, nothing unacknowledged is
  // half there, verify is clean, and queues at worst redeliver.
  TEST_CASE("single appends to a new store") { power_loss_sweep(scenario("single appends")); }
  TEST_CASE("--ndjson batches") { power_loss_sweep(scenario("--ndjson")); }
  TEST_CASE("import batches") { power_loss_sweep(scenario("import")); }
  TEST_CASE("queue pull, ack, nack, park") { power_loss_sweep(scenario("queue pull")); }
  TEST_CASE("drain with a projection") { power_loss_sweep(scenario("drain")); }
  TEST_CASE("queue create, reset, retry") { power_loss_sweep(scenario("queue create")); }
  TEST_CASE("checkpoints with a reader present") { power_loss_sweep(scenario("appends with checkpoints")); }
  TEST_CASE("schema upgrade") {
    if (kSchemaVersion == 3) power_loss_sweep(scenario("schema upgrade"));
  }
  // The query db is the old one or the new one, whole, wherever the power fails: while the new
  // one is written, before or after its fsync, between the rename and the folder's fsync.
  TEST_CASE("rebuild replacing a query db") { power_loss_sweep(scenario("rebuild replacing")); }
  TEST_CASE("rebuild --queue, handing the queue over") { power_loss_sweep(scenario("rebuild --queue")); }

  TEST_CASE("a query db batch that committed is not rolled back by its deleted journal coming back") {
    // A commit in rollback-journal mode ends by deleting the journal. Unless the folder is
    // synced after that (synchronous=EXTRA), a power loss may bring the journal back, and the
    // next open rolls the committed batch back, though its events were acked to the queue.
    fault::Install vfs(true);
    auto batch = [](int from) {
      std::vector<Event> out;
      for (int v = from; v < from + 3; ++v) {
        Event e;
        e.position = v + 1;
        e.stream = "s";
        e.version = v;
        e.id = std::string(new_uuid_v7().view());
        e.type = "T";
        e.data = "{}";
        e.meta = "{}";
        out.push_back(e);
      }
      return out;
    };
    int came_back = 0;
    for (std::uint64_t seed = 1; seed <= 16; ++seed) {
      CAPTURE(seed);
      test::TempStore t;
      const std::string qdb = t.dir + "/query.db";
      {
        Projector p(counting_projection(), qdb);
        REQUIRE(p.apply(batch(0)).size() == 3);
      }
      fault::reset();  // the first batch is on disk
      {
        Projector p(counting_projection(), qdb);
        for (const auto& r : p.apply(batch(3))) REQUIRE(r.ok);
      }
      fault::CrashOptions o;
      o.seed = seed;
      o.keep = 1.0;  // every write reached the disk: only the journal's fate is at stake
      o.tear = false;
      came_back += static_cast<int>(fault::reboot(o).resurrected);
      sql::Db db(qdb, sql::OpenMode::read_write, 5000);
      CHECK(db.query_i64("SELECT count(*) FROM seen") == 6);
      fault::reset();
    }
    CHECK(came_back == 0);
  }
}

TEST_SUITE("store/io_faults") {
  // An I/O error or a full disk at any call fails the operation (or is harmless), acknowledged
  // writes stay even through a power loss right after, verify is clean.
  TEST_CASE("single appends to a new store") { io_fault_sweep(scenario("single appends")); }
  TEST_CASE("--ndjson batches") { io_fault_sweep(scenario("--ndjson")); }
  TEST_CASE("import batches") { io_fault_sweep(scenario("import")); }
  TEST_CASE("queue pull, ack, nack, park") { io_fault_sweep(scenario("queue pull")); }
  TEST_CASE("drain with a projection") { io_fault_sweep(scenario("drain")); }
  TEST_CASE("queue create, reset, retry") { io_fault_sweep(scenario("queue create")); }
  TEST_CASE("checkpoints with a reader present") { io_fault_sweep(scenario("appends with checkpoints")); }
  TEST_CASE("schema upgrade") {
    if (kSchemaVersion == 3) io_fault_sweep(scenario("schema upgrade"));
  }
  TEST_CASE("rebuild replacing a query db") { io_fault_sweep(scenario("rebuild replacing")); }
  TEST_CASE("rebuild --queue, handing the queue over") { io_fault_sweep(scenario("rebuild --queue")); }
}
