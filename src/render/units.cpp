// Byte sizes in binary units and counted nouns for human output (units.hpp).
#include "render/units.hpp"

#include <fmt/format.h>

namespace esctl {

std::string human_bytes(std::int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double v = static_cast<double>(bytes);
  std::size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) v /= 1024, ++u;
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

std::string counted(std::int64_t n, std::string_view noun, std::string_view plural) {
  if (n == 1) return fmt::format("1 {}", noun);
  if (plural.empty()) return fmt::format("{} {}s", n, noun);
  return fmt::format("{} {}", n, plural);
}

}  // namespace esctl
