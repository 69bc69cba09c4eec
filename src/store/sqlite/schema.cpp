// Layout (schema v3), chosen for append speed at scale:
//
// - events: one row per event, keyed by `position` (INTEGER PRIMARY KEY AUTOINCREMENT: global
//   commit order, never reused). Rows are appended at the right edge of the table b-tree only.
// - Per-stream order is NOT a full (stream, version) index: with thousands of interleaved
//   streams every insert would dirty a different index page and bulk appends would run 5-10x
//   slower. Instead each event stores `prev`, the position of the stream's previous event, and a
//   partial index holds only every 64th version ("marks"). Reading a stream walks at most 63
//   links from the nearest mark. Version uniqueness and contiguity are guaranteed by the writer
//   (versions are assigned from stream_heads.head under BEGIN IMMEDIATE) and checked by `verify`.
//   The marks are keyed (version, stream_id), not (stream_id, version): lookups give both, and
//   interleaved streams that grow together then add their marks side by side in a few pages
//   instead of one page per mark (~10% of an import's pages per commit over 10k streams).
// - Ids are 16-byte blobs with a unique index; generated ids are UUIDv7, so that index too
//   grows at its right edge.
// - streams: one row per stream (name, category), written once when the stream is created.
// - stream_heads: each stream's last version (column `head`) and its position (`head_position`),
//   apart from the names: a commit rewrites every page holding a last version it moved, and an
//   import over 10k streams moves most of them each batch. Narrow rows (~12 bytes) keep that to
//   about a third of the pages the last versions took inside the streams rows (schema v1), which
//   made import ~1.4x faster. A stream's last recorded_at is that of the event at
//   head_position; it is not stored twice.
// - queues / queue_items / queue_runs: projector queues. A queue is a cursor plus state only for
//   events in flight (leased, waiting for retry, parked, or held behind one of those); acked
//   events below the cursor leave no trace, so a queue costs nothing per event until it is
//   drained. A pull's first deliveries are leased as one queue_runs row (see store/queue.cpp).
//   Every lease carries a token, and every queue an id, drawn from `counters`: neither is ever
//   reused, even after a queue is deleted, so a late outcome can be told from a current one.
// SQL names kept from older versions where the code now says otherwise (renaming them would take a
// schema version, which readers of older stores refuse until a writer migrates): stream_heads
// and its `head` hold a stream's last version; queue_items.head (and the index
// queue_items_heads) is a row's front flag. Neither is a head position, the store's highest.
#include "store/sqlite/schema.hpp"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "core/error.hpp"
#include "store/sqlite/sqlite.hpp"

namespace esctl {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE streams (
  id              INTEGER PRIMARY KEY,
  name            TEXT NOT NULL UNIQUE,
  category        TEXT NOT NULL
);
CREATE INDEX streams_by_category ON streams(category);

-- One row per stream with events, written in the transaction that appends them.
CREATE TABLE stream_heads (
  stream_id       INTEGER PRIMARY KEY,  -- streams.id
  head            INTEGER NOT NULL,     -- last version
  head_position   INTEGER NOT NULL      -- position of the last event
);

CREATE TABLE events (
  position     INTEGER PRIMARY KEY AUTOINCREMENT,
  stream_id    INTEGER NOT NULL,
  version      INTEGER NOT NULL,
  prev         INTEGER,               -- position of version-1 of the same stream; NULL for 0
  id           BLOB NOT NULL,         -- 16 bytes
  type         TEXT NOT NULL,
  data         TEXT NOT NULL,         -- minified JSON
  meta         TEXT NOT NULL,         -- minified JSON
  recorded_at  INTEGER NOT NULL       -- µs since the epoch, UTC
);
CREATE UNIQUE INDEX events_by_id ON events(id);
CREATE UNIQUE INDEX events_marks ON events(version, stream_id) WHERE version % 64 = 0;

CREATE TRIGGER events_immutable_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'esctl: events are immutable'); END;
CREATE TRIGGER events_immutable_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'esctl: events are immutable'); END;

