// Projection (see projection.hpp): a projection file parsed (projection_file.cpp) and validated
// on a scratch in-memory query db (projection_db.cpp).
#include "projection/projection.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.hpp"
#include "projection/projection_db.hpp"
#include "store/sqlite/sqlite.hpp"

namespace esctl {
namespace {

std::string fnv1a_hex(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

}  // namespace

Projection Projection::load(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(Errc::not_found, fmt::format("projection file '{}' not found", path));
  if (S_ISDIR(st.st_mode)) throw Error(Errc::usage, fmt::format("projection file '{}' is a directory", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Errc::io, fmt::format("cannot read projection file '{}'", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return from_text(ss.str(), path);
}

std::vector<ProjectionSection> Projection::parse_sections(std::string_view text, const std::string& name) {
  return parse_projection_file(text, name);
}

Projection Projection::from_text(std::string text, std::string name) {
  Projection p;
  p.file_.name = std::move(name);
  p.text_ = std::move(text);
  p.hash_ = fnv1a_hex(p.text_);
  p.file_.sections = parse_projection_file(p.text_, p.file_.name);
  for (const auto& s : p.file_.sections) {
    if (s.init) continue;
    p.all_types_ |= s.all_types;
    p.types_.insert(p.types_.end(), s.types.begin(), s.types.end());
  }
  std::sort(p.types_.begin(), p.types_.end());
  p.types_.erase(std::unique(p.types_.begin(), p.types_.end()), p.types_.end());
  // Validate on a scratch db: @init must run, every @on statement must prepare against its result.
  {
    detail::ProjectionDb scratch(p.file_, ":memory:", sql::OpenMode::create, 0);
    sql::Txn txn(scratch.db());
    scratch.initialize();
    scratch.prepare_statements("");
  }
  return p;
}

bool Projection::handles(std::string_view type) const {
  return all_types_ || std::binary_search(types_.begin(), types_.end(), type);
}

}  // namespace esctl
