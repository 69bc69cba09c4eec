// Validation of user-chosen names (streams, queues) and the stream -> category rule.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace esctl {

inline constexpr std::size_t kMaxStreamName = 255;
/// Why `name` is not a valid stream name (1–255 bytes of UTF-8, no control characters, no
/// leading '$'), or nullopt if it is.
std::optional<std::string> stream_name_problem(std::string_view name);
/// Throws Error(invalid_input) naming the stream and the rule it breaks.
void check_stream_name(std::string_view name);
/// The part before the first '-'; the whole name if it has none.
std::string_view category_of(std::string_view stream);
/// Queue names are [A-Za-z0-9._-]{1,64}; throws Error(usage) otherwise.
void check_queue_name(std::string_view name);

}  // namespace esctl

namespace esctl {
/// Event types: 1–255 bytes of UTF-8 without control characters; throws Error(invalid_input).
void check_event_type(std::string_view type);
}  // namespace esctl

namespace esctl {
/// Natural order of names: runs of digits compare as numbers, so "order-2" < "order-10";
/// everything else compares bytewise. A strict weak order (equal only for equal strings).
bool natural_less(std::string_view a, std::string_view b);
}  // namespace esctl