-- recorded_at is known to be non-decreasing over positions 1..ordered_through, whose largest
-- recorded_at is max_recorded_at: reads bounded by time (--since/--until) binary-search that
-- range instead of scanning it. Each append extends it while its events keep the order; once an
-- event is out of order (an import of older times, a clock stepped back) it stops for good, and
-- later events are filtered one by one. The upgrade from schema v2 computes it with one scan.
CREATE TABLE time_order (
  id               INTEGER PRIMARY KEY CHECK (id = 1),
  ordered_through  INTEGER NOT NULL,
  max_recorded_at  INTEGER NOT NULL
);
INSERT INTO time_order VALUES (1, 0, -9223372036854775808);

-- What `sqlite3 events.db` users want to look at.
CREATE VIEW event_log AS
SELECT e.position, s.name AS stream, e.version,
       lower(substr(hex(e.id),1,8)||'-'||substr(hex(e.id),9,4)||'-'||substr(hex(e.id),13,4)||'-'||
             substr(hex(e.id),17,4)||'-'||substr(hex(e.id),21,12)) AS id,
       e.type, e.data, e.meta,
       strftime('%Y-%m-%dT%H:%M:%f', e.recorded_at / 1000000.0, 'unixepoch') || 'Z' AS recorded_at
FROM events e JOIN streams s ON s.id = e.stream_id;

CREATE TABLE queues (
  id              INTEGER PRIMARY KEY,
  name            TEXT NOT NULL UNIQUE,
  filter_streams  TEXT NOT NULL DEFAULT '[]',   -- JSON array of globs
  filter_categories TEXT NOT NULL DEFAULT '[]', -- JSON array
  filter_types    TEXT NOT NULL DEFAULT '[]',   -- JSON array
  start_position  INTEGER NOT NULL,             -- the queue holds matching events after this
  cursor          INTEGER NOT NULL,             -- matching events <= cursor are acked or in flight
  max_attempts    INTEGER NOT NULL,
  ack_timeout_ms  INTEGER NOT NULL,
  on_poison       TEXT NOT NULL CHECK (on_poison IN ('park', 'block')),
  generation      INTEGER NOT NULL DEFAULT 0,   -- bumped by reset
  created_at      INTEGER NOT NULL,
  deliverable_since INTEGER NOT NULL DEFAULT 0  -- µs: last create, reset or rebuild handover
);

-- Store-wide counters that survive the rows they number: 'queue' (the last queues.id given
-- out) and 'lease' (the last lease token).
CREATE TABLE counters (
  name            TEXT PRIMARY KEY,
  value           INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('queue', 0), ('lease', 0);

-- Events in flight one by one (see src/store/queue.cpp): held behind their stream, redelivered,
-- parked, or leased singly. due_* is a lease expiry or retry time.
-- `head` is the row's front flag (queue.cpp's word): set on the lowest row of its stream in
-- the queue, the row that decides for the stream; queue_items_heads indexes the front rows.
CREATE TABLE queue_items (
  queue_id    INTEGER NOT NULL,
  position    INTEGER NOT NULL,
  stream_id   INTEGER NOT NULL,
  state       INTEGER NOT NULL,      -- 0 pending, 1 leased, 2 retry, 3 parked
  attempts    INTEGER NOT NULL DEFAULT 0,   -- deliveries so far
  due_mono    INTEGER,               -- CLOCK_BOOTTIME µs ...
  due_boot    INTEGER,               -- ... valid only on this boot (a number derived from its boot id)
  due_wall    INTEGER,               -- wall clock µs of the same instant (display only); parked: when
  reason      TEXT,                  -- the last failure
  head        INTEGER NOT NULL DEFAULT 0,   -- 1 on the lowest row of its stream in this queue
  lease       INTEGER,               -- leased: the token of the delivery holding it
  PRIMARY KEY (queue_id, position)
) WITHOUT ROWID;
CREATE INDEX queue_items_by_stream ON queue_items(queue_id, stream_id, position);
CREATE INDEX queue_items_heads ON queue_items(queue_id, position) WHERE head;
-- Leased rows: what a pull checks for leases expired with no attempt left.
CREATE INDEX queue_items_leased ON queue_items(queue_id, position) WHERE state = 1;

