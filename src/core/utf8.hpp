// UTF-8 as Unicode's table 3-7 defines it: the one decoder of the project (JSON strings, names).
// Well-formed means no overlong forms, no surrogates U+D800..U+DFFF, nothing past U+10FFFF.
#pragma once
#include <cstddef>
#include <string_view>

namespace esctl::utf8 {

/// The length (2-4) of the well-formed multi-byte sequence at `p`, whose lead byte is >= 0x80,
/// reading no byte at or past `end`; 0 if it is not well-formed.
inline std::size_t sequence_length(const unsigned char* p, const unsigned char* end) {
  const unsigned char lead = p[0];
  const auto avail = end - p;
  auto cont = [](unsigned char b) { return (b & 0xC0) == 0x80; };
  if (lead < 0xC2) return 0;  // a continuation byte, or C0/C1 which only start overlong forms
  if (lead < 0xE0) return avail >= 2 && cont(p[1]) ? 2 : 0;
  if (lead < 0xF0) {
    // E0 would be overlong below A0; ED from A0 encodes surrogates.
    const unsigned char lo = lead == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = lead == 0xED ? 0x9F : 0xBF;
    return avail >= 3 && p[1] >= lo && p[1] <= hi && cont(p[2]) ? 3 : 0;
  }
  if (lead < 0xF5) {
    // F0 would be overlong below 90; F4 from 90 is past U+10FFFF.
    const unsigned char lo = lead == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = lead == 0xF4 ? 0x8F : 0xBF;
    return avail >= 4 && p[1] >= lo && p[1] <= hi && cont(p[2]) && cont(p[3]) ? 4 : 0;
  }
  return 0;
}

/// Decodes the code point at s[i] and moves `i` past it; -1 (and `i` unchanged) if no
/// well-formed sequence starts there.
inline long next_code_point(std::string_view s, std::size_t& i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  if (*p < 0x80) {
    ++i;
    return *p;
  }
  const std::size_t n = sequence_length(p, reinterpret_cast<const unsigned char*>(s.data()) + s.size());
  if (n == 0) return -1;
  long cp = p[0] & (0x7f >> n);
  for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (p[k] & 0x3f);
  i += n;
  return cp;
}

}  // namespace esctl::utf8
