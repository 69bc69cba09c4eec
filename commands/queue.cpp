// esctl queue create|ls|status|pull|ack|nack|drain|parked|retry|reset|delete: parses options,
// calls src/store/queue.hpp and drain.hpp, prints. The delivery algorithm is in store/queue.cpp.
#include <fmt/format.h>

#include <charconv>
#include <cstring>
#include <memory>

#include "commands/command.hpp"
#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/names.hpp"
#include "core/time.hpp"
#include "render/event_format.hpp"
#include "render/json_object.hpp"
#include "render/progress.hpp"
#include "render/template.hpp"
#include "render/table.hpp"
#include "drain/drain.hpp"
#include "drain/exec_handler.hpp"
#include "drain/pipe_handler.hpp"
#include "drain/projection_handler.hpp"
#include "projection/projection.hpp"
#include "store/queue.hpp"

namespace esctl::cmd {
namespace {

struct QueueOptions {
  std::string name;
  // create
  std::string from = "end", max_attempts = "5", ack_timeout = "30s", on_poison = "block";
  std::vector<std::string> streams, categories, types;
  // pull
  std::string max = "1", lease, format;
  bool format_given = false;
  // ack, nack, retry
  std::vector<std::string> positions;
  std::string delay = "0ms", reason = "nacked";
  bool all = false;
  // drain
  std::string exec, pipe, projection, into, batch = "1000", parallel = "1", max_events;
  bool follow = false;
  // reset
  std::string to;
  // reset, delete, retry
  bool dry_run = false, force = false;
};

std::int64_t duration_ms(const std::string& v, const char* option) {
  auto ms = parse_duration_ms(v);
  if (!ms) throw Error(Errc::usage, fmt::format("invalid {} value '{}': use a duration like 250ms, 5s, 2m or 1h", option, v));
  return *ms;
}

std::int64_t positive(const std::string& v, const char* option) {
  std::int64_t n = parse_count(v, option);
  if (n < 1) throw Error(Errc::usage, fmt::format("invalid {} value '{}': expected a positive integer", option, v));
  return n;
}

StartPoint start_point(const std::string& v, const char* option) {
  if (v == "start") return {StartPoint::start};
  if (v == "end") return {StartPoint::end};
  std::int64_t p = -1;
  try {
    p = parse_count(v, option);
  } catch (const Error&) {
    throw Error(Errc::usage, fmt::format("invalid {} value '{}': use start, end or a position", option, v));
  }
  return {StartPoint::at, p};
}

std::vector<std::int64_t> positions_of(const std::vector<std::string>& args) {
  std::vector<std::int64_t> out;
  for (const auto& a : args) out.push_back(positive(a, "POSITION"));
  return out;
}

// `POSITION:LEASE` (fenced: settles that delivery only) or a bare `POSITION` (an override).
std::vector<Target> targets_of(const std::vector<std::string>& args) {
  std::vector<Target> out;
  for (const auto& a : args) {
    auto colon = a.find(':');
    Target t;
    if (colon == std::string::npos) {
      t.position = positive(a, "POSITION");
    } else {
      std::string p = a.substr(0, colon), l = a.substr(colon + 1);
      auto bad = [&] {
        return Error(Errc::usage, fmt::format("invalid POSITION:LEASE '{}': give a position and the \"lease\" of "
                                              "its delivery as 'queue pull --json' prints them, like 7:12",
                                              a));
      };
      if (p.empty() || l.empty() || p.find_first_not_of("0123456789") != std::string::npos ||
          l.find_first_not_of("0123456789") != std::string::npos)
        throw bad();
      t.position = positive(p, "POSITION");
      t.lease = positive(l, "LEASE");
    }
    out.push_back(t);
  }
  return out;
}

// Reports the fenced targets that were stale; the exit status of `queue ack|nack`.
int report_stale(const std::vector<Target>& stale, const std::string& queue, const char* verb) {
  for (const auto& t : stale)
    fmt::print(stderr,
               "esctl: error: {}:{} of queue '{}' is stale: that delivery's lease expired or the event was delivered "
               "again or settled since; not {} (a bare position {} overrides)\n",
               t.position, *t.lease, queue, verb, t.position);
  return stale.empty() ? 0 : exit_code::kConflict;
}

std::string duration_text(std::int64_t ms) {
  if (ms > 0 && ms % 3600000 == 0) return fmt::format("{}h", ms / 3600000);
  if (ms > 0 && ms % 60000 == 0) return fmt::format("{}m", ms / 60000);
  if (ms > 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

std::string age_text(std::int64_t us) {
  if (us < 0) us = 0;
  std::int64_t s = us / 1000000;
  if (s < 1) return fmt::format("{}ms", us / 1000);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
  return fmt::format("{}d{:02}h", s / 86400, s / 3600 % 24);
}

std::string filter_text(const EventFilter& f) {
  if (f.empty()) return "every event";
  std::vector<std::string> parts;
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!f.stream_globs.empty()) parts.push_back("streams " + list(f.stream_globs));
  if (!f.categories.empty()) parts.push_back((f.stream_globs.empty() ? "categories " : "or categories ") + list(f.categories));
  if (!f.types.empty()) parts.push_back("types " + list(f.types));
  return list(parts);
}

std::string status_json(const QueueStatus& st) {
  const QueueInfo& q = st.queue;
  JsonObject filter;
  filter.raw("streams", json::string_array(q.filter.stream_globs))
      .raw("categories", json::string_array(q.filter.categories))
      .raw("types", json::string_array(q.filter.types));
  JsonObject o;
  o.string("name", q.name)
      .number("cursor", q.cursor)
      .number("head", st.head_position)
      .number("lag", st.lag)
      .number("pending", st.pending)
      .number("leased", st.leased)
      .number("retrying", st.retrying)
      .number("parked", st.parked)
      .number("oldest_unacked_position", st.oldest_position)
      .time("oldest_unacked_at", st.oldest_recorded_at_us)
      .time("oldest_unacked_since", st.oldest_since_us)
      .number("start", q.start_position)
      .raw("filter", filter.str())
      .number("max_attempts", q.max_attempts)
      .number("ack_timeout_ms", q.ack_timeout_ms)
      .string("on_poison", poison_name(q.on_poison));
  return o.str();
}

std::string oldest_text(const QueueStatus& st, std::int64_t now, bool long_form) {
  if (!st.oldest_position) return long_form ? "none" : "-";
  std::string age = st.oldest_since_us ? age_text(now - *st.oldest_since_us) : "?";
  if (!long_form) return age;
  std::string since;
  if (st.oldest_since_us && st.oldest_recorded_at_us && *st.oldest_since_us > *st.oldest_recorded_at_us)
    since = fmt::format(", deliverable to this queue since {}", format_rfc3339(*st.oldest_since_us));
  return fmt::format("position {}, recorded {}{} ({} ago)", *st.oldest_position,
                     st.oldest_recorded_at_us ? format_rfc3339(*st.oldest_recorded_at_us) : "?", since, age);
}

void print_status(Context& ctx, const QueueStatus& st) {
  auto& b = ctx.out.buf();
  if (ctx.json()) {
    b.append(status_json(st)).push_back('\n');
  } else {
    const QueueInfo& q = st.queue;
    b.append(fmt::format("queue:          {}\n"
                         "filter:         {}\n"
                         "start:          after position {}\n"
                         "cursor:         {}\n"
                         "head:           {}\n"
                         "lag:            {}\n"
                         "  pending:      {}\n"
                         "  leased:       {}\n"
                         "  retrying:     {}\n"
                         "  parked:       {}\n"
                         "oldest unacked: {}\n"
                         "policy:         max attempts {}, ack timeout {}, on poison {}\n",
                         q.name, filter_text(q.filter), q.start_position, q.cursor, st.head_position, st.lag, st.pending,
                         st.leased, st.retrying, st.parked, oldest_text(st, now_us(), true), q.max_attempts,
                         duration_text(q.ack_timeout_ms), poison_name(q.on_poison)));
  }
  ctx.out.commit();
}

int run_create(Context& ctx, const QueueOptions& o) {
  QueueSpec spec;
  spec.name = o.name;
  check_queue_name(spec.name);
  spec.filter.stream_globs = o.streams;
  spec.filter.categories = o.categories;
  spec.filter.types = o.types;
  spec.max_attempts = positive(o.max_attempts, "--max-attempts");
  spec.ack_timeout_ms = duration_ms(o.ack_timeout, "--ack-timeout");
  if (o.on_poison != "block" && o.on_poison != "park")
    throw Error(Errc::usage, fmt::format("invalid --on-poison value '{}': use park or block", o.on_poison));
  spec.on_poison = o.on_poison == "park" ? Poison::park : Poison::block;
  StartPoint from = start_point(o.from, "--from");
  Store store = ctx.open_store(Access::write);
  QueueInfo q = Queues(store).create(spec, from);
  if (ctx.quiet()) return 0;
  auto& b = ctx.out.buf();
  if (ctx.json()) {
    b.append(JsonObject().string("name", q.name).number("start", q.start_position).number("cursor", q.cursor).line());
  } else {
    b.append(fmt::format("created queue '{}': {} after position {}\n", q.name, filter_text(q.filter), q.start_position));
  }
  ctx.out.commit();
  return 0;
}

int run_ls(Context& ctx) {
  Store store = ctx.open_store(Access::read);
  auto all = Queues(store).statuses(Clock::now());
  if (ctx.quiet()) return 0;
  auto& b = ctx.out.buf();
  if (ctx.json()) {
    for (const auto& st : all) {
      b.append(status_json(st)).push_back('\n');
      ctx.out.commit();
    }
    return 0;
  }
  if (all.empty()) {
    b.append("no queues (create one with 'esctl queue create NAME')\n");
    ctx.out.commit();
    return 0;
  }
  Table t({"NAME", "CURSOR", "HEAD", "LAG", "PENDING", "LEASED", "RETRYING", "PARKED", "OLDEST", "FILTER"});
  for (std::size_t i = 1; i <= 8; ++i) t.right(i);
  std::int64_t now = now_us();
  for (const auto& st : all)
    t.add({st.queue.name, std::to_string(st.queue.cursor), std::to_string(st.head_position), std::to_string(st.lag),
           std::to_string(st.pending), std::to_string(st.leased), std::to_string(st.retrying),
           std::to_string(st.parked), oldest_text(st, now, false), filter_text(st.queue.filter)});
  t.render(b);
  ctx.out.commit();
  return 0;
}

int run_status(Context& ctx, const QueueOptions& o) {
  check_queue_name(o.name);
  Store store = ctx.open_store(Access::read);
  auto st = Queues(store).status(o.name, Clock::now());
  if (!ctx.quiet()) print_status(ctx, st);
  return 0;
}

int run_pull(Context& ctx, const QueueOptions& o) {
  check_queue_name(o.name);
  PullOptions po;
  po.max = positive(o.max, "--max");
  if (!o.lease.empty()) {
    po.lease_ms = duration_ms(o.lease, "--lease");
    if (*po.lease_ms < 1) throw Error(Errc::usage, "invalid --lease value '0ms': a lease must be longer than 0ms");
  }
  std::optional<EventTemplate> tmpl;
  if (o.format_given) {
    if (ctx.json()) throw Error(Errc::usage, "--format and --json cannot be used together");
    tmpl = EventTemplate::parse(o.format, true);
  }
  Store store = ctx.open_store(Access::update);
  auto r = Queues(store).pull(o.name, po, Clock::now());
  if (ctx.quiet()) return 0;
  std::string expires;
  append_rfc3339(expires, r.lease_expires_at_us);
  for (const auto& d : r.deliveries) {
    auto& b = ctx.out.buf();
    if (tmpl) {
      const std::string lease = std::to_string(d.lease);
      DeliveryFields fields{d.attempt, lease};
      tmpl->render(b, d.event.ref(), &fields);
    } else if (ctx.json())
      append_event_json(b, d.event.ref(), fmt::format("\"attempt\":{},\"lease\":{},\"lease_expires_at\":\"{}\"",
                                                      d.attempt, d.lease, expires));
    else
      append_event_line(b, d.event.ref(), ctx.style);
    b.push_back('\n');
    ctx.out.commit();
  }
  return 0;
}

int run_ack(Context& ctx, const QueueOptions& o) {
  check_queue_name(o.name);
  auto targets = targets_of(o.positions);
  Store store = ctx.open_store(Access::update);
  return report_stale(Queues(store).ack_targets(o.name, targets, Clock::now()), o.name, "acked");
}

int run_nack(Context& ctx, const QueueOptions& o) {
  check_queue_name(o.name);
  auto targets = targets_of(o.positions);
  std::int64_t delay = duration_ms(o.delay, "--delay");
  Store store = ctx.open_store(Access::update);
  return report_stale(Queues(store).nack_targets(o.name, targets, delay, o.reason, Clock::now()), o.name, "nacked");
}

int run_parked(Context& ctx, const QueueOptions& o) {
  check_queue_name(o.name);
  Store store = ctx.open_store(Access::read);
  auto all = Queues(store).parked(o.name);
  if (ctx.quiet()) return 0;
  auto& b = ctx.out.buf();
  if (ctx.json()) {
    for (const auto& p : all) {
      std::string extra = fmt::format("\"attempts\":{},\"reason\":", p.attempts);
      json::append_quoted(extra, p.reason);
      extra.append(",\"parked_at\":\"");
      append_rfc3339(extra, p.parked_at_us);
      extra.push_back('"');
      append_event_json(b, p.event.ref(), extra);
      b.push_back('\n');
      ctx.out.commit();
    }
    return 0;
  }
  if (all.empty()) {
    b.append(fmt::format("no parked events in queue '{}'\n", o.name));
    ctx.out.commit();
    return 0;
  }
  Table t({"POSITION", "STREAM@VERSION", "TYPE", "ATTEMPTS", "PARKED AT", "REASON"});
  t.right(0).right(3);
  for (const auto& p : all)
    t.add({std::to_string(p.event.position), fmt::format("{}@{}", p.event.stream, p.event.version), p.event.type,
           std::to_string(p.attempts), format_rfc3339(p.parked_at_us), p.reason});
  t.render(b);
  ctx.out.commit();
  return 0;
}

const char* events_word(std::int64_t n) { return n == 1 ? "event" : "events"; }

int run_retry(Context& ctx, const QueueOptions& o) {
  check_queue_name(o.name);
  if (o.all == !o.positions.empty())
    throw Error(Errc::usage, "queue retry needs either POSITION... or --all (not both)");
  std::vector<std::int64_t> positions;
  if (!o.all) positions = positions_of(o.positions);
  Store store = ctx.open_store(Access::update);
  std::int64_t n = 0;
  // A dry run retries for real and rolls back: the count is the real one.
  queue_admin::atomically(store, [&] {
    Queues queues(store);
    n = o.all ? queues.retry_all(o.name) : queues.retry(o.name, positions);
    return !o.dry_run;
  });
  if (ctx.quiet()) return 0;
  if (ctx.json())
    ctx.out.write(JsonObject().number("retried", n).boolean("dry_run", o.dry_run).line());
  else if (o.dry_run)
    ctx.out.write(fmt::format("would retry {} parked {} of queue '{}' (dry run: nothing changed)\n", n, events_word(n),
                              o.name));
  else
    ctx.out.write(fmt::format("retried {} parked {} of queue '{}'\n", n, events_word(n), o.name));
  return 0;
}

int run_reset(Context& ctx, const QueueOptions& o) {
  check_queue_name(o.name);
  StartPoint to = start_point(o.to, "--to");
  Store store = ctx.open_store(Access::update);
  ResetImpact impact;
  // The impact and the reset it guards are one transaction: nothing slips in between.
  queue_admin::atomically(store, [&] {
    impact = queue_admin::reset_impact(store, o.name, to);
    if (o.dry_run) return false;
    if (impact.skipped > 0 && !o.force)
      throw Error(Errc::usage,
                  fmt::format("resetting queue '{}' to after position {} would drop {} unacked {} at or before it "
                              "(pending, leased, retrying or parked: never delivered); pass --force to reset anyway "
                              "(--dry-run shows the impact)",
                              o.name, impact.point, impact.skipped, events_word(impact.skipped)));
    Queues(store).reset(o.name, to);
    return true;
  });
  if (ctx.quiet()) return 0;
  if (ctx.json()) {
    ctx.out.write(JsonObject()
                      .string("name", o.name)
                      .number("start", impact.point)
                      .number("cursor", impact.point)
                      .boolean("dry_run", o.dry_run)
                      .number("skipped", impact.skipped)
                      .number("redelivered", impact.redelivered)
                      .number("deliverable", impact.deliverable)
                      .line());
  } else {
    ctx.out.write(fmt::format("{} queue '{}': it delivers the matching events after position {}: {} {} deliverable "
                              "({} delivered again), {} unacked {} skipped{}\n",
                              o.dry_run ? "would reset" : "reset", o.name, impact.point, impact.deliverable,
                              events_word(impact.deliverable), impact.redelivered, impact.skipped,
                              events_word(impact.skipped), o.dry_run ? " (dry run: nothing changed)" : ""));
  }
  return 0;
}

int run_delete(Context& ctx, const QueueOptions& o) {
  check_queue_name(o.name);
  Store store = ctx.open_store(Access::update);
  QueueStatus st;
  queue_admin::atomically(store, [&] {
    Queues queues(store);
    st = queues.status(o.name, Clock::now());
    if (o.dry_run) return false;
    if (st.lag > 0 && !o.force)
      throw Error(Errc::usage,
                  fmt::format("queue '{}' has {} unacked {} ({} pending, {} leased, {} retrying, {} parked); deleting "
                              "it drops them: pass --force to delete anyway (--dry-run shows the impact)",
                              o.name, st.lag, events_word(st.lag), st.pending, st.leased, st.retrying, st.parked));
    queues.remove(o.name);
    return true;
  });
  if (ctx.quiet()) return 0;
  if (ctx.json()) {
    ctx.out.write(JsonObject()
                      .string(o.dry_run ? "name" : "deleted", o.name)
                      .boolean("dry_run", o.dry_run)
                      .number("dropped", st.lag)
                      .number("pending", st.pending)
                      .number("leased", st.leased)
                      .number("retrying", st.retrying)
                      .number("parked", st.parked)
                      .line());
  } else {
    ctx.out.write(fmt::format("{} queue '{}': {} unacked {} dropped ({} pending, {} leased, {} retrying, {} parked){}\n",
                              o.dry_run ? "would delete" : "deleted", o.name, st.lag, events_word(st.lag), st.pending,
                              st.leased, st.retrying, st.parked, o.dry_run ? " (dry run: nothing changed)" : ""));
  }
  return 0;
}

// `drain --projection FILE --into DB`: the projection module provides the handler.
HandlerFactory projection_handlers(Context& ctx, const QueueOptions& o) {
  // A bad file, or an unknown queue, is reported before DB is created.
  auto projection = std::make_shared<const Projection>(Projection::load(o.projection));
  {
    Store store = ctx.open_store(Access::read);
    Queues(store).get(o.name);
  }
  ProjectorOptions po{ctx.store_options.busy_timeout_ms, ctx.store_options.location, o.name};
  {
    // Creates DB (running @init) if needed, and checks the statements against it.
    Projector check(projection, o.into, po);
    if (check.projection_changed() && !ctx.quiet())
      fmt::print(stderr,
                 "esctl: warning: '{}' is not the projection '{}' was built with; events applied before keep the "
                 "old statements' effects (to apply it to every event: esctl rebuild {} --projection {} --queue {})\n",
                 o.projection, o.into, o.into, o.projection, o.name);
  }
  return [projection, into = o.into, po](int) { return make_projection_handler(projection, into, po); };
}

int run_drain(Context& ctx, const QueueOptions& o) {
  check_queue_name(o.name);
  const bool exec = !o.exec.empty(), pipe = !o.pipe.empty(), projection = !o.projection.empty();
  if (int(exec) + int(pipe) + int(projection) != 1)
    throw Error(Errc::usage, "queue drain needs exactly one of --exec CMD, --pipe CMD or --projection FILE --into DB");
  if (projection && o.into.empty()) throw Error(Errc::usage, "queue drain --projection needs --into DB");
  if (!projection && !o.into.empty())
    throw Error(Errc::usage, fmt::format("--into goes with --projection, not with {}", exec ? "--exec" : "--pipe"));
  DrainOptions d;
  d.queue = o.name;
  d.batch = positive(o.batch, "--batch");
  std::int64_t parallel = positive(o.parallel, "--parallel");
  if (parallel > 256) throw Error(Errc::usage, fmt::format("invalid --parallel value '{}': at most 256", o.parallel));
  d.parallel = static_cast<int>(parallel);
  d.follow = o.follow;
  if (!o.max_events.empty()) d.max_events = parse_count(o.max_events, "--max-events");

  Progress* shown = nullptr;  // the progress display, once made (before any handler runs)
  HandlerFactory factory;
  // The line a handler gets for each event: the event's JSON with its lease and attempt.
  auto format = [](std::string& out, const Delivery& dl) {
    char extra[80];  // "lease":N,"attempt":N with N of at most 20 characters each
    std::memcpy(extra, "\"lease\":", 8);
    char* p = std::to_chars(extra + 8, extra + 32, dl.lease).ptr;
    std::memcpy(p, ",\"attempt\":", 11);
    p = std::to_chars(p + 11, extra + sizeof extra, dl.attempt).ptr;
    append_event_json(out, dl.event.ref(), std::string_view(extra, static_cast<std::size_t>(p - extra)));
  };
  if (pipe) {
    PipeOptions po;
    po.command = o.pipe;
    po.format = format;
    {
      Store store = ctx.open_store(Access::read);
      po.ack_timeout_ms = Queues(store).get(o.name).ack_timeout_ms;  // also: the queue exists
    }
    if (ctx.progress)
      po.relay = [&shown](int, std::string_view bytes) { shown->write_through(2, bytes); };
    factory = [po](int) { return make_pipe_handler(po); };
  } else if (exec) {
    ExecOptions eo;
    eo.command = o.exec;
    eo.stdout_fd = ctx.json() ? 2 : 1;  // keep stdout for the JSON summary
    eo.format = format;
    if (ctx.progress) {
      // While a progress line is on the terminal, the handlers' output comes through it: the
      // line is erased before they write and drawn again after, never mixed into their lines.
      eo.relay = [&shown, out_fd = eo.stdout_fd](int fd, std::string_view bytes) {
        shown->write_through(fd == 1 ? out_fd : 2, bytes);
      };
    }
    factory = [eo](int) { return make_exec_handler(eo); };
  } else {
    factory = projection_handlers(ctx, o);
  }
  ctx.out.flush();  // nothing of ours may be buffered when handlers write to the same stdout

  // A bounded drain knows how much there is to do: a bar and an ETA. What is deliverable now
  // (parked events are not); a drain that fails and retries delivers more, the bar stops at 100%.
  std::int64_t total = 0;
  if (ctx.progress) {
    if (!d.follow) {
      Store store = ctx.open_store(Access::update);
      auto st = Queues(store).status(o.name, Clock::now());
      total = st.lag - st.parked;
    }
    if (d.max_events && (total == 0 || *d.max_events < total)) total = *d.max_events;
  }
  Progress progress(ctx.progress, "drain " + o.name, "events", total);
  shown = &progress;
  d.progress = [&progress](const DrainTotals& t) { progress.update(t.delivered); };
  const bool quiet = ctx.quiet();
  // Always said, like a reader's reconnects: a drain that lost its server is not just noise.
  d.notice = [](const std::string& line) { fmt::print(stderr, "esctl: {}\n", line); };
  d.on_stale = [&o, quiet](std::int64_t n) {
    if (quiet) return;
    fmt::print(stderr,
               "esctl: warning: {} outcome{} of queue '{}' {} stale, not applied: {} lease had expired (this drainer was "
               "paused or cut off past --ack-timeout) or passed to another delivery\n",
               n, n == 1 ? "" : "s", o.name, n == 1 ? "was" : "were", n == 1 ? "its" : "their");
  };
  DrainSummary s = drain(ctx.store_options, d, factory);
  progress.finish();
  if (s.queue_deleted)
    fmt::print(stderr, "esctl: error: queue '{}' was deleted under this drain (a queue created since under that name is "
                       "another queue); stopped\n",
               o.name);

  const auto& t = s.totals;
  double rate = s.elapsed_s > 0 ? static_cast<double>(t.delivered) / s.elapsed_s : 0;
  if (!ctx.quiet()) {
    if (ctx.json()) {
      ctx.out.write(JsonObject()
                        .string("queue", o.name)
                        .number("delivered", t.delivered)
                        .number("acked", t.acked)
                        .number("retried", t.retried)
                        .number("returned", t.returned)
                        .number("parked", t.parked)
                        .number("stale", t.stale)
                        .fixed("elapsed", s.elapsed_s, 3)
                        .fixed("events_per_s", rate, 0)
                        .line());
    } else {
      std::string extra;
      if (t.returned) extra += fmt::format(", {} returned", t.returned);
      extra += fmt::format(", {} parked", t.parked);
      if (t.stale) extra += fmt::format(", {} stale", t.stale);
      ctx.out.write(fmt::format("drained queue '{}': {} delivered, {} acked, {} retried{} in {:.2f}s "
                                "({:.0f} events/s){}\n",
                                o.name, t.delivered, t.acked, t.retried, extra, s.elapsed_s, rate,
                                s.interrupted ? " (interrupted)" : ""));
    }
  }
  if (s.queue_deleted) return exit_code::kNotFound;
  if (s.interrupted) return exit_code::kInterrupted;
  if (t.parked > 0) {
    if (!ctx.quiet() && !ctx.json())
      fmt::print(stderr, "esctl: {} event{} parked in this run (see 'esctl queue parked {}')\n", t.parked,
                 t.parked == 1 ? " was" : "s were", o.name);
    return exit_code::kParked;
  }
  return 0;
}

CLI::App* sub(CLI::App& app, const char* name, const char* about) {
  auto* s = app.add_subcommand(name, about);
  s->fallthrough();
  return s;
}

}  // namespace

Runner setup_queue(CLI::App& app) {
  auto o = std::make_shared<QueueOptions>();
  app.description("Manage projector queues: durable subscriptions with at-least-once delivery and per-stream order");
  app.require_subcommand(1);

  auto* create = sub(app, "create", "Create a queue with a filter and a delivery policy");
  create->add_option("name", o->name, "Queue name ([A-Za-z0-9._-], 1-64 characters)")->required();
  create->add_option("--from", o->from, "Where it starts: start, end (default) or a position");
  create->add_option("--stream", o->streams, "Match streams whose name matches GLOB (repeatable)");
  create->add_option("--category", o->categories, "Match the streams of category C (repeatable)");
  create->add_option("--type", o->types, "Match only events of type T (repeatable)");
  create->add_option("--max-attempts", o->max_attempts, "Park an event after N failed deliveries (default 5)");
  create->add_option("--ack-timeout", o->ack_timeout, "Lease length: unacked this long, an event is delivered again (default 30s)");
  create->add_option("--on-poison", o->on_poison, "What a parked event does to its stream: block (default) or park");

  auto* ls = sub(app, "ls", "List all queues with their lag");
  auto* status = sub(app, "status", "Show the cursor, lag, leases, retries and parked events of a queue");
  status->add_option("name", o->name, "Queue name")->required();

  auto* pull = sub(app, "pull", "Lease deliverable events and print them");
  pull->add_option("name", o->name, "Queue name")->required();
  pull->add_option("--max", o->max, "Lease at most N events (default 1)");
  pull->add_option("--lease", o->lease, "Lease length (default: the queue's --ack-timeout)");
  pull->add_option("--format", o->format,
                   "One line per event from TEMPLATE: the placeholders of 'esctl read --format', {attempt} and {lease}")
      ->each([o](const std::string&) { o->format_given = true; });

  auto* ack = sub(app, "ack", "Acknowledge delivered events: they are done");
  ack->add_option("name", o->name, "Queue name")->required();
  ack->add_option("positions", o->positions, "POSITION:LEASE of deliveries (fenced), or a bare POSITION (override)")
      ->required();

  auto* nack = sub(app, "nack", "Report delivered events as failed: delivered again, or parked");
  nack->add_option("name", o->name, "Queue name")->required();
  nack->add_option("positions", o->positions, "POSITION:LEASE of deliveries (fenced), or a bare POSITION (override)")
      ->required();
  nack->add_option("--delay", o->delay, "Deliver them again no sooner than DUR from now (default 0ms)");
  nack->add_option("--reason", o->reason, "Why they failed (shown by 'queue parked')");

  auto* drain_app = sub(app, "drain", "Deliver batches to a command or a projection, acking what succeeds");
  drain_app->add_option("name", o->name, "Queue name")->required();
  drain_app->add_option("--exec", o->exec, "Run CMD with /bin/sh -c per batch, the batch as NDJSON on its stdin");
  drain_app->add_option("--pipe", o->pipe,
                        "Start CMD with /bin/sh -c once and keep it: events as NDJSON lines on its stdin, one "
                        "'ack' or 'nack [REASON]' line per event on its stdout");
  drain_app->add_option("--projection", o->projection, "Apply events with this projection file (needs --into)");
  drain_app->add_option("--into", o->into, "The query db that --projection keeps up to date");
  drain_app->add_option("--batch", o->batch,
                        "At most N events per batch (default 1000; with --pipe, at most N events in flight). Each "
                        "batch costs a commit and, with --exec, a shell: raise it (5000+) for a quick handler over a big backlog; lower it for a handler "
                        "that is slow per event, or often fails (a failed batch is retried one event at a time)");
  drain_app->add_option("--parallel", o->parallel, "Run up to K batches at once, partitioned by stream (default 1)");
  drain_app->add_flag("--follow", o->follow, "Wait for new events instead of stopping when nothing is deliverable");
  drain_app->add_option("--max-events", o->max_events, "Stop after delivering N events");

  auto* parked = sub(app, "parked", "List parked events with their last failure");
  parked->add_option("name", o->name, "Queue name")->required();

  auto* retry = sub(app, "retry", "Put parked events back (their next delivery has attempt 1)");
  retry->add_option("name", o->name, "Queue name")->required();
  retry->add_option("positions", o->positions, "Positions of parked events");
  retry->add_flag("--all", o->all, "Retry every parked event of the queue");
  retry->add_flag("--dry-run", o->dry_run, "Print how many parked events would go back; change nothing");

  auto* reset = sub(app, "reset", "Replay this queue from a point, clearing its delivery state");
  reset->add_option("name", o->name, "Queue name")->required();
  reset->add_option("--to", o->to, "start, end or a position: the matching events after it are delivered again")
      ->required();
  reset->add_flag("--dry-run", o->dry_run, "Print the events it would skip and deliver again; change nothing");
  reset->add_flag("--force", o->force, "Reset even if unacked events at or before the point are skipped");

  auto* del = sub(app, "delete", "Delete a queue and its delivery state");
  del->add_option("name", o->name, "Queue name")->required();
  del->add_flag("--dry-run", o->dry_run, "Print how many unacked events it would drop; change nothing");
  del->add_flag("--force", o->force, "Delete even if the queue has unacked events");

  auto run_sub = [=](Context& ctx) -> int {
    if (create->parsed()) return run_create(ctx, *o);
    if (ls->parsed()) return run_ls(ctx);
    if (status->parsed()) return run_status(ctx, *o);
    if (pull->parsed()) return run_pull(ctx, *o);
    if (ack->parsed()) return run_ack(ctx, *o);
    if (nack->parsed()) return run_nack(ctx, *o);
    if (drain_app->parsed()) return run_drain(ctx, *o);
    if (parked->parsed()) return run_parked(ctx, *o);
    if (retry->parsed()) return run_retry(ctx, *o);
    if (reset->parsed()) return run_reset(ctx, *o);
    if (del->parsed()) return run_delete(ctx, *o);
    throw Error(Errc::usage, "missing queue subcommand (see 'esctl queue --help')");
  };
  // The store and the drain loop name the settings they refuse in their own words; say the flags.
  return [run_sub](Context& ctx) -> int {
    try {
      return run_sub(ctx);
    } catch (const SettingError& e) {
      throw with_flag_names(e, {{"from", "--from"},
                                {"to", "--to"},
                                {"max attempts", "--max-attempts"},
                                {"ack timeout", "--ack-timeout"},
                                {"filter", "--stream, --category or --type"},
                                {"max", "--max"},
                                {"lease", "--lease"},
                                {"delay", "--delay"},
                                {"batch", "--batch"},
                                {"parallel", "--parallel"},
                                {"max events", "--max-events"}});
    }
  };
}

}  // namespace esctl::cmd
