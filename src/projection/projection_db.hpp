// Internal to src/projection: a SQLite connection to one query db (or a scratch in-memory db) with the
// projection sandbox installed, the projection's statements prepared, and the code that runs an
// event's statements with bound parameters. Shared by Projection (validation), Projector (drain)
// and rebuild. Not a public API: commands use projection.hpp, projector.hpp and rebuild.hpp.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/event.hpp"
#include "projection/projection_file.hpp"
#include "store/sqlite/sqlite.hpp"

struct sqlite3_stmt;

namespace esctl::detail {

/// The esctl-owned tables of every query db, created before @init runs.
extern const char* const kQueryDbSchema;

/// One prepared projection statement and the parameters it uses.
struct UserStmt {
  sqlite3_stmt* stmt = nullptr;
  const ProjectionSection* section = nullptr;
  const ProjectionStatement* source = nullptr;
  std::array<int, 8> param{};  // bind index per Param (0: unused)
};

/// The statements to run for one event type, in file order.
struct Plan {
  std::vector<UserStmt*> stmts;
  bool uses_id = false, uses_recorded_at = false;
  bool empty() const { return stmts.empty(); }
};

/// What a SQLite db is to esctl: empty, a query db esctl made (it has `_esctl_meta`), or another
/// application's. One statement, so one snapshot: two statements could straddle another
/// drainer's commit that creates the same new query db, and see "not ours, not empty".
enum class QueryDbKind { empty, ours, foreign };
QueryDbKind query_db_kind(sql::Db& db);
/// Errc::corrupt: `path` has tables but no `_esctl_meta`; `action` says what was refused.
[[noreturn]] void throw_not_a_query_db(const std::string& path, std::string_view action);

class ProjectionDb {
 public:
  /// Opens `path` (":memory:" for a scratch db) and installs the sandbox: an authorizer that
  /// refuses ATTACH/DETACH, PRAGMAs outside a read-only list, transaction statements, schemas
  /// other than main/temp and writes to esctl's own `_esctl_*` tables; no attached databases.
  ProjectionDb(const ProjectionFile& projection, const std::string& path, sql::OpenMode mode, int busy_timeout_ms);
  ~ProjectionDb();
  ProjectionDb(const ProjectionDb&) = delete;

  sql::Db& db() { return *db_; }
  /// Makes SIGINT abort a running statement (Errc::interrupted), for long work like rebuild.
  void set_interruptible();

  QueryDbKind kind() { return query_db_kind(*db_); }
  /// Creates esctl's tables and runs @init; call inside a transaction. Throws Errc::invalid_input
  /// naming file, line and section if an @init statement fails.
  void initialize();
  /// Prepares every @on statement. `against` (the db's path, or "" for a scratch db) is named in
  /// errors. Throws Errc::invalid_input naming file, line and section.
  void prepare_statements(const std::string& against);
  /// The statements for events of `type` (empty if the projection does not handle it).
  const Plan& plan(std::string_view type);
  /// Runs `plan` for `e`. Returns false, with `error` naming file, line, section and SQLite's
  /// message, when a statement fails on this event; the caller rolls back what it ran. Throws
  /// for operational failures (I/O, busy, disk full, corruption).
  bool run(const Plan& plan, const EventRef& e, std::string& error);

  /// Writes a row of `_esctl_meta` (internal statements bypass the sandbox).
  void set_meta(std::string_view key, std::string_view value);
  void set_meta(std::string_view key, std::int64_t value);
  std::string meta(std::string_view key);

 private:
  struct Auth;
  UserStmt prepare_user(const ProjectionSection& section, const ProjectionStatement& st, const std::string& against,
                        bool allow_params);
  [[noreturn]] void statement_error(const ProjectionSection& section, const ProjectionStatement& st, int rc,
                                    int offset, const std::string& against);

  const ProjectionFile& projection_;
  std::unique_ptr<sql::Db> db_;
  std::unique_ptr<Auth> auth_;
  std::vector<std::unique_ptr<UserStmt>> stmts_;
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Plan, Hash, std::equal_to<>> plans_;
  std::string id_text_, time_text_;
};

}  // namespace esctl::detail
