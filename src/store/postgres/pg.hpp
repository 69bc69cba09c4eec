// A small RAII wrapper over libpq for the PostgreSQL backend: a connection, statements whose
// values are always bound as parameters (never spliced into SQL text), owned results,
// transactions, and the one mapping of server errors to esctl::Error. Connection URIs are shown
// in messages only with their password removed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

struct pg_conn;
struct pg_result;

namespace esctl::pg {

/// One statement parameter, sent as text; SQL NULL when constructed from std::nullopt.
class Param {
 public:
  Param(std::nullopt_t) : null_(true) {}
  Param(std::int64_t v) : text_(std::to_string(v)) {}
  Param(int v) : text_(std::to_string(v)) {}
  Param(std::string_view v) : text_(v) {}
  Param(const char* v) : text_(v) {}
  Param(const std::string& v) : text_(v) {}
  Param(std::string&& v) : text_(std::move(v)) {}
  bool null() const { return null_; }
  const char* c_str() const { return text_.c_str(); }

 private:
  std::string text_;
  bool null_ = false;
};

/// The rows of one statement (text format), freed with the object.
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* r) : r_(r) {}
  ~Result();
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Result& operator=(Result&& o) noexcept;
  Result(const Result&) = delete;

  int rows() const;
  /// Rows changed by an INSERT/UPDATE/DELETE.
  std::int64_t affected() const;
  bool is_null(int row, int col) const;
  /// The value as text; valid while the Result lives. "" for NULL.
  std::string_view text(int row, int col) const;
  /// The value as an integer; throws Errc::internal if it is NULL or not a number.
  std::int64_t i64(int row, int col) const;
  std::optional<std::int64_t> opt_i64(int row, int col) const;

 private:
  pg_result* r_ = nullptr;
};

/// Whether a SQLSTATE says the session is gone: connection exceptions (08) and operator
/// intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
bool connection_state(const std::string& sqlstate);

/// One connection to the database of a store URI.
class Conn {
 public:
  /// Connects to `uri` and sets lock_timeout to `busy_timeout_ms` (waits for row and table
  /// locks beyond it fail with Errc::busy). A server that cannot be reached or refuses the
  /// connection: Errc::io naming the URI (without its password) and libpq's reason.
  Conn(const std::string& uri, int busy_timeout_ms);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  /// Runs one statement with its parameters bound. Server errors are thrown as Error: a lock
  /// not obtained within the busy timeout as Errc::busy, a lost connection as Errc::io saying
  /// so, invalid text (bad encoding) as Errc::invalid_input, anything else as Errc::io.
  Result exec(const char* sql, const std::vector<Param>& params = {});
  /// Runs statements without parameters (schema scripts).
  void exec_script(const char* sql);
  /// COMMITs the transaction open on this connection. If the connection drops before the server
  /// confirms it, the outcome is unknown: throws ConnectionLost saying so (callers must not
  /// retry the transaction blindly).
  void commit();
  /// The SQLSTATE of the last failed statement ("" if none or unknown): lets callers tell a
  /// unique violation (23505) from other failures after catching the Error.
  const std::string& last_sqlstate() const { return last_sqlstate_; }

  /// True once the connection to the server is known to be broken.
  bool lost() const;
  /// Why the server closed the connection, as its last FATAL message said (e.g. "terminating
  /// connection due to administrator command"), "" if it said nothing. Messages the server sends
  /// outside a statement (notices, warnings, a FATAL before it closes) never reach stderr.
  const std::string& server_reason() const { return server_reason_; }
  /// The URI without its password, for messages.
  const std::string& display() const { return display_; }
  int busy_timeout_ms() const { return busy_timeout_ms_; }
  /// Server version as libpq reports it (e.g. 150018).
  int server_version() const;
  /// libpq's connection, for LISTEN/NOTIFY waits.
  pg_conn* raw() { return conn_; }

 private:
  friend class Txn;
  friend class CopyIn;
  [[noreturn]] void fail(pg_result* r, const char* what);
  /// Whether the failure `r` (nullptr: no result) means the connection is gone.
  bool gone(pg_result* r);
  static void on_notice(void* self, const pg_result* r);
  pg_conn* conn_ = nullptr;
  std::string server_reason_;
  std::string display_;
  std::string password_;  // to scrub from server messages, never printed
  std::string last_sqlstate_;
  int busy_timeout_ms_ = 0;
  bool in_txn_ = false;  // a Txn is open and has not reached COMMIT
};

/// A `COPY ... FROM STDIN` in progress on a connection: rows added to buffer() are sent in
/// chunks as it fills, so the server works on them while more are made. Failures are thrown as
/// Conn::exec throws them; a row the server refuses fails the COPY whole, at end(). Destroyed
/// before end(), it abandons the COPY: the server fails it, and the transaction with it.
class CopyIn {
 public:
  /// Starts `sql` (a COPY ... FROM STDIN).
  CopyIn(Conn& conn, const char* sql);
  ~CopyIn();
  CopyIn(const CopyIn&) = delete;
  /// Where rows go, in the format the COPY names; call sent() after each.
  std::string& buffer() { return buffer_; }
  /// Sends the buffer once it holds a chunk's worth.
  void sent();
  /// Sends the rest, ends the input and waits for the server's verdict.
  void end();

 private:
  void send();
  Conn& conn_;
  std::string buffer_;
  bool open_ = true;
};

/// A write transaction: BEGIN now, ROLLBACK when destroyed without commit(). A connection lost
/// before commit() is reported (ConnectionLost) as having stored nothing of the transaction.
class Txn {
 public:
  explicit Txn(Conn& conn);
  ~Txn();
  Txn(const Txn&) = delete;
  /// COMMIT. If the connection drops before the server confirms it, the outcome is unknown:
  /// throws ConnectionLost (Errc::io) saying so (callers must not retry the transaction blindly).
  void commit();

 private:
  Conn& conn_;
  bool done_ = false;
};

}  // namespace esctl::pg
