// Turning user-supplied JSON into NewEvent values: an NDJSON event line (the export/import
// format) or the pieces of `esctl append`. Validates and minifies; never re-serialises numbers.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "core/event.hpp"

namespace esctl {

/// The most bytes of JSON text one event's data (and, separately, its meta) may have, as given
/// (before minifying): 64 MiB. Larger values are invalid input (exit 5), so one event never
/// needs more than a few copies of this in memory anywhere (append, import, read, queues).
inline constexpr std::size_t kMaxJsonBytes = std::size_t{64} << 20;

/// Validates `text` as JSON (at most kMaxJsonBytes) and returns it minified; throws Error(invalid_input) naming `what`
/// (e.g. "data") and the byte offset of the problem.
std::string checked_json(std::string_view text, std::string_view what);

/// Parses one NDJSON line `{"stream","type","data"[,"meta","id","recorded_at","version"]}`;
/// "data" is required ("meta" defaults to {}). Other members are ignored. When `stream` is non-empty the line's stream may be omitted and,
/// if present, must equal it. Throws Error(invalid_input) with "line N: ..." context.
NewEvent parse_event_line(std::string_view line, std::int64_t line_no, std::string_view stream = {});

}  // namespace esctl
