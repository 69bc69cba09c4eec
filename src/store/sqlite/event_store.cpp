// The SQLite backend's event operations: append, the stream walk, scans, stats. The layout they
// rely on (prev links, marks, stream_heads, time_order) is explained in schema.cpp.
//
// Locating version v of a stream: the nearest mark at or above v is version m = ceil(v/64)*64;
// if m is below the stream's last version it is found through the partial index, otherwise we
// start from the last version (its position is in stream_heads). From there we follow `prev`
// links down to v: at most 63 steps. Forward reads go one 64-version block at a time, so they run
// in constant memory however long the stream is.
#include "store/sqlite/event_store.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/names.hpp"
#include "core/signals.hpp"
#include "core/time.hpp"
#include "store/location.hpp"
#include "store/sqlite/change_waiter.hpp"
#include "store/sqlite/queue_rows.hpp"
#include "store/sqlite/schema.hpp"
#include "store/sqlite/sqlite.hpp"

namespace esctl::sqlite {
namespace {

constexpr std::int64_t kMarkEvery = 64;
// Beyond this many cached stream rows the cache is dropped and refilled (bounds memory).
constexpr std::size_t kMaxCachedStreams = 100000;

// append() inserts events kInsertRows to a statement: one statement start, one sqlite_sequence
// update and one descent to the table's right edge per group instead of per event. Because an
// event's `prev` may be a position of the same group, positions are assigned here, as
// AUTOINCREMENT would: one above the largest ever used (sqlite_sequence) or stored. Under BEGIN
// IMMEDIATE nobody else can take them, and the primary key refuses a duplicate regardless.
constexpr int kInsertRows = 32;
constexpr int kEventColumns = 9;

const std::string& insert_events_sql(int rows) {
  static const std::string one_row = "(?,?,?,?,?,?,?,?,?)";
  static const auto make = [](int n) {
    std::string sql = "INSERT INTO events (position, stream_id, version, prev, id, type, data, meta, recorded_at) VALUES ";
    for (int r = 0; r < n; ++r) sql.append(r ? "," : "").append(one_row);
    return sql;
  };
  static const std::string single = make(1), group = make(kInsertRows);
  return rows == 1 ? single : group;
}

// The one event-row SELECT: every read of whole events names these columns in this order.
#define ESCTL_EVENT_COLUMNS "position, stream_id, version, id, type, data, meta, recorded_at"
constexpr const char* kSelectAt = "SELECT " ESCTL_EVENT_COLUMNS " FROM events WHERE position = ?1";
constexpr const char* kSelectById = "SELECT " ESCTL_EVENT_COLUMNS " FROM events WHERE id = ?1";
// Scans: open-ended ones without the bound and the limit, which cost a few VDBE steps per row.
constexpr const char* kScanUpAll = "SELECT " ESCTL_EVENT_COLUMNS " FROM events WHERE position >= ?1 ORDER BY position";
constexpr const char* kScanDownAll = "SELECT " ESCTL_EVENT_COLUMNS " FROM events WHERE position >= ?1 ORDER BY position DESC";
constexpr const char* kScanUp =
    "SELECT " ESCTL_EVENT_COLUMNS " FROM events WHERE position >= ?1 AND position <= ?2 ORDER BY position LIMIT ?3";
constexpr const char* kScanDown =
    "SELECT " ESCTL_EVENT_COLUMNS " FROM events WHERE position >= ?1 AND position <= ?2 ORDER BY position DESC LIMIT ?3";
constexpr const char* kPrev = "SELECT prev FROM events WHERE position = ?1";

EventRow row_of(const sql::Stmt& s) {
  return EventRow{s.i64(0), s.i64(1), s.i64(2), s.blob(3), s.text(4), s.text(5), s.text(6), s.i64(7)};
}

// Between the chunks of a long read: once the WAL holds this many frames (4 MiB of 8 KiB
// pages), the checkpoint makes the next writer start it over.
constexpr int kRestartFrames = 512;

std::int64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.st_size) : 0;
}

}  // namespace

class SqliteStore final : public StoreBackend {
 public:
  SqliteStore(const StoreOptions& options, Access access);

