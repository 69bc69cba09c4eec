// Terminal styling decisions: whether to colour (--color, NO_COLOR, TTY) and the escape codes.
#pragma once
#include <string>
#include <string_view>

namespace esctl {

/// Decides colour from --color auto|always|never, NO_COLOR and whether `fd` is a terminal.
/// Throws Error(usage) for any other --color value.
bool want_color(std::string_view mode, int fd);

struct Style {
  bool color = false;
  /// Appends `text` wrapped in SGR `code` (e.g. "33" yellow) when colouring.
  void paint(std::string& out, std::string_view code, std::string_view text) const {
    if (!color) {
      out.append(text);
      return;
    }
    out.append("\x1b[").append(code).append("m").append(text).append("\x1b[0m");
  }
};

}  // namespace esctl
