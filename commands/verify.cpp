// esctl verify: check a store (SQLite integrity, per-stream order, ids, JSON, stream heads,
// queues, triggers) or a projector's delivery log; one line per violation, then a summary.
// The checks live in src/store/verify.cpp and src/core/order_log.cpp; this file only prints.
#include <cstdio>

#include <fmt/format.h>

#include "commands/command.hpp"
#include "commands/io.hpp"
#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/order_log.hpp"
#include "core/signals.hpp"
#include "render/json_object.hpp"
#include "render/progress.hpp"
#include "core/names.hpp"
#include "store/queue.hpp"
#include "store/store.hpp"
#include "store/verify.hpp"

namespace esctl::cmd {
namespace {

struct VerifyCli {
  std::string stream, log;
  std::vector<std::string> queues;
  bool full = false, no_gaps = false;
  CLI::Option* stream_opt = nullptr;
  CLI::Option* log_opt = nullptr;
};

void append_json(std::string& b, const Violation& v) {
  JsonObject j;
  j.string("kind", v.kind)
      .string_or_null("stream", v.stream)
      .number("version", v.version)
      .number("position", v.position);
  if (v.line) j.number("line", *v.line);
  b.append(j.string("detail", v.detail).str());
}

// "KIND: STREAM@VERSION #POSITION (line N): DETAIL", leaving out what a violation lacks.
void append_line(std::string& b, const Violation& v, const Style& style) {
  style.paint(b, "31", v.kind);
  std::string where;
  if (v.stream) where = *v.stream;
  if (v.stream && v.version) where.append("@").append(std::to_string(*v.version));
  if (v.position) where.append(where.empty() ? "#" : " #").append(std::to_string(*v.position));
  if (v.line) where.append(where.empty() ? "line " : " (line ").append(std::to_string(*v.line)).append(where.empty() ? "" : ")");
  b.append(": ");
  if (!where.empty()) b.append(where).append(": ");
  b.append(v.detail).push_back('\n');
}

// Violations as JSON, held until the summary object is written. Spills to an anonymous temp
// file past 1 MB so a badly damaged store cannot make verify's memory grow with the findings.
class JsonSpool {
 public:
  ~JsonSpool() {
    if (file_) std::fclose(file_);
  }
  void add(const Violation& v) {
    if (count_++) buf_.push_back(',');
    append_json(buf_, v);
    if (buf_.size() >= kSpill) spill();
  }
  void write_to(Output& out) {
    if (file_) {
      spill();
      std::rewind(file_);
      char chunk[1 << 16];
      std::size_t n;
      while ((n = std::fread(chunk, 1, sizeof chunk, file_)) > 0) {
        out.buf().append(chunk, n);
        out.commit();
      }
    } else {
      out.buf().append(buf_);
    }
  }

 private:
  static constexpr std::size_t kSpill = 1 << 20;
  void spill() {
    if (!file_ && !(file_ = std::tmpfile()))
      throw Error(Errc::io, "cannot create a temporary file for the violation list; set TMPDIR to a writable folder");
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), file_) != buf_.size())
      throw Error(Errc::io, "cannot write the temporary violation list (disk full?)");
    buf_.clear();
  }
  std::string buf_;
  std::FILE* file_ = nullptr;
  std::int64_t count_ = 0;
};

// Prints each violation as it is found (human) or collects it (JSON); counts them.
class Reporter {
 public:
  explicit Reporter(Context& ctx, Progress* bar = nullptr) : ctx_(ctx), bar_(bar) {
    if (!ctx_.json() && ctx_.out.is_tty()) ctx_.out.set_line_buffered(true);
  }
  void operator()(const Violation& v) {
    ++violations_;
    if (ctx_.quiet()) return;
    if (ctx_.json()) {
      spool_.add(v);
      return;
    }
    if (bar_) bar_->finish();  // erase the bar before a line that may go to the same terminal
    append_line(ctx_.out.buf(), v, ctx_.style);
    ctx_.out.commit();
  }
  /// Writes the summary (human) or the whole JSON object; returns the exit code.
  int finish(const std::string& checked_json, const std::string& checked_text, const std::string& extra_json = {}) {
    if (!ctx_.quiet()) {
      auto& b = ctx_.out.buf();
      if (ctx_.json()) {
        b.append(violations_ ? "{\"ok\":false" : "{\"ok\":true").append(extra_json);
        b.append(",\"checked\":{").append(checked_json).append("},\"violations\":[");
        spool_.write_to(ctx_.out);
        ctx_.out.buf().append("]}\n");
      } else if (violations_) {
        b.append(fmt::format("verify: {} violation{} (checked {})\n", violations_, violations_ == 1 ? "" : "s", checked_text));
      } else {
        b.append(fmt::format("verify: ok, no violations (checked {})\n", checked_text));
      }
      ctx_.out.commit();
    }
    return violations_ ? exit_code::kViolations : exit_code::kOk;
  }

 private:
  Context& ctx_;
  Progress* bar_;
  JsonSpool spool_;
  std::int64_t violations_ = 0;
};

const char* plural(std::int64_t n, const char* one, const char* many) { return n == 1 ? one : many; }

