// Errc -> exit code: the single place the exit status table of esctl(1) lives in code; and the
// wording of SettingError's messages.
#include "core/error.hpp"

namespace esctl {

int exit_code_for(Errc c) noexcept {
  switch (c) {
    case Errc::usage: return exit_code::kUsage;
    case Errc::not_found: return exit_code::kNotFound;
    case Errc::conflict: return exit_code::kConflict;
    case Errc::invalid_input: return exit_code::kInvalidInput;
    case Errc::busy: return exit_code::kBusy;
    case Errc::interrupted: return exit_code::kInterrupted;
    case Errc::corrupt:
    case Errc::read_only:
    case Errc::io:
    case Errc::internal: return exit_code::kFailure;
  }
  return exit_code::kFailure;
}

const char* errc_name(Errc c) noexcept {
  switch (c) {
    case Errc::usage: return "usage";
    case Errc::not_found: return "not_found";
    case Errc::conflict: return "conflict";
    case Errc::invalid_input: return "invalid_input";
    case Errc::corrupt: return "corrupt";
    case Errc::busy: return "busy";
    case Errc::read_only: return "read_only";
    case Errc::io: return "io";
    case Errc::internal: return "internal";
    case Errc::interrupted: return "interrupted";
  }
  return "internal";
}

std::string SettingError::join(const std::vector<std::string>& parts, std::string_view name) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += name;
    out += parts[i];
  }
  return out;
}

}  // namespace esctl