  std::vector<Appended> append(const std::vector<NewEvent>& events, const Expect& expect, bool check_versions,
                               std::size_t* failed_at) override;
  void read_stream(std::string_view stream, std::optional<std::int64_t> from, std::optional<std::int64_t> count,
                   bool backwards, const EventFn& fn) override;
  void scan(const ScanRange& range, RowFn fn) override;
  bool read_at(std::int64_t position, RowFn fn) override;
  bool read_by_id(std::string_view id, RowFn fn) override;
  std::optional<std::int64_t> stream_version(std::string_view stream) override;
  std::vector<StreamInfo> streams(std::optional<std::string> category, std::optional<std::string> prefix) override;
  std::int64_t last_position() override;
  std::string_view stream_name(std::int64_t stream_id) override;
  std::optional<TimeOrder> time_order() override;
  StoreStats stats() override;
  std::unique_ptr<ReadSnapshot> snapshot() override;
  std::unique_ptr<ChangeSource> change_source() override;
  void reclaim_log() override;
  QueueRows& queue_rows() override {
    if (!queue_rows_) queue_rows_ = make_queue_rows(*db_, location());
    return *queue_rows_;
  }

  sql::Db& db() { return *db_; }
  const std::string& location() const { return options_.location; }

 private:
  struct StreamRow {
    std::int64_t id = 0;  // 0: no such stream yet
    std::int64_t last_version = -1;
    std::int64_t last_position = 0;  // of the stream's last version
    bool dirty = false;  // changed by the append in progress
  };
  /// Stream rows by name, reused across append() calls. An open-addressing index into a vector
  /// of entries: a hit costs about one cache miss, where std::unordered_map's bucket and node
  /// chain cost three or four (the lookup was ~9% of an import over 10k streams).
  class StreamCache {
   public:
    /// The index of `name`'s entry, and whether it was just added (with a default StreamRow).
    std::pair<std::uint32_t, bool> find_or_add(std::string_view name);
    StreamRow& row(std::uint32_t i) { return entries_[i].row; }
    std::size_t size() const { return entries_.size(); }
    void clear();

   private:
    struct Entry {
      std::string name;
      StreamRow row;
    };
    void grow();
    std::vector<Entry> entries_;
    std::vector<std::uint64_t> slots_;  // 0: empty; else (hash >> 32) << 32 | (entry index + 1)
  };
  /// The cache entry of `name`, read from the streams table when new (id 0 if no such stream).
  std::uint32_t stream_row(std::string_view name);
  void forget_cached_streams();
  void emit_positions(const std::vector<std::int64_t>& positions, const EventFn& fn, bool& go);
  /// The position before `pos` in its stream (its prev link).
  std::int64_t prev_of(std::int64_t pos);
  std::int64_t locate(std::int64_t stream_id, std::int64_t last_version, std::int64_t last_position, std::int64_t version);


  StoreOptions options_;
  std::unique_ptr<sql::Db> db_;
  std::unique_ptr<QueueRows> queue_rows_;  // made on first use; destroyed before db_
  std::vector<std::string> names_;  // stream id -> name cache ("" = unknown)
  // Streams' last versions as of our own last commit, reused across append() calls (import
  // batches) for as long as no other connection has committed (PRAGMA data_version unchanged).
  StreamCache stream_rows_;
  std::int64_t stream_rows_data_version_ = -1;
  bool scanning_ = false;
  sql::Stmt* prev_ = nullptr;  // kPrev, cached: the stream walk runs it per version  // the cached scan statement is in use (a nested scan prepares its own)
};

std::string library_version() { return std::string(sql::library_version()); }

std::unique_ptr<StoreBackend> open(const StoreOptions& options, Access access) {
  return std::make_unique<SqliteStore>(options, access);
}

sql::Db& connection(Store& store) {
  auto* s = dynamic_cast<SqliteStore*>(&store.backend());
  if (!s)
    throw Error(Errc::io, fmt::format("store '{}' is not a SQLite file: this needs one",
                                      display_location(store.location())));
  return s->db();
}

