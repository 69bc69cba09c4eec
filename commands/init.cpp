// esctl init: create an empty store (schema, WAL mode). Safe to run on an existing store.
#include <fmt/format.h>

#include "commands/command.hpp"
#include "core/json_text.hpp"
#include "render/json_object.hpp"
#include "render/units.hpp"

namespace esctl::cmd {

Runner setup_init(CLI::App& app) {
  app.description("Create an empty store at --store (default ./events.db); a no-op on an existing store");
  return [](Context& ctx) {
    Store store = ctx.open_store(Access::write);
    auto st = store.stats();
    if (ctx.json()) {
      auto& b = ctx.out.buf();
      b.append(JsonObject()
                   .string("store", st.location)  // without a password
                   .number("schema_version", st.schema_version)
                   .number("events", st.events)
                   .line());
      ctx.out.commit();
    } else if (!ctx.quiet()) {
      ctx.out.write(fmt::format("store ready at {} ({})\n", st.location, counted(st.events, "event")));
    }
    return 0;
  };
}

}  // namespace esctl::cmd
