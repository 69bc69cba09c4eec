// The PostgreSQL backend of the event store: StoreBackend (store/backend.hpp) over one libpq
// connection to the database of a `postgresql://` or `postgres://` URI. Reads outlive a server
// restart: a lost connection is re-established with back-off and the read goes on from its own
// position (writes never retry: see PgStore::append).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "store/backend.hpp"
#include "store/store.hpp"
#include "store/postgres/schema.hpp"
#include "store/postgres/store.hpp"

namespace esctl::pg {

/// Opens the store at the URI options.location (Access as for SQLite stores).
std::unique_ptr<StoreBackend> open(const StoreOptions& options, Access access);
/// The version of the linked libpq, e.g. "15.18".
std::string library_version();

class ReadScope;

class PgBackend final : public StoreBackend {
 public:
  /// Connects to `uri` and checks (Access::write: creates) its esctl schema.
  PgBackend(const std::string& uri, int busy_timeout_ms, Access access);
  ~PgBackend() override;

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
  void reclaim_log() override {}
  QueueRows& queue_rows() override;

 private:
  friend class PgSnapshot;
  friend class ReadScope;
  /// Calls fn per row of `r` (position, stream_id, version, id, type, data, meta, recorded_at).
  bool emit_rows(Result& r, RowFn fn);
  /// Runs a read `f` (which must deliver nothing before it succeeds, or be safe to run again).
  /// When the connection is (or turns out to be) lost and no caller's snapshot is open,
  /// reconnects with back-off (100 ms doubling to 2 s, for up to 30 s, saying so on stderr once per
  /// outage of the server: core/outage.hpp) and
  /// runs it again: a failed statement returned nothing, so no row is skipped or repeated.
  /// `scope`, if given, is the read's own snapshot, begun again on the new connection. No retry
  /// once `*delivered` (if given) is true.
  template <class F>
  auto retrying(ReadScope* scope, F&& f, const bool* delivered = nullptr) -> decltype(f());
  Result read_exec(const char* sql, const std::vector<Param>& params = {}, ReadScope* scope = nullptr);
  /// Connects again (the one place a PgStore is replaced); Errc::io once the back-off is used up.
  void reconnect();
  /// True if the last failure means the connection is gone (rather than a statement failing).
  bool connection_failed() const;

  std::string uri_;
  int busy_timeout_ms_;
  Access access_;
  std::uint64_t opened_at_;  // outage::epoch() when store_'s connection was opened
  std::unique_ptr<PgStore> store_;
  bool snapshot_open_ = false;
  std::vector<std::string> names_;  // stream id -> name ("" = not fetched)
  std::unique_ptr<QueueRows> queue_rows_;  // made on first use (store/postgres/queue_rows.hpp)
};

}  // namespace esctl::pg
