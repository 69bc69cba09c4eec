// The rows of projector queues as a backend keeps them: the small repository the delivery
// algorithm (queue.cpp) runs over. A backend implements it in its own folder with its own SQL
// (store/sqlite/queue_rows.cpp, store/postgres/queue_rows.cpp); what the rows mean, and every
// decision about them, is queue.cpp's. No SQL here.
//
// What a backend must guarantee:
// - Transactions: a write transaction serialises every queue operation on its queue (SQLite: the
//   store's one writer; a server: a row lock on the queue taken by find_queue(lock=true)), and a
//   read transaction is one snapshot. A transaction begun inside another joins it (a savepoint):
//   the outer one alone decides.
// - Times: due times are written and compared in the clock clock() returns (SQLite: the caller's
//   monotonic clock and boot; a server: its own clock, shared by every drainer on every machine).
// - Event reads made here see the transaction's state, and only esctl::Error escapes.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/function_ref.hpp"
#include "store/backend.hpp"
#include "store/queue.hpp"

namespace esctl {

/// The state of an event in flight that has a row of its own (see queue.cpp).
enum class QueueState : int { pending = 0, leased = 1, retry = 2, parked = 3 };

/// One queue_items row. `due` is meaningful for leased and retry rows only.
struct QueueRow {
  std::int64_t position = 0;
  std::int64_t stream = 0;
  QueueState state = QueueState::pending;
  std::int64_t attempts = 0;
  std::int64_t due_mono = 0, due_boot = 0;  ///< in the clock of QueueRows::clock
  std::int64_t lease = 0;                   ///< 0: none
};

/// One run of first deliveries leased together (see queue.cpp); `members` is the packed member
/// list, valid during the call it is passed to.
struct RunRow {
  std::int64_t first = 0, last = 0, count = 0;
  std::string_view members;
  std::int64_t due_mono = 0, due_boot = 0, due_wall = 0, lease = 0;
};

/// Queue rows on one store connection. Not thread-safe: one per connection.
class QueueRows {
 public:
  virtual ~QueueRows() = default;

  enum class TxnKind {
    read,           ///< one read snapshot
    write,          ///< durable commit (create, reset, delete, retry)
    write_relaxed,  ///< commit that may be lost in a power failure (pull, ack, nack, renew)
  };
  /// An open transaction: rolled back when destroyed without commit().
  class Txn {
   public:
    virtual ~Txn() = default;
    virtual void commit() = 0;
  };
  virtual std::unique_ptr<Txn> begin(TxnKind kind) = 0;
  /// The clock leases and retries are judged by, read once the transaction holds its lock, given
  /// the caller's (SQLite: `local` if it is pinned, else the local clocks now; a server: its own).
  virtual Clock clock(const Clock& local) = 0;
  /// The store as messages name it (a URI without its password).
  virtual std::string display() = 0;

  // ---- store-wide ----
  /// The highest committed position, in the open transaction.
  virtual std::int64_t last_position() = 0;
  /// Bumps and returns the store-wide counter `name` ("queue" or "lease"); nullopt if the store
  /// has none (damaged).
  virtual std::optional<std::int64_t> next_counter(const char* name) = 0;

  // ---- queues ----
  /// The queue named `name`, or nullopt. With `lock`, inside a write transaction, the queue is
  /// held until it ends: other connections' queue operations on it wait.
  virtual std::optional<QueueInfo> find_queue(std::string_view name, bool lock) = 0;
  /// Whether a queue of that name exists.
  virtual bool queue_exists(std::string_view name) = 0;
  /// Inserts a queue (filter lists as JSON arrays of strings). False if the name is taken.
  virtual bool insert_queue(const QueueInfo& q, const std::string& streams, const std::string& categories,
                            const std::string& types) = 0;
  /// Names starting with `prefix`, sorted.
  virtual std::vector<std::string> queue_names(std::string_view prefix) = 0;
  virtual void set_cursor(std::int64_t queue, std::int64_t cursor) = 0;
  /// reset: start and cursor to `point`, generation bumped, deliverable since `since_us`.
  virtual void restart_queue(std::int64_t queue, std::int64_t point, std::int64_t since_us) = 0;
  /// Deletes the queue's rows and runs (`and_queue`: its definition too).
  virtual void clear_queue(std::int64_t queue, bool and_queue) = 0;

