#include "render/style.hpp"

#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>

#include "core/error.hpp"

namespace esctl {

bool want_color(std::string_view mode, int fd) {
  if (mode == "always") return true;
  if (mode == "never") return false;
  if (mode != "auto")
    throw Error(Errc::usage, fmt::format("invalid --color value '{}': use auto, always or never", mode));
  const char* no_color = std::getenv("NO_COLOR");
  if (no_color && *no_color) return false;
  const char* term = std::getenv("TERM");
  if (term && std::string_view(term) == "dumb") return false;
  return ::isatty(fd);
}

}  // namespace esctl
