// The logical checks of `esctl verify` (see verify_checks.hpp), fed by each backend's scan.
//
// The event scan reads the events once in position order and keeps, per stream, the next
// expected version, the position of the highest version seen, and the "holes": versions skipped
// when a higher one appeared. In a sound store the versions of a stream arrive as 0, 1, 2, ... in
// position order. When a version v arrives:
//   v == next              in order (the backend may check its prev link: version v-1 is known).
//   v >  next              versions next..v-1 become a hole: a gap, unless they turn up later.
//   v <  next, in a hole   it came after a higher version: version_order (the hole shrinks).
//   v <  next, otherwise   seen before: version_duplicate.
// Holes left at the end are version_gap. The time order a store claims (recorded_at
// non-decreasing through a position, which --since/--until searches rely on) is checked on the
// way. The streams' stored last versions are judged against the scan's result once it is
// complete.
#include "store/verify_checks.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/json_text.hpp"
#include "core/names.hpp"

namespace esctl {
namespace {

constexpr std::size_t kMaxHoles = 100000;  // across all streams; beyond it order damage is only summarised

std::string versions_text(std::int64_t lo, std::int64_t hi) {
  return lo == hi ? fmt::format("version {}", lo) : fmt::format("versions {}..{}", lo, hi);
}

}  // namespace

LogicalChecks::LogicalChecks(FindingFn report) : report_(std::move(report)) {}
LogicalChecks::~LogicalChecks() = default;

LogicalChecks::StreamState& LogicalChecks::state(std::int64_t id) {
  if (id >= 0 && static_cast<std::uint64_t>(id) < states_.size()) return states_[static_cast<std::size_t>(id)];
  return other_states_[id];
}

LogicalChecks::StreamState* LogicalChecks::find_state(std::int64_t id) {
  if (id >= 0 && static_cast<std::uint64_t>(id) < states_.size()) return &states_[static_cast<std::size_t>(id)];
  auto it = other_states_.find(id);
  return it == other_states_.end() ? nullptr : &it->second;
}

// Calls f(id, state) for every stream seen, in id order (findings come out in a stable order).
template <class F>
void LogicalChecks::each_state(F&& f) {
  for (std::size_t i = 0; i < states_.size(); ++i) f(static_cast<std::int64_t>(i), states_[i]);
  std::map<std::int64_t, StreamState*> others;
  for (auto& [id, st] : other_states_) others.emplace(id, &st);
  for (auto& [id, st] : others) f(id, *st);
}

void LogicalChecks::expect_streams(std::int64_t count, std::int64_t max_id) {
  if (max_id >= 0 && max_id <= 4 * count + 4096) states_.resize(static_cast<std::size_t>(max_id) + 1);
}

void LogicalChecks::stream_row(std::int64_t id) { state(id).has_row = true; }

void LogicalChecks::stream_category(std::int64_t id, std::string_view name, std::string_view category) {
  if (category != category_of(name))
    report_("stream_category", id, std::nullopt, std::nullopt,
            fmt::format("category is '{}', but the category of '{}' is '{}'", category, name, category_of(name)));
}

void LogicalChecks::claim_time_order(std::int64_t ordered_through, std::int64_t max_recorded_at) {
  ordered_through_ = ordered_through;
  claimed_max_ = max_recorded_at;
}

EventStep LogicalChecks::event(std::int64_t p, std::int64_t sid, std::int64_t v, std::int64_t recorded_at_us) {
  if (dense_ && p != last_position_ + 1) {
    const std::int64_t last = last_position_;
    report_("position_gap", sid, v, p,
            p == last + 2   ? fmt::format("position {} is missing: positions are dense from 1", last + 1)
            : p > last + 2  ? fmt::format("positions {}..{} are missing: positions are dense from 1", last + 1, p - 1)
                            : fmt::format("position {} is not above the previous one, {}", p, last));
  }
  last_position_ = p;
  if (ordered_through_ && p <= *ordered_through_) {
    if (recorded_at_us < seen_max_ && !order_reported_) {
      order_reported_ = true;
      report_("time_order", sid, v, p,
              fmt::format("recorded_at goes back here, but time_order says it does not up to position {}; "
                          "--since/--until may miss events",
                          *ordered_through_));
    }
    seen_max_ = std::max(seen_max_, recorded_at_us);
  }
  StreamState& st = state(sid);
  ++st.events;
  if (!st.has_row && !st.missing_reported) {
    st.missing_reported = true;
    report_("stream_missing", std::nullopt, v, p,
            fmt::format("the event belongs to stream id {}, which has no row in the streams table", sid));
  }
  EventStep step;
  if (v == st.next) {
    step.previous_position = v == 0 ? 0 : st.last_position;
    st.next = v + 1;
    st.last_position = p;
  } else if (v < 0) {
    report_("version_invalid", sid, v, p, fmt::format("version {} is negative; versions start at 0", v));
    step.kind = EventStep::invalid;
  } else if (v > st.next) {
    if (holes_ < kMaxHoles) {
      if (!st.holes) st.holes = std::make_unique<std::map<std::int64_t, Hole>>();
      st.holes->emplace(st.next, Hole{st.next, v - 1, v, p});
      ++holes_;
    } else {
      st.holes_overflow = true;
    }
    st.next = v + 1;
    st.last_position = p;
    step.kind = EventStep::ahead;
  } else {
    // v < next: a late version (it fills a hole) or a repeat.
    step.kind = EventStep::repeat;
    if (st.holes) {
      auto it = st.holes->upper_bound(v);
      if (it != st.holes->begin() && std::prev(it)->second.hi >= v) {
        Hole h = std::prev(it)->second;
        st.holes->erase(std::prev(it));
        --holes_;
        report_("version_order", sid, v, p,
                fmt::format("version {} is at position {}, after version {} at position {}: positions must increase "
                            "with version",
                            v, p, h.after_version, h.after_position));
        if (v > h.lo) {
          st.holes->emplace(h.lo, Hole{h.lo, v - 1, h.after_version, h.after_position});
          ++holes_;
        }
        if (v < h.hi) {
          st.holes->emplace(v + 1, Hole{v + 1, h.hi, h.after_version, h.after_position});
          ++holes_;
        }
        step.kind = EventStep::late;
      }
    }
    if (step.kind == EventStep::repeat) {
      if (st.holes_overflow)
        report_("version_order", sid, v, p,
                fmt::format("version {} at position {} comes after version {} (out of order or a duplicate; too many "
                            "anomalies to tell which)",
                            v, p, st.next - 1));
      else
        report_("version_duplicate", sid, v, p,
                v == st.next - 1 ? fmt::format("version {} is stored twice: at position {} and at position {}", v,
                                               st.last_position, p)
                                 : fmt::format("version {} is stored twice: here and at a lower position", v));
    }
  }
  return step;
}

void LogicalChecks::payload(std::int64_t p, std::int64_t sid, std::int64_t v, std::string_view data,
                            std::string_view meta) {
  for (int i = 0; i < 2; ++i)
    if (auto err = json::validate(i == 0 ? data : meta))
      report_("json_invalid", sid, v, p,
              fmt::format("{} is not valid JSON: {} at byte {}", i == 0 ? "data" : "meta", err->message, err->offset));
}

void LogicalChecks::end_scan(bool complete) {
  if (!complete) return;
  if (ordered_through_ && !order_reported_ &&
      (*ordered_through_ > last_position_ || (*ordered_through_ > 0 && seen_max_ != claimed_max_)))
    report_("time_order", std::nullopt, std::nullopt, std::nullopt,
            fmt::format("time_order says recorded_at is in order through position {} with a largest value of {}, "
                        "but the events say otherwise; --since/--until may miss events",
                        *ordered_through_, claimed_max_));
  report_gaps();
}

void LogicalChecks::report_gaps() {
  each_state([&](std::int64_t sid, StreamState& st) {
    if (st.holes)
      for (const auto& entry : *st.holes) {
        const Hole& h = entry.second;
        report_("version_gap", sid, h.lo, h.after_position,
                h.lo == 0 ? fmt::format("{} missing: the stream starts at version {} (position {})",
                                        versions_text(h.lo, h.hi), h.after_version, h.after_position)
                          : fmt::format("{} missing: no event holds {}; the stream went on with version {} at "
                                        "position {}",
                                        versions_text(h.lo, h.hi), h.lo == h.hi ? "it" : "them", h.after_version,
                                        h.after_position));
      }
    if (st.holes_overflow)
      report_("version_gap", sid, std::nullopt, std::nullopt,
              "versions are too disordered to list every gap; the gaps above are the first ones");
  });
}

// Every stream with events has a last-version row naming its highest version and where it is;
// no other such rows exist. The findings keep the words users see in SQL (kind stream_head, the
// stream_heads table's "head row", columns head and head_position).
void LogicalChecks::last_version_row(std::int64_t id, std::int64_t last_version, std::int64_t last_position) {
  StreamState* st = find_state(id);
  if (st) st->has_last_version = true;
  if (!st || st->events == 0) {
    report_("stream_head", id, last_version, last_position,
            fmt::format("a head row says version {} at position {}, but the stream has no events", last_version,
                        last_position));
    return;
  }
  const std::int64_t last = st->next - 1;
  std::string detail;
  if (last_version != last) detail = fmt::format("head is {}, but the highest version is {}", last_version, last);
  if (last_position != st->last_position)
    detail += fmt::format("{}head_position is {}, but version {} is at position {}", detail.empty() ? "" : "; ",
                          last_position, last, st->last_position);
  if (!detail.empty()) report_("stream_head", id, last, st->last_position, std::move(detail));
}

void LogicalChecks::end_last_version_rows() {
  each_state([&](std::int64_t id, const StreamState& st) {
    if (st.events > 0 && !st.has_last_version)
      report_("stream_head", id, st.next - 1, st.last_position,
              fmt::format("the stream has events up to version {}, but no head row", st.next - 1));
  });
}

void LogicalChecks::id_duplicate(std::optional<std::int64_t> stream_id, std::optional<std::int64_t> version,
                                 std::int64_t position, std::string_view id_text, std::int64_t first,
                                 std::int64_t count) {
  std::string others = count > 2 ? fmt::format(" (and {} more)", count - 2) : std::string();
  report_("id_duplicate", stream_id, version, position,
          fmt::format("id {} is also the id of the event at position {}{}", id_text, first, others));
}

void LogicalChecks::queue_cursor(std::string_view queue, std::int64_t cursor, std::int64_t last_position) {
  // Positions are never taken back, so no cursor can be past the last one (create and reset refuse it).
  if (cursor > last_position)
    report_("queue_cursor", std::nullopt, std::nullopt, cursor,
            fmt::format("queue '{}' has cursor {}, past the store's head position {}", queue, cursor, last_position));
  if (cursor < 0)
    report_("queue_cursor", std::nullopt, std::nullopt, cursor,
            fmt::format("queue '{}' has a negative cursor {}", queue, cursor));
}

void LogicalChecks::in_flight(std::string_view queue, const char* what, std::int64_t position, std::int64_t stream_id,
                              const std::optional<StoredEvent>& event, const EventFilter* filter, std::int64_t cursor) {
  if (!event) {
    report_("queue_item", std::nullopt, std::nullopt, position,
            fmt::format("queue '{}' has a {} at position {}, but there is no event at that position", queue, what,
                        position));
    return;
  }
  auto bad = [&](std::string detail) {
    report_("queue_item", event->stream_id, event->version, position,
            fmt::format("queue '{}' {}: {}", queue, what, detail));
  };
  if (stream_id != event->stream_id)
    bad(fmt::format("says stream id {}, but the event belongs to stream id {}", stream_id, event->stream_id));
  if (filter && !filter->matches(event->stream, event->type))
    bad(fmt::format("the event (stream '{}', type '{}') does not match the queue's filter", event->stream, event->type));
  if (position > cursor) bad(fmt::format("is past the queue's cursor {}", cursor));
}

}  // namespace esctl
