// SQL projections (esctl-projection(5)): a projection file parsed (projection_file.hpp) and
// validated against a scratch query db. Applying events to a query db is the Projector
// (projector.hpp); rebuilding one from scratch is rebuild.hpp.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "projection/projection_file.hpp"

namespace esctl {

/// A parsed and validated projection file. Immutable; cheap to share.
class Projection {
 public:
  /// Reads `path`, parses it and validates every statement (see from_text). Errc::not_found if
  /// the file does not exist.
  static Projection load(const std::string& path);
  /// Parses `text` (`name` is used in messages, e.g. "orders.sql") and validates it: @init is
  /// run on a scratch in-memory db and every @on statement must prepare against the result,
  /// with only the documented parameters, inside the sandbox. Throws Errc::invalid_input naming
  /// `name:line`, the section and the problem; nothing outside memory is touched.
  static Projection from_text(std::string text, std::string name);
  /// The first half of from_text: parse_projection_file (projection_file.hpp). For tests and fuzzing.
  static std::vector<ProjectionSection> parse_sections(std::string_view text, const std::string& name);

  const std::string& name() const { return file_.name; }
  const std::string& text() const { return text_; }
  const std::vector<ProjectionSection>& sections() const { return file_.sections; }
  /// The name and sections, as the query-db sandbox (projection_db.hpp) takes them.
  const ProjectionFile& file() const { return file_; }
  /// True if some `@on` section names `type` (or is `@on *`).
  bool handles(std::string_view type) const;
  /// A hex digest of the file's bytes (FNV-1a, 64 bit): a change detector, not a security check.
  const std::string& hash() const { return hash_; }

 private:
  ProjectionFile file_;
  std::string text_, hash_;
  std::vector<std::string> types_;  // sorted, every type some @on section names
  bool all_types_ = false;
};

}  // namespace esctl
