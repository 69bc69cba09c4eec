// The backend-neutral store: opens (and verifies) the backend a location names, and writes once what every
// backend shares: filtered reads (one per-stream filter cache), the last-n read, and the time
// search over the prefix of the store whose recorded_at is in order. No SQL here.
#include "store/store.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/signals.hpp"
#include "store/postgres/backend.hpp"
#include "store/location.hpp"
#include "store/postgres/verify.hpp"
#include "store/sqlite/event_store.hpp"
#include "store/sqlite/verify.hpp"
#include "store/verify.hpp"

namespace esctl {
namespace {

EventRef ref_of(Store& store, const EventRow& r) {
  return EventRef{r.position, store.stream_name(r.stream_id), r.version, r.id, r.type, r.data, r.meta, r.recorded_at_us};
}

}  // namespace

std::vector<BackendLibrary> backend_libraries() {
  return {{"sqlite", "SQLite", sqlite::library_version()}, {"libpq", "libpq", pg::library_version()}};
}

// The one place that knows every backend: a location's form names its backend.
Store::Store(const StoreOptions& options, Access access) : options_(options) {
  backend_ = is_postgres_uri(options_.location) ? pg::open(options_, access) : sqlite::open(options_, access);
}

Store::~Store() = default;

VerifyCounts verify_store(const VerifyOptions& o, const ViolationFn& on_violation, const ProgressFn& on_progress) {
  return is_postgres_uri(o.location) ? pg::verify_store(o, on_violation, on_progress)
                                     : sqlite::verify_store(o, on_violation, on_progress);
}

std::string_view Store::stream_name(std::int64_t stream_id) { return backend_->stream_name(stream_id); }

bool StreamFilter::stream_matches(std::int64_t stream_id) {
  auto i = static_cast<std::size_t>(stream_id);
  if (i >= ok_.size()) ok_.resize(std::max(i + 1, ok_.size() * 2), 0);
  if (ok_[i] == 0) ok_[i] = filter_.matches_stream(store_.stream_name(stream_id)) ? 1 : -1;
  return ok_[i] > 0;
}

std::vector<Appended> Store::append(const std::vector<NewEvent>& events, const Expect& expect, bool check_versions,
                                    std::size_t* failed_at) {
  return backend_->append(events, expect, check_versions, failed_at);
}

void Store::read_stream(std::string_view stream, std::optional<std::int64_t> from, std::optional<std::int64_t> count,
                        bool backwards, const EventFn& fn) {
  backend_->read_stream(stream, from, count, backwards, fn);
}

void Store::read_all(std::int64_t from, std::optional<std::int64_t> count, const EventFilter& filter, const EventFn& fn) {
  std::int64_t limit = count.value_or(INT64_MAX);
  if (limit <= 0) return;
  StreamFilter pass(*this, filter);
  std::int64_t n = 0;
  backend_->scan(ScanRange{from, INT64_MAX, false, INT64_MAX}, [&](const EventRow& r) {
    if (!pass.matches(r.stream_id, r.type)) return true;
    return fn(ref_of(*this, r)) && ++n < limit;
  });
}

void Store::read_last(std::int64_t count, const EventFilter& filter, const EventFn& fn) {
  if (count <= 0) return;
  // Walk backwards to find the count-th match, then replay forward from it.
  std::int64_t start = 0, seen = 0;
  StreamFilter pass(*this, filter);
  backend_->scan(ScanRange{1, INT64_MAX, true, INT64_MAX}, [&](const EventRow& r) {
    if (!pass.matches(r.stream_id, r.type)) return true;
    start = r.position;
    return ++seen < count;
  });
  if (seen == 0) return;
  read_all(start, seen, filter, fn);
}

TimeSpan Store::time_span(std::optional<std::int64_t> since_us, std::optional<std::int64_t> until_us) {
  TimeSpan span;
  auto order = backend_->time_order();
  if (!order || order->ordered_through == 0) return span;
  const std::int64_t n = order->ordered_through;
  span.ordered_through = n;
  // The first position p in 1..n+1 such that the first event at or after p (up to n) has
  // recorded_at beyond `t` (>= with `inclusive`, > without), or there is none up to n. Over an
  // ordered range this predicate is false and then true: a binary search of ~log2(n) probes.
  auto first_beyond = [&](std::int64_t t, bool inclusive) {
    std::int64_t lo = 1, hi = n + 1;
    while (lo < hi) {
      std::int64_t mid = lo + (hi - lo) / 2;
      bool beyond = true;
      backend_->scan(ScanRange{mid, n, false, 1}, [&](const EventRow& r) {
        beyond = inclusive ? r.recorded_at_us >= t : r.recorded_at_us > t;
        return false;
      });
      if (beyond) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  if (since_us) span.from = first_beyond(*since_us, true);
  if (until_us) span.to = first_beyond(*until_us, false) - 1;
  return span;
}

void Store::read_all_in_time(std::int64_t from, std::optional<std::int64_t> count, const EventFilter& filter,
                             std::optional<std::int64_t> since_us, std::optional<std::int64_t> until_us,
                             const EventFn& fn) {
  std::int64_t left = count.value_or(INT64_MAX);
  if (left <= 0) return;
  auto snapshot = backend_->snapshot();  // one read snapshot across the search and both ranges
  const TimeSpan span = time_span(since_us, until_us);
  bool go = true;
  auto in_time = [&](std::int64_t stop) {
    return [&, stop](const EventRef& e) {
      if (e.position > stop) return false;
      if ((since_us && e.recorded_at_us < *since_us) || (until_us && e.recorded_at_us > *until_us)) return true;
      go = fn(e) && --left > 0;
      return go;
    };
  };
  // Matching events lie in [span.from, span.to] and after span.ordered_through.
  if (span.to < span.ordered_through) {
    if (span.from <= span.to) read_all(std::max(from, span.from), std::nullopt, filter, in_time(span.to));
    if (go) read_all(std::max(from, span.ordered_through + 1), std::nullopt, filter, in_time(INT64_MAX));
  } else {
    read_all(std::max(from, span.from), std::nullopt, filter, in_time(INT64_MAX));
  }
}

void Store::read_chunk(std::int64_t after, std::int64_t to, std::int64_t limit, RowFn fn) {
  if (after >= to) return;
  backend_->scan(ScanRange{after + 1, to, false, limit}, fn);
}

bool Store::read_event_at(std::int64_t position, const EventFn& fn) {
  return backend_->read_at(position, [&](const EventRow& r) { return fn(ref_of(*this, r)); });
}

bool Store::read_event_by_id(std::string_view id, const EventFn& fn) {
  return backend_->read_by_id(id, [&](const EventRow& r) { return fn(ref_of(*this, r)); });
}

std::optional<std::int64_t> Store::stream_version(std::string_view stream) { return backend_->stream_version(stream); }

std::vector<StreamInfo> Store::streams(std::optional<std::string> category, std::optional<std::string> prefix) {
  return backend_->streams(std::move(category), std::move(prefix));
}

std::int64_t Store::last_position() { return backend_->last_position(); }

StoreStats Store::stats() { return backend_->stats(); }

void Store::reclaim_log() { backend_->reclaim_log(); }

namespace {
std::string version_text(std::int64_t last_version) {
  return last_version < 0 ? "does not exist" : fmt::format("is at version {}", last_version);
}
}  // namespace

void check_expected(std::string_view stream, std::int64_t last_version, const Expect& expect) {
  bool ok = expect.kind == Expect::none     ? last_version < 0
            : expect.kind == Expect::exists ? last_version >= 0
                                            : last_version == expect.value;
  if (ok) return;
  std::string want = expect.kind == Expect::none     ? "to not exist"
                     : expect.kind == Expect::exists ? "to exist"
                                                     : fmt::format("to be at version {}", expect.value);
  throw Error(Errc::conflict, fmt::format("stream '{}' {}, expected it {} (expected-version conflict)", stream,
                                          version_text(last_version), want));
}

void check_version_fits(std::string_view stream, std::int64_t last_version, std::int64_t version) {
  if (version == last_version + 1) return;
  throw SettingError(Errc::conflict, "ignoring versions",
                     {fmt::format("stream '{}' {}, so the event for version {} does not fit (expected-version conflict; ",
                                  stream, version_text(last_version), version),
                      " appends at the end)"});
}

void throw_id_conflict(std::string_view id, std::int64_t position, std::string_view stream, std::int64_t version) {
  throw Error(Errc::conflict, fmt::format("event id {} is already used by a different event (at position {}, stream "
                                          "'{}' version {}); use a new id for new content",
                                          id, position, stream, version));
}

}  // namespace esctl
