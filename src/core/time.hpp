// Time as esctl stores and prints it: microseconds since the Unix epoch (UTC), shown as
// RFC 3339 with microseconds; user durations like 250ms/5s/2m/1h; a reboot-aware monotonic clock.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace esctl {

/// Wall clock, microseconds since 1970-01-01T00:00:00Z.
std::int64_t now_us();
/// Appends e.g. "2026-11-27T15:11:12.123456Z".
void append_rfc3339(std::string& out, std::int64_t us);
std::string format_rfc3339(std::int64_t us);
/// Parses RFC 3339 ("Z" or "+hh:mm" offset, 0–9 fraction digits; finer than µs is refused).
/// Refuses days a month does not have (02-30) and times outside 0000-01-01T00:00:00Z ..
/// 9999-12-31T23:59:59.999999Z once the offset is applied, so every result formats back.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);
/// A --since/--until TIME: RFC 3339; a UTC date "2026-11-10" (its first microsecond, or with
/// `end_of_day` its last, so that a date used as both bounds covers the whole day); or a
/// duration ago ("15m", "2h", "7d") counted back from `now`. nullopt if it is none of these.
std::optional<std::int64_t> parse_time_bound(std::string_view text, bool end_of_day, std::int64_t now);
/// "250ms", "5s", "2m", "1h", "7d", "1.5s"; a bare number is refused (ambiguous). Result in milliseconds.
std::optional<std::int64_t> parse_duration_ms(std::string_view text);
/// Monotonic time that keeps counting across suspend (CLOCK_BOOTTIME), microseconds. Shared by
/// every process on this boot; compare only values taken under the same boot_id().
std::int64_t mono_us();
/// This boot's id (/proc/sys/kernel/random/boot_id), or "" where unavailable.
const std::string& boot_id();

}  // namespace esctl