-- Runs of first deliveries leased together by one pull (attempt 1, one due time): `members`
-- packs (position delta, stream id) varint pairs for positions first..last.
CREATE TABLE queue_runs (
  queue_id    INTEGER NOT NULL,
  first       INTEGER NOT NULL,
  last        INTEGER NOT NULL,
  count       INTEGER NOT NULL,
  members     BLOB NOT NULL,
  due_mono    INTEGER NOT NULL,
  due_boot    INTEGER NOT NULL,
  due_wall    INTEGER NOT NULL,
  lease       INTEGER NOT NULL DEFAULT 0,   -- the token of the pull that leased it
  PRIMARY KEY (queue_id, first)
) WITHOUT ROWID;
)sql";

// Migrations, one per older version, each frozen as that step was first released: it turns a
// store of version N into one of version N+1 and never changes afterwards.
//
// 1 -> 2: the streams' last versions move out of the streams rows into stream_heads, and the
// marks index is keyed (version, stream_id) (see the top of this file); updated_at is dropped (it
// is the recorded_at of the event at head_position).
constexpr const char* kMigrateFrom1 = R"sql(
CREATE TABLE stream_heads (
  stream_id       INTEGER PRIMARY KEY,  -- streams.id
  head            INTEGER NOT NULL,     -- last version
  head_position   INTEGER NOT NULL      -- position of the last event
);
INSERT INTO stream_heads (stream_id, head, head_position) SELECT id, head, head_position FROM streams WHERE head >= 0;
ALTER TABLE streams DROP COLUMN head;
ALTER TABLE streams DROP COLUMN head_position;
ALTER TABLE streams DROP COLUMN updated_at;
DROP INDEX events_marks;
CREATE UNIQUE INDEX events_marks ON events(version, stream_id) WHERE version % 64 = 0;
)sql";

// 2 -> 3: lease tokens on queue_items and queue_runs rows, and store-wide counters for them and
// for queue ids (so that neither is reused after a queue is deleted; ids of queues deleted before
// the upgrade are not known); a queue's deliverable_since starts at its creation; an index of
// leased rows; the time order (how far recorded_at is known to be in position order), by one scan.
constexpr const char* kMigrateFrom2 = R"sql(
ALTER TABLE queues ADD COLUMN deliverable_since INTEGER NOT NULL DEFAULT 0;
UPDATE queues SET deliverable_since = created_at;
CREATE TABLE counters (
  name            TEXT PRIMARY KEY,
  value           INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('queue', (SELECT coalesce(max(id), 0) FROM queues)), ('lease', 0);
ALTER TABLE queue_items ADD COLUMN lease INTEGER;
ALTER TABLE queue_runs ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
CREATE INDEX queue_items_leased ON queue_items(queue_id, position) WHERE state = 1;
CREATE TABLE time_order (
  id               INTEGER PRIMARY KEY CHECK (id = 1),
  ordered_through  INTEGER NOT NULL,
  max_recorded_at  INTEGER NOT NULL
);
WITH back AS (SELECT min(position) AS p FROM (SELECT position, recorded_at < lag(recorded_at) OVER (ORDER BY position) AS b
                                              FROM events) WHERE b),
     through AS (SELECT coalesce((SELECT p - 1 FROM back WHERE p IS NOT NULL),
                                 (SELECT coalesce(max(position), 0) FROM events)) AS t)
INSERT INTO time_order SELECT 1, t, coalesce((SELECT max(recorded_at) FROM events WHERE position <= t), -9223372036854775808)
FROM through;
)sql";

constexpr const char* kMigrations[] = {kMigrateFrom1, kMigrateFrom2};  // [i]: from version i + 1
static_assert(std::size(kMigrations) == kSchemaVersion - 1, "one migration per older schema version");

void migrate(sql::Db& db) {
  sql::Txn txn(db);  // BEGIN IMMEDIATE: one process migrates, the others wait and find it done
  for (auto v = db.query_i64("PRAGMA user_version"); v < kSchemaVersion; ++v) {
    db.exec(kMigrations[v - 1]);
    db.exec(fmt::format("PRAGMA user_version = {}", v + 1).c_str());
  }
  txn.commit();
}

constexpr std::int64_t kPageSize = 8192;             // of new stores
constexpr std::int64_t kWalCheckpointBytes = 4194304;

