// esctl streams: one row per stream (name, last version, count, last position, last recorded_at),
// in natural order of names (order-2 before order-10).
#include <algorithm>

#include <fmt/format.h>

#include "commands/command.hpp"
#include "core/json_text.hpp"
#include "core/names.hpp"
#include "core/time.hpp"
#include "render/json_object.hpp"
#include "render/table.hpp"

namespace esctl::cmd {
namespace {
struct StreamsOptions {
  std::string category, prefix;
};
}  // namespace

Runner setup_streams(CLI::App& app) {
  auto o = std::make_shared<StreamsOptions>();
  app.description("List streams: name, version (last), events, last position, last recorded_at");
  app.add_option("--category", o->category, "Only streams of this category");
  app.add_option("--prefix", o->prefix, "Only streams whose name starts with P (plain bytes, no wildcards)");
  return [o](Context& ctx) {
    Store store = ctx.open_store(Access::read);
    auto rows = store.streams(o->category.empty() ? std::nullopt : std::optional(o->category),
                              o->prefix.empty() ? std::nullopt : std::optional(o->prefix));
    if (ctx.quiet()) return 0;
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return natural_less(a.name, b.name); });
    if (ctx.json()) {
      for (const auto& r : rows) {
        auto& b = ctx.out.buf();
        b.append(JsonObject()
                     .string("stream", r.name)
                     .number("version", r.version)
                     .number("count", r.count)
                     .number("last_position", r.last_position)
                     .time("last_recorded_at", r.last_recorded_at)
                     .line());
        ctx.out.commit();
      }
      return 0;
    }
    Table t({"STREAM", "VERSION", "EVENTS", "LAST POSITION", "LAST RECORDED_AT"});
    t.right(1).right(2).right(3);
    for (const auto& r : rows)
      t.add({r.name, std::to_string(r.version), std::to_string(r.count), std::to_string(r.last_position),
             format_rfc3339(r.last_recorded_at)});
    t.render(ctx.out.buf());
    ctx.out.commit();
    return 0;
  };
}

}  // namespace esctl::cmd