bool check_store_file(const std::string& path, Access access, std::string_view missing_hint) {
  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode))
    throw Error(Errc::usage, fmt::format("'{}' is a directory, not a store file", path));
  if (!exists && access != Access::write)
    throw Error(Errc::not_found, fmt::format("no store at '{}' ({})", path, missing_hint));
  if (!exists && access == Access::write) {
    // SQLite would only say "unable to open database file": name the missing folder instead.
    const auto slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    struct stat dst {};
    const bool found = ::stat(dir.c_str(), &dst) == 0;
    if (found && !S_ISDIR(dst.st_mode))
      throw Error(Errc::not_found,
                  fmt::format("cannot create store '{}': '{}' is not a folder (choose another --store)", path, dir));
    if (!found && (errno == ENOENT || errno == ENOTDIR))
      throw Error(Errc::not_found, fmt::format("cannot create store '{}': folder '{}' does not exist (create it with "
                                               "'mkdir -p {}', or choose another --store)",
                                               path, dir, dir));
  }
  if (exists && st.st_size > 0) {
    // Look at the header ourselves first: SQLite must never be let loose on a foreign file.
    auto header = sql::read_header(path);
    if (!header && access == Access::read)
      throw Error(Errc::read_only, fmt::format("cannot read store '{}': permission denied", path));
    if (header && !sql::is_sqlite_header(*header))
      throw Error(Errc::corrupt,
                  fmt::format("'{}' is not an esctl store (not a SQLite database); refusing to touch it", path));
  }
  return exists;
}

SqliteStore::SqliteStore(const StoreOptions& options, Access access) : options_(options) {
  const bool exists =
      check_store_file(options_.location, access, "create one with 'esctl init', or pass --store / set ESCTL_STORE");
  auto mode = !exists ? sql::OpenMode::create : sql::OpenMode::read_write;
  db_ = std::make_unique<sql::Db>(options_.location, mode, options_.busy_timeout_ms);
  prepare_schema(*db_, access);
  configure_connection(*db_);
  // Readers mostly scan: a small page cache is recycled instead of growing (every new cache page
  // costs a malloc and page faults, a third of a `read --all`), and keeps their RSS flat. So do
  // drains, whose pulls read the events in order.
  if (access == Access::read || options_.scans) db_->exec("PRAGMA cache_size = -2048");
}

std::string_view SqliteStore::stream_name(std::int64_t stream_id) {
  auto i = static_cast<std::size_t>(stream_id);
  if (i < names_.size() && !names_[i].empty()) return names_[i];
  sql::StmtScope s(db_->prepare("SELECT name FROM streams WHERE id = ?1"));
  s->bind(1, stream_id);
  if (!s->step()) throw Error(Errc::corrupt, fmt::format("store '{}' has an event of unknown stream id {}", location(), stream_id));
  if (i >= names_.size()) names_.resize(std::max(i + 1, names_.size() * 2));
  names_[i] = std::string(s->text(0));
  return names_[i];
}

std::pair<std::uint32_t, bool> SqliteStore::StreamCache::find_or_add(std::string_view name) {
  if (2 * (entries_.size() + 1) > slots_.size()) grow();
  const std::uint64_t hash = std::hash<std::string_view>{}(name);
  const std::uint64_t tag = hash >> 32 << 32;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const std::uint64_t slot = slots_[i];
    if (slot == 0) {
      entries_.push_back(Entry{std::string(name), StreamRow{}});
      slots_[i] = tag | entries_.size();
      return {static_cast<std::uint32_t>(entries_.size() - 1), true};
    }
    if ((slot >> 32 << 32) == tag) {
      const auto e = static_cast<std::uint32_t>((slot & 0xffffffffu) - 1);
      if (entries_[e].name == name) return {e, false};
    }
  }
}

void SqliteStore::StreamCache::grow() {
  slots_.assign(std::max<std::size_t>(1024, slots_.size() * 2), 0);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t e = 0; e < entries_.size(); ++e) {
    const std::uint64_t hash = std::hash<std::string_view>{}(entries_[e].name);
    std::size_t i = hash & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = hash >> 32 << 32 | (e + 1);
  }
}

void SqliteStore::StreamCache::clear() {
  entries_.clear();
  std::fill(slots_.begin(), slots_.end(), 0);
}

std::uint32_t SqliteStore::stream_row(std::string_view name) {
  auto [e, fresh] = stream_rows_.find_or_add(name);
  if (fresh) {
    sql::StmtScope s(db_->prepare(
        "SELECT s.id, coalesce(h.head, -1), coalesce(h.head_position, 0) FROM streams s "
        "LEFT JOIN stream_heads h ON h.stream_id = s.id WHERE s.name = ?1"));
    s->bind(1, name);
    if (s->step()) stream_rows_.row(e) = StreamRow{s->i64(0), s->i64(1), s->i64(2), false};
  }
  return e;
}

