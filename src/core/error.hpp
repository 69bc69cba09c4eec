// Typed errors for every layer of esctl, and the one mapping from error kind to exit code.
// The store throws Error; commands let it propagate; main prints it and exits with exit_code().
// Exceptions (not expected<>) because C++20 has no std::expected and every caller would only forward.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace esctl {

enum class Errc {
  usage,          ///< bad command line: unknown flag, bad value (exit 2)
  not_found,      ///< store, stream, queue, query db, file missing (exit 4)
  conflict,       ///< expected-version conflict, id reused for different content (exit 3)
  invalid_input,  ///< malformed JSON/NDJSON, bad projection, bad stream name (exit 5)
  corrupt,        ///< not an esctl store, newer schema, damaged file (exit 1)
  busy,           ///< lock not obtained within --busy-timeout (exit 7)
  read_only,      ///< store not writable (exit 1)
  io,             ///< I/O error, disk full, other SQLite failure (exit 1)
  internal,       ///< a bug (exit 1)
  interrupted,    ///< SIGINT (exit 130)
};

/// Exit codes, as esctl(1) documents them (EXIT STATUS).
namespace exit_code {
inline constexpr int kOk = 0;
inline constexpr int kFailure = 1;
inline constexpr int kUsage = 2;
inline constexpr int kConflict = 3;
inline constexpr int kNotFound = 4;
inline constexpr int kInvalidInput = 5;
inline constexpr int kViolations = 6;
inline constexpr int kBusy = 7;
inline constexpr int kParked = 8;
inline constexpr int kThreshold = 9;  ///< check: a health threshold was exceeded
inline constexpr int kInterrupted = 130;
}  // namespace exit_code

/// The exit status a failure of kind `c` ends the process with.
int exit_code_for(Errc c) noexcept;
const char* errc_name(Errc c) noexcept;

class Error : public std::runtime_error {
 public:
  Error(Errc code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
  Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

/// A failure whose message names a setting the caller chose (a queue's max attempts, a pull's
/// size, appending with version checks): the layer that throws it names the setting in its own
/// words ("invalid max attempts 0: ..."); a command that took the setting from a flag words the
/// message again with the flag (worded("--max-attempts")). So no layer below the commands
/// names a command-line flag, and users still read the flag they typed.
class SettingError : public Error {
 public:
  /// The message is `parts` joined by `setting` (the setting is named between each two parts).
  SettingError(Errc code, std::string setting, std::vector<std::string> parts)
      : Error(code, join(parts, setting)), setting_(std::move(setting)), parts_(std::move(parts)) {}
  /// The setting's own name, e.g. "max attempts".
  const std::string& setting() const noexcept { return setting_; }
  /// The message with the setting named `name` instead.
  std::string worded(std::string_view name) const { return join(parts_, name); }

 private:
  static std::string join(const std::vector<std::string>& parts, std::string_view name);
  std::string setting_;
  std::vector<std::string> parts_;
};

/// No connection to a store's server: it was lost (a server restart, a network failure) or
/// cannot be made. What ran on it was rolled back, except a COMMIT in flight, whose outcome is
/// unknown (the message says so). Opening the store again may succeed once the server is back.
/// Exits as Errc::io; only a caller that can safely start over (a queue drain) catches it apart.
class ConnectionLost : public Error {
 public:
  ConnectionLost(std::string server, std::string message)
      : Error(Errc::io, std::move(message)), server_(std::move(server)) {}
  /// The server, for messages: e.g. "the PostgreSQL server of 'URI'" (never a password).
  const std::string& server() const noexcept { return server_; }

 private:
  std::string server_;
};

/// Thrown when stdout is a closed pipe (`esctl read --all | head`): ends the command quietly.
struct BrokenPipe {};

}  // namespace esctl
