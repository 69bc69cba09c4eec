// esctl stats: a summary of the store (path, schema, size, events, streams) and its queues.
// Built as a list of fields, each printed as an aligned "label: value" line and as one member
// of the --json object, so a module (queues) adds its part with add() / add_block().
#include <fmt/format.h>

#include "commands/command.hpp"
#include "core/json_text.hpp"
#include "render/json_object.hpp"
#include "render/table.hpp"
#include "render/units.hpp"
#include "store/queue.hpp"

namespace esctl::cmd {
namespace {

class Summary {
 public:
  /// A field: `label` for humans (none: JSON only), `key` and `json` (a JSON value text) for --json.
  void add(std::string label, std::string human, std::string key, std::string json) {
    fields_.push_back({std::move(label), std::move(human), std::move(key), std::move(json)});
  }
  void add(std::string label, std::int64_t v, std::string key) { add(std::move(label), std::to_string(v), std::move(key), std::to_string(v)); }
  void add_text(std::string label, std::string_view v, std::string key) {
    std::string j;
    json::append_quoted(j, v);
    add(std::move(label), std::string(v), std::move(key), std::move(j));
  }
  /// A member of the JSON object that is shown to humans as its own block of lines (a table).
  void add_block(std::string human_block, std::string key, std::string json) {
    blocks_.push_back({std::move(human_block), std::move(key), std::move(json)});
  }

  void render(std::string& out, bool as_json) const {
    if (as_json) {
      out.push_back('{');
      bool first = true;
      auto member = [&](const std::string& key, const std::string& value) {
        if (!first) out.push_back(',');
        first = false;
        json::append_quoted(out, key);
        out.push_back(':');
        out.append(value);
      };
      for (const auto& f : fields_) member(f.key, f.json);
      for (const auto& b : blocks_) member(b.key, b.json);
      out.append("}\n");
      return;
    }
    std::size_t width = 0;
    for (const auto& f : fields_) width = std::max(width, f.label.size());
    for (const auto& f : fields_)
      if (!f.label.empty()) out.append(fmt::format("{:<{}} {}\n", f.label + ":", width + 1, f.human));
    for (const auto& b : blocks_) out.append("\n").append(b.human);
  }

 private:
  struct Field {
    std::string label, human, key, json;
  };
  struct Block {
    std::string human, key, json;
  };
  std::vector<Field> fields_;
  std::vector<Block> blocks_;
};

}  // namespace

Runner setup_stats(CLI::App& app) {
  app.description("Summarise the store: path, schema version, file size, events, streams, queues with lag");
  return [](Context& ctx) {
    Store store = ctx.open_store(Access::read);
    auto st = store.stats();
    if (ctx.quiet()) return 0;
    Summary sum;
    sum.add_text("store", st.location, "store");
    if (!st.server.empty()) {  // a database server: "server: PostgreSQL 15.18", "server_version":"15.18"
      std::string version;
      json::append_quoted(version, st.server_version);
      sum.add("server", st.server + " " + st.server_version, "server_version", std::move(version));
    }
    sum.add("schema version", st.schema_version, "schema_version");
    // The backend's sizes: the first is the store's ("file size 1.2 MB"), the others its parts
    // beside it ("(+64 kB WAL)").
    if (!st.sizes.empty()) {
      std::string human = human_bytes(st.sizes.front().bytes);
      for (std::size_t i = 1; i < st.sizes.size(); ++i)
        human += fmt::format(" (+{} {})", human_bytes(st.sizes[i].bytes), st.sizes[i].label);
      sum.add(st.sizes.front().label, human, st.sizes.front().key, std::to_string(st.sizes.front().bytes));
      for (std::size_t i = 1; i < st.sizes.size(); ++i) sum.add("", "", st.sizes[i].key, std::to_string(st.sizes[i].bytes));
    }
    sum.add("events", st.events, "events");
    sum.add("streams", st.streams, "streams");
    sum.add("head position", st.last_position, "head_position");
    // Queues with their lag.
    {
      auto queues = Queues(store).statuses(Clock::now());
      std::vector<std::string> js;
      Table t({"QUEUE", "LAG", "CURSOR", "PARKED"});
      t.right(1).right(2).right(3);
      for (const auto& q : queues) {
        js.push_back(JsonObject()
                         .string("name", q.queue.name)
                         .number("lag", q.lag)
                         .number("cursor", q.queue.cursor)
                         .number("parked", q.parked)
                         .str());
        t.add({q.queue.name, std::to_string(q.lag), std::to_string(q.queue.cursor), std::to_string(q.parked)});
      }
      std::string human;
      if (queues.empty()) human = "no queues\n";
      else t.render(human);
      // Humans see the count in the table (or "no queues"); --json has it as a number.
      sum.add("", "", "queue_count", std::to_string(queues.size()));
      sum.add_block(std::move(human), "queues", json_array_of(js));
    }
    sum.render(ctx.out.buf(), ctx.json());
    ctx.out.commit();
    return 0;
  };
}

}  // namespace esctl::cmd
