// esctl rebuild DB --projection FILE [--queue NAME] [--dry-run]: build a query db from scratch
// with a projection and atomically replace DB (esctl-rebuild(1)). The work is in src/projection/rebuild.cpp; this file
// parses options, draws progress and prints the summary.
#include <fmt/format.h>

#include "commands/command.hpp"
#include "core/error.hpp"
#include "core/names.hpp"
#include "render/json_object.hpp"
#include "render/progress.hpp"
#include "projection/projection.hpp"
#include "projection/rebuild.hpp"

namespace esctl::cmd {
namespace {

struct RebuildArgs {
  std::string db;
  std::string projection;
  std::string queue;
  bool dry_run = false;
};

std::string plural(std::int64_t n, const char* word) { return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s"); }

// The first members of a rebuild's summary: whether it was a dry run, its query db, projection
// and queue.
JsonObject summary_head(const RebuildArgs& o) {
  JsonObject j;
  if (o.dry_run) j.boolean("dry_run", true);
  j.string("db", o.db).string("projection", o.projection);
  if (o.queue.empty()) j.null("queue");
  else j.string("queue", o.queue);
  return j;
}

}  // namespace

Runner setup_rebuild(CLI::App& app) {
  auto o = std::make_shared<RebuildArgs>();
  app.description(
      "Build the query db DB from scratch with a projection, in a temporary file beside it, then atomically "
      "replace DB (see esctl-projection(5))");
  app.add_option("db", o->db, "The query db to build or replace")->required();
  app.add_option("--projection", o->projection, "The projection file: SQL with -- @init and -- @on TYPE sections")
      ->required();
  app.add_option("--queue", o->queue,
                 "Apply only the events this queue matches, then move its cursor to where the rebuild ended");
  app.add_flag("--dry-run", o->dry_run,
               "Check everything and print what the rebuild would do (how many of the queue's unacked events its "
               "hand-over would settle), writing nothing");
  return [o](Context& ctx) {
    if (!o->queue.empty()) check_queue_name(o->queue);
    // The projection first: a bad file is reported before the store is even opened.
    auto projection = std::make_shared<const Projection>(Projection::load(o->projection));
    Store store = ctx.open_store(Access::read);
    Progress progress(ctx.progress, "rebuild", "position");
    RebuildOptions options;
    options.db_path = o->db;
    options.queue = o->queue;
    options.dry_run = o->dry_run;
    options.progress = [&](std::int64_t position, std::int64_t head) {
      progress.set_total(head);
      progress.update(position, position);
    };
    RebuildResult r = rebuild(store, projection, options);
    progress.finish();
    if (ctx.quiet()) return 0;
    const auto& q = r.queue_before;
    if (o->dry_run) {
      if (ctx.json()) {
        JsonObject j = summary_head(*o);
        j.number("head", r.head_position).boolean("replaced", r.replaced);
        if (q)
          j.number("settled", r.settled)
              .number("pending", q->pending)
              .number("leased", q->leased)
              .number("retrying", q->retrying)
              .number("parked", q->parked);
        ctx.out.write(j.line());
      } else {
        ctx.out.write(fmt::format("would {} '{}' with '{}' through position {}\n", r.replaced ? "rebuild" : "build",
                                  o->db, o->projection, r.head_position));
        if (q)
          ctx.out.write(fmt::format("queue '{}' would continue after position {}: the hand-over would settle {} "
                                    "({} pending, {} leased, {} retrying, {} parked)\n",
                                    o->queue, r.head_position, plural(r.settled, "unacked event"), q->pending, q->leased,
                                    q->retrying, q->parked));
        ctx.out.write("dry run: nothing was written\n");
      }
      return 0;
    }
    double rate = r.seconds > 0 ? static_cast<double>(r.applied) / r.seconds : 0;
    if (ctx.json()) {
      ctx.out.write(summary_head(*o)
                        .number("head", r.head_position)
                        .number("applied", r.applied)
                        .number("streams", r.streams)
                        .boolean("replaced", r.replaced)
                        .number("settled", r.settled)
                        .fixed("seconds", r.seconds, 3)
                        .fixed("events_per_s", rate, 0)
                        .line());
    } else {
      ctx.out.write(fmt::format("rebuilt '{}' with '{}': {} event{} of {} stream{} applied, through position {}, "
                                "{:.2f}s, {:.0f} events/s\n",
                                o->db, o->projection, r.applied, r.applied == 1 ? "" : "s", r.streams,
                                r.streams == 1 ? "" : "s", r.head_position, r.seconds, rate));
      if (!o->queue.empty())
        ctx.out.write(fmt::format("queue '{}' continues after position {}; the hand-over settled {}\n", o->queue,
                                  r.head_position, plural(r.settled, "unacked event")));
    }
    return 0;
  };
}

}  // namespace esctl::cmd
