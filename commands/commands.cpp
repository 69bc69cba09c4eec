// The command table (like git's commands[] in git.c) and the global options. Adding a command:
// write commands/<name>.cpp with setup_<name>(), add one row here, a man page and completions.
#include <charconv>

#include <fmt/format.h>

#include "commands/command.hpp"
#include "commands/print.hpp"
#include "core/error.hpp"
#include "core/time.hpp"

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

void build_cli(CLI::App& app, Globals& g, std::map<const CLI::App*, Runner>& runners) {
  app.set_version_flag("--version", fmt::format("esctl {} (SQLite {})", ESCTL_VERSION, sqlite_version()),
                       "Print esctl's and SQLite's versions");
  app.require_subcommand(0, 1);
  app.fallthrough();
  auto* globals = app.add_option_group("Global options");
  globals->add_option("--store", g.store, "Store file (default: $ESCTL_STORE, else ./events.db)");
  globals->add_flag("--json", g.json, "Machine output: NDJSON per event, one JSON object for summaries");
  globals->add_flag("-q,--quiet", g.quiet, "No output except errors");
  globals->add_option("--color", g.color, "Colour: auto, always or never (NO_COLOR is honoured)")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  globals->add_option("--busy-timeout", g.busy_timeout, "How long to wait for a lock held elsewhere (default 5s)");
  for (const auto& c : kCommands) {
    auto* sub = app.add_subcommand(c.name, c.summary);
    sub->fallthrough();
    if (c.summary[0] == '\0') sub->group("");  // hidden helper commands
    runners[sub] = c.setup(*sub);
    // Nested subcommands (queue create, ...) run their parent's runner, which dispatches.
    for (auto* nested : sub->get_subcommands([](CLI::App* a) { return !a->get_name().empty(); }))
      runners.emplace(nested, runners[sub]);
  }
}

std::int64_t parse_count(const std::string& value, const char* option) {
  std::int64_t v = -1;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || p != value.data() + value.size() || v < 0)
    throw Error(Errc::usage, fmt::format("invalid {} value '{}': expected a non-negative integer", option, value));
  return v;
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

}  // namespace esctl::cmd
