// `esctl verify` for a store: the backend's storage check (SQLite: its integrity pragma), per-stream order (versions, positions, prev
// links, marks), ids, JSON payloads, streams' last versions, queues and the immutability triggers.
// Reads only: never writes the store. Reports findings as values; knows nothing about output.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/violation.hpp"

namespace esctl {

struct VerifyOptions {
  std::string location;               ///< the store (StoreOptions::location)
  int busy_timeout_ms = 5000;
  bool full = false;                  ///< the backend's full storage check (SQLite: integrity_check, not quick_check)
  std::optional<std::string> stream;  ///< check only this stream (Errc::not_found if absent)
  std::vector<std::string> queues;    ///< check only these queues (Errc::not_found if absent)
  bool narrowed() const { return stream.has_value() || !queues.empty(); }
};

/// What was looked at.
struct VerifyCounts {
  std::int64_t events = 0;       ///< event rows read
  std::int64_t streams = 0;      ///< stream rows checked
  std::int64_t ids = 0;          ///< ids checked for uniqueness
  std::int64_t marks = 0;        ///< index marks looked up (versions % 64 == 0)
  std::int64_t queues = 0;
  std::int64_t queue_items = 0;  ///< events in flight checked (item rows and members of lease runs)
  std::int64_t triggers = 0;     ///< immutability triggers checked
  std::string storage = "SQLite";          ///< what the storage check checks
  std::string storage_check = "skipped";  ///< the backend's check run, e.g. "quick_check", "integrity_check"
};

using ViolationFn = std::function<void(const Violation&)>;
/// Progress of the event scan: up to position `done` of `total`, `events` events read.
using ProgressFn = std::function<void(std::int64_t done, std::int64_t total, std::int64_t events)>;

/// Checks the store at `o.location` (with the backend its form names) and calls `on_violation` once per finding, in the order found.
/// Without narrowing: the backend's storage check, every event, stream, id and queue. With
/// `o.stream` and/or `o.queues`: only those (and the triggers); the storage check only with
/// `o.full`. Everything is read in one snapshot, so concurrent appenders cause no findings.
/// Memory is proportional to the number of streams, not events.
///
/// Kinds: integrity, schema, trigger, index, version_gap, version_duplicate, version_order,
/// prev_link, mark_missing, id_invalid, id_duplicate, json_invalid, stream_missing, stream_head,
/// stream_category, time_order, queue_cursor, queue_filter, queue_item.
///
/// Throws Error: not_found (no store, no such stream or queue), corrupt (not an esctl store, or
/// too damaged to read its schema), busy, io. Damage found after the schema was read is
/// reported as "integrity" findings instead.
VerifyCounts verify_store(const VerifyOptions& o, const ViolationFn& on_violation, const ProgressFn& on_progress = {});

}  // namespace esctl
