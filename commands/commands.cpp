// The command table (like git's commands[] in git.c) and the global options. Adding a command:
// write commands/<name>.cpp with setup_<name>(), add one row here, a man page and completions.
#include <charconv>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "commands/command.hpp"
#include "commands/print.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "render/json_object.hpp"

namespace esctl::cmd {

namespace {
constexpr Command kCommands[] = {
    {"init", "Create an empty store", setup_init},
    {"append", "Append events to a stream", setup_append},
    {"import", "Append NDJSON events (the export format) in batches", setup_import},
    {"export", "Write events as NDJSON, in position order", setup_export},
    {"read", "Print the events of a stream, a category or the whole store", setup_read},
    {"tail", "Print the last events and optionally follow new ones", setup_tail},
    {"show", "Print one event in full, by position or id", setup_show},
    {"streams", "List streams with their version and last position", setup_streams},
    {"stats", "Summarise the store: size, events, streams, queues", setup_stats},
    {"queue", "Manage projector queues: create, pull, ack, drain, ...", setup_queue},
    {"rebuild", "Rebuild a query db from scratch with a projection", setup_rebuild},
    {"verify", "Check store integrity and per-stream ordering", setup_verify},
    {"check", "Exit 9 when a queue's lag, age, parked or retrying passes a threshold", setup_check},
    {"__complete", "", setup_complete},
};
}  // namespace

std::span<const Command> commands() { return kCommands; }

namespace {

/// What `--help` shows for an option's value instead of CLI11's TEXT/INT: "cmd --opt" rows
/// first (the same name can mean different things), then "--opt". Options added later get the
/// upper-cased option name (`--since` shows `SINCE`) until they get a row here.
constexpr std::pair<std::string_view, std::string_view> kValueNames[] = {
    {"read --from", "VERSION|POSITION"},
    {"queue create --from", "start|end|POSITION"},
    {"queue reset --to", "start|end|POSITION"},
    {"queue create --stream", "GLOB"},
    {"--store", "PATH"},
    {"--color", "WHEN"},
    {"--busy-timeout", "DUR"},
    {"--meta", "JSON"},
    {"--id", "UUID"},
    {"--expect", "any|none|exists|N"},
    {"--ndjson", "FILE"},
    {"--batch", "N"},
    {"--count", "N"},
    {"--max", "N"},
    {"--max-attempts", "N"},
    {"--max-events", "N"},
    {"--parallel", "N"},
    {"--from", "POSITION"},
    {"--category", "C"},
    {"--type", "T"},
    {"--prefix", "P"},
    {"--stream", "STREAM"},
    {"--projection", "FILE"},
    {"--queue", "NAME"},
    {"--log", "FILE"},
    {"--ack-timeout", "DUR"},
    {"--lease", "DUR"},
    {"--delay", "DUR"},
    {"--on-poison", "block|park"},
    {"--reason", "MESSAGE"},
    {"--exec", "CMD"},
    {"--pipe", "CMD"},
    {"--into", "DB"},
    {"--since", "TIME"},
    {"--until", "TIME"},
    {"--format", "TEMPLATE"},
};

std::string value_name(const std::string& command, const CLI::Option& opt) {
  std::string name = opt.get_lnames().empty() ? "" : "--" + opt.get_lnames().front();
  for (const auto& [key, value] : kValueNames)
    if (key == command + " " + name) return std::string(value);
  for (const auto& [key, value] : kValueNames)
    if (key == name) return std::string(value);
  std::string upper;
  for (char c : name.empty() ? opt.get_name() : name.substr(2))
    upper.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
  return upper;
}

/// Gives every option of `app` and its subcommands a value name for `--help` (see kValueNames);
/// positionals show their own name only ("stream", not "stream TEXT").
void name_values(CLI::App& app, const std::string& command) {
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_type_size() == 0 || opt->get_type_name().rfind("TEXT", 0) != 0) continue;
    opt->type_name(opt->nonpositional() ? value_name(command, *opt) : "");
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->get_name().empty()) name_values(*sub, command);  // an option group: its options are the app's
    else name_values(*sub, command.empty() ? sub->get_name() : command + " " + sub->get_name());
  }
}

/// The command `argv` names (the first argument that is neither an option nor a global option's
/// value), if it is one of kCommands; else empty.
std::string_view command_named(int argc, const char* const* argv, const CLI::App& app) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") return {};
    if (a.size() > 1 && a[0] == '-') {
      // A global option that takes a value takes the next argument too ("--store x.db").
      if (a.starts_with("--") && a.find('=') == std::string_view::npos) {
        const CLI::Option* opt = app.get_option_no_throw(std::string(a));
        if (opt && opt->get_type_size() > 0) ++i;
      }
      continue;
    }
    for (const auto& c : kCommands)
      if (a == c.name) return c.name;
    return {};
  }
  return {};
}

}  // namespace

