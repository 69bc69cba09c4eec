// PostgreSQL event store (see store.hpp). The life of an append:
//   BEGIN
//   lock the 'position' counter row (FOR UPDATE) and read the server clock and time order
//   look up the batch's streams (those this session has not met since its last append) and,
//   unless the batch is large, its given ids, in one statement each; create new streams in one
//   check repeats, expected versions and given versions in memory, sending each new event as
//   it passes into one COPY (binary format)
//   move the streams' last versions (stream_heads rows: one statement for existing rows, one
//   for new), the counter and the time order
//   COMMIT (the counter's row lock is released only after the commit is visible)
// The row lock makes every append wait for the one before it to commit, so position order is
// commit order and positions are dense (a rolled-back append gives its positions back).
#include "store/postgres/store.hpp"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "core/names.hpp"
#include "core/signals.hpp"
#include "core/uuid.hpp"
#include "store/backend.hpp"

namespace esctl::pg {
namespace {

constexpr std::int64_t kReadChunk = 1000;
constexpr std::size_t kGuessIdsFrom = 64;    // events in a batch whose ids are taken as new at first
constexpr std::size_t kKnownStreams = 50000;  // streams an appending session remembers (a few MB)

constexpr const char* kEventColumns =
    "e.position, s.name, e.version, e.id, e.type, e.data, e.meta, e.recorded_at";

std::string int_array(const std::vector<std::int64_t>& v) {
  std::string out = "{";
  for (std::size_t i = 0; i < v.size(); ++i) out.append(i ? "," : "").append(std::to_string(v[i]));
  return out + "}";
}

struct StreamRow {
  std::int64_t id = 0;  // 0: no such stream yet
  std::int64_t last_version = -1;
  std::int64_t last_position = 0;
  bool has_last = false;  // it has a stream_heads row
  bool dirty = false;     // this batch appends to it
};

struct Stored {  // an event already stored (or earlier in this batch) under a given id
  std::int64_t stream_id = 0;
  std::string_view stream, type, data;  // into the batch or the rows read
  std::int64_t position = 0, version = 0;
};

struct UuidHash {
  std::size_t operator()(const Uuid& u) const noexcept {  // the bytes are random or a clock: any 8 will do
    std::uint64_t h = 0;
    for (int i = 8; i < 16; ++i) h = h << 8 | u.bytes[static_cast<std::size_t>(i)];
    return std::hash<std::uint64_t>{}(h ^ (static_cast<std::uint64_t>(u.bytes[5]) << 56));
  }
};

// COPY's binary format: a signature, flags and header extension (both 0), then per row the
// field count and each field as its length and bytes, all integers big-endian; -1 ends it.
constexpr char kCopyHeader[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

template <class Int>
void put_int(std::string& out, Int v) {
  auto u = static_cast<std::make_unsigned_t<Int>>(v);
  for (int shift = 8 * (sizeof(Int) - 1); shift >= 0; shift -= 8) out += static_cast<char>((u >> shift) & 0xff);
}

void put_field(std::string& out, std::int64_t v) {
  put_int(out, std::int32_t{8});
  put_int(out, v);
}

void put_field(std::string& out, std::string_view v) {
  put_int(out, static_cast<std::int32_t>(v.size()));
  out.append(v);
}

}  // namespace

std::string array_literal(const std::vector<std::string_view>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    out.append(i ? ",\"" : "\"");
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

PgStore::PgStore(const std::string& uri, int busy_timeout_ms, Access access) : conn_(uri, busy_timeout_ms) {
  prepare_schema(conn_, access);
}

std::vector<Appended> PgStore::append(const std::vector<NewEvent>& events, const Expect& expect, bool check_versions,
                                      std::size_t* failed_at) {
  // The ids of a large batch are usually new (an import's first run): its first attempt does not
  // look them up and lets the unique index on ids catch a stored one. If that attempt fails with
  // a conflict of any kind (a stored id, or a version or expectation that a repeat would have
  // explained), nothing of it is kept and the append is run again with the lookup, which
  // decides. Small appends look up first: a retried `append --id` is no error in the server log.
  const bool any_id = std::any_of(events.begin(), events.end(), [](const NewEvent& e) { return e.id.has_value(); });
  if (any_id && events.size() >= kGuessIdsFrom) {
    try {
      return append_once(events, expect, check_versions, failed_at, false);
    } catch (const Error& e) {
      if (e.code() != Errc::conflict && !id_clash_) throw;
    }
  }
  return append_once(events, expect, check_versions, failed_at, true);
}

std::vector<Appended> PgStore::append_once(const std::vector<NewEvent>& events, const Expect& expect,
                                           bool check_versions, std::size_t* failed_at, bool look_up_ids) {
  std::vector<Appended> out;
  out.reserve(events.size());
  bool expect_checked = expect.kind == Expect::any;
  std::size_t at = 0;
  id_clash_ = false;
  try {
    Txn txn(conn_);
    // First statement: the counter's row lock orders this append after every earlier one.
    auto head = conn_.exec(
        "SELECT c.value, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, t.ordered_through, t.max_recorded_at "
        "FROM esctl.counters c, esctl.time_order t WHERE c.name = 'position' AND t.id = 1 FOR UPDATE OF c");
    if (head.rows() != 1) throw Error(Errc::corrupt, fmt::format("store '{}' has no position counter", conn_.display()));
    const std::int64_t first_position = head.i64(0, 0) + 1;
    std::int64_t next_position = first_position;
    const std::int64_t now = head.i64(0, 1);
    std::int64_t ordered_through = head.i64(0, 2), max_recorded_at = head.i64(0, 3);
    const std::int64_t ordered_before = ordered_through;
    bool in_order = ordered_through == first_position - 1;

    // The batch's streams (those this session has not met, or all if another session appended
    // since) and given ids, one statement each.
    if (head.i64(0, 0) != known_through_) known_.clear();
    std::unordered_map<std::string_view, StreamRow> streams;
    std::vector<std::string_view> names, unknown, ids_text;
    std::vector<std::string> id_storage;
    for (const auto& ev : events) {
      if (auto [it, added] = streams.emplace(ev.stream, StreamRow{}); added) {
        names.push_back(ev.stream);
        if (auto k = known_.find(std::string(ev.stream)); k != known_.end())
          it->second = StreamRow{k->second.id, k->second.last_version, k->second.last_position, true, false};
        else
          unknown.push_back(ev.stream);
      }
      if (ev.id && look_up_ids) id_storage.push_back(format_uuid(*ev.id));
    }
    for (const auto& s : id_storage) ids_text.push_back(s);
    if (!unknown.empty()) {
      auto r = conn_.exec(
          "SELECT s.name, s.id, coalesce(h.head, -1), coalesce(h.head_position, 0), h.stream_id IS NOT NULL "
          "FROM esctl.streams s LEFT JOIN esctl.stream_heads h ON h.stream_id = s.id WHERE s.name = ANY($1::text[])",
          {array_literal(unknown)});
      for (int i = 0; i < r.rows(); ++i) {
        StreamRow& row = streams.find(r.text(i, 0))->second;
        row = StreamRow{r.i64(i, 1), r.i64(i, 2), r.i64(i, 3), r.text(i, 4) == "t", false};
      }
    }
    std::unordered_map<Uuid, Stored, UuidHash> stored;
    Result stored_rows;  // the strings of `stored`'s entries found in the store
    if (look_up_ids && !ids_text.empty()) {
      stored_rows = conn_.exec(
          "SELECT e.id, e.stream_id, s.name, e.type, e.data, e.position, e.version "
          "FROM esctl.events e JOIN esctl.streams s ON s.id = e.stream_id WHERE e.id = ANY($1::uuid[])",
          {array_literal(ids_text)});
      for (int i = 0; i < stored_rows.rows(); ++i) {
        auto id = parse_uuid(stored_rows.text(i, 0));
        if (!id) throw Error(Errc::corrupt, fmt::format("store '{}' holds a malformed event id '{}'", conn_.display(),
                                                        stored_rows.text(i, 0)));
        stored.emplace(*id, Stored{stored_rows.i64(i, 1), stored_rows.text(i, 2), stored_rows.text(i, 3),
                                   stored_rows.text(i, 4), stored_rows.i64(i, 5), stored_rows.i64(i, 6)});
      }
    }
    // The batch's new streams, in order of first appearance, in one statement. A stream made
    // here always gets an event: an event can only repeat one stored in an existing stream.
    {
      std::vector<std::string_view> fresh, categories;
      for (auto name : names)
        if (streams[name].id == 0) {
          fresh.push_back(name);
          categories.push_back(category_of(name));
        }
      if (!fresh.empty()) {
        auto r = conn_.exec(
            "INSERT INTO esctl.streams (name, category) SELECT n, c FROM unnest($1::text[], $2::text[]) "
            "WITH ORDINALITY AS u(n, c, o) ORDER BY o RETURNING id, name",
            {array_literal(fresh), array_literal(categories)});
        for (int i = 0; i < r.rows(); ++i) streams.find(r.text(i, 1))->second.id = r.i64(i, 0);
      }
    }

    // The new events, sent as they are made by one COPY in its binary format (no text to escape
    // or parse), begun at the first new event. Until it ends no other statement can run.
    std::optional<CopyIn> copy;
    std::vector<std::string_view> dirty;
    for (; at < events.size(); ++at) {
      const NewEvent& ev = events[at];
      StreamRow& row = streams.find(ev.stream)->second;
      if (ev.id) {
        if (auto it = stored.find(*ev.id); it != stored.end()) {
          const Stored& s = it->second;
          bool same = s.stream == ev.stream && s.type == ev.type && s.data == ev.data;
          if (!same) throw_id_conflict(format_uuid(*ev.id), s.position, s.stream, s.version);
          out.push_back(Appended{ev.stream, s.version, s.position, *ev.id, true});
          continue;
        }
      }
      if (!expect_checked) {
        expect_checked = true;
        check_expected(ev.stream, row.last_version, expect);
      }
      if (check_versions && ev.version) check_version_fits(ev.stream, row.last_version, *ev.version);
      const Uuid id = ev.id ? *ev.id : new_uuid_v7();
      const std::int64_t recorded = ev.recorded_at.value_or(now);
      const std::int64_t position = next_position++;
      if (in_order && recorded >= max_recorded_at) {
        ordered_through = position;
        max_recorded_at = recorded;
      } else {
        in_order = false;
      }
      row.last_version += 1;
      row.last_position = position;
      if (!row.dirty) {
        row.dirty = true;
        dirty.push_back(ev.stream);
      }
      if (!copy) {
        copy.emplace(conn_, "COPY esctl.events (position, stream_id, version, id, type, data, meta, recorded_at) "
                            "FROM STDIN (FORMAT binary)");
        copy->buffer().append(kCopyHeader, sizeof kCopyHeader - 1);
      }
      std::string& rows = copy->buffer();
      put_int(rows, std::int16_t{8});
      put_field(rows, position);
      put_field(rows, row.id);
      put_field(rows, row.last_version);
      put_field(rows, id.view());
      put_field(rows, ev.type);
      put_field(rows, ev.data);
      put_field(rows, ev.meta);
      put_field(rows, recorded);
      copy->sent();
      stored.emplace(id, Stored{row.id, ev.stream, ev.type, ev.data, position, row.last_version});
      out.push_back(Appended{ev.stream, row.last_version, position, id, false});
    }
    if (!copy) {  // nothing new: every event was a repeat
      txn.commit();
      return out;
    }
    put_int(copy->buffer(), std::int16_t{-1});
    try {
      copy->end();
    } catch (const Error&) {
      id_clash_ = !look_up_ids && conn_.last_sqlstate() == "23505";  // unique_violation: a stored id
      throw;
    }
    // The last versions of the streams written to (stream_heads rows): one statement for those
    // that had a row, one for new; in stream id order, so that the updates walk the table's
    // index and pages in order.
    std::vector<const StreamRow*> moved;
    moved.reserve(dirty.size());
    for (auto name : dirty) moved.push_back(&streams.find(name)->second);
    std::sort(moved.begin(), moved.end(), [](const StreamRow* a, const StreamRow* b) { return a->id < b->id; });
    std::vector<std::int64_t> ids[2], versions[2], positions[2];
    for (const StreamRow* r : moved) {
      const StreamRow& row = *r;
      ids[row.has_last].push_back(row.id);
      versions[row.has_last].push_back(row.last_version);
      positions[row.has_last].push_back(row.last_position);
    }
    if (!ids[1].empty())
      conn_.exec(
          "UPDATE esctl.stream_heads h SET head = u.head, head_position = u.position "
          "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, head, position) WHERE h.stream_id = u.id",
          {int_array(ids[1]), int_array(versions[1]), int_array(positions[1])});
    if (!ids[0].empty())
      conn_.exec(
          "INSERT INTO esctl.stream_heads (stream_id, head, head_position) "
          "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])",
          {int_array(ids[0]), int_array(versions[0]), int_array(positions[0])});
    // The notification (the new head) is delivered to listeners when, and only if, this commits.
    conn_.exec("UPDATE esctl.counters SET value = $1 WHERE name = 'position' RETURNING pg_notify('esctl_events', value::text)",
               {next_position - 1});
    if (ordered_through != ordered_before)
      conn_.exec("UPDATE esctl.time_order SET ordered_through = $1, max_recorded_at = $2 WHERE id = 1",
                 {ordered_through, max_recorded_at});
    txn.commit();
    if (known_.size() + unknown.size() > kKnownStreams) known_.clear();
    for (const auto& [name, row] : streams)
      if (row.has_last || row.dirty) known_[std::string(name)] = KnownStream{row.id, row.last_version, row.last_position};
    known_through_ = next_position - 1;
  } catch (...) {
    if (failed_at) *failed_at = at;
    throw;
  }
  return out;
}

bool PgStore::emit(Result& r, const EventCallback& fn) {
  std::string raw_id;
  for (int i = 0; i < r.rows(); ++i) {
    auto id = parse_uuid(r.text(i, 3));
    if (!id) throw Error(Errc::corrupt, fmt::format("store '{}' holds a malformed event id '{}'", conn_.display(), r.text(i, 3)));
    raw_id.assign(id->view());
    EventRef e{r.i64(i, 0), r.text(i, 1), r.i64(i, 2), raw_id, r.text(i, 4), r.text(i, 5), r.text(i, 6), r.i64(i, 7)};
    if (!fn(e)) return false;
  }
  return true;
}

std::vector<StreamInfo> PgStore::streams(std::optional<std::string> category, std::optional<std::string> prefix) {
  std::vector<StreamInfo> out;
  // Byte order (COLLATE "C"), as on SQLite; the prefix is matched on bytes, not as a pattern.
  auto r = conn_.exec(
      "SELECT s.name, h.head, h.head_position, e.recorded_at FROM esctl.streams s "
      "JOIN esctl.stream_heads h ON h.stream_id = s.id JOIN esctl.events e ON e.position = h.head_position "
      "WHERE ($1::text IS NULL OR s.category = $1) AND s.name COLLATE \"C\" >= $2 "
      "AND left(s.name, length($2)) = $2 ORDER BY s.name COLLATE \"C\"",
      {category ? Param(*category) : Param(std::nullopt), prefix.value_or("")});
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(StreamInfo{std::string(r.text(i, 0)), r.i64(i, 1), r.i64(i, 1) + 1, r.i64(i, 2), r.i64(i, 3)});
  return out;
}

PgStats PgStore::stats() {
  PgStats st;
  auto r = conn_.exec(  // one statement: one snapshot
      "SELECT current_setting('server_version'), current_database(), pg_database_size(current_database()), "
      "(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
      " WHERE c.relnamespace = 'esctl'::regnamespace AND c.relkind IN ('r', 'm')), "
      "(SELECT schema_version FROM esctl.store), (SELECT count(*) FROM esctl.events), "
      "(SELECT count(*) FROM esctl.stream_heads), (SELECT value FROM esctl.counters WHERE name = 'position')");
  st.uri = conn_.display();
  st.server_version = std::string(r.text(0, 0));
  st.database = std::string(r.text(0, 1));
  st.database_bytes = r.i64(0, 2);
  st.store_bytes = r.i64(0, 3);
  st.schema_version = static_cast<int>(r.i64(0, 4));
  st.events = r.i64(0, 5);
  st.streams = r.i64(0, 6);
  st.head_position = r.i64(0, 7);
  return st;
}

void PgStore::read_stream(std::string_view stream, std::optional<std::int64_t> from, std::optional<std::int64_t> count,
                          bool backwards, const EventCallback& fn) {
  auto s = conn_.exec(
      "SELECT s.id, h.head FROM esctl.streams s JOIN esctl.stream_heads h ON h.stream_id = s.id WHERE s.name = $1",
      {stream});
  if (s.rows() == 0) throw Error(Errc::not_found, fmt::format("stream '{}' not found (see 'esctl streams')", stream));
  const std::int64_t sid = s.i64(0, 0);
  std::int64_t next = backwards ? from.value_or(s.i64(0, 1)) : from.value_or(0);
  std::int64_t left = count.value_or(INT64_MAX);
  const std::string sql = fmt::format(
      "SELECT {} FROM esctl.events e JOIN esctl.streams s ON s.id = e.stream_id "
      "WHERE e.stream_id = $1 AND e.version {} $2 ORDER BY e.version {} LIMIT $3",
      kEventColumns, backwards ? "<=" : ">=", backwards ? "DESC" : "");
  while (left > 0 && next >= 0) {
    auto r = conn_.exec(sql.c_str(), {sid, next, std::min(left, kReadChunk)});
    if (r.rows() == 0) return;
    if (!emit(r, fn)) return;
    const std::int64_t last = r.i64(r.rows() - 1, 2);
    next = backwards ? last - 1 : last + 1;
    left -= r.rows();
  }
}

std::optional<std::int64_t> PgStore::stream_version(std::string_view stream) {
  auto r = conn_.exec(
      "SELECT h.head FROM esctl.streams s JOIN esctl.stream_heads h ON h.stream_id = s.id WHERE s.name = $1", {stream});
  if (r.rows() == 0) return std::nullopt;
  return r.i64(0, 0);
}

std::int64_t PgStore::head_position() {
  return conn_.exec("SELECT value FROM esctl.counters WHERE name = 'position'").i64(0, 0);
}

}  // namespace esctl::pg
