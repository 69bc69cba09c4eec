// One finding of `esctl verify`: what is wrong (kind), where (stream, version, position, log
// line) and a sentence of detail. A plain value shared by the store checks and the log checker;
// it knows nothing about how it is printed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace esctl {

struct Violation {
  std::string kind;                     ///< e.g. "version_gap", "json_invalid", "delivery_order"
  std::optional<std::string> stream;    ///< the stream concerned, when there is one
  std::optional<std::int64_t> version;  ///< the version concerned, when there is one
  std::optional<std::int64_t> position; ///< the event's position, when known
  std::optional<std::int64_t> line;     ///< 1-based line of a --log file (log checks only)
  std::string detail;                   ///< lower-case sentence: what was found and what was expected
};

}  // namespace esctl
