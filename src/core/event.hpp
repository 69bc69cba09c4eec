// Model values that cross the store/render boundary. EventRef is a borrowed view, valid only
// inside the callback that receives it (it points into SQLite's row buffers): that is what lets
// `read --all` pass stored JSON through without copying or re-serialising.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/uuid.hpp"

namespace esctl {

/// One stored event, borrowed. `id` is the 16 raw bytes; `data`/`meta` are minified JSON text.
struct EventRef {
  std::int64_t position = 0;
  std::string_view stream;
  std::int64_t version = 0;
  std::string_view id;
  std::string_view type;
  std::string_view data;
  std::string_view meta;
  std::int64_t recorded_at_us = 0;
};

/// One stored event, owned (for batches handed to handlers and projections).
struct Event {
  std::int64_t position = 0;
  std::string stream;
  std::int64_t version = 0;
  std::string id;  ///< 16 raw bytes
  std::string type;
  std::string data;
  std::string meta;
  std::int64_t recorded_at_us = 0;

  static Event from(const EventRef& e) {
    return Event{e.position, std::string(e.stream), e.version, std::string(e.id), std::string(e.type),
                 std::string(e.data), std::string(e.meta), e.recorded_at_us};
  }
  EventRef ref() const { return EventRef{position, stream, version, id, type, data, meta, recorded_at_us}; }
};

/// An event to append. `data`/`meta` must already be validated, minified JSON.
struct NewEvent {
  std::string stream;
  std::string type;
  std::string data = "{}";
  std::string meta = "{}";
  std::optional<Uuid> id;                   ///< idempotency key; generated (UUIDv7) if absent
  std::optional<std::int64_t> recorded_at;  ///< kept on import; now() if absent
  std::optional<std::int64_t> version;      ///< import: the version it must get (expected-version check)
};

/// What `--expect` asks of a stream before an append.
struct Expect {
  enum Kind { any, none, exists, version } kind = any;
  std::int64_t value = -1;  ///< for Kind::version: the stream's required last version
};

/// The outcome of appending one event.
struct Appended {
  std::string stream;
  std::int64_t version = 0;
  std::int64_t position = 0;
  Uuid id;
  bool existed = false;  ///< idempotent no-op: the same event was already stored
};

/// One row of `esctl streams`.
struct StreamInfo {
  std::string name;
  std::int64_t version = -1;  ///< last version
  std::int64_t count = 0;
  std::int64_t last_position = 0;
  std::int64_t last_recorded_at = 0;
};

}  // namespace esctl