int verify_log(Context& ctx, const VerifyCli& o) {
  Reporter report(ctx);
  OrderLog checker(o.no_gaps);
  auto read_log = [&] {
    std::optional<LineReader> in;
    try {
      in.emplace(o.log);
    } catch (const Error& e) {
      if (e.code() == Errc::not_found) throw Error(Errc::not_found, fmt::format("log file '{}' not found", o.log));
      throw;
    }
    std::string_view line;
    while (in->next(line)) {
      std::optional<LogEntry> entry;
      try {
        entry = parse_log_line(line, in->line_no());
      } catch (const Error& e) {
        throw Error(e.code(), fmt::format("log '{}' {}", o.log, e.what()));
      }
      if (!entry) continue;
      if (auto v = checker.add(*entry, in->line_no())) report(*v);
      if ((in->line_no() & 0xffff) == 0) check_interrupted();
    }
  };
  if (o.queues.empty()) read_log();
  // With --queue, completeness: every event the queue has acked must be in the log. The store's
  // snapshot is taken first: whatever it shows as acked was logged before, so it is in the file.
  std::int64_t acked = 0, missing = 0;
  if (!o.queues.empty()) {
    const std::string& queue = o.queues.front();
    Store store = ctx.open_store(Access::read);
    std::string stream;
    acked = queue_admin::for_each_acked(
        store, queue,
        [&](const AckedEvent& e) {
          stream.assign(e.stream);
          if (checker.seen(stream, e.version)) return;
          ++missing;
          report(Violation{"missing", stream, e.version, e.position, std::nullopt,
                           fmt::format("acked by queue '{}' but not in the log", queue)});
        },
        read_log);
  }
  const LogCounts& c = checker.counts();
  std::string checked_json = fmt::format("\"lines\":{},\"streams\":{},\"first_deliveries\":{},\"redeliveries\":{}",
                                         c.lines, c.streams, c.first_deliveries, c.redeliveries);
  std::string checked_text =
      fmt::format("{} deliver{} of {} stream{}: {} first deliver{}, {} redeliver{}", c.lines, plural(c.lines, "y", "ies"),
                  c.streams, plural(c.streams, "", "s"), c.first_deliveries, plural(c.first_deliveries, "y", "ies"),
                  c.redeliveries, plural(c.redeliveries, "y", "ies"));
  if (!o.queues.empty()) {
    std::string q;
    json::append_quoted(q, o.queues.front());
    checked_json += fmt::format(",\"queue\":{},\"acked\":{},\"missing\":{}", q, acked, missing);
    checked_text += fmt::format("; {} event{} acked by queue '{}', {} missing from the log", acked,
                                plural(acked, "", "s"), o.queues.front(), missing);
  }
  return report.finish(checked_json, checked_text);
}

int verify_store_cmd(Context& ctx, const VerifyCli& o) {
  VerifyOptions vo;
  vo.location = ctx.store_options.location;
  vo.busy_timeout_ms = ctx.store_options.busy_timeout_ms;
  vo.full = o.full;
  if (o.stream_opt->count() > 0) vo.stream = o.stream;
  vo.queues = o.queues;
  Progress bar(ctx.progress, "verify", "events");
  Reporter report(ctx, &bar);
  const ViolationFn on_violation = [&](const Violation& v) { report(v); };
  const ProgressFn on_progress = [&](std::int64_t done, std::int64_t total, std::int64_t events) {
    bar.set_total(total);
    bar.update(done, events);
  };
  VerifyCounts c = verify_store(vo, on_violation, on_progress);
  bar.finish();
  std::string extra = ",\"integrity\":";
  json::append_quoted(extra, c.storage_check);
  std::string integrity = c.storage_check == "skipped" ? c.storage + " integrity not checked (use --full)"
                                                       : c.storage + " " + c.storage_check;
  return report.finish(
      fmt::format("\"events\":{},\"streams\":{},\"ids\":{},\"marks\":{},\"queues\":{},\"queue_items\":{},\"triggers\":{}",
                  c.events, c.streams, c.ids, c.marks, c.queues, c.queue_items, c.triggers),
      fmt::format("{} event{} in {} stream{}, {} queue{} with {} item{}, {} trigger{}; {}", c.events,
                  plural(c.events, "", "s"), c.streams, plural(c.streams, "", "s"), c.queues, plural(c.queues, "", "s"),
                  c.queue_items, plural(c.queue_items, "", "s"), c.triggers, plural(c.triggers, "", "s"), integrity),
      extra);
}

}  // namespace

Runner setup_verify(CLI::App& app) {
  auto o = std::make_shared<VerifyCli>();
  app.description("Check the store (integrity, per-stream order, ids, JSON, stream heads, queues, triggers), "
                  "or a projector's delivery log with --log");
  o->stream_opt = app.add_option("--stream", o->stream, "Check only this stream");
  app.add_option("--queue", o->queues,
                 "Check only this queue (repeatable); with --log: also check the log holds every event it acked");
  app.add_flag("--full", o->full, "Run SQLite's full integrity_check instead of quick_check");
  o->log_opt = app.add_option("--log", o->log,
                              "Check a delivery log instead of the store: NDJSON lines with stream and version ('-': stdin)");
  app.add_flag("--no-gaps", o->no_gaps, "With --log: a skipped version is a violation too");
  return [o](Context& ctx) {
    if (o->log_opt->count() > 0) {
      if (o->stream_opt->count() > 0 || o->full)
        throw Error(Errc::usage, "--log checks a delivery log and takes no --stream or --full");
      if (o->queues.size() > 1)
        throw Error(Errc::usage, "--log checks a delivery log against one --queue at most");
      if (!o->queues.empty()) check_queue_name(o->queues.front());
      return verify_log(ctx, *o);
    }
    if (o->no_gaps) throw Error(Errc::usage, "--no-gaps works with --log FILE only");
    return verify_store_cmd(ctx, *o);
  };
}

}  // namespace esctl::cmd
