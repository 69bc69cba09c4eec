// --format templates: one line of text per event from placeholders such as {position},
// {data.customer} or {attempt}. Parsed once (every error before anything is read), then
// rendered per event without building a JSON tree: member paths walk the stored minified text.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.hpp"

namespace esctl {

/// What a queue delivery adds to an event ({attempt}, {lease}).
struct DeliveryFields {
  std::int64_t attempt = 1;
  std::string_view lease;  ///< the delivery's lease token; empty if none
};

class EventTemplate {
 public:
  /// Parses `text`: literal text, `{position}` `{stream}` `{version}` `{type}` `{id}`
  /// `{recorded_at}` `{data}` `{meta}`, `{data.PATH}` / `{meta.PATH}` (PATH: member names and
  /// array indexes separated by dots), and with `deliveries` also `{attempt}` `{lease}`;
  /// `{{` and `}}` for braces; `\t`, `\n` and `\\` escapes. Throws Error(Errc::usage) naming
  /// the first unknown placeholder, unmatched brace or unknown escape.
  static EventTemplate parse(std::string_view text, bool deliveries);

  /// Appends the rendered line for `e` to `out`, without a trailing newline. `d` gives the
  /// delivery fields (nullptr: rendered empty).
  void render(std::string& out, const EventRef& e, const DeliveryFields* d = nullptr) const;

 private:
  enum class Field { literal, position, stream, version, type, id, recorded_at, data, meta, attempt, lease };
  struct Part {
    Field field = Field::literal;
    std::string text;               ///< literal text
    std::vector<std::string> path;  ///< data./meta. member path; empty: the whole value
  };
  std::vector<Part> parts_;
};

/// The member of minified JSON `json` at `path` (object keys, or decimal indexes into arrays),
/// as its raw JSON text; nullopt if absent. `json` must be valid minified JSON (stored data).
std::optional<std::string_view> json_member(std::string_view json, const std::vector<std::string>& path);

}  // namespace esctl
