// esctl check: queue health against thresholds, for monitoring (cron, systemd timers, probes,
// CI gates). Reads Queues::status once per queue; exit 0 when every figure is within its
// threshold, 9 when one is not. Writes nothing.
#include <fmt/format.h>

#include "commands/command.hpp"
#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/names.hpp"
#include "core/time.hpp"
#include "render/json_object.hpp"
#include "store/queue.hpp"

namespace esctl::cmd {
namespace {

struct CheckOptions {
  std::vector<std::string> queues;
  std::string max_lag, max_age, max_parked, max_retrying;
};

/// How long the oldest unacked event (parked ones included) has waited in the queue, in ms;
/// nullopt when nothing is unacked. The one place that decides where that age counts from.
std::optional<std::int64_t> oldest_age_ms(const QueueStatus& st, std::int64_t now) {
  // From when it became deliverable to this queue: its commit, or the queue's create, reset or
  // rebuild handover if later (history imported into a new queue is not an old backlog).
  if (!st.oldest_position || !st.oldest_since_us) return std::nullopt;
  return std::max<std::int64_t>(0, (now - *st.oldest_since_us) / 1000);
}

struct Verdict {
  const QueueStatus* status;
  std::optional<std::int64_t> age_ms;
  std::vector<std::string> breaches;  // "lag 1200 > 1000"
};

}  // namespace

Runner setup_check(CLI::App& app) {
  auto o = std::make_shared<CheckOptions>();
  app.description(
      "Check queues against thresholds for monitoring: one line per queue, 'ok' or 'breach' with the figures "
      "that crossed; exit 0 when all are within, 9 on a breach");
  app.add_option("--queue", o->queues, "Check only this queue (repeatable; default: every queue)");
  app.add_option("--max-lag", o->max_lag, "Breach when more than N events are not acked");
  app.add_option("--max-age", o->max_age, "Breach when the oldest unacked event (parked included) is older than DUR");
  app.add_option("--max-parked", o->max_parked, "Breach when more than N events are parked");
  app.add_option("--max-retrying", o->max_retrying, "Breach when more than N events wait for a retry");
  return [o](Context& ctx) {
    for (const auto& q : o->queues) check_queue_name(q);
    std::optional<std::int64_t> max_lag, max_age, max_parked, max_retrying;
    if (!o->max_lag.empty()) max_lag = parse_count(o->max_lag, "--max-lag");
    if (!o->max_parked.empty()) max_parked = parse_count(o->max_parked, "--max-parked");
    if (!o->max_retrying.empty()) max_retrying = parse_count(o->max_retrying, "--max-retrying");
    if (!o->max_age.empty()) {
      max_age = parse_duration_ms(o->max_age);
      if (!max_age)
        throw Error(Errc::usage, fmt::format("invalid --max-age value '{}': expected a duration like 30s, 5m or 1h",
                                             o->max_age));
    }

    Store store = ctx.open_store(Access::read);
    Queues queues(store);
    std::vector<QueueStatus> statuses;
    if (o->queues.empty()) {
      statuses = queues.statuses(Clock::now());
    } else {
      for (const auto& q : o->queues) statuses.push_back(queues.status(q, Clock::now()));
    }
    const std::int64_t now = now_us();

    std::vector<Verdict> verdicts;
    bool ok = true;
    for (const auto& st : statuses) {
      Verdict v{&st, oldest_age_ms(st, now), {}};
      auto over = [&](const char* figure, std::optional<std::int64_t> value, std::optional<std::int64_t> limit) {
        if (value && limit && *value > *limit) v.breaches.push_back(fmt::format("{} {} > {}", figure, *value, *limit));
      };
      over("lag", st.lag, max_lag);
      over("oldest_age_ms", v.age_ms, max_age);
      over("parked", st.parked, max_parked);
      over("retrying", st.retrying, max_retrying);
      ok = ok && v.breaches.empty();
      verdicts.push_back(std::move(v));
    }

    if (!ctx.quiet()) {
      auto& b = ctx.out.buf();
      if (ctx.json()) {
        std::vector<std::string> items;
        for (const auto& v : verdicts)
          items.push_back(JsonObject()
                               .string("name", v.status->queue.name)
                               .number("lag", v.status->lag)
                               .number("oldest_age_ms", v.age_ms)
                               .number("parked", v.status->parked)
                               .number("retrying", v.status->retrying)
                               .raw("breaches", json::string_array(v.breaches))
                               .str());
        b.append(JsonObject().boolean("ok", ok).raw("queues", json_array_of(items)).line());
      } else {
        for (const auto& v : verdicts) {
          const QueueStatus& st = *v.status;
          if (v.breaches.empty()) {
            b.append(st.queue.name).push_back(' ');
            ctx.style.paint(b, "32", "ok");
            b.append(fmt::format(" (lag {}, oldest_age_ms {}, parked {}, retrying {})\n", st.lag,
                                 v.age_ms ? std::to_string(*v.age_ms) : "-", st.parked, st.retrying));
          } else {
            std::string list;
            for (const auto& br : v.breaches) list += (list.empty() ? "" : ", ") + br;
            b.append(st.queue.name).push_back(' ');
            ctx.style.paint(b, "31", "breach");
            b.append(": ").append(list).push_back('\n');
          }
        }
      }
      ctx.out.commit();
    }
    return ok ? 0 : exit_code::kThreshold;
  };
}

}  // namespace esctl::cmd
