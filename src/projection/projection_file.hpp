// The projection file format (esctl-projection(5)) as text: splitting a file into `-- @init` and
// `-- @on` sections and their SQL statements. A leaf: it opens no database and knows nothing of
// events, queues or the sandbox (projection_db.hpp) that prepares and runs the statements.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace esctl {

/// One SQL statement of a projection file, with the line it starts on.
struct ProjectionStatement {
  std::string sql;
  int line = 0;
};

/// One section: `-- @init` or `-- @on T1, T2` / `-- @on *`.
struct ProjectionSection {
  bool init = false;
  bool all_types = false;         ///< `-- @on *`
  std::vector<std::string> types;  ///< for `-- @on T1, T2`
  int line = 0;                    ///< line of the marker
  std::string label;               ///< "@init", "@on OrderPlaced, OrderShipped", "@on *"
  std::vector<ProjectionStatement> statements;
};

/// A projection file split into sections; `name` (e.g. "orders.sql") is used in messages.
struct ProjectionFile {
  std::string name;
  std::vector<ProjectionSection> sections;
};

/// Splits `text` into sections and statements without looking at the SQL (no db is opened;
/// statement ends come from sqlite3_complete). Throws Errc::invalid_input naming `name:line` for
/// a bad marker, SQL before the first marker, VACUUM or a NUL byte.
std::vector<ProjectionSection> parse_projection_file(std::string_view text, const std::string& name);

}  // namespace esctl
