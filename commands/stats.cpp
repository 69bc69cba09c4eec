// esctl stats: a summary of the store (path, schema, size, events, streams) and its queues.
#include <fmt/format.h>

#include "commands/command.hpp"
#include "core/json_text.hpp"

namespace esctl::cmd {

Runner setup_stats(CLI::App& app) {
  app.description("Summarise the store: path, schema version, file size, events, streams, queues with lag");
  return [](Context& ctx) {
    Store store = ctx.open_store(Access::read);
    auto st = store.stats();
    if (ctx.quiet()) return 0;
    auto& b = ctx.out.buf();
    if (ctx.json()) {
      b.append("{\"store\":");
      json::append_quoted(b, st.path);
      b.append(fmt::format(",\"schema_version\":{},\"file_bytes\":{},\"wal_bytes\":{},\"events\":{},\"streams\":{},"
                           "\"head_position\":{}}}\n",
                           st.schema_version, st.file_bytes, st.wal_bytes, st.events, st.streams, st.head_position));
    } else {
      b.append(fmt::format("store:          {}\nschema version: {}\nfile size:      {} bytes (+{} WAL)\n"
                           "events:         {}\nstreams:        {}\nhead position:  {}\n",
                           st.path, st.schema_version, st.file_bytes, st.wal_bytes, st.events, st.streams,
                           st.head_position));
    }
    ctx.out.commit();
    return 0;
  };
}

}  // namespace esctl::cmd
