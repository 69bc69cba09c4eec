// Command summaries as JSON (`--json` output of init, append, queue, check, stats, verify...):
// one small writer, so that no command quotes strings or places commas by hand. It builds no
// tree: members are appended in the order given, nested values come in as JSON text.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace esctl {

/// A JSON object written member by member. Keys are written as given (quoted and escaped).
class JsonObject {
 public:
  JsonObject& string(std::string_view key, std::string_view value);
  /// null when absent
  JsonObject& string_or_null(std::string_view key, const std::optional<std::string>& value);
  JsonObject& number(std::string_view key, std::int64_t value);
  /// null when absent
  JsonObject& number(std::string_view key, std::optional<std::int64_t> value);
  /// `value` with `digits` digits after the point.
  JsonObject& fixed(std::string_view key, double value, int digits);
  JsonObject& boolean(std::string_view key, bool value);
  JsonObject& null(std::string_view key);
  /// `json` must be one JSON text (an array or object written elsewhere, e.g. by another
  /// JsonObject, json_array_of() or json::string_array()); it is copied as it is.
  JsonObject& raw(std::string_view key, std::string_view json);
  /// An RFC 3339 UTC time with microseconds, from µs since the epoch; null when absent.
  JsonObject& time(std::string_view key, std::optional<std::int64_t> us);

  /// The object's text, closed.
  std::string str() const { return text_ + "}"; }
  /// The object's text, closed and ended with a newline: one line of NDJSON.
  std::string line() const { return text_ + "}\n"; }

 private:
  void key(std::string_view k);
  std::string text_ = "{";
};

/// A JSON array of JSON texts (e.g. JsonObject::str() of each element).
std::string json_array_of(const std::vector<std::string>& texts);

}  // namespace esctl
