#include "render/event_format.hpp"

#include <fmt/format.h>

#include "core/json_text.hpp"
#include "core/time.hpp"

namespace esctl {
namespace {

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto r = fmt::format_to_n(buf, sizeof buf, "{}", v);
  out.append(buf, r.size);
}

}  // namespace

void append_event_json(std::string& out, const EventRef& e, std::string_view extra) {
  out.append("{\"position\":");
  append_int(out, e.position);
  out.append(",\"stream\":");
  json::append_quoted(out, e.stream);
  out.append(",\"version\":");
  append_int(out, e.version);
  out.append(",\"id\":\"");
  append_uuid(out, e.id);
  out.append("\",\"type\":");
  json::append_quoted(out, e.type);
  out.append(",\"data\":").append(e.data);
  out.append(",\"meta\":").append(e.meta);
  out.append(",\"recorded_at\":\"");
  append_rfc3339(out, e.recorded_at_us);
  out.push_back('"');
  if (!extra.empty()) out.append(",").append(extra);
  out.push_back('}');
}

void append_event_line(std::string& out, const EventRef& e, const Style& style) {
  append_int(out, e.position);
  out.push_back(' ');
  std::string sv(e.stream);
  sv.push_back('@');
  append_int(sv, e.version);
  style.paint(out, "36", sv);
  out.push_back(' ');
  style.paint(out, "33", e.type);
  out.push_back(' ');
  std::string ts;
  append_rfc3339(ts, e.recorded_at_us);
  style.paint(out, "2", ts);
  out.push_back(' ');
  out.append(e.data);
}

}  // namespace esctl
