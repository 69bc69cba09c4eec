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

void append_indented_json(std::string& out, std::string_view json, std::string_view indent) {
  int depth = 0;
  auto newline = [&](int d) {
    out.push_back('\n');
    out.append(indent);
    out.append(static_cast<std::size_t>(2 * d), ' ');
  };
  out.append(indent);
  for (std::size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (c == '"') {
      std::size_t j = i + 1;
      while (j < json.size() && json[j] != '"') j += json[j] == '\\' ? 2 : 1;
      out.append(json.substr(i, j + 1 - i));
      i = j;
    } else if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      if (i + 1 < json.size() && json[i + 1] == close) {  // empty: stays on one line
        out.push_back(c);
        out.push_back(close);
        ++i;
        continue;
      }
      out.push_back(c);
      newline(++depth);
    } else if (c == '}' || c == ']') {
      newline(--depth);
      out.push_back(c);
    } else if (c == ',') {
      out.push_back(',');
      newline(depth);
    } else if (c == ':') {
      out.append(": ");
    } else {
      out.push_back(c);
    }
  }
}

void append_event_block(std::string& out, const EventRef& e, const Style& style) {
  auto field = [&](std::string_view name, std::string_view value, const char* colour) {
    style.paint(out, "1", fmt::format("{:<13}", fmt::format("{}:", name)));
    if (colour) style.paint(out, colour, value);
    else out.append(value);
    out.push_back('\n');
  };
  std::string v;
  append_int(v, e.position);
  field("position", v, nullptr);
  field("stream", e.stream, "36");
  v.clear();
  append_int(v, e.version);
  field("version", v, nullptr);
  field("type", e.type, "33");
  v.clear();
  append_uuid(v, e.id);
  field("id", v, nullptr);
  v.clear();
  append_rfc3339(v, e.recorded_at_us);
  field("recorded_at", v, "2");
  style.paint(out, "1", "data:");
  out.push_back('\n');
  append_indented_json(out, e.data, "  ");
  out.push_back('\n');
  style.paint(out, "1", "meta:");
  out.push_back('\n');
  append_indented_json(out, e.meta, "  ");
}

}  // namespace esctl
