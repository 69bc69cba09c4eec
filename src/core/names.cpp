// The name rules of streams, categories, event types and queues (see names.hpp).
#include "core/names.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/utf8.hpp"

namespace esctl {

std::optional<std::string> stream_name_problem(std::string_view name) {
  if (name.empty()) return "stream names must not be empty";
  if (name.size() > kMaxStreamName)
    return fmt::format("stream names are at most {} bytes, this one has {}", kMaxStreamName, name.size());
  if (name[0] == '$') return "stream names starting with '$' are reserved";
  for (std::size_t i = 0; i < name.size();) {
    long cp = utf8::next_code_point(name, i);
    if (cp < 0) return "stream names must be valid UTF-8";
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return "stream names must not contain control characters";
  }
  return std::nullopt;
}

void check_stream_name(std::string_view name) {
  if (auto why = stream_name_problem(name)) {
    std::string shown;
    for (unsigned char c : name.substr(0, 80)) {
      if (c < 0x20 || c == 0x7f) shown += fmt::format("\\x{:02x}", c);
      else shown += static_cast<char>(c);
    }
    throw Error(Errc::invalid_input, fmt::format("invalid stream name '{}': {}", shown, *why));
  }
}

std::string_view category_of(std::string_view stream) {
  auto dash = stream.find('-');
  return dash == std::string_view::npos ? stream : stream.substr(0, dash);
}

void check_queue_name(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char c : name)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-');
  if (!ok)
    throw Error(Errc::usage, fmt::format("invalid queue name '{}': use 1-64 characters from [A-Za-z0-9._-]", name));
}

}  // namespace esctl

namespace esctl {

void check_event_type(std::string_view type) {
  bool ok = !type.empty() && type.size() <= 255;
  for (std::size_t i = 0; ok && i < type.size();) {
    long cp = utf8::next_code_point(type, i);
    ok = cp >= 0x20 && !(cp >= 0x7f && cp <= 0x9f);
  }
  if (!ok)
    throw Error(Errc::invalid_input,
                fmt::format("invalid event type '{}': use 1-255 bytes of UTF-8 without control characters",
                            type.substr(0, 80)));
}

}  // namespace esctl

namespace esctl {

bool natural_less(std::string_view a, std::string_view b) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t i = 0, j = 0;
  int zeros_tiebreak = 0;  // fewer leading zeros first, when everything else is equal
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t za = i, zb = j;
      while (za < a.size() && a[za] == '0') ++za;
      while (zb < b.size() && b[zb] == '0') ++zb;
      std::size_t ea = za, eb = zb;
      while (ea < a.size() && digit(a[ea])) ++ea;
      while (eb < b.size() && digit(b[eb])) ++eb;
      if (ea - za != eb - zb) return ea - za < eb - zb;  // more significant digits: larger
      if (int c = a.substr(za, ea - za).compare(b.substr(zb, eb - zb)); c != 0) return c < 0;
      if (zeros_tiebreak == 0 && za - i != zb - j) zeros_tiebreak = za - i < zb - j ? -1 : 1;
      i = ea, j = eb;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i, ++j;
  }
  if (i < a.size() || j < b.size()) return j < b.size() && i == a.size();
  return zeros_tiebreak < 0;
}

}  // namespace esctl
