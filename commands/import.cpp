// esctl import: append NDJSON events (the export format) in file order, one transaction per
// --batch lines, idempotent by id, checking each line's "version" unless --ignore-versions.
// A bad line or a conflict stops it with nothing of the current batch written; SIGINT stops it
// between batches. Either way the committed batches stay and a re-run finishes the job.
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <future>
#include <optional>

#include "commands/command.hpp"
#include "commands/io.hpp"
#include "core/error.hpp"
#include "core/ndjson.hpp"
#include "core/signals.hpp"
#include "render/progress.hpp"

namespace esctl::cmd {
namespace {

struct ImportOptions {
  std::string file = "-";
  std::string batch = "10000";
  bool ignore_versions = false;
};

struct Tally {
  std::int64_t imported = 0, skipped = 0, batches = 0, lines = 0;
};

std::string done_note(const Tally& t) {
  return fmt::format("{} event{} imported, {} already stored, in {} batch{}", t.imported, t.imported == 1 ? "" : "s",
                     t.skipped, t.batches, t.batches == 1 ? "" : "es");
}

void print_summary(Context& ctx, const Tally& t, double seconds) {
  if (ctx.quiet()) return;
  double rate = seconds > 0 ? static_cast<double>(t.imported + t.skipped) / seconds : 0;
  if (ctx.json()) {
    ctx.out.write(fmt::format(
        "{{\"imported\":{},\"skipped\":{},\"batches\":{},\"lines\":{},\"seconds\":{:.3f},\"events_per_s\":{:.0f}}}\n",
        t.imported, t.skipped, t.batches, t.lines, seconds, rate));
  } else {
    ctx.out.write(fmt::format("imported {} event{} ({} already stored, skipped) in {} batch{}, {:.2f}s, {:.0f} events/s\n",
                              t.imported, t.imported == 1 ? "" : "s", t.skipped, t.batches,
                              t.batches == 1 ? "" : "es", seconds, rate));
  }
}

/// Up to `size` parsed events from `lines`. A bad line ends the batch with `error`, SIGINT with
/// `cut`; either way its events are dropped (a batch is written whole or not at all).
struct Batch {
  std::vector<NewEvent> events;
  std::vector<std::int64_t> line_nos;
  std::optional<Error> error;
  bool eof = false;              // the input ended
  bool cut = false;              // SIGINT before the end of the input
  std::int64_t bytes_after = 0;  // input consumed, for progress
};

Batch read_batch(LineReader& lines, std::int64_t size) {
  Batch b;
  b.events.reserve(static_cast<std::size_t>(std::min<std::int64_t>(size, 100000)));
  try {
    std::string_view line;
    while (static_cast<std::int64_t>(b.events.size()) < size) {
      if (interrupted()) {
        b.cut = true;
        break;
      }
      if (!lines.next(line)) {
        b.eof = true;
        break;
      }
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      b.events.push_back(parse_event_line(line, lines.line_no()));
      b.line_nos.push_back(lines.line_no());
    }
  } catch (const Error& e) {
    if (e.code() == Errc::interrupted) b.cut = true;
    else b.error = e;
  }
  if (b.cut || b.error) b.events.clear();
  b.bytes_after = lines.bytes();
  return b;
}

}  // namespace

Runner setup_import(CLI::App& app) {
  auto o = std::make_shared<ImportOptions>();
  app.description("Append NDJSON events (the export format) in file order, committing every --batch lines");
  app.add_option("file", o->file, "NDJSON input file, or '-' for stdin (default)");
  app.add_option("--batch", o->batch, "Commit every N lines (default 10000)");
  app.add_flag("--ignore-versions", o->ignore_versions,
               "Do not check each line's \"version\": append every event at the end of its stream");
  return [o](Context& ctx) {
    std::int64_t batch_size = parse_count(o->batch, "--batch");
    if (batch_size < 1) throw Error(Errc::usage, fmt::format("invalid --batch value '{}': use 1 or more", o->batch));
    LineReader lines(o->file);  // before the store: a missing FILE must not create one
    Store store = ctx.open_store(Access::write);
    // Like sort(1), import reads a terminal too; unlike it, it says so rather than seem to hang.
    if ((o->file.empty() || o->file == "-") && ::isatty(STDIN_FILENO) && !ctx.quiet())
      fmt::print(stderr, "esctl: reading NDJSON events from the terminal; end with Ctrl-D (see 'esctl import --help')\n");
    Progress progress(ctx.progress, "import", "events", lines.size());
    const auto t0 = std::chrono::steady_clock::now();
    Tally t;
    // Parsing the next batch overlaps writing this one (mostly its commit's fsync), but only
    // from a regular file: a read from a pipe or terminal may block until SIGINT, which would
    // then reach one thread and not the other.
    const bool read_ahead = lines.size() > 0;
    auto read_next = [&lines, batch_size] { return read_batch(lines, batch_size); };
    std::future<Batch> ahead;
    bool cut = false;
    for (Batch b = read_next();; b = read_ahead ? ahead.get() : read_next()) {
      if (read_ahead && !b.error && !b.eof && !b.cut) ahead = std::async(std::launch::async, read_next);
      if (b.error) {
        progress.finish();
        if (t.batches == 0) throw *b.error;
        throw Error(b.error->code(), fmt::format("{}; nothing of this line's batch was written (committed before it: {}); "
                                                 "fix the line and run the same import again to finish",
                                                 b.error->what(), done_note(t)));
      }
      if (b.cut) {
        cut = true;
        break;
      }
      if (b.events.empty()) break;
      std::size_t failed = 0;
      std::vector<Appended> done;
      try {
        done = store.append(b.events, {}, !o->ignore_versions, &failed);
      } catch (const Error& e) {
        progress.finish();
        if (e.code() != Errc::conflict && t.batches == 0) throw;
        if (e.code() != Errc::conflict)  // e.g. a lost connection: say what is certainly stored
          throw Error(e.code(), fmt::format("{} (committed before this batch: {})", e.what(), done_note(t)));
        std::string where = failed < b.line_nos.size() ? fmt::format("line {}: ", b.line_nos[failed]) : "";
        const auto* setting = dynamic_cast<const SettingError*>(&e);
        const std::string what = setting ? with_flag_names(*setting, {{"ignoring versions", "--ignore-versions"}}).what() : e.what();
        throw Error(e.code(), fmt::format("{}{}; nothing of this line's batch was written{}", where, what,
                                          t.batches ? fmt::format(" (committed before it: {})", done_note(t)) : ""));
      }
      for (const auto& a : done) (a.existed ? t.skipped : t.imported) += 1;
      t.lines += static_cast<std::int64_t>(b.events.size());
      t.batches += 1;
      progress.update(b.bytes_after, t.imported + t.skipped);
      if (b.eof) break;
    }
    progress.finish();
    if (cut) {
      fmt::print(stderr, "esctl: import interrupted; committed: {}; run the same import again to finish it\n",
                 done_note(t));
      return exit_code::kInterrupted;
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    print_summary(ctx, t, seconds);
    return 0;
  };
}

}  // namespace esctl::cmd