void SqliteStore::forget_cached_streams() {
  stream_rows_.clear();
  stream_rows_data_version_ = -1;
}

std::vector<Appended> SqliteStore::append(const std::vector<NewEvent>& events, const Expect& expect, bool check_versions,
                                    std::size_t* failed_at) {
  std::vector<Appended> out;
  out.reserve(events.size());
  bool expect_checked = expect.kind == Expect::any;

  // Statements are prepared (and cached by Db) on first use: a one-event `esctl append` never
  // parses the 32-row INSERT or the id lookup, a third of its instructions otherwise.
  struct Lazy {
    sql::Db& db;
    const char* sql;
    sql::Stmt* stmt = nullptr;
    sql::Stmt& operator()() { return stmt ? *stmt : *(stmt = &db.prepare(sql)); }
  };
  Lazy find_id{*db_, "SELECT stream_id, type, data, position, version FROM events WHERE id = ?1"};
  Lazy insert_stream{*db_, "INSERT INTO streams (name, category) VALUES (?1, ?2)"};
  Lazy insert_event{*db_, insert_events_sql(1).c_str()};
  Lazy insert_group{*db_, insert_events_sql(kInsertRows).c_str()};
  Lazy update_last_version{*db_,
                           "INSERT INTO stream_heads (stream_id, head, head_position) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT (stream_id) DO UPDATE SET head = excluded.head, "
                           "head_position = excluded.head_position"};

  sql::Txn txn(*db_);
  std::size_t at = 0;
  try {
    // One statement (one parse, for a one-event append) reads what the batch starts from:
    // - data_version: the cached stream rows are ours as of our last commit; any other writer
    //   invalidates them;
    // - max(id): every stored id is <= it, so a given id above it needs no lookup (with
    //   time-ordered UUIDv7 ids, nearly every id of an import; the lookup costs a b-tree probe);
    // - the next position (see kInsertRows).
    std::int64_t data_version, next_position;
    std::string max_id;
    {
      sql::StmtScope s(db_->prepare(
          "SELECT (SELECT data_version FROM pragma_data_version()), (SELECT max(id) FROM events), "
          "max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), "
          "coalesce((SELECT max(position) FROM events), 0)) + 1"));
      s->step();
      data_version = s->i64(0);
      if (!s->is_null(1)) max_id = std::string(s->blob(1));
      next_position = s->i64(2);
    }
    if (data_version != stream_rows_data_version_ || stream_rows_.size() > kMaxCachedStreams) stream_rows_.clear();
    auto above_max = [&](std::string_view id) {
      return max_id.empty() || std::memcmp(id.data(), max_id.data(), 16) > 0;
    };
    // Events checked and given a position but not inserted yet (see kInsertRows).
    struct Pending {
      const NewEvent* ev;
      Uuid id;
      std::int64_t position, stream_id, version, prev, recorded_at;
    };
    std::array<Pending, kInsertRows> pending;
    int pending_count = 0;
    auto bind_event = [](sql::Stmt& st, int row, const Pending& p) {
      const int base = row * kEventColumns;
      st.bind(base + 1, p.position).bind(base + 2, p.stream_id).bind(base + 3, p.version);
      if (p.version > 0) st.bind(base + 4, p.prev);
      else st.bind_null(base + 4);
      st.bind_blob_static(base + 5, p.id.view()).bind_static(base + 6, p.ev->type);
      st.bind_static(base + 7, p.ev->data).bind_static(base + 8, p.ev->meta).bind(base + 9, p.recorded_at);
    };
    auto insert_pending = [&] {
      if (pending_count == kInsertRows) {
        sql::StmtScope s(insert_group());
        for (int r = 0; r < kInsertRows; ++r) bind_event(*s, r, pending[static_cast<std::size_t>(r)]);
        s->run();
      } else {
        for (int r = 0; r < pending_count; ++r) {
          sql::StmtScope s(insert_event());
          bind_event(*s, 0, pending[static_cast<std::size_t>(r)]);
          s->run();
        }
      }
      pending_count = 0;
    };
    std::vector<std::uint32_t> dirty;  // cache entries (indices: the cache may grow meanwhile)
    const std::int64_t now = now_us();
    // The time order (schema.cpp, time_order): extended while the new events keep recorded_at
    // non-decreasing from the stored events, if those are known to be in order through the head
    // position.
    std::optional<TimeOrder> order = time_order();
    const TimeOrder order_before = order.value_or(TimeOrder{});
    bool in_order = order && order->ordered_through == next_position - 1;

    for (; at < events.size(); ++at) {
      const NewEvent& ev = events[at];
      const std::uint32_t entry = stream_row(ev.stream);
      StreamRow& row = stream_rows_.row(entry);
      if (ev.id && !above_max(ev.id->view())) {
        insert_pending();  // the id may be that of an event earlier in this batch
        sql::StmtScope s(find_id());
        s->bind_blob(1, ev.id->view());
        if (s->step()) {
          bool same = row.id == s->i64(0) && s->text(1) == ev.type && s->text(2) == ev.data;
          if (!same) throw_id_conflict(format_uuid(*ev.id), s->i64(3), stream_name(s->i64(0)), s->i64(4));
          out.push_back(Appended{ev.stream, s->i64(4), s->i64(3), *ev.id, true});
          continue;
        }
      }
      if (!expect_checked) {
        expect_checked = true;
        check_expected(ev.stream, row.last_version, expect);
      }
      if (check_versions && ev.version) check_version_fits(ev.stream, row.last_version, *ev.version);
      if (row.id == 0) {
        sql::StmtScope s(insert_stream());
        s->bind(1, ev.stream).bind(2, category_of(ev.stream));
        s->run();
        row.id = db_->last_insert_rowid();
      }
      Uuid id = ev.id ? *ev.id : new_uuid_v7();
      std::int64_t recorded = ev.recorded_at.value_or(now);
      const std::int64_t position = next_position++;
      if (in_order && recorded >= order->max_recorded_at) *order = TimeOrder{position, recorded};
      else in_order = false;
      pending[static_cast<std::size_t>(pending_count++)] =
          Pending{&ev, id, position, row.id, row.last_version + 1, row.last_position, recorded};
      if (pending_count == kInsertRows) insert_pending();
      if (above_max(id.view())) max_id.assign(id.view());
      row.last_version += 1;
      row.last_position = position;
      if (!row.dirty) {
        row.dirty = true;
        dirty.push_back(entry);
      }
      out.push_back(Appended{ev.stream, row.last_version, row.last_position, id, false});
    }
    insert_pending();
    if (order && order->ordered_through != order_before.ordered_through) {
      sql::StmtScope s(db_->prepare("UPDATE time_order SET ordered_through = ?1, max_recorded_at = ?2"));
      s->bind(1, order->ordered_through).bind(2, order->max_recorded_at);
      s->run();
    }
    for (std::uint32_t entry : dirty) {
      StreamRow& row = stream_rows_.row(entry);
      sql::StmtScope s(update_last_version());
      s->bind(1, row.id).bind(2, row.last_version).bind(3, row.last_position);
      s->run();
      row.dirty = false;
    }
    txn.commit();
    stream_rows_data_version_ = data_version;
  } catch (...) {
    forget_cached_streams();
    names_.clear();  // the ids of streams this append created are free again for others
    if (failed_at) *failed_at = at;
    throw;
  }
  return out;
}

