// Printing events in the form the options ask for: human lines, NDJSON objects or a --format
// template; and the --since/--until time range shared by read, tail and export.
#pragma once
#include <optional>

#include "commands/command.hpp"
#include "render/event_format.hpp"
#include "render/template.hpp"

namespace esctl::cmd {

/// --format TEMPLATE, parsed (exit 2 on a bad template, before the store is opened); nullopt
/// when not given. Refuses --format together with --json.
std::optional<EventTemplate> parse_format(const Context& ctx, const std::string& text, bool given, bool deliveries);

/// --since/--until as inclusive recorded_at bounds in µs (see parse_time_bound).
struct TimeRange {
  std::optional<std::int64_t> since, until;
  bool any() const { return since || until; }
  bool contains(std::int64_t us) const { return (!since || us >= *since) && (!until || us <= *until); }
};
/// Parses --since/--until values (empty: not given), or throws Error(usage).
TimeRange parse_time_range(const std::string& since, const std::string& until);

/// Declares --since and --until on `app`, storing into `since`/`until`.
void add_time_options(CLI::App& app, std::string& since, std::string& until);
/// Declares --format TEMPLATE (the event placeholders) on `app`; its count() says whether it was given.
CLI::Option* add_format_option(CLI::App& app, std::string& format);

class EventPrinter {
 public:
  explicit EventPrinter(Context& ctx, const std::optional<EventTemplate>* format = nullptr)
      : ctx_(ctx), format_(format && *format ? &**format : nullptr) {}
  void operator()(const EventRef& e, std::string_view json_extra = {}, const DeliveryFields* d = nullptr) {
    if (ctx_.quiet()) return;
    auto& b = ctx_.out.buf();
    if (format_) format_->render(b, e, d);
    else if (ctx_.json()) append_event_json(b, e, json_extra);
    else append_event_line(b, e, ctx_.style);
    b.push_back('\n');
    ctx_.out.commit();
  }

 private:
  Context& ctx_;
  const EventTemplate* format_;
};

}  // namespace esctl::cmd
