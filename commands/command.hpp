// How a subcommand plugs into esctl: a setup function declares its options on a CLI::App and
// returns a Runner; main parses, then runs the chosen Runner with a Context. Commands never do
// work inside CLI11 callbacks, so tests can drive runners in-process.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "core/error.hpp"
#include "render/output.hpp"
#include "render/style.hpp"
#include "store/store.hpp"

namespace esctl::cmd {

/// Options every command accepts, before or after the command name (esctl(1), GLOBAL OPTIONS).
struct Globals {
  std::string store;  ///< --store; empty: $ESCTL_STORE, else ./events.db
  bool json = false;
  bool quiet = false;
  std::string color = "auto";
  std::string busy_timeout = "5s";
};

struct Context {
  Globals globals;
  Output& out;
  Style style;                 ///< colour decided for stdout
  bool progress = false;       ///< stderr is a terminal: long work may draw a progress bar
  StoreOptions store_options;  ///< resolved path and busy timeout

  bool json() const { return globals.json; }
  bool quiet() const { return globals.quiet; }
  Store open_store(Access access) const { return Store(store_options, access); }
};

/// Returns the process exit code; failures are thrown as esctl::Error.
using Runner = std::function<int(Context&)>;

struct Command {
  const char* name;
  const char* summary;
  Runner (*setup)(CLI::App& app);
};

/// Every command, in the order `esctl --help` lists them.
std::span<const Command> commands();

/// Builds the command line: global options and every command. `runners` receives the Runner
/// for each (sub)command app. Given the command line (`argv`), a command it names is the only
/// one built in full; the others are added by name alone, enough to parse that command line and
/// much cheaper than building them all. Every option's value shows in `--help` by what it is
/// (`--batch N`, `--store PATH`), and each command's `--help` ends with the global options.
void build_cli(CLI::App& app, Globals& globals, std::map<const CLI::App*, Runner>& runners, int argc = 0,
               const char* const* argv = nullptr);

/// "esctl 0.1.0 (SQLite 3.x.y)", and the same as a JSON object line for `--json --version`.
std::string version_text();
std::string version_json();

/// Parses a --from/--count style non-negative integer option value, or throws Error(usage).
std::int64_t parse_count(const std::string& value, const char* option);

/// Which flag sets a setting the layers below name in their own words (core/error.hpp's
/// SettingError), e.g. {"max attempts", "--max-attempts"}.
struct FlagName {
  std::string_view setting;
  std::string_view flag;
};
/// `e` as the command's user sees it: an Error of the same kind whose message names the flag of
/// `flags` that sets e's setting (unchanged if none does).
Error with_flag_names(const SettingError& e, std::initializer_list<FlagName> flags);

// One per command file.
Runner setup_init(CLI::App&);
Runner setup_append(CLI::App&);
Runner setup_import(CLI::App&);
Runner setup_export(CLI::App&);
Runner setup_read(CLI::App&);
Runner setup_tail(CLI::App&);
Runner setup_streams(CLI::App&);
Runner setup_stats(CLI::App&);
Runner setup_queue(CLI::App&);
Runner setup_rebuild(CLI::App&);
Runner setup_verify(CLI::App&);
Runner setup_show(CLI::App&);
Runner setup_check(CLI::App&);
Runner setup_complete(CLI::App&);

}  // namespace esctl::cmd
