// Store locations, backend-neutral: which backend a location names (a `postgresql://` or
// `postgres://` URI: PostgreSQL; anything else: a SQLite file path), and the one form in which
// esctl shows a location in messages (a URI without its password).
#include "store/location.hpp"

namespace esctl {

std::size_t postgres_scheme_length(std::string_view location) {
  for (std::string_view scheme : {"postgresql://", "postgres://"})
    if (location.substr(0, scheme.size()) == scheme) return scheme.size();
  return 0;
}

std::string display_location(std::string_view location) {
  const std::size_t start = postgres_scheme_length(location);
  if (start == 0) return std::string(location);
  std::string out(location.substr(0, start));
  std::size_t p = start;
  while (p < location.size() && location[p] != '@' && location[p] != '/') ++p;
  std::size_t rest = start;
  if (p < location.size() && location[p] == '@') {
    std::string_view info = location.substr(start, p - start);
    out += info.substr(0, info.find(':'));
    out += '@';
    rest = p + 1;
  }
  std::string_view tail = location.substr(rest);
  auto q = tail.find('?');
  out += tail.substr(0, q);
  if (q == std::string_view::npos) return out;
  std::string_view query = tail.substr(q + 1);
  std::string kept;
  while (true) {
    auto amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    if (!kv.empty() && kv.substr(0, 9) != "password=") kept.append(kept.empty() ? "" : "&").append(kv);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  if (!kept.empty()) out.append("?").append(kept);
  return out;
}

}  // namespace esctl
