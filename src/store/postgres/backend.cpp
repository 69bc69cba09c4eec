// PgBackend (see backend.hpp). Reads run in a REPEATABLE READ, READ ONLY transaction (the
// caller's snapshot if one is open, else one per call), fetched in chunks by position so that
// memory stays bounded however long the scan.
#include "store/postgres/backend.hpp"

#include <libpq-fe.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "core/outage.hpp"
#include "core/signals.hpp"
#include "core/uuid.hpp"
#include "store/location.hpp"
#include "store/postgres/listen.hpp"
#include "store/postgres/queue_rows.hpp"

namespace esctl::pg {
namespace {

constexpr std::int64_t kChunk = 1000;
constexpr int kReconnectForMs = 30000;  // a restart takes seconds; a server down longer fails the read
constexpr const char* kRowColumns = "position, stream_id, version, id, type, data, meta, recorded_at";

}  // namespace

/// A read snapshot: one REPEATABLE READ transaction until destroyed.
class PgSnapshot final : public ReadSnapshot {
 public:
  explicit PgSnapshot(PgBackend& b) : b_(b) {
    b_.read_exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    b_.snapshot_open_ = true;
  }
  ~PgSnapshot() override {
    b_.snapshot_open_ = false;
    try {
      if (!b_.store_->conn().lost()) b_.store_->conn().exec("COMMIT");
    } catch (...) {
    }
  }

 private:
  PgBackend& b_;
};

/// The snapshot a single read runs in: the open one, or its own.
class ReadScope {
 public:
  explicit ReadScope(PgBackend& b) : b_(b) {
    if (!b.snapshot_open_) own_ = std::make_unique<PgSnapshot>(b);
  }
  /// True if the snapshot is this read's own (so it may be begun again on a new connection).
  bool owned() const { return own_ != nullptr; }
  /// Ends the own snapshot of a lost connection (nothing to commit) ...
  void drop() { own_.reset(); }
  /// ... and begins another one after reconnecting.
  void begin() { own_ = std::make_unique<PgSnapshot>(b_); }

 private:
  PgBackend& b_;
  std::unique_ptr<PgSnapshot> own_;
};

namespace {

class PgChangeSource final : public ChangeSource {
 public:
  PgChangeSource(const std::string& uri, int busy_timeout_ms)
      : listener_(uri, busy_timeout_ms, [](const std::string& m) { std::fprintf(stderr, "esctl: %s\n", m.c_str()); }) {}
  void wake_on_hangup(int fd) override { listener_.wake_on_hangup(fd); }
  Wake wait(int timeout_ms) override {
    switch (listener_.wait(timeout_ms)) {
      case Woke::changed: return Wake::changed;
      case Woke::timeout: return Wake::timeout;
      case Woke::interrupted: return Wake::interrupted;
      case Woke::hangup: return Wake::hangup;
    }
    return Wake::changed;
  }