bool has_user_tables(sql::Db& db) {
  return db.query_i64("SELECT count(*) FROM sqlite_schema") > 0;
}

struct Found {
  std::int64_t app_id = 0, version = 0;
  bool has_tables = false;
};

// What the file is, in one statement, so one snapshot: separate ones could straddle another
// process's commit that creates this new store, and read "application id 0, tables present".
Found look(sql::Db& db) {
  auto s = db.prepare_new(
      "SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM pragma_user_version), "
      "EXISTS (SELECT 1 FROM sqlite_schema)");
  s.step();
  return Found{s.i64(0), s.i64(1), s.i64(2) != 0};
}

}  // namespace

void configure_connection(sql::Db& db) {
  // journal_size_limit: a WAL that grew while a reader held an old snapshot (a paused `export`)
  // is cut back to 8 MiB the next time a writer starts it over, instead of keeping its peak size
  // for as long as any process has the store open.
  // temp_store: statement journals (a multi-row INSERT keeps one, to undo itself alone on a
  // constraint error) stay in memory instead of spilling past 64 KiB into a temporary file with a
  // write(2) per page.
  db.exec("PRAGMA synchronous = FULL; PRAGMA cache_size = -16384; PRAGMA foreign_keys = OFF;"
          "PRAGMA journal_size_limit = 8388608; PRAGMA temp_store = MEMORY;");
  // A commit that leaves the WAL at 4 MiB or more checkpoints it, whatever the page size (SQLite
  // counts 1000 pages: 4 MiB of the 4 KiB pages of stores made before 8 KiB pages).
  const auto page_size = db.query_i64("PRAGMA page_size");
  if (page_size > 0)
    db.exec(fmt::format("PRAGMA wal_autocheckpoint = {}", std::max<std::int64_t>(1, kWalCheckpointBytes / page_size))
                .c_str());
}

void prepare_schema(sql::Db& db, Access intent) {
  const auto [app_id, version, has_tables] = look(db);
  if (app_id == kApplicationId && version == kSchemaVersion) return;
  if (app_id == 0 && version == 0) {
    if (has_tables)
      throw Error(Errc::corrupt, fmt::format("'{}' is a SQLite database but not an esctl store; "
                                             "refusing to touch it (pass --store to choose another file)",
                                             db.path()));
    if (intent != Access::write)
      throw Error(Errc::not_found, fmt::format("no store at '{}' (the file is empty; create one with 'esctl init')", db.path()));
    // 8 KiB pages: an import writes half as many WAL frames, two write(2)s each, as with 4 KiB
    // (about 7% faster), and a full scan reads half as many pages (`read --all` ~30% faster).
    db.exec(fmt::format("PRAGMA page_size = {}; PRAGMA journal_mode = WAL", kPageSize).c_str());
    sql::Txn txn(db);
    // Another process may have created the schema while we waited for the write lock.
    if (db.query_i64("PRAGMA user_version") == 0 && !has_user_tables(db)) {
      db.exec(kSchema);
      db.exec(fmt::format("PRAGMA application_id = {}; PRAGMA user_version = {};", kApplicationId, kSchemaVersion).c_str());
    }
    txn.commit();
    return;
  }
  if (app_id != kApplicationId)
    throw Error(Errc::corrupt, fmt::format("'{}' is a SQLite database but not an esctl store (application_id {:#x}); "
                                           "refusing to touch it",
                                           db.path(), app_id));
  if (version > kSchemaVersion)
    throw Error(Errc::corrupt, fmt::format("store '{}' has schema version {}, newer than this esctl understands ({}); "
                                           "upgrade esctl",
                                           db.path(), version, kSchemaVersion));
  if (version < 1) throw Error(Errc::corrupt, fmt::format("store '{}' has unknown schema version {}", db.path(), version));
  // An older store is upgraded in place by the first command that writes; reading never writes.
  if (intent == Access::read)
    throw Error(Errc::corrupt, fmt::format("store '{}' has schema version {}, older than this esctl's ({}); upgrade it "
                                           "once with 'esctl init' (every event is kept), then retry",
                                           db.path(), version, kSchemaVersion));
  migrate(db);
}

}  // namespace esctl
