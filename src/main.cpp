// esctl entry point: build the CLI from the command table, parse, run the chosen command,
// and turn failures into esctl's exit codes (esctl(1), EXIT STATUS). All behaviour lives in
// commands/ and src/.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

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

/// "esctl queue drain": the command the user named, down to the innermost subcommand.
std::string command_path(const CLI::App& app) {
  std::string path = "esctl";
  for (const CLI::App* at = &app; !at->get_subcommands().empty();) {
    at = at->get_subcommands().front();
    path += " " + at->get_name();
  }
  return path;
}

/// "esctl queue drain --help" for the innermost command the user named.
std::string help_hint(const CLI::App& app) { return command_path(app) + " --help"; }

/// Edit distance, for "did you mean" on a mistyped command name.
std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// CLI11's parse errors in esctl's voice: what was wrong, in the words of git and friends.
std::string usage_message(const CLI::ParseError& e, const CLI::App& app) {
  const CLI::App* at = chosen(app);
  const std::string where = command_path(app);
  auto commands = at->get_subcommands([](const CLI::App* sub) { return !sub->get_name().empty(); });
  std::vector<std::string> extra;
  for (const CLI::App* a = at; a && extra.empty(); a = a->get_parent()) extra = a->remaining();
  std::string_view msg = e.what();
  if ((dynamic_cast<const CLI::ExtrasError*>(&e) || (dynamic_cast<const CLI::RequiredError*>(&e) &&
                                                     msg.find("subcommand") != std::string_view::npos)) &&
      !commands.empty()) {
    std::vector<std::string> names;
    for (const CLI::App* sub : commands) names.push_back(sub->get_name());
    if (extra.empty() || extra.front().starts_with('-'))
      return fmt::format("'{}' needs a command: {}", where, fmt::join(names, ", "));
    std::string best;
    std::size_t best_d = 3;  // suggest only close misspellings
    for (const auto& n : names)
      if (auto d = distance(extra.front(), n); d < best_d) best = n, best_d = d;
    return fmt::format("'{}' is not an {} command{}", extra.front(), where,
                       best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best));
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e) && !extra.empty()) {
    const auto& x = extra.front();
    if (x.starts_with('-') && x.size() > 1) return fmt::format("unknown option '{}'", x);
    return fmt::format("unexpected argument '{}' ({} takes no more)", x, where);
  }
  // "--count: 1 required TEXT missing"
  if (auto colon = msg.find(": "); dynamic_cast<const CLI::ArgumentMismatch*>(&e) && colon != std::string_view::npos &&
                                   msg.ends_with(" missing"))
    return fmt::format("{} needs a value", msg.substr(0, colon));
  std::string out(msg);
  if (!out.empty() && out[0] >= 'A' && out[0] <= 'Z' && (out.size() < 2 || !(out[1] >= 'A' && out[1] <= 'Z')))
    out[0] = static_cast<char>(out[0] - 'A' + 'a');
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  install_signal_handlers();
  Output out(STDOUT_FILENO);
  try {
    // The CLI is built for the command the command line names (the others by name only): a
    // quick `esctl append` does not pay for building every command. Help, version and usage
    // errors are rare, so they parse again with everything built, for complete help and hints.
    std::unique_ptr<CLI::App> app_ptr;
    cmd::Globals globals;
    std::map<const CLI::App*, cmd::Runner> runners;
    std::vector<std::string> help_path;
    CLI::App* help = nullptr;
    auto build = [&](bool lazily) {
      globals = cmd::Globals{};
      runners.clear();
      help_path.clear();
      app_ptr = std::make_unique<CLI::App>("esctl: an event store with CQRS projector queues in one SQLite file", "esctl");
      cmd::build_cli(*app_ptr, globals, runners, lazily ? argc : 0, lazily ? argv : nullptr);
      // `esctl help [CMD...]` prints the help of CMD, like `git help`.
      help = app_ptr->add_subcommand("help", "Show help for a command");
      help->add_option("command", help_path, "Command (and subcommand) to describe")->type_name("");
    };
    build(true);
    bool parsed = false;
    try {
      app_ptr->parse(argc, argv);
      parsed = true;
    } catch (const CLI::ParseError&) {
      build(false);
    }
    CLI::App& app = *app_ptr;
    try {
      if (!parsed) app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
      if (std::any_of(argv + 1, argv + argc, [](const char* a) { return std::string_view(a) == "--json"; })) {
        fmt::print("{}", cmd::version_json());
        return 0;
      }
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      return fail(fmt::format("{} (see '{}')", usage_message(e, app), help_hint(app)), exit_code::kUsage);
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
