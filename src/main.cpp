// esctl entry point: build the CLI from the command table, parse, run the chosen command,
// and turn failures into the exit codes of SPEC §3. All behaviour lives in commands/ and src/.
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>

#include "commands/command.hpp"
#include "core/error.hpp"
#include "core/signals.hpp"
#include "core/time.hpp"

using namespace esctl;

namespace {

int fail(std::string_view message, int code) {
  fmt::print(stderr, "esctl: error: {}\n", message);
  return code;
}

const CLI::App* chosen(const CLI::App& app) {
  const CLI::App* at = &app;
  while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
  return at;
}

/// "esctl queue drain --help" for the innermost command the user named.
std::string help_hint(const CLI::App& app) {
  std::string hint = "esctl";
  for (const CLI::App* at = &app;;) {
    auto subs = at->get_subcommands();
    if (subs.empty()) return hint + " --help";
    at = subs.front();
    hint += " " + at->get_name();
  }
}

}  // namespace

int main(int argc, char** argv) {
  install_signal_handlers();
  Output out(STDOUT_FILENO);
  try {
    CLI::App app("esctl: an event store with CQRS projector queues in one SQLite file", "esctl");
    cmd::Globals globals;
    std::map<const CLI::App*, cmd::Runner> runners;
    cmd::build_cli(app, globals, runners);
    // `esctl help [CMD...]` prints the help of CMD, like `git help`.
    std::vector<std::string> help_path;
    auto* help = app.add_subcommand("help", "Show help for a command");
    help->add_option("command", help_path, "Command (and subcommand) to describe");
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      return fail(fmt::format("{} (see '{}')", e.what(), help_hint(app)), exit_code::kUsage);
    }
    if (help->parsed()) {
      CLI::App* target = &app;
      std::string prefix;
      for (const auto& name : help_path) {
        try {
          prefix += prefix.empty() ? target->get_name() : " " + target->get_name();
          target = target->get_subcommand(name);
        } catch (const CLI::OptionNotFound&) {
          return fail(fmt::format("unknown command '{}' (see 'esctl --help')", name), exit_code::kUsage);
        }
      }
      fmt::print("{}", target->help(target == &app ? "" : prefix));
      return 0;
    }
    const CLI::App* at = chosen(app);
    auto it = runners.find(at);
    if (at == &app || it == runners.end()) {
      fmt::print(stderr, "{}", (at == &app ? app : *at).help());
      return exit_code::kUsage;
    }
    if (globals.store.empty()) {
      const char* env = std::getenv("ESCTL_STORE");
      globals.store = env && *env ? env : "events.db";
    }
    auto busy = parse_duration_ms(globals.busy_timeout);
    if (!busy || *busy > INT32_MAX)
      return fail(fmt::format("invalid --busy-timeout value '{}': use a duration like 250ms, 5s, 2m or 1h",
                              globals.busy_timeout),
                  exit_code::kUsage);
    cmd::Context ctx{globals, out, Style{want_color(globals.color, STDOUT_FILENO)},
                     !globals.quiet && ::isatty(STDERR_FILENO) != 0,
                     StoreOptions{globals.store, static_cast<int>(*busy)}};
    int rc = it->second(ctx);
    out.flush();
    return rc;
  } catch (const BrokenPipe&) {
    return 0;
  } catch (const Error& e) {
    try {
      out.flush();
    } catch (...) {
    }
    if (e.code() == Errc::interrupted) return exit_code::kInterrupted;
    return fail(e.what(), exit_code_for(e.code()));
  } catch (const std::exception& e) {
    return fail(fmt::format("internal error: {}", e.what()), exit_code::kFailure);
  }
}