 private:
  Listener listener_;
};

}  // namespace

std::unique_ptr<StoreBackend> open(const StoreOptions& options, Access access) {
  return std::make_unique<PgBackend>(options.location, options.busy_timeout_ms, access);
}

std::string library_version() {
  const int v = PQlibVersion();
  return fmt::format("{}.{}", v / 10000, v % 10000);
}

PgBackend::PgBackend(const std::string& uri, int busy_timeout_ms, Access access)
    : uri_(uri),
      busy_timeout_ms_(busy_timeout_ms),
      access_(access),
      opened_at_(outage::epoch()),
      store_(std::make_unique<PgStore>(uri, busy_timeout_ms, access)) {}

bool PgBackend::connection_failed() const {
  return store_->conn().lost() || connection_state(store_->conn().last_sqlstate());
}

void PgBackend::reconnect() {
  const auto display = display_location(uri_);
  auto say_lost = [&](std::uint64_t opened_at) {
    if (outage::lost(opened_at))
      std::fprintf(stderr, "esctl: lost the connection to the PostgreSQL server of '%s'; reconnecting\n", display.c_str());
  };
  say_lost(opened_at_);
  int backoff_ms = 100, waited_ms = 0;
  for (;;) {
    check_interrupted();
    const auto epoch = outage::epoch();
    try {
      queue_rows_.reset();  // they run on the connection that is gone: made again on the new one
      store_ = std::make_unique<PgStore>(uri_, busy_timeout_ms_, access_);
      opened_at_ = epoch;
      if (outage::reconnected())
        std::fprintf(stderr, "esctl: reconnected to the PostgreSQL server of '%s'\n", display.c_str());
      return;
    } catch (const Error& e) {
      if (e.code() != Errc::io || waited_ms >= kReconnectForMs) throw;
      say_lost(epoch);
    }
    ::usleep(static_cast<useconds_t>(backoff_ms) * 1000);
    waited_ms += backoff_ms;
    backoff_ms = std::min(backoff_ms * 2, 2000);
  }
}

template <class F>
auto PgBackend::retrying(ReadScope* scope, F&& f, const bool* delivered) -> decltype(f()) {
  for (;;) {
    // A transaction the caller has open on this connection (its snapshot, or a queue
    // transaction) dies with it: such a read is not run again on another connection, since the
    // caller's work is gone and its transaction still refers to the old connection.
    const auto txn = PQtransactionStatus(store_->conn().raw());
    const bool caller_txn = (snapshot_open_ || txn == PQTRANS_INTRANS || txn == PQTRANS_INERROR) &&
                            !(scope && scope->owned());
    try {
      return f();
    } catch (const Error& e) {
      if (e.code() != Errc::io || caller_txn || (delivered && *delivered) || !connection_failed()) throw;
    }
    if (scope) scope->drop();
    reconnect();
    if (scope) scope->begin();
  }
}

Result PgBackend::read_exec(const char* sql, const std::vector<Param>& params, ReadScope* scope) {
  return retrying(scope, [&] { return store_->conn().exec(sql, params); });
}

PgBackend::~PgBackend() = default;

std::vector<Appended> PgBackend::append(const std::vector<NewEvent>& events, const Expect& expect, bool check_versions,
                                        std::size_t* failed_at) {
  return store_->append(events, expect, check_versions, failed_at);
}

void PgBackend::read_stream(std::string_view stream, std::optional<std::int64_t> from,
                            std::optional<std::int64_t> count, bool backwards, const EventFn& fn) {
  // Retried only while nothing has been handed to fn.
  bool delivered = false;
  std::optional<ReadScope> scope;
  retrying(nullptr, [&] {
    if (!scope) scope.emplace(*this);
    try {
      store_->read_stream(stream, from, count, backwards, [&](const EventRef& e) {
        delivered = true;
        return fn(e);
      });
    } catch (const Error&) {
      if (!delivered) scope.reset();
      throw;
    }
  }, &delivered);
}

bool PgBackend::emit_rows(Result& r, RowFn fn) {
  std::string raw_id;
  for (int i = 0; i < r.rows(); ++i) {
    auto id = parse_uuid(r.text(i, 3));
    if (!id)
      throw Error(Errc::corrupt, fmt::format("store '{}' holds a malformed event id '{}'", store_->conn().display(), r.text(i, 3)));
    raw_id.assign(id->view());
    EventRow row{r.i64(i, 0), r.i64(i, 1), r.i64(i, 2), raw_id, r.text(i, 4), r.text(i, 5), r.text(i, 6), r.i64(i, 7)};
    if (!fn(row)) return false;
  }
  return true;
}

void PgBackend::scan(const ScanRange& range, RowFn fn) {
  if (range.limit <= 0 || range.from > range.to) return;
  ReadScope scope(*this);
  const std::string sql = fmt::format("SELECT {} FROM esctl.events WHERE position >= $1 AND position <= $2 "
                                      "ORDER BY position {} LIMIT $3",
                                      kRowColumns, range.backwards ? "DESC" : "");
  std::int64_t lo = range.from, hi = range.to, left = range.limit;
  while (left > 0 && lo <= hi) {
    auto r = read_exec(sql.c_str(), {lo, hi, std::min(left, kChunk)}, &scope);
    if (r.rows() == 0) return;
    if (!emit_rows(r, fn)) return;
    const std::int64_t last = r.i64(r.rows() - 1, 0);
    if (range.backwards) hi = last - 1;
    else lo = last + 1;
    left -= r.rows();
  }
}

bool PgBackend::read_at(std::int64_t position, RowFn fn) {
  auto r = read_exec(fmt::format("SELECT {} FROM esctl.events WHERE position = $1", kRowColumns).c_str(), {position});
  if (r.rows() == 0) return false;
  emit_rows(r, fn);
  return true;
}

bool PgBackend::read_by_id(std::string_view id, RowFn fn) {
  auto u = uuid_from_bytes(id);
  if (!u) return false;
  auto r = read_exec(fmt::format("SELECT {} FROM esctl.events WHERE id = $1::uuid", kRowColumns).c_str(),
                     {format_uuid(*u)});
  if (r.rows() == 0) return false;
  emit_rows(r, fn);
  return true;
}

std::optional<std::int64_t> PgBackend::stream_version(std::string_view stream) {
  return retrying(nullptr, [&] { return store_->stream_version(stream); });
}

std::vector<StreamInfo> PgBackend::streams(std::optional<std::string> category, std::optional<std::string> prefix) {
  return retrying(nullptr, [&] { return store_->streams(category, prefix); });
}

std::int64_t PgBackend::last_position() {
  return retrying(nullptr, [&] { return store_->head_position(); });
}

std::string_view PgBackend::stream_name(std::int64_t stream_id) {
  const auto i = static_cast<std::size_t>(stream_id);
  if (stream_id > 0 && i < names_.size() && !names_[i].empty()) return names_[i];
  auto r = read_exec("SELECT name FROM esctl.streams WHERE id = $1", {stream_id});
  if (r.rows() == 0 || stream_id <= 0)
    throw Error(Errc::corrupt, fmt::format("store '{}' has no stream with id {}", store_->conn().display(), stream_id));
  if (i >= names_.size()) names_.resize(std::max(i + 1, names_.size() * 2));
  names_[i] = std::string(r.text(0, 0));
  return names_[i];
}

std::optional<TimeOrder> PgBackend::time_order() {
  auto r = read_exec("SELECT ordered_through, max_recorded_at FROM esctl.time_order WHERE id = 1");
  if (r.rows() == 0) return std::nullopt;
  return TimeOrder{r.i64(0, 0), r.i64(0, 1)};
}

StoreStats PgBackend::stats() {
  const PgStats s = retrying(nullptr, [&] { return store_->stats(); });
  StoreStats out;
  out.location = s.uri;
  out.server = "PostgreSQL";
  out.server_version = s.server_version;
  out.schema_version = s.schema_version;
  out.sizes = {StoreSize{"store_bytes", "store size", s.store_bytes},
               StoreSize{"database_bytes", "database size", s.database_bytes}};
  out.events = s.events;
  out.streams = s.streams;
  out.last_position = s.head_position;
  return out;
}

std::unique_ptr<ReadSnapshot> PgBackend::snapshot() { return std::make_unique<PgSnapshot>(*this); }

std::unique_ptr<ChangeSource> PgBackend::change_source() {
  return std::make_unique<PgChangeSource>(uri_, busy_timeout_ms_);
}

QueueRows& PgBackend::queue_rows() {
  if (!queue_rows_) queue_rows_ = make_queue_rows(store_->conn());
  return *queue_rows_;
}

}  // namespace esctl::pg
