// --format templates (see template.hpp). Member paths are looked up by skipping over the stored
// minified JSON token by token: a lookup costs one pass over the bytes before the member.
#include "render/template.hpp"

#include <charconv>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/time.hpp"
#include "core/uuid.hpp"

namespace esctl {
namespace {

constexpr const char* kKnown =
    "{position} {stream} {version} {type} {id} {recorded_at} {data} {meta} {data.PATH} {meta.PATH}";

/// The index just past the string literal starting at s[i] (a quote).
std::size_t skip_string(std::string_view s, std::size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return s.size();
}

/// The index just past the JSON value starting at s[i] (minified: no whitespace).
std::size_t skip_value(std::string_view s, std::size_t i) {
  if (i >= s.size()) return i;
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return i;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;
  return i;
}

/// The member `key` of the object `obj` (raw text), or nullopt.
std::optional<std::string_view> object_member(std::string_view obj, std::string_view key) {
  std::size_t i = 1;
  while (i < obj.size() && obj[i] == '"') {
    std::size_t key_end = skip_string(obj, i);
    std::string_view literal = obj.substr(i, key_end - i);
    std::size_t value = key_end + 1;  // past ':'
    std::size_t end = skip_value(obj, value);
    // Keys without escapes compare as they are; the others are decoded first.
    bool match = literal.find('\\') == std::string_view::npos
                     ? literal.substr(1, literal.size() - 2) == key
                     : json::decode_string(literal) == std::optional<std::string>(std::string(key));
    if (match) return obj.substr(value, end - value);
    if (end >= obj.size() || obj[end] != ',') break;
    i = end + 1;
  }
  return std::nullopt;
}

/// Element `index` (decimal text) of the array `arr`, or nullopt.
std::optional<std::string_view> array_element(std::string_view arr, std::string_view index) {
  std::size_t n = 0;
  auto [p, ec] = std::from_chars(index.data(), index.data() + index.size(), n);
  if (ec != std::errc() || p != index.data() + index.size()) return std::nullopt;
  std::size_t i = 1;
  if (i < arr.size() && arr[i] == ']') return std::nullopt;
  for (std::size_t k = 0; i < arr.size(); ++k) {
    std::size_t end = skip_value(arr, i);
    if (k == n) return arr.substr(i, end - i);
    if (end >= arr.size() || arr[end] != ',') break;
    i = end + 1;
  }
  return std::nullopt;
}

/// A member's text: strings decoded (unquoted), anything else as its JSON text.
void append_value(std::string& out, std::string_view raw) {
  if (!raw.empty() && raw.front() == '"') {
    if (auto s = json::decode_string(raw)) {
      out.append(*s);
      return;
    }
  }
  out.append(raw);
}

void append_int(std::string& out, std::int64_t v) { fmt::format_to(std::back_inserter(out), "{}", v); }

}  // namespace

std::optional<std::string_view> json_member(std::string_view json, const std::vector<std::string>& path) {
  std::string_view cur = json;
  for (const auto& step : path) {
    if (cur.empty()) return std::nullopt;
    std::optional<std::string_view> next;
    if (cur.front() == '{') next = object_member(cur, step);
    else if (cur.front() == '[') next = array_element(cur, step);
    if (!next) return std::nullopt;
    cur = *next;
  }
  return cur;
}

EventTemplate EventTemplate::parse(std::string_view text, bool deliveries) {
  EventTemplate t;
  std::string lit;
  auto flush = [&] {
    if (lit.empty()) return;
    t.parts_.push_back(Part{Field::literal, std::move(lit), {}});
    lit.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\') {
      char n = i + 1 < text.size() ? text[i + 1] : '\0';
      if (n == 't') lit.push_back('\t');
      else if (n == 'n') lit.push_back('\n');
      else if (n == '\\') lit.push_back('\\');
      else
        throw Error(Errc::usage, fmt::format("unknown escape '\\{}' in --format (use \\t, \\n or \\\\)",
                                             n ? std::string(1, n) : std::string()));
      ++i;
    } else if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        lit.push_back('}');
        ++i;
      } else {
        throw Error(Errc::usage, "unmatched '}' in --format (write '}}' for a literal brace)");
      }
    } else if (c == '{') {
      if (i + 1 < text.size() && text[i + 1] == '{') {
        lit.push_back('{');
        ++i;
        continue;
      }
      auto close = text.find('}', i);
      if (close == std::string_view::npos)
        throw Error(Errc::usage, "unmatched '{' in --format (write '{{' for a literal brace)");
      std::string_view name = text.substr(i + 1, close - i - 1);
      Part p;
      static constexpr std::pair<std::string_view, Field> kFields[] = {
          {"position", Field::position}, {"stream", Field::stream}, {"version", Field::version},
          {"type", Field::type},         {"id", Field::id},         {"recorded_at", Field::recorded_at},
          {"data", Field::data},         {"meta", Field::meta},     {"attempt", Field::attempt},
          {"lease", Field::lease}};
      bool found = false;
      for (auto [n, f] : kFields)
        if (name == n) {
          p.field = f;
          found = true;
        }
      if (!found && (name.starts_with("data.") || name.starts_with("meta."))) {
        p.field = name[0] == 'd' ? Field::data : Field::meta;
        std::string_view rest = name.substr(5);
        for (;;) {
          auto dot = rest.find('.');
          std::string_view step = rest.substr(0, dot);
          if (step.empty()) break;
          p.path.emplace_back(step);
          if (dot == std::string_view::npos) {
            found = true;
            break;
          }
          rest = rest.substr(dot + 1);
        }
      }
      if (found && !deliveries && (p.field == Field::attempt || p.field == Field::lease))
        throw Error(Errc::usage, fmt::format("placeholder '{{{}}}' is only for 'queue pull' --format", name));
      if (!found)
        throw Error(Errc::usage, fmt::format("unknown placeholder '{{{}}}' in --format (known: {}{})", name, kKnown,
                                             deliveries ? " {attempt} {lease}" : ""));
      flush();
      t.parts_.push_back(std::move(p));
      i = close;
    } else {
      lit.push_back(c);
    }
  }
  flush();
  return t;
}

void EventTemplate::render(std::string& out, const EventRef& e, const DeliveryFields* d) const {
  for (const auto& p : parts_) {
    switch (p.field) {
      case Field::literal: out.append(p.text); break;
      case Field::position: append_int(out, e.position); break;
      case Field::stream: out.append(e.stream); break;
      case Field::version: append_int(out, e.version); break;
      case Field::type: out.append(e.type); break;
      case Field::id: append_uuid(out, e.id); break;
      case Field::recorded_at: append_rfc3339(out, e.recorded_at_us); break;
      case Field::data:
      case Field::meta: {
        std::string_view json = p.field == Field::data ? e.data : e.meta;
        if (p.path.empty()) out.append(json);
        else if (auto v = json_member(json, p.path)) append_value(out, *v);
        break;
      }
      case Field::attempt:
        if (d) append_int(out, d->attempt);
        break;
      case Field::lease:
        if (d) out.append(d->lease);
        break;
    }
  }
}

}  // namespace esctl
