// libpq wrapper (see pg.hpp). Errors are classified by SQLSTATE; a connection that breaks is
// never silently re-established here: the caller decides what a lost connection means.
#include "store/postgres/pg.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "store/location.hpp"

namespace esctl::pg {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The passwords a URI carries (user-info and `password=` parameters), decoded.
std::vector<std::string> passwords_of(std::string_view uri) {
  std::vector<std::string> out;
  const std::size_t start = postgres_scheme_length(uri);
  if (start == 0) return out;
  // As libpq: the user part ends at the first '@' met before any '/'.
  std::size_t p = start;
  while (p < uri.size() && uri[p] != '@' && uri[p] != '/') ++p;
  if (p < uri.size() && uri[p] == '@') {
    std::string_view info = uri.substr(start, p - start);
    if (auto colon = info.find(':'); colon != std::string_view::npos) out.push_back(percent_decode(info.substr(colon + 1)));
  }
  if (auto q = uri.find('?'); q != std::string_view::npos) {
    std::string_view query = uri.substr(q + 1);
    while (!query.empty()) {
      auto amp = query.find('&');
      std::string_view kv = query.substr(0, amp);
      if (kv.substr(0, 9) == "password=") out.push_back(percent_decode(kv.substr(9)));
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '.')) s.pop_back();
  return s;
}

}  // namespace

bool connection_state(const std::string& state) {
  return state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03";
}

// ---- Result ----

Result::~Result() {
  if (r_) PQclear(r_);
}

Result& Result::operator=(Result&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

int Result::rows() const { return r_ ? PQntuples(r_) : 0; }

std::int64_t Result::affected() const {
  const char* n = r_ ? PQcmdTuples(r_) : "";
  std::int64_t v = 0;
  std::from_chars(n, n + std::strlen(n), v);
  return v;
}

bool Result::is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }

std::string_view Result::text(int row, int col) const {
  return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
}

std::int64_t Result::i64(int row, int col) const {
  auto v = opt_i64(row, col);
  if (!v) throw Error(Errc::internal, fmt::format("PostgreSQL returned NULL where a number was expected (column {})", col));
  return *v;
}

std::optional<std::int64_t> Result::opt_i64(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  std::string_view t = text(row, col);
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || ptr != t.data() + t.size())
    throw Error(Errc::internal, fmt::format("PostgreSQL returned '{}' where an integer was expected", t));
  return v;
}

// ---- Conn ----

Conn::Conn(const std::string& uri, int busy_timeout_ms) : display_(display_location(uri)), busy_timeout_ms_(busy_timeout_ms) {
  auto pw = passwords_of(uri);
  if (!pw.empty()) password_ = pw.back();
  // Keywords before dbname are defaults the URI may override; those after it always apply.
  const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", "client_encoding", nullptr};
  const char* values[] = {"10", "esctl", uri.c_str(), "UTF8", nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (!conn_) throw Error(Errc::io, fmt::format("cannot connect to PostgreSQL at '{}': out of memory", display_));
  PQsetNoticeReceiver(conn_, &Conn::on_notice, this);
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string why = trim(PQerrorMessage(conn_));
    for (const auto& p : pw)
      for (std::size_t at; !p.empty() && (at = why.find(p)) != std::string::npos;) why.replace(at, p.size(), "***");
    PQfinish(conn_);
    conn_ = nullptr;
    throw ConnectionLost(fmt::format("the PostgreSQL server of '{}'", display_),
                         fmt::format("cannot connect to the PostgreSQL server of '{}': {}", display_, why));
  }
  // Sessions never sit idle inside a transaction for long (a stopped esctl would otherwise hold
  // locks and bloat queue tables; a reader blocked on a slow pipe for 10 minutes is ended too);
  // waits for locks end at the busy timeout.
  exec("SELECT set_config('lock_timeout', $1, false), set_config('idle_in_transaction_session_timeout', '10min', false)",
       {fmt::format("{}ms", busy_timeout_ms > 0 ? busy_timeout_ms : 1)});
}

Conn::~Conn() {
  if (conn_) PQfinish(conn_);
}

bool Conn::lost() const { return !conn_ || PQstatus(conn_) != CONNECTION_OK; }

bool Conn::gone(pg_result* r) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  // A failure libpq made up itself (no SQLSTATE) may be a closed socket that libpq has not
  // marked as such yet (a server stopped at once: "server closed the connection unexpectedly"
  // with the status still OK); reading from it settles the question.
  if (!state && conn_ && PQstatus(conn_) == CONNECTION_OK) PQconsumeInput(conn_);
  return lost() || (state && connection_state(state));
}

// libpq's default receiver prints every message the server sends outside a statement on stderr,
// among them what a server says to idle sessions as it shuts down (a FATAL, or a WARNING for an
// immediate shutdown). Kept instead: that is the reason given when the connection turns out
// lost; other notices and warnings are dropped.
void Conn::on_notice(void* self, const pg_result* r) {
  const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  if (!primary) return;
  if ((severity && (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0)) ||
      (state && connection_state(state)))
    static_cast<Conn*>(self)->server_reason_ = primary;
}

int Conn::server_version() const { return conn_ ? PQserverVersion(conn_) : 0; }