  // ---- rows ----
  virtual std::optional<QueueRow> item(std::int64_t queue, std::int64_t position) = 0;
  /// The front rows (each the lowest row of its stream, the one that decides for the stream) in
  /// position order; fn returns false to stop.
  virtual void fronts(std::int64_t queue, FunctionRef<bool(const QueueRow&)> fn) = 0;
  /// The row of `stream` after `position`, if any.
  virtual std::optional<QueueRow> next_in_stream(std::int64_t queue, std::int64_t stream, std::int64_t position) = 0;
  /// The position of the lowest row of `stream`, if any.
  virtual std::optional<std::int64_t> first_in_stream(std::int64_t queue, std::int64_t stream) = 0;
  /// Sets or clears a row's front flag.
  virtual void set_front(std::int64_t queue, std::int64_t position, bool front) = 0;
  /// Inserts a row, marked as its stream's front or not; `due` for leased and retry rows (its
  /// wall time too), nullopt for others.
  virtual void insert_item(std::int64_t queue, const QueueRow& row, const std::optional<Clock>& due, bool front) = 0;
  /// Deletes a row; returns its stream and front flag, or nullopt if there was none.
  virtual std::optional<std::pair<std::int64_t, bool>> delete_item(std::int64_t queue, std::int64_t position) = 0;
  /// Marks the lowest row of `stream` as its front.
  virtual void promote_front(std::int64_t queue, std::int64_t stream) = 0;
  /// Sets a row's state, attempts and due time (nullopt: none), clears its lease; its wall time
  /// to `wall` (nullopt: none) and, if `reason` is given, its reason.
  virtual void set_state(std::int64_t queue, std::int64_t position, QueueState state, std::int64_t attempts,
                         const std::optional<Clock>& due, std::optional<std::int64_t> wall, const std::string* reason) = 0;
  /// Leases a row: leased, one more attempt, due at `due`, under `token`.
  virtual void lease_item(std::int64_t queue, std::int64_t position, const Clock& due, std::int64_t token) = 0;
  /// Moves a row's due time (renewal).
  virtual void renew_item(std::int64_t queue, std::int64_t position, const Clock& due) = 0;
  /// Parks every leased row with at least `max_attempts` attempts whose due time has passed at
  /// `now` (reason "lease expired", no lease, no due time; its wall time kept). Returns how many.
  virtual std::int64_t park_expired(std::int64_t queue, std::int64_t max_attempts, const Clock& now) = 0;
  /// The leased rows, with their wall due time (0 if none).
  virtual void leased_items(std::int64_t queue, FunctionRef<void(const QueueRow&, std::int64_t)> fn) = 0;
  /// For each state other than leased that has rows: their count and lowest position.
  virtual void state_counts(std::int64_t queue, FunctionRef<void(QueueState, std::int64_t, std::int64_t)> fn) = 0;
  /// The parked rows in position order: position, attempts, reason ("" if none), wall time (0).
  virtual void parked_items(std::int64_t queue,
                            FunctionRef<void(std::int64_t, std::int64_t, std::string_view, std::int64_t)> fn) = 0;
  /// Puts every parked row back to pending with no attempts; returns how many.
  virtual std::int64_t unpark_all(std::int64_t queue) = 0;
  /// The positions of every row.
  virtual void item_positions(std::int64_t queue, FunctionRef<void(std::int64_t)> fn) = 0;

  // ---- runs ----
  /// The runs, lowest first.
  virtual void runs(std::int64_t queue, FunctionRef<void(const RunRow&)> fn) = 0;
  virtual void insert_run(std::int64_t queue, const RunRow& run) = 0;
  virtual void delete_run(std::int64_t queue, std::int64_t first) = 0;
  virtual void renew_run(std::int64_t queue, std::int64_t first, const Clock& due) = 0;

  // ---- events, in the open transaction ----
  /// Events with after < position <= upto in position order; fn returns false to stop. Without
  /// `payload` only position, stream_id, version and type are filled in. `hint`: how many the
  /// caller expects to need (a server fetches in chunks of about that size).
  virtual void events(std::int64_t after, std::int64_t upto, bool payload, std::int64_t hint,
                      FunctionRef<bool(const EventRow&)> fn) = 0;
  /// The event at `position`: calls fn and returns true, or returns false if there is none.
  virtual bool event_at(std::int64_t position, FunctionRef<bool(const EventRow&)> fn) = 0;
};

}  // namespace esctl