std::int64_t SqliteStore::locate(std::int64_t stream_id, std::int64_t last_version, std::int64_t last_position,
                                 std::int64_t version) {
  std::int64_t mark = (version + kMarkEvery - 1) / kMarkEvery * kMarkEvery;
  std::int64_t at = last_version, pos = last_position;
  if (mark < last_version) {
    sql::StmtScope s(db_->prepare(
        "SELECT position FROM events WHERE stream_id = ?1 AND version = ?2 AND version % 64 = 0"));
    s->bind(1, stream_id).bind(2, mark);
    if (!s->step())
      throw Error(Errc::corrupt, fmt::format("store '{}' lacks the index mark for version {} of stream id {}; "
                                             "run 'esctl verify'",
                                             location(), mark, stream_id));
    at = mark;
    pos = s->i64(0);
  }
  for (; at > version; --at) pos = prev_of(pos);
  return pos;
}

void SqliteStore::emit_positions(const std::vector<std::int64_t>& positions, const EventFn& fn, bool& go) {
  auto& sel = db_->prepare(kSelectAt);
  for (auto p : positions) {
    if (!go) return;
    sql::StmtScope s(sel);
    s->bind(1, p);
    if (!s->step()) throw Error(Errc::corrupt, fmt::format("store '{}' lost the event at position {}", location(), p));
    EventRef e{s->i64(0), stream_name(s->i64(1)), s->i64(2), s->blob(3), s->text(4), s->text(5), s->text(6), s->i64(7)};
    go = fn(e);
  }
  check_interrupted();
}

