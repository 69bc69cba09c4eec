// Text forms of an event: the human line and the JSON object (also the NDJSON export/import
// format). Stored JSON is passed through verbatim, never re-serialised.
#pragma once
#include <string>

#include "core/event.hpp"
#include "render/style.hpp"

namespace esctl {

/// `{"position":..,"stream":..,"version":..,"id":..,"type":..,"data":..,"meta":..,"recorded_at":..}`
/// without a trailing newline; `extra` (e.g. `"attempt":2`) is inserted before the closing brace.
void append_event_json(std::string& out, const EventRef& e, std::string_view extra = {});
/// `POSITION STREAM@VERSION TYPE RECORDED_AT DATA` without a trailing newline.
void append_event_line(std::string& out, const EventRef& e, const Style& style);

/// `esctl show`: one `name: value` line per field, then `data` and `meta` as indented JSON.
void append_event_block(std::string& out, const EventRef& e, const Style& style);
/// Appends minified JSON `json` spread over lines, two spaces per level, each line starting with
/// `indent`; tokens (numbers, strings, escapes) are copied unchanged. No trailing newline.
void append_indented_json(std::string& out, std::string_view json, std::string_view indent);

}  // namespace esctl
