// Unsigned LEB128 varints: 7 bits a byte, low bits first, the high bit set on every byte but the
// last. The one codec of the packed lists the store keeps in blobs (a queue run's members).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace esctl {

/// Appends `v` to `out`.
inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

/// Reads one varint at `at` into `v` and moves `at` past it. False if `in` ends inside it or it
/// is longer than 64 bits allow (then `v` and `at` are unspecified).
inline bool get_varint(std::string_view in, std::size_t& at, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; at < in.size() && shift < 64; shift += 7) {
    auto b = static_cast<unsigned char>(in[at++]);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

}  // namespace esctl