void SqliteStore::read_stream(std::string_view stream, std::optional<std::int64_t> from, std::optional<std::int64_t> count,
                        bool backwards, const EventFn& fn) {
  sql::Txn snapshot(*db_, sql::Txn::deferred);
  std::int64_t id, last_version, last_position;
  {
    sql::StmtScope s(db_->prepare(
        "SELECT s.id, h.head, h.head_position FROM streams s JOIN stream_heads h ON h.stream_id = s.id WHERE s.name = ?1"));
    s->bind(1, stream);
    if (!s->step())
      throw Error(Errc::not_found, fmt::format("stream '{}' not found (see 'esctl streams')", stream));
    id = s->i64(0), last_version = s->i64(1), last_position = s->i64(2);
  }
  std::int64_t limit = count.value_or(INT64_MAX);
  if (limit <= 0) return;
  bool go = true;
  if (backwards) {
    std::int64_t start = std::min(from.value_or(last_version), last_version);
    if (start < 0) return;
    std::int64_t stop = start - limit + 1 < 0 ? 0 : start - limit + 1;
    std::vector<std::int64_t> block;
    std::int64_t pos = locate(id, last_version, last_position, start);
    for (std::int64_t v = start; v >= stop && go; --v) {
      block.assign(1, pos);
      emit_positions(block, fn, go);
      if (v == stop) break;
      pos = prev_of(pos);
    }
    return;
  }
  std::int64_t first = std::max<std::int64_t>(from.value_or(0), 0);
  std::int64_t last = limit > last_version - first ? last_version : first + limit - 1;
  std::vector<std::int64_t> block;
  for (std::int64_t v = first; v <= last && go;) {
    std::int64_t block_end = std::min(last, v / kMarkEvery * kMarkEvery + kMarkEvery - 1);
    std::int64_t pos = locate(id, last_version, last_position, block_end);
    block.assign(static_cast<std::size_t>(block_end - v + 1), 0);
    for (std::int64_t k = block_end; k >= v; --k) {
      block[static_cast<std::size_t>(k - v)] = pos;
      if (k == v) break;
      pos = prev_of(pos);
    }
    emit_positions(block, fn, go);
    v = block_end + 1;
  }
}

std::vector<StreamInfo> SqliteStore::streams(std::optional<std::string> category, std::optional<std::string> prefix) {
  std::vector<StreamInfo> out;
  // The last recorded_at is that of the stream's last event: one primary-key lookup per listed stream.
  auto s = db_->prepare_new(
      category ? "SELECT s.name, h.head, h.head_position, e.recorded_at FROM streams s "
                 "JOIN stream_heads h ON h.stream_id = s.id JOIN events e ON e.position = h.head_position "
                 "WHERE s.category = ?1 AND s.name >= ?2 ORDER BY s.name"
               : "SELECT s.name, h.head, h.head_position, e.recorded_at FROM streams s "
                 "JOIN stream_heads h ON h.stream_id = s.id JOIN events e ON e.position = h.head_position "
                 "WHERE s.name >= ?2 ORDER BY s.name");
  if (category) s.bind(1, *category);
  s.bind(2, prefix.value_or(""));
  while (s.step()) {
    std::string_view name = s.text(0);
    if (prefix && name.substr(0, prefix->size()) != *prefix) break;  // sorted: no more matches
    out.push_back(StreamInfo{std::string(name), s.i64(1), s.i64(1) + 1, s.i64(2), s.i64(3)});
  }
  return out;
}

std::optional<TimeOrder> SqliteStore::time_order() {
  sql::StmtScope s(db_->prepare("SELECT ordered_through, max_recorded_at FROM time_order"));
  if (!s->step()) return std::nullopt;
  return TimeOrder{s->i64(0), s->i64(1)};
}

