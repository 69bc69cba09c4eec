// Layout of a PostgreSQL store (schema `esctl`, version 2). The same model as a SQLite store,
// laid out for a server with many concurrent sessions:
//
// - events: one row per event keyed by `position`. Positions are not a sequence: every append
//   first locks the 'position' row of `counters` and takes the next positions from it, so
//   appends commit one at a time and in position order (PostgreSQL makes a commit visible
//   before it releases the row lock). A reader that has seen position p can therefore never
//   later find a committed event below p, and positions stay dense. A sequence would let a
//   later position commit before an earlier one and a reader following `position > last`
//   would skip the earlier one for good.
// - Payloads (data, meta) are text, exactly the minified JSON esctl validated; never jsonb,
//   which would re-encode them (key order, duplicates, numbers) and break byte-identical export.
// - (stream_id, version) has a unique index: a server b-tree handles interleaved streams well
//   enough, so the SQLite layout's prev links and sparse marks are not needed here.
// - Ids are `uuid` (16 bytes, printable in psql); stream ids come from an identity column.
// - store: one row naming the application and the schema version; a schema `esctl` without
//   it is not an esctl store and is left alone.
// - Queue rows keep due times in µs of the server's clock (clock_timestamp()), the one clock
//   every drainer on every machine shares. How drainers in several processes share a queue is
//   explained in queue_rows.cpp.
//
// Versions: 1 first; 2 adds queue_items_heads, the partial index a pull walks the front rows by
// (the column `head` is a row's front flag; the SQL names stay, see the schema).
#include "store/postgres/schema.hpp"

#include <fmt/format.h>

namespace esctl::pg {
namespace {

// The key of the advisory lock that serialises schema creation across sessions.
constexpr const char* kCreateLockKey = "7310021994";  // arbitrary, fixed

constexpr const char* kSchema = R"sql(
CREATE SCHEMA IF NOT EXISTS esctl;

CREATE TABLE esctl.store (
  id              int PRIMARY KEY CHECK (id = 1),
  application     text NOT NULL,
  schema_version  int NOT NULL,
  created_at      bigint NOT NULL          -- µs since the epoch, server clock
);

-- Store-wide counters: 'position' (the last position given out; its row lock serialises
-- appends), 'queue' (the last queue id), 'lease' (the last lease token). Never reused.
CREATE TABLE esctl.counters (
  name            text PRIMARY KEY,
  value           bigint NOT NULL
);
INSERT INTO esctl.counters (name, value) VALUES ('position', 0), ('queue', 0), ('lease', 0);

CREATE TABLE esctl.streams (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name            text NOT NULL UNIQUE,
  category        text NOT NULL
);
CREATE INDEX streams_by_category ON esctl.streams (category);

-- One row per stream with events, written in the transaction that appends them: the stream's
-- last version (`head`; the SQL name is older than the code's word) and where it is.
CREATE TABLE esctl.stream_heads (
  stream_id       bigint PRIMARY KEY,      -- streams.id
  head            bigint NOT NULL,         -- last version
  head_position   bigint NOT NULL          -- position of the last event
);

CREATE TABLE esctl.events (
  position        bigint PRIMARY KEY,
  stream_id       bigint NOT NULL,
  version         bigint NOT NULL,
  id              uuid NOT NULL,
  type            text NOT NULL,
  data            text NOT NULL,           -- minified JSON, as given
  meta            text NOT NULL,           -- minified JSON, as given
  recorded_at     bigint NOT NULL          -- µs since the epoch, UTC
);
CREATE UNIQUE INDEX events_by_id ON esctl.events (id);
CREATE UNIQUE INDEX events_by_stream ON esctl.events (stream_id, version);

CREATE FUNCTION esctl.events_immutable() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'esctl: events are immutable'; END $$;
CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON esctl.events
  FOR EACH ROW EXECUTE FUNCTION esctl.events_immutable();
CREATE TRIGGER events_immutable_truncate BEFORE TRUNCATE ON esctl.events
  FOR EACH STATEMENT EXECUTE FUNCTION esctl.events_immutable();

-- recorded_at is non-decreasing over positions 1..ordered_through, whose largest recorded_at
-- is max_recorded_at (as in SQLite stores): time-bounded reads search that prefix.
CREATE TABLE esctl.time_order (
  id               int PRIMARY KEY CHECK (id = 1),
  ordered_through  bigint NOT NULL,
  max_recorded_at  bigint NOT NULL
);
INSERT INTO esctl.time_order VALUES (1, 0, -9223372036854775808);

-- What `psql` users want to look at.
CREATE VIEW esctl.event_log AS
SELECT e.position, s.name AS stream, e.version, e.id, e.type, e.data, e.meta,
       to_timestamp(e.recorded_at / 1000000.0) AS recorded_at
FROM esctl.events e JOIN esctl.streams s ON s.id = e.stream_id;

CREATE TABLE esctl.queues (
  id                 bigint PRIMARY KEY,
  name               text NOT NULL UNIQUE,
  filter_streams     text NOT NULL DEFAULT '[]',   -- JSON array of globs
  filter_categories  text NOT NULL DEFAULT '[]',   -- JSON array
  filter_types       text NOT NULL DEFAULT '[]',   -- JSON array
  start_position     bigint NOT NULL,              -- the queue holds matching events after this
  cursor             bigint NOT NULL,              -- matching events <= cursor are acked or in flight
  max_attempts       bigint NOT NULL,
  ack_timeout_ms     bigint NOT NULL,
  on_poison          text NOT NULL CHECK (on_poison IN ('park', 'block')),
  generation         bigint NOT NULL DEFAULT 0,    -- bumped by reset
  created_at         bigint NOT NULL,
  deliverable_since  bigint NOT NULL DEFAULT 0
);

-- Events in flight one by one: held behind their stream, redelivered, parked, or leased.
-- `head` is the row's front flag (queue.cpp's word): set on the lowest row of its stream in
-- the queue, the row that decides for the stream; queue_items_heads indexes the front rows.
-- Narrow rows, and the columns a lease updates (state, attempts, due, lease) are in no index
-- but the partial ones below, so most lease updates stay heap-only.
CREATE TABLE esctl.queue_items (
  queue_id    bigint NOT NULL,
  position    bigint NOT NULL,
  stream_id   bigint NOT NULL,
  state       smallint NOT NULL,             -- 0 pending, 1 leased, 2 retry, 3 parked
  attempts    bigint NOT NULL DEFAULT 0,
  due         bigint,                        -- server clock µs: lease expiry or retry time
  due_wall    bigint,                        -- the same instant for display; parked: when
  reason      text,
  head        boolean NOT NULL DEFAULT false,  -- the lowest row of its stream in this queue
  lease       bigint,                        -- leased: the token of the delivery holding it
  PRIMARY KEY (queue_id, position)
);
CREATE INDEX queue_items_by_stream ON esctl.queue_items (queue_id, stream_id, position);
CREATE INDEX queue_items_heads ON esctl.queue_items (queue_id, position) WHERE head;
ALTER TABLE esctl.queue_items SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02);

-- Runs of first deliveries leased together by one pull.
CREATE TABLE esctl.queue_runs (
  queue_id    bigint NOT NULL,
  first       bigint NOT NULL,
  last        bigint NOT NULL,
  count       bigint NOT NULL,
  members     bytea NOT NULL,
  due         bigint NOT NULL,
  due_wall    bigint NOT NULL,
  lease       bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (queue_id, first)
);
ALTER TABLE esctl.queue_runs SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02);
)sql";

