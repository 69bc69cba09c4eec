// The projection sandbox and statement runner (see projection_db.hpp). The sandbox is SQLite's
// authorizer: it is consulted whenever a statement is prepared (and re-prepared after a schema
// change), so a flag tells user statements (checked) from esctl's own (trusted) apart. Together
// with SQLITE_LIMIT_ATTACHED = 0 and extension loading compiled out (SQLITE_OMIT_LOAD_EXTENSION),
// a projection can reach nothing but its own query db; the store is never opened on this
// connection.
#include "projection/projection_db.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/signals.hpp"
#include "core/time.hpp"
#include "core/uuid.hpp"

namespace esctl::detail {

const char* const kQueryDbSchema = R"sql(
CREATE TABLE _esctl_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE _esctl_applied (stream TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE _esctl_pending (
  stream TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL, reason TEXT,
  PRIMARY KEY (stream, version)) WITHOUT ROWID;
)sql";

namespace {

constexpr const char* kParamNames[8] = {":position", ":stream", ":version",     ":id",
                                        ":type",     ":data",   ":meta", ":recorded_at"};
enum Param { kPosition, kStream, kVersion, kId, kType, kData, kMeta, kRecordedAt };

bool iequals_prefix(const char* s, std::string_view prefix) {
  if (!s) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (s[i] == '\0') return false;
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

// `word` in lower case.
bool iequals(const char* s, std::string_view word) {
  return s && std::strlen(s) == word.size() && iequals_prefix(s, word);
}

// PRAGMAs a projection may use: they only read the schema of its own db (or user_version).
constexpr std::string_view kSafePragmas[] = {
    "table_info",  "table_xinfo",      "table_list",        "index_list",     "index_info",
    "index_xinfo", "foreign_key_list", "foreign_key_check", "collation_list", "user_version"};

// SQLite's "operational" failures: the event is not at fault, so they abort the whole batch.
bool operational(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CORRUPT:
    case SQLITE_NOMEM:
    case SQLITE_INTERRUPT:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
    case SQLITE_PROTOCOL:
      return true;
    default:
      return false;
  }
}

int line_at(const ProjectionStatement& st, int offset) {
  int line = st.line;
  if (offset < 0) return line;
  auto end = std::min<std::size_t>(static_cast<std::size_t>(offset), st.sql.size());
  return line + static_cast<int>(std::count(st.sql.begin(), st.sql.begin() + static_cast<std::ptrdiff_t>(end), '\n'));
}

}  // namespace

struct ProjectionDb::Auth {
  bool user = false;   // a user statement is being prepared or run
  std::string denial;  // why the last refusal happened

  static int callback(void* self, int action, const char* a1, const char* a2, const char* db, const char*) {
    auto* auth = static_cast<Auth*>(self);
    if (!auth->user) return SQLITE_OK;
    return auth->check(action, a1, a2, db);
  }

  int deny(std::string why) {
    denial = std::move(why);
    return SQLITE_DENY;
  }

  int check(int action, const char* a1, const char* a2, const char* db) {
    if (db && !iequals(db, "main") && !iequals(db, "temp"))
      return deny(fmt::format("schema '{}' is not allowed: a projection may touch only its query db", db));
    switch (action) {
      case SQLITE_ATTACH:
      case SQLITE_DETACH:
        return deny(fmt::format("{} is not allowed: a projection may touch only its query db",
                                action == SQLITE_ATTACH ? "ATTACH" : "DETACH"));
      case SQLITE_TRANSACTION:
        return deny(fmt::format("{} is not allowed: esctl runs each event in a transaction of its own",
                                a1 ? a1 : "transaction control"));
      case SQLITE_SAVEPOINT: {
        const char* what = iequals(a1, "begin") ? "SAVEPOINT" : iequals(a1, "release") ? "RELEASE" : "ROLLBACK TO";
        return deny(fmt::format("{} is not allowed: esctl runs each event in a transaction of its own", what));
      }
      case SQLITE_PRAGMA: {
        for (auto p : kSafePragmas)
          if (iequals(a1, p)) return SQLITE_OK;
        return deny(fmt::format("PRAGMA {} is not allowed in a projection (allowed: table_info, table_xinfo, "
                                "table_list, index_list, index_info, index_xinfo, foreign_key_list, "
                                "foreign_key_check, collation_list, user_version)",
                                a1 ? a1 : "?"));
      }
      case SQLITE_FUNCTION:
        if (iequals(a2, "load_extension")) return deny("load_extension() is not allowed in a projection");
        return SQLITE_OK;
      case SQLITE_CREATE_INDEX:
      case SQLITE_CREATE_TEMP_INDEX:
      case SQLITE_CREATE_TRIGGER:
      case SQLITE_CREATE_TEMP_TRIGGER:
      case SQLITE_DROP_INDEX:
      case SQLITE_DROP_TEMP_INDEX:
      case SQLITE_DROP_TRIGGER:
      case SQLITE_DROP_TEMP_TRIGGER:
      case SQLITE_ALTER_TABLE:
        if (iequals_prefix(a1, "_esctl_") || iequals_prefix(a2, "_esctl_")) return reserved(a1, a2);
        return SQLITE_OK;
      case SQLITE_CREATE_TABLE:
      case SQLITE_CREATE_TEMP_TABLE:
      case SQLITE_CREATE_VIEW:
      case SQLITE_CREATE_TEMP_VIEW:
      case SQLITE_CREATE_VTABLE:
      case SQLITE_DROP_TABLE:
      case SQLITE_DROP_TEMP_TABLE:
      case SQLITE_DROP_VIEW:
      case SQLITE_DROP_TEMP_VIEW:
      case SQLITE_DROP_VTABLE:
      case SQLITE_INSERT:
      case SQLITE_UPDATE:
      case SQLITE_DELETE:
        if (iequals_prefix(a1, "_esctl_")) return reserved(a1, a2);
        return SQLITE_OK;
      default:
        return SQLITE_OK;
    }
  }