std::int64_t SqliteStore::prev_of(std::int64_t pos) {
  if (!prev_) prev_ = &db_->prepare(kPrev);
  sql::StmtScope s(*prev_);
  s->bind(1, pos);
  if (!s->step() || s->is_null(0))
    throw Error(Errc::corrupt, fmt::format("store '{}' has a broken stream link at position {}; run 'esctl verify'",
                                           location(), pos));
  return s->i64(0);
}

void SqliteStore::scan(const ScanRange& range, RowFn fn) {
  if (range.limit <= 0 || range.from > range.to) return;
  // One statement = one read snapshot: constant memory, consistent view. The cached statement
  // serves the common case; a scan started from inside another one's fn gets a fresh one.
  const bool bounded = range.to != INT64_MAX || range.limit != INT64_MAX;
  const char* sql = bounded ? (range.backwards ? kScanDown : kScanUp) : (range.backwards ? kScanDownAll : kScanUpAll);
  std::optional<sql::Stmt> fresh;
  sql::Stmt* s;
  if (scanning_) s = &fresh.emplace(db_->prepare_new(sql));
  else s = &db_->prepare(sql);
  const bool was_scanning = scanning_;
  scanning_ = true;
  struct Done {
    sql::Stmt& s;
    bool& scanning;
    bool was;
    ~Done() { s.reset(); scanning = was; }
  } done{*s, scanning_, was_scanning};
  s->bind(1, range.from);
  if (bounded) s->bind(2, range.to).bind(3, range.limit);
  std::int64_t n = 0;
  while (s->step()) {
    if (!fn(row_of(*s))) break;
    if ((++n & 0xfff) == 0) check_interrupted();
  }
}

bool SqliteStore::read_at(std::int64_t position, RowFn fn) {
  sql::StmtScope s(db_->prepare(kSelectAt));
  s->bind(1, position);
  if (!s->step()) return false;
  fn(row_of(*s));
  return true;
}

bool SqliteStore::read_by_id(std::string_view id, RowFn fn) {
  sql::StmtScope s(db_->prepare(kSelectById));
  s->bind_blob(1, id);
  if (!s->step()) return false;
  fn(row_of(*s));
  return true;
}

std::optional<std::int64_t> SqliteStore::stream_version(std::string_view stream) {
  sql::StmtScope s(db_->prepare(
      "SELECT h.head FROM streams s JOIN stream_heads h ON h.stream_id = s.id WHERE s.name = ?1"));
  s->bind(1, stream);
  if (s->step()) return s->i64(0);
  return std::nullopt;
}

std::int64_t last_position(sql::Db& db) {
  sql::StmtScope s(db.prepare("SELECT coalesce(max(position), 0) FROM events"));
  s->step();
  return s->i64(0);
}

std::int64_t SqliteStore::last_position() { return sqlite::last_position(*db_); }

namespace {
struct SqliteSnapshot final : ReadSnapshot {
  explicit SqliteSnapshot(sql::Db& db) : txn(db, sql::Txn::deferred) {}
  sql::Txn txn;  // rolled back when destroyed: it only ever read
};
}  // namespace

StoreStats SqliteStore::stats() {
  StoreStats st;
  sql::Txn snapshot(*db_, sql::Txn::deferred);
  st.location = location();
  st.schema_version = static_cast<int>(db_->query_i64("PRAGMA user_version"));
  st.sizes.push_back(StoreSize{"file_bytes", "file size", file_size(location())});
  st.sizes.push_back(StoreSize{"wal_bytes", "WAL", file_size(location() + "-wal")});
  st.events = db_->query_i64("SELECT count(*) FROM events");
  st.streams = db_->query_i64("SELECT count(*) FROM stream_heads");
  st.last_position = last_position();
  return st;
}

std::unique_ptr<ReadSnapshot> SqliteStore::snapshot() { return std::make_unique<SqliteSnapshot>(*db_); }

std::unique_ptr<ChangeSource> SqliteStore::change_source() { return make_wal_waiter(*db_, location()); }

void SqliteStore::reclaim_log() { db_->checkpoint(kRestartFrames, 10); }

}  // namespace esctl::sqlite
