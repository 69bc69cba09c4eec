// esctl __complete queues|streams [PREFIX]: names for the shell completion scripts. Hidden;
// prints nothing (and succeeds) when there is no store, so completion never shows errors.
#include "commands/command.hpp"
#include "core/error.hpp"
#include "store/queue.hpp"

namespace esctl::cmd {
namespace {
struct CompleteOptions {
  std::string what, prefix;
};
}  // namespace

Runner setup_complete(CLI::App& app) {
  auto o = std::make_shared<CompleteOptions>();
  app.add_option("what", o->what, "queues or streams")->required();
  app.add_option("prefix", o->prefix, "Only names starting with this");
  return [o](Context& ctx) {
    try {
      Store store = ctx.open_store(Access::read);
      if (o->what == "streams") {
        for (const auto& s : store.streams(std::nullopt, o->prefix.empty() ? std::nullopt : std::optional(o->prefix)))
          ctx.out.write(s.name + "\n");
      } else if (o->what == "queues") {
        for (const auto& name : Queues(store).names(o->prefix)) ctx.out.write(name + "\n");
      }
    } catch (const Error&) {
      // No store, or not readable: nothing to offer.
    }
    return 0;
  };
}

}  // namespace esctl::cmd