void build_cli(CLI::App& app, Globals& g, std::map<const CLI::App*, Runner>& runners, int argc,
               const char* const* argv) {
  app.set_version_flag("--version", version_text(), "Print esctl's and SQLite's versions");
  app.require_subcommand(0, 1);
  app.fallthrough();
  auto* globals = app.add_option_group("Global options");
  globals->add_option("--store", g.store, "Store file, or a postgresql:// URI (default: $ESCTL_STORE, else ./events.db)");
  globals->add_flag("--json", g.json, "Machine output: NDJSON per event, one JSON object for summaries");
  globals->add_flag("-q,--quiet", g.quiet, "No output except errors");
  globals->add_option("--color", g.color, "Colour: auto, always or never (NO_COLOR is honoured)")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  globals->add_option("--busy-timeout", g.busy_timeout, "How long to wait for a lock held elsewhere (default 5s)");
  const std::string_view only = argv ? command_named(argc, argv, app) : std::string_view();
  // Value names and footers only show in help and usage errors, which main parses again with
  // everything built: a command line that names a command skips them.
  const bool for_help = only.empty();
  if (for_help) name_values(app, "");
  // Each command's --help ends with the global options, laid out as CLI11 lays out its own.
  std::string footer = "Global options (before or after the command; see esctl(1)):\n";
  if (auto f = std::dynamic_pointer_cast<CLI::Formatter>(app.get_formatter()); f && for_help)
    for (const CLI::Option* opt : globals->get_options())
      if (opt != app.get_help_ptr()) footer += f->make_option(opt, false);
  for (const auto& c : kCommands) {
    auto* sub = app.add_subcommand(c.name, c.summary);
    sub->fallthrough();
    if (c.summary[0] == '\0') sub->group("");  // hidden helper commands
    if (!only.empty() && only != c.name) continue;  // only its name: the command line names another
    runners[sub] = c.setup(*sub);
    if (for_help) name_values(*sub, c.name), sub->footer(footer);
    for (auto* nested : sub->get_subcommands([](CLI::App* a) { return !a->get_name().empty(); })) {
      if (for_help) nested->footer(footer);
      // Nested subcommands (queue create, ...) run their parent's runner, which dispatches.
      runners.emplace(nested, runners[sub]);
    }
  }
}

std::string version_text() {
  std::string libs;
  for (const auto& lib : backend_libraries()) libs += fmt::format("{}{} {}", libs.empty() ? "" : ", ", lib.name, lib.version);
  return fmt::format("esctl {} ({})", ESCTL_VERSION, libs);
}

std::string version_json() {
  JsonObject j;
  j.string("version", ESCTL_VERSION);
  for (const auto& lib : backend_libraries()) j.string(lib.key, lib.version);
  return j.line();
}

std::int64_t parse_count(const std::string& value, const char* option) {
  std::int64_t v = -1;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || p != value.data() + value.size() || v < 0)
    throw Error(Errc::usage, fmt::format("invalid {} value '{}': expected a non-negative integer", option, value));
  return v;
}

Error with_flag_names(const SettingError& e, std::initializer_list<FlagName> flags) {
  for (const auto& f : flags)
    if (f.setting == e.setting()) return Error(e.code(), e.worded(f.flag));
  return Error(e.code(), e.what());
}

std::optional<EventTemplate> parse_format(const Context& ctx, const std::string& text, bool given, bool deliveries) {
  if (!given) return std::nullopt;
  if (ctx.json()) throw Error(Errc::usage, "--format and --json cannot be used together");
  return EventTemplate::parse(text, deliveries);
}

TimeRange parse_time_range(const std::string& since, const std::string& until) {
  TimeRange r;
  const std::int64_t now = now_us();
  auto one = [&](const std::string& v, const char* option, bool end_of_day) {
    auto t = parse_time_bound(v, end_of_day, now);
    if (!t)
      throw Error(Errc::usage, fmt::format("invalid {} value '{}': expected an RFC 3339 time "
                                           "(2026-11-10T08:00:00Z), a date (2026-11-10) or a duration ago (15m, 2h, 7d)",
                                           option, v));
    return *t;
  };
  if (!since.empty()) r.since = one(since, "--since", false);
  if (!until.empty()) r.until = one(until, "--until", true);
  return r;
}

void add_time_options(CLI::App& app, std::string& since, std::string& until) {
  app.add_option("--since", since,
                 "Only events recorded at or after TIME: RFC 3339, a UTC date (its start) or a duration ago (15m, 2h, 7d)");
  app.add_option("--until", until,
                 "Only events recorded at or before TIME: RFC 3339, a UTC date (its end) or a duration ago");
}

CLI::Option* add_format_option(CLI::App& app, std::string& format) {
  return app.add_option("--format", format,
                        "One line per event from TEMPLATE: {position} {stream} {version} {type} {id} "
                        "{recorded_at} {data} {meta} {data.PATH} {meta.PATH}");
}

}  // namespace esctl::cmd
