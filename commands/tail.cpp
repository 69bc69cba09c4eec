// esctl tail: the last N matching events, oldest first, then (-f) each new one as it commits.
// Following is store/follow.hpp's ChangeWaiter + read_after from the last position seen; this
// file only picks the source, prints, and decides how the command ends (esctl-tail(1)).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>

#include <fmt/format.h>

#include "commands/command.hpp"
#include "commands/print.hpp"
#include "core/error.hpp"
#include "core/names.hpp"
#include "core/signals.hpp"
#include "store/follow.hpp"

namespace esctl::cmd {
namespace {

struct TailOptions {
  std::string stream, category, count = "10", since, until, format;
  std::vector<std::string> types;
  bool all = false, follow = false;
};

/// A glob (fnmatch(3)) that matches exactly `name`, whatever characters it holds.
std::string literal_glob(std::string_view name) {
  std::string g;
  for (char c : name) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') g.push_back('\\');
    g.push_back(c);
  }
  return g;
}

/// stdout is a pipe or socket: its reader can go away while we sleep, and we want to notice.
bool stdout_can_hang_up() {
  struct stat st {};
  return ::fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/// The last `n` events of `stream` passing `filter`'s types, oldest first, via the stream's own
/// links (cheap however big the store). Returns false if the stream does not exist.
bool last_of_stream(Store& store, const std::string& stream, std::int64_t n, const EventFilter& filter,
                    const TimeRange& time, EventPrinter& print, std::int64_t& last) {
  std::vector<Event> newest;  // newest first
  try {
    store.read_stream(stream, std::nullopt, std::nullopt, true, [&](const EventRef& e) {
      if (static_cast<std::int64_t>(newest.size()) >= n) return false;
      if (filter.matches_type(e.type) && time.contains(e.recorded_at_us)) newest.push_back(Event::from(e));
      return static_cast<std::int64_t>(newest.size()) < n;
    });
  } catch (const Error& e) {
    if (e.code() == Errc::not_found) return false;
    throw;
  }
  for (auto it = newest.rbegin(); it != newest.rend(); ++it) {
    print(it->ref());
    last = std::max(last, it->position);
  }
  return true;
}

}  // namespace

Runner setup_tail(CLI::App& app) {
  auto o = std::make_shared<TailOptions>();
  app.description(
      "Print the last N events of STREAM, of a --category or of --all (the default), oldest first; "
      "with -f, then print each new one as it is committed, until interrupted");
  app.add_option("stream", o->stream, "Stream name");
  app.add_flag("--all", o->all, "Tail every stream (the default)");
  app.add_option("--category", o->category, "Tail the streams of one category");
  app.add_option("--type", o->types, "Only events of this type (repeatable)");
  app.add_option("-n,--count", o->count, "How many of the last events to print (default 10; 0: only new ones)");
  app.add_flag("-f,--follow", o->follow, "Then print each new matching event as it is committed, until interrupted");
  add_time_options(app, o->since, o->until);
  auto* format = add_format_option(app, o->format);
  return [o, format](Context& ctx) {
    const auto tmpl = parse_format(ctx, o->format, format->count() > 0, false);
    const TimeRange time = parse_time_range(o->since, o->until);
    if (!o->stream.empty() + o->all + !o->category.empty() > 1)
      throw Error(Errc::usage, "tail takes at most one of STREAM, --all or --category C");
    if (!o->stream.empty()) check_stream_name(o->stream);
    const std::int64_t n = parse_count(o->count, "--count");

    EventFilter filter;
    filter.types = o->types;
    if (!o->stream.empty()) filter.stream_globs.push_back(literal_glob(o->stream));
    if (!o->category.empty()) filter.categories.push_back(o->category);

    Store store = ctx.open_store(Access::read);
    // The waiter and the head position come first: anything committed after them is either in
    // the last N or is found by the follow loop; nothing falls between the two.
    std::optional<ChangeWaiter> waiter;
    if (o->follow) {
      waiter.emplace(store);
      if (stdout_can_hang_up()) waiter->wake_on_hangup(STDOUT_FILENO);
      ctx.out.set_line_buffered(true);
    }
    std::int64_t last = o->follow ? store.last_position() : 0;

    EventPrinter print(ctx, &tmpl);
    if (!o->stream.empty()) {
      // A missing stream is "not found" unless we are about to wait for it.
      bool exists = n > 0 ? last_of_stream(store, o->stream, n, filter, time, print, last)
                          : store.stream_version(o->stream).has_value();
      if (!exists && !o->follow)
        throw Error(Errc::not_found, fmt::format("stream '{}' not found (see 'esctl streams')", o->stream));
      // Silence would look like a hang to someone at a terminal (never a note for scripts).
      if (!exists && !ctx.quiet() && ::isatty(STDERR_FILENO))
        fmt::print(stderr, "esctl: waiting for stream '{}' (it has no events yet)\n", o->stream);
    } else if (time.any()) {
      // The last n of the time range: read the range forward (found by search where recorded_at
      // is in order), keeping the newest n.
      std::deque<Event> newest;
      if (n > 0)
        store.read_all_in_time(1, std::nullopt, filter, time.since, time.until, [&](const EventRef& e) {
          if (static_cast<std::int64_t>(newest.size()) == n) newest.pop_front();
          newest.push_back(Event::from(e));
          return true;
        });
      for (const auto& e : newest) {
        print(e.ref());
        last = std::max(last, e.position);
      }
    } else {
      store.read_last(n, filter, [&](const EventRef& e) {
        print(e);
        last = std::max(last, e.position);
        return true;
      });
    }
    if (!o->follow) return 0;
    ctx.out.flush();

    for (;;) {
      switch (waiter->wait(-1)) {
        case Wake::changed:
          break;
        case Wake::hangup:
          throw BrokenPipe{};
        case Wake::interrupted:
        case Wake::timeout:
          check_interrupted();
          continue;
      }
      last = read_after(store, last, filter, [&](const EventRef& e) {
        check_interrupted();  // stop between lines, never inside one
        if (time.contains(e.recorded_at_us)) print(e);
        return true;
      });
    }
  };
}

}  // namespace esctl::cmd
