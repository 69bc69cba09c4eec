// esctl export: events as NDJSON full event objects (the import format), in position order, in
// constant memory. Always NDJSON, with or without --json; one read snapshot for the whole run.
#include <fmt/format.h>

#include "commands/command.hpp"
#include "commands/print.hpp"
#include "core/error.hpp"
#include "core/names.hpp"
#include "render/event_format.hpp"

namespace esctl::cmd {
namespace {
struct ExportOptions {
  std::string stream, category, from, since, until;
  bool all = false;
};
}  // namespace

Runner setup_export(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  app.description("Write events as NDJSON full event objects (the import format), in position order");
  app.add_option("stream", o->stream, "Export only this stream");
  app.add_flag("--all", o->all, "Export every stream (the default)");
  app.add_option("--category", o->category, "Export only the streams of category C");
  app.add_option("--from", o->from, "First global position to export (inclusive)");
  add_time_options(app, o->since, o->until);
  return [o](Context& ctx) {
    const TimeRange time = parse_time_range(o->since, o->until);
    if (!o->stream.empty() + o->all + !o->category.empty() > 1)
      throw Error(Errc::usage, "export takes at most one of STREAM, --all or --category C");
    if (!o->stream.empty()) check_stream_name(o->stream);
    std::int64_t from = o->from.empty() ? 1 : parse_count(o->from, "--from");
    Store store = ctx.open_store(Access::read);
    if (ctx.quiet()) return 0;
    auto emit = [&](const EventRef& e) {
      auto& b = ctx.out.buf();
      append_event_json(b, e);
      b.push_back('\n');
      ctx.out.commit();
      return true;
    };
    if (!o->stream.empty()) {
      // A stream's version order is its position order.
      store.read_stream(o->stream, std::nullopt, std::nullopt, false,
                        [&](const EventRef& e) {
                          return e.position < from || !time.contains(e.recorded_at_us) || emit(e);
                        });
      return 0;
    }
    EventFilter f;
    if (!o->category.empty()) f.categories.push_back(o->category);
    if (time.any()) store.read_all_in_time(from, std::nullopt, f, time.since, time.until, emit);
    else store.read_all(from, std::nullopt, f, emit);
    return 0;
  };
}

}  // namespace esctl::cmd