void Conn::fail(pg_result* r, const char* what) {
  const bool is_gone = gone(r);
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  last_sqlstate_ = state ? state : "";
  std::string msg;
  if (r && PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)) {
    msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  } else if (is_gone) {
    // What the server said as it closed the connection, else the first line of libpq's words
    // ("server closed the connection unexpectedly", without its multi-line guesses).
    msg = !server_reason_.empty() ? server_reason_ : trim(PQerrorMessage(conn_));
    msg = msg.substr(0, msg.find('\n'));
    if (msg.rfind("FATAL:  ", 0) == 0) msg.erase(0, 8);  // the server's words, passed on by libpq
  } else {
    msg = trim(PQerrorMessage(conn_));
  }
  if (r) PQclear(r);
  if (!password_.empty())
    for (std::size_t at; (at = msg.find(password_)) != std::string::npos;) msg.replace(at, password_.size(), "***");
  if (is_gone)
    throw ConnectionLost(fmt::format("the PostgreSQL server of '{}'", display_),
                         fmt::format("lost the connection to the PostgreSQL server of '{}' ({}): {}{}", display_, what,
                                     trim(msg), in_txn_ ? " (before COMMIT: nothing of it was stored)" : ""));
  if (last_sqlstate_ == "55P03")  // lock_not_available: lock_timeout expired
    throw Error(Errc::busy, fmt::format("store '{}' is busy: another session holds a lock it needs; gave up after {}ms "
                                        "(raise --busy-timeout to wait longer)",
                                        display_, busy_timeout_ms_));
  if (last_sqlstate_ == "22021" || last_sqlstate_ == "22P05")  // bad encoding, untranslatable character
    throw Error(Errc::invalid_input, fmt::format("PostgreSQL refused the text: {}", trim(msg)));
  throw Error(Errc::io, fmt::format("PostgreSQL error on '{}' ({}): {}", display_, what, trim(msg)));
}

Result Conn::exec(const char* sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.null() ? nullptr : p.c_str());
  last_sqlstate_.clear();
  pg_result* r = PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0);
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(r, "statement");
  return Result(r);
}

void Conn::exec_script(const char* sql) {
  last_sqlstate_.clear();
  pg_result* r = PQexec(conn_, sql);
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(r, "script");
  PQclear(r);
}

// ---- CopyIn ----

namespace {
constexpr std::size_t kCopyChunk = 1 << 20;
}  // namespace

CopyIn::CopyIn(Conn& conn, const char* sql) : conn_(conn) {
  conn_.last_sqlstate_.clear();
  pg_result* r = PQexec(conn_.conn_, sql);
  if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
    open_ = false;
    conn_.fail(r, "copy");
  }
  PQclear(r);
  buffer_.reserve(kCopyChunk + kCopyChunk / 4);
}

CopyIn::~CopyIn() {
  if (!open_ || conn_.lost()) return;
  if (PQputCopyEnd(conn_.conn_, "abandoned by esctl") == 1)
    for (pg_result* r; (r = PQgetResult(conn_.conn_)) != nullptr;) PQclear(r);
}

void CopyIn::send() {
  if (!buffer_.empty() && PQputCopyData(conn_.conn_, buffer_.data(), static_cast<int>(buffer_.size())) != 1) {
    open_ = false;
    conn_.fail(nullptr, "copy");
  }
  buffer_.clear();
}

void CopyIn::sent() {
  if (buffer_.size() >= kCopyChunk) send();
}

void CopyIn::end() {
  send();
  open_ = false;
  if (PQputCopyEnd(conn_.conn_, nullptr) != 1) conn_.fail(nullptr, "copy");
  pg_result* r = PQgetResult(conn_.conn_);
  for (pg_result* more; (more = PQgetResult(conn_.conn_)) != nullptr;) PQclear(more);  // the end of the COPY's results
  if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) conn_.fail(r, "copy");
  PQclear(r);
}

// ---- Txn ----

Txn::Txn(Conn& conn) : conn_(conn) {
  conn_.exec("BEGIN");
  conn_.in_txn_ = true;
}

Txn::~Txn() {
  conn_.in_txn_ = false;
  if (done_ || conn_.lost()) return;
  pg_result* r = PQexec(conn_.raw(), "ROLLBACK");
  if (r) PQclear(r);
}

void Txn::commit() {
  done_ = true;
  conn_.in_txn_ = false;
  conn_.commit();
}

void Conn::commit() {
  last_sqlstate_.clear();
  pg_result* r = PQexec(conn_, "COMMIT");
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK) {
    const bool rolled_back = std::strcmp(PQcmdStatus(r), "ROLLBACK") == 0;
    PQclear(r);
    if (rolled_back) throw Error(Errc::internal, "PostgreSQL rolled the transaction back at COMMIT (an earlier statement failed)");
    return;
  }
  if (gone(r)) {
    if (r) PQclear(r);
    throw ConnectionLost(fmt::format("the PostgreSQL server of '{}'", display_),
                         fmt::format("lost the connection to the PostgreSQL server of '{}' before it confirmed the "
                                      "commit: the outcome is unknown (the write may or may not be stored; re-running "
                                      "it is safe only for events with ids)",
                                      display_));
  }
  fail(r, "commit");  // refused by the server (e.g. a deferred check): nothing was written
}

}  // namespace esctl::pg
