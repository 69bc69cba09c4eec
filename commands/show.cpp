// esctl show: one event in full, found by its position or its id: every field with data and
// meta indented for humans, or the event object with --json.
#include <fmt/format.h>

#include "commands/command.hpp"
#include "core/error.hpp"
#include "core/uuid.hpp"
#include "render/event_format.hpp"

namespace esctl::cmd {

Runner setup_show(CLI::App& app) {
  auto what = std::make_shared<std::string>();
  app.description("Print one event in full, by its global position or its id");
  app.add_option("event", *what, "A position (e.g. 42) or an event id (UUID)")->required();
  return [what](Context& ctx) {
    std::optional<std::int64_t> position;
    std::optional<Uuid> id;
    if (!what->empty() && what->find_first_not_of("0123456789") == std::string::npos) {
      position = parse_count(*what, "POSITION");
      if (*position < 1) throw Error(Errc::usage, "invalid POSITION '0': positions start at 1");
    } else if (!(id = parse_uuid(*what))) {
      throw Error(Errc::usage, fmt::format("'{}' is neither a position nor an event id (expected e.g. 42 or "
                                           "018f2c1e-7b3a-7c00-8000-000000000000)",
                                           *what));
    }
    Store store = ctx.open_store(Access::read);
    auto print = [&](const EventRef& e) {
      if (ctx.quiet()) return true;
      auto& b = ctx.out.buf();
      if (ctx.json()) append_event_json(b, e);
      else append_event_block(b, e, ctx.style);
      b.push_back('\n');
      ctx.out.commit();
      return true;
    };
    bool found = position ? store.read_event_at(*position, print) : store.read_event_by_id(id->view(), print);
    if (!found)
      throw Error(Errc::not_found, position ? fmt::format("no event at position {} (the head is {})", *position,
                                                          store.last_position())
                                            : fmt::format("no event with id {}", *what));
    return 0;
  };
}

}  // namespace esctl::cmd
