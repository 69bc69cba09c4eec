// esctl read: events of one stream (by version), of a category, or of the whole store (by position).
#include <fmt/format.h>

#include "commands/command.hpp"
#include "commands/print.hpp"
#include "core/error.hpp"
#include "core/names.hpp"

namespace esctl::cmd {
namespace {
struct ReadOptions {
  std::string stream, category, from, count, since, until, format;
  std::vector<std::string> types;
  bool all = false, backwards = false;
};
}  // namespace

Runner setup_read(CLI::App& app) {
  auto o = std::make_shared<ReadOptions>();
  app.description("Print the events of STREAM (by version), of a --category or of --all (by position)");
  app.add_option("stream", o->stream, "Stream name");
  app.add_flag("--all", o->all, "Read every stream, in position order");
  app.add_option("--category", o->category, "Read the streams of one category, in position order");
  app.add_option("--type", o->types, "Only events of this type (repeatable)");
  app.add_option("--from", o->from, "First version (STREAM) or position (--all, --category) to print");
  app.add_option("--count", o->count, "Print at most N events");
  app.add_flag("--backwards", o->backwards, "STREAM only: newest first, from --from (default: the last version) down");
  add_time_options(app, o->since, o->until);
  auto* format = add_format_option(app, o->format);
  return [o, format](Context& ctx) {
    const auto tmpl = parse_format(ctx, o->format, format->count() > 0, false);
    const TimeRange time = parse_time_range(o->since, o->until);
    int sources = !o->stream.empty() + o->all + !o->category.empty();
    if (sources != 1) throw Error(Errc::usage, "read needs exactly one of STREAM, --all or --category C");
    std::optional<std::int64_t> from, count;
    if (!o->from.empty()) from = parse_count(o->from, "--from");
    if (!o->count.empty()) count = parse_count(o->count, "--count");
    if (!o->stream.empty()) check_stream_name(o->stream);
    else if (o->backwards) throw Error(Errc::usage, "--backwards works with STREAM only");
    Store store = ctx.open_store(Access::read);
    EventPrinter print(ctx, &tmpl);
    if (!o->stream.empty()) {
      if (!o->types.empty() || time.any()) {
        EventFilter f;
        f.types = o->types;
        std::int64_t left = count.value_or(INT64_MAX);
        store.read_stream(o->stream, from, std::nullopt, o->backwards, [&](const EventRef& e) {
          if (!f.matches_type(e.type) || !time.contains(e.recorded_at_us)) return true;
          print(e);
          return --left > 0;
        });
      } else {
        store.read_stream(o->stream, from, count, o->backwards, [&](const EventRef& e) {
          print(e);
          return true;
        });
      }
      return 0;
    }
    EventFilter f;
    f.types = o->types;
    if (!o->category.empty()) f.categories.push_back(o->category);
    auto each = [&](const EventRef& e) {
      print(e);
      return true;
    };
    if (time.any()) store.read_all_in_time(from.value_or(1), count, f, time.since, time.until, each);
    else store.read_all(from.value_or(1), count, f, each);
    return 0;
  };
}

}  // namespace esctl::cmd
