// esctl export: not implemented yet (placeholder so the command table is complete).
#include "commands/command.hpp"
#include "core/error.hpp"

namespace esctl::cmd {

Runner setup_export(CLI::App& app) {
  app.allow_extras();
  return [](Context&) -> int { throw Error(Errc::usage, "'esctl export' is not implemented yet"); };
}

}  // namespace esctl::cmd