// Migrations, one per older version, each frozen once released: version N to N+1.
// 1 -> 2: the front rows of each queue get a partial index (a pull walks them in order).
constexpr const char* kMigrateFrom1 = R"sql(
CREATE INDEX IF NOT EXISTS queue_items_heads ON esctl.queue_items (queue_id, position) WHERE head;
UPDATE esctl.store SET schema_version = 2 WHERE id = 1;
)sql";

struct Found {
  bool schema = false;        // a schema named esctl exists
  bool empty = false;         // ... and holds no tables, views, functions or types
  bool store_table = false;   // esctl.store exists
};

Found look(Conn& conn) {
  auto r = conn.exec(
      "SELECT n.oid IS NOT NULL, "
      "       n.oid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = n.oid) "
      "                         AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = n.oid) "
      "                         AND NOT EXISTS (SELECT 1 FROM pg_type WHERE typnamespace = n.oid), "
      "       to_regclass('esctl.store') IS NOT NULL "
      "FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = 'esctl'");
  return Found{r.text(0, 0) == "t", r.text(0, 1) == "t", r.text(0, 2) == "t"};
}

// The store's schema version, once it is known to be an esctl store this esctl understands.
int check_store(Conn& conn) {
  auto r = conn.exec("SELECT application, schema_version FROM esctl.store WHERE id = 1");
  if (r.rows() != 1 || r.text(0, 0) != "esctl")
    throw Error(Errc::corrupt, fmt::format("database '{}' has a schema 'esctl' that is not an esctl store; refusing "
                                           "to touch it (choose another database with --store)",
                                           conn.display()));
  const auto version = r.i64(0, 1);
  if (version > kSchemaVersion)
    throw Error(Errc::corrupt, fmt::format("store '{}' has schema version {}, newer than this esctl understands ({}); "
                                           "upgrade esctl",
                                           conn.display(), version, kSchemaVersion));
  if (version < 1)
    throw Error(Errc::corrupt, fmt::format("store '{}' has unknown schema version {}", conn.display(), version));
  return static_cast<int>(version);
}

// Brings a store of an older version up to this one; readers use an older store as it is.
void migrate(Conn& conn, Access access) {
  if (access == Access::read) return;
  Txn txn(conn);
  conn.exec("SELECT pg_advisory_xact_lock($1::bigint)", {kCreateLockKey});
  if (check_store(conn) == 1) conn.exec_script(kMigrateFrom1);  // another session may have done it
  txn.commit();
}

}  // namespace

void prepare_schema(Conn& conn, Access access) {
  Found f = look(conn);
  if (f.store_table) {
    if (check_store(conn) < kSchemaVersion) migrate(conn, access);
    return;
  }
  if (f.schema && !f.empty)
    throw Error(Errc::corrupt, fmt::format("database '{}' has a schema 'esctl' that is not an esctl store; refusing "
                                           "to touch it (choose another database with --store)",
                                           conn.display()));
  if (access != Access::write)
    throw Error(Errc::not_found, fmt::format("no store at '{}' (the database has no esctl schema; create one with "
                                             "'esctl init')",
                                             conn.display()));
  Txn txn(conn);
  conn.exec("SELECT pg_advisory_xact_lock($1::bigint)", {kCreateLockKey});
  f = look(conn);  // another session may have created it while we waited
  if (!f.store_table) {
    if (f.schema && !f.empty)
      throw Error(Errc::corrupt, fmt::format("database '{}' has a schema 'esctl' that is not an esctl store; refusing "
                                             "to touch it",
                                             conn.display()));
    conn.exec_script(kSchema);
    conn.exec("INSERT INTO esctl.store VALUES (1, 'esctl', $1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)",
              {kSchemaVersion});
  }
  txn.commit();
  check_store(conn);
}

}  // namespace esctl::pg
