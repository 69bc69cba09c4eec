// JsonObject: see json_object.hpp.
#include "render/json_object.hpp"

#include <fmt/format.h>

#include "core/json_text.hpp"
#include "core/time.hpp"

namespace esctl {

void JsonObject::key(std::string_view k) {
  if (text_.size() > 1) text_.push_back(',');
  json::append_quoted(text_, k);
  text_.push_back(':');
}

JsonObject& JsonObject::string(std::string_view k, std::string_view value) {
  key(k);
  json::append_quoted(text_, value);
  return *this;
}

JsonObject& JsonObject::string_or_null(std::string_view k, const std::optional<std::string>& value) {
  return value ? string(k, std::string_view(*value)) : null(k);
}

JsonObject& JsonObject::number(std::string_view k, std::int64_t value) {
  key(k);
  text_.append(std::to_string(value));
  return *this;
}

JsonObject& JsonObject::number(std::string_view k, std::optional<std::int64_t> value) {
  return value ? number(k, *value) : null(k);
}

JsonObject& JsonObject::fixed(std::string_view k, double value, int digits) {
  key(k);
  text_.append(fmt::format("{:.{}f}", value, digits));
  return *this;
}

JsonObject& JsonObject::boolean(std::string_view k, bool value) {
  key(k);
  text_.append(value ? "true" : "false");
  return *this;
}

JsonObject& JsonObject::null(std::string_view k) {
  key(k);
  text_.append("null");
  return *this;
}

JsonObject& JsonObject::raw(std::string_view k, std::string_view json) {
  key(k);
  text_.append(json);
  return *this;
}

JsonObject& JsonObject::time(std::string_view k, std::optional<std::int64_t> us) {
  if (!us) return null(k);
  key(k);
  text_.push_back('"');
  append_rfc3339(text_, *us);
  text_.push_back('"');
  return *this;
}

std::string json_array_of(const std::vector<std::string>& texts) {
  std::string out = "[";
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (i) out.push_back(',');
    out.append(texts[i]);
  }
  out.push_back(']');
  return out;
}

}  // namespace esctl
