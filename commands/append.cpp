// esctl append: one event (TYPE [DATA]) or many (--ndjson) to one stream, in one transaction.
#include <charconv>
#include <filesystem>

#include <fmt/format.h>

#include "commands/command.hpp"
#include "commands/io.hpp"
#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/names.hpp"
#include "core/ndjson.hpp"
#include "render/json_object.hpp"

namespace esctl::cmd {
namespace {

struct AppendOptions {
  std::string stream, type, data, meta, id, expect = "any";
  std::string ndjson;  // FILE or '-'; empty: single-event form
  bool ndjson_given = false;
};

Expect parse_expect(const std::string& s) {
  if (s == "any") return {};
  if (s == "none") return {Expect::none};
  if (s == "exists") return {Expect::exists};
  std::int64_t v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0)
    throw Error(Errc::usage, fmt::format("invalid --expect value '{}': use any, none, exists or a version number", s));
  return {Expect::version, v};
}

std::string data_argument(const std::string& arg) {
  if (arg.empty()) return "{}";
  if (arg == "-") return checked_json(read_all_input("-"), "data from stdin");
  if (arg[0] == '@') {
    // Refuse an oversized file before reading it: the limit also bounds memory.
    std::error_code ec;
    auto size = std::filesystem::file_size(arg.substr(1), ec);
    if (!ec && size > kMaxJsonBytes)
      throw Error(Errc::invalid_input, fmt::format("data in '{}' is {} bytes, over the limit of {} bytes (64 MiB) per "
                                                   "event's data or meta",
                                                   arg.substr(1), size, kMaxJsonBytes));
  }
  if (arg[0] == '@') return checked_json(read_all_input(arg.substr(1)), fmt::format("data in '{}'", arg.substr(1)));
  return checked_json(arg, "data");
}

void print_result(Context& ctx, const Appended& a) {
  if (ctx.quiet()) return;
  auto& b = ctx.out.buf();
  if (ctx.json()) {
    b.append(JsonObject()
                 .string("stream", a.stream)
                 .number("version", a.version)
                 .number("position", a.position)
                 .string("id", format_uuid(a.id))
                 .line());
  } else {
    b.append(fmt::format("{}@{} #{}\n", a.stream, a.version, a.position));
  }
  ctx.out.commit();
}

}  // namespace

Runner setup_append(CLI::App& app) {
  auto o = std::make_shared<AppendOptions>();
  app.description("Append one event (TYPE [DATA]) or, with --ndjson, many events to STREAM atomically");
  app.add_option("stream", o->stream, "Stream name")->required();
  app.add_option("type", o->type, "Event type (not with --ndjson)");
  app.add_option("data", o->data, "Event data: JSON text, '-' for stdin, or @FILE (default {})");
  app.add_option("--meta", o->meta, "Event metadata as JSON (default {})");
  app.add_option("--id", o->id, "Event id (UUID); re-appending the same event with it is a no-op");
  app.add_option("--expect", o->expect, "Expected stream state: any, none, exists or the last version N");
  app.add_option("--ndjson", o->ndjson, "Read events as NDJSON from FILE or '-' (stdin), one per line")
      ->expected(0, 1)
      ->default_str("-");
  return [o, &app](Context& ctx) {
    check_stream_name(o->stream);
    Expect expect = parse_expect(o->expect);
    std::vector<NewEvent> events;
    if (app.count("--ndjson")) {
      if (!o->type.empty())
        throw Error(Errc::usage, "TYPE and DATA are not used with --ndjson: put \"type\" and \"data\" in each line");
      if (!o->id.empty() || !o->meta.empty())
        throw Error(Errc::usage, "--id and --meta are not used with --ndjson: put \"id\" and \"meta\" in each line");
      LineReader lines(o->ndjson.empty() ? "-" : o->ndjson);
      std::string_view line;
      while (lines.next(line)) {
        if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
        events.push_back(parse_event_line(line, lines.line_no(), o->stream));
      }
      if (events.empty()) throw Error(Errc::invalid_input, "no events in the --ndjson input; nothing appended");
    } else {
      if (o->type.empty()) throw Error(Errc::usage, "missing TYPE: esctl append STREAM TYPE [DATA] (or --ndjson)");
      check_event_type(o->type);
      NewEvent ev;
      ev.stream = o->stream;
      ev.type = o->type;
      ev.data = data_argument(o->data);
      if (!o->meta.empty()) ev.meta = checked_json(o->meta, "--meta");
      if (!o->id.empty()) {
        ev.id = parse_uuid(o->id);
        if (!ev.id) throw Error(Errc::usage, fmt::format("invalid --id '{}': expected a UUID like 0190a6e4-...", o->id));
      }
      events.push_back(std::move(ev));
    }
    Store store = ctx.open_store(Access::write);
    for (const auto& a : store.append(events, expect, false)) print_result(ctx, a);
    return 0;
  };
}

}  // namespace esctl::cmd