  int reserved(const char* a1, const char* a2) {
    const char* name = iequals_prefix(a1, "_esctl_") ? a1 : a2;
    return deny(fmt::format("'{}' is reserved: tables named _esctl_* hold esctl's checkpoint and may only be read",
                            name ? name : "_esctl_"));
  }
};

namespace {
// Marks the statements prepared or run in its scope as the projection's, so the sandbox checks them.
class UserScope {
 public:
  explicit UserScope(bool& flag) : flag_(flag) { flag_ = true; }
  ~UserScope() { flag_ = false; }

 private:
  bool& flag_;
};
}  // namespace

ProjectionDb::ProjectionDb(const ProjectionFile& projection, const std::string& path, sql::OpenMode mode,
                           int busy_timeout_ms)
    : projection_(projection), auth_(std::make_unique<Auth>()) {
  db_ = std::make_unique<sql::Db>(path, mode, busy_timeout_ms, "query db");
  sqlite3* raw = db_->raw();
  sqlite3_limit(raw, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_set_authorizer(raw, &Auth::callback, auth_.get());
}

void ProjectionDb::set_interruptible() {
  sqlite3_progress_handler(db_->raw(), 10000, [](void*) -> int { return interrupted() ? 1 : 0; }, nullptr);
}

ProjectionDb::~ProjectionDb() {
  for (auto& s : stmts_) sqlite3_finalize(s->stmt);
}

QueryDbKind query_db_kind(sql::Db& db) {
  auto s = db.prepare_new(
      "SELECT count(*), count(*) FILTER (WHERE type = 'table' AND name = '_esctl_meta') FROM sqlite_schema");
  s.step();
  if (s.i64(1) > 0) return QueryDbKind::ours;
  return s.i64(0) == 0 ? QueryDbKind::empty : QueryDbKind::foreign;
}

void throw_not_a_query_db(const std::string& path, std::string_view action) {
  throw Error(Errc::corrupt, fmt::format("'{}' is not a query db made by esctl (it has tables but no _esctl_meta); "
                                         "refusing to {} it: choose another path",
                                         path, action));
}

void ProjectionDb::initialize() {
  db_->exec(kQueryDbSchema);
  set_meta("format", std::int64_t{1});
  for (const auto& section : projection_.sections) {
    if (!section.init) continue;
    for (const auto& st : section.statements) {
      UserStmt u = prepare_user(section, st, "", false);
      int rc;
      {
        UserScope scope(auth_->user);
        while ((rc = sqlite3_step(u.stmt)) == SQLITE_ROW) {
        }
      }
      if (rc != SQLITE_DONE) {
        if (operational(rc)) {
          sqlite3_finalize(u.stmt);
          db_->fail(rc, st.sql);
        }
        std::string msg = (rc & 0xff) == SQLITE_AUTH && !auth_->denial.empty() ? auth_->denial : sqlite3_errmsg(db_->raw());
        sqlite3_finalize(u.stmt);
        throw Error(Errc::invalid_input,
                    fmt::format("{}:{}: in section '{}': {}", projection_.name, st.line, section.label, msg));
      }
      sqlite3_finalize(u.stmt);
    }
  }
}

void ProjectionDb::statement_error(const ProjectionSection& section, const ProjectionStatement& st, int rc, int offset,
                                   const std::string& against) {
  std::string msg = (rc & 0xff) == SQLITE_AUTH && !auth_->denial.empty() ? auth_->denial : sqlite3_errmsg(db_->raw());
  std::string where = against.empty() ? std::string()
                                      : fmt::format(" (against the existing query db '{}': was it built with another "
                                                    "projection? rebuild it with 'esctl rebuild')",
                                                    against);
  throw Error(Errc::invalid_input,
              fmt::format("{}:{}: in section '{}': {}{}", projection_.name, line_at(st, offset), section.label, msg, where));
}

UserStmt ProjectionDb::prepare_user(const ProjectionSection& section, const ProjectionStatement& st,
                                    const std::string& against, bool allow_params) {
  UserStmt u;
  u.section = &section;
  u.source = &st;
  const char* tail = nullptr;
  int rc;
  {
    UserScope scope(auth_->user);
    auth_->denial.clear();
    rc = sqlite3_prepare_v3(db_->raw(), st.sql.c_str(), static_cast<int>(st.sql.size()), SQLITE_PREPARE_PERSISTENT,
                            &u.stmt, &tail);
  }
  if (rc != SQLITE_OK) {
    if (operational(rc)) db_->fail(rc, st.sql);
    statement_error(section, st, rc, sqlite3_error_offset(db_->raw()), against);
  }
  if (!u.stmt) return u;  // only comments: the splitter should not produce these
  int n = sqlite3_bind_parameter_count(u.stmt);
  for (int i = 1; i <= n; ++i) {
    const char* name = sqlite3_bind_parameter_name(u.stmt, i);
    int which = -1;
    for (int p = 0; p < 8 && name; ++p)
      if (std::strcmp(name, kParamNames[p]) == 0) which = p;
    std::string problem;
    if (!allow_params)
      problem = fmt::format("parameter '{}' in @init: @init runs once, without an event", name ? name : "?");
    else if (which < 0)
      problem = fmt::format("unknown parameter '{}' (use :position, :stream, :version, :id, :type, :data, :meta "
                            "or :recorded_at)",
                            name ? name : "?");
    if (!problem.empty()) {
      sqlite3_finalize(u.stmt);
      throw Error(Errc::invalid_input,
                  fmt::format("{}:{}: in section '{}': {}", projection_.name, st.line, section.label, problem));
    }
    u.param[static_cast<std::size_t>(which)] = i;
  }
  return u;
}

void ProjectionDb::prepare_statements(const std::string& against) {
  for (const auto& section : projection_.sections) {
    if (section.init) continue;
    for (const auto& st : section.statements) {
      auto u = std::make_unique<UserStmt>(prepare_user(section, st, against, true));
      if (u->stmt) stmts_.push_back(std::move(u));
    }
  }
}

const Plan& ProjectionDb::plan(std::string_view type) {
  auto it = plans_.find(type);
  if (it != plans_.end()) return it->second;
  Plan p;
  for (auto& u : stmts_) {
    const auto& s = *u->section;
    if (!s.all_types && std::find(s.types.begin(), s.types.end(), type) == s.types.end()) continue;
    p.stmts.push_back(u.get());
    p.uses_id |= u->param[kId] != 0;
    p.uses_recorded_at |= u->param[kRecordedAt] != 0;
  }
  return plans_.emplace(std::string(type), std::move(p)).first->second;
}

bool ProjectionDb::run(const Plan& plan, const EventRef& e, std::string& error) {
  if (plan.uses_id) {
    id_text_.clear();
    append_uuid(id_text_, e.id);
  }
  if (plan.uses_recorded_at) {
    time_text_.clear();
    append_rfc3339(time_text_, e.recorded_at_us);
  }
  auto text = [](sqlite3_stmt* s, int i, std::string_view v) {
    sqlite3_bind_text64(s, i, v.data() ? v.data() : "", v.size(), SQLITE_STATIC, SQLITE_UTF8);
  };
  UserScope scope(auth_->user);
  for (UserStmt* u : plan.stmts) {
    sqlite3_stmt* s = u->stmt;
    const auto& p = u->param;
    if (p[kPosition]) sqlite3_bind_int64(s, p[kPosition], e.position);
    if (p[kStream]) text(s, p[kStream], e.stream);
    if (p[kVersion]) sqlite3_bind_int64(s, p[kVersion], e.version);
    if (p[kId]) text(s, p[kId], id_text_);
    if (p[kType]) text(s, p[kType], e.type);
    if (p[kData]) text(s, p[kData], e.data);
    if (p[kMeta]) text(s, p[kMeta], e.meta);
    if (p[kRecordedAt]) text(s, p[kRecordedAt], time_text_);
    int rc;
    auth_->denial.clear();
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) {
      std::string msg = (rc & 0xff) == SQLITE_AUTH && !auth_->denial.empty() ? auth_->denial : sqlite3_errmsg(db_->raw());
      sqlite3_reset(s);
      if (operational(rc)) db_->fail(rc, u->source->sql);
      error = fmt::format("{}:{}: in section '{}': {}", projection_.name, u->source->line, u->section->label, msg);
      return false;
    }
    sqlite3_reset(s);
  }
  return true;
}

void ProjectionDb::set_meta(std::string_view key, std::string_view value) {
  sql::StmtScope s(db_->prepare("INSERT OR REPLACE INTO _esctl_meta (key, value) VALUES (?1, ?2)"));
  s->bind(1, key).bind(2, value);
  s->run();
}

void ProjectionDb::set_meta(std::string_view key, std::int64_t value) {
  sql::StmtScope s(db_->prepare("INSERT OR REPLACE INTO _esctl_meta (key, value) VALUES (?1, ?2)"));
  s->bind(1, key).bind(2, value);
  s->run();
}

std::string ProjectionDb::meta(std::string_view key) {
  sql::StmtScope s(db_->prepare("SELECT value FROM _esctl_meta WHERE key = ?1"));
  s->bind(1, key);
  return s->step() ? std::string(s->text(0)) : std::string();
}

}  // namespace esctl::detail
