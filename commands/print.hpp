// Printing events in the form the global options ask for: human lines or NDJSON objects.
#pragma once
#include "commands/command.hpp"
#include "render/event_format.hpp"

namespace esctl::cmd {

class EventPrinter {
 public:
  explicit EventPrinter(Context& ctx) : ctx_(ctx) {}
  void operator()(const EventRef& e, std::string_view json_extra = {}) {
    if (ctx_.quiet()) return;
    auto& b = ctx_.out.buf();
    if (ctx_.json()) append_event_json(b, e, json_extra);
    else append_event_line(b, e, ctx_.style);
    b.push_back('\n');
    ctx_.out.commit();
  }

 private:
  Context& ctx_;
};

}  // namespace esctl::cmd
