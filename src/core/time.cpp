// Calendar arithmetic is done by hand (days-from-civil) rather than with gmtime/timegm so that
// formatting millions of timestamps is cheap and parsing never depends on the TZ environment.
#include "core/time.hpp"

#include <time.h>

#include <charconv>
#include <fstream>

namespace esctl {
namespace {

// Days since the epoch <-> proleptic Gregorian y/m/d, by 400-year eras (no tables, no TZ).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// 0000-01-01T00:00:00.000000Z and 9999-12-31T23:59:59.999999Z: the times RFC 3339 can write.
const std::int64_t kMinUs = days_from_civil(0, 1, 1) * 86400 * 1000000;
const std::int64_t kMaxUs = (days_from_civil(9999, 12, 31) + 1) * 86400 * 1000000 - 1;

void put_digits(char* p, std::int64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

bool read_digits(std::string_view s, std::size_t at, int n, int& v) {
  if (at + static_cast<std::size_t>(n) > s.size()) return false;
  v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[at + static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  return true;
}

}  // namespace

std::int64_t now_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

std::int64_t mono_us() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

const std::string& boot_id() {
  static const std::string id = [] {
    std::ifstream f("/proc/sys/kernel/random/boot_id");
    std::string s;
    std::getline(f, s);
    return s;
  }();
  return id;
}

void append_rfc3339(std::string& out, std::int64_t us) {
  std::int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
  std::int64_t frac = us - secs * 1000000;
  std::int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  std::int64_t sod = secs - days * 86400;
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  char buf[28] = "0000-00-00T00:00:00.000000Z";
  put_digits(buf, y, 4);
  put_digits(buf + 5, m, 2);
  put_digits(buf + 8, d, 2);
  put_digits(buf + 11, sod / 3600, 2);
  put_digits(buf + 14, sod / 60 % 60, 2);
  put_digits(buf + 17, sod % 60, 2);
  put_digits(buf + 20, frac, 6);
  out.append(buf, 27);
}

std::string format_rfc3339(std::int64_t us) {
  std::string s;
  append_rfc3339(s, us);
  return s;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
  int y, mo, d, h, mi, se;
  if (!read_digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !read_digits(s, 5, 2, mo) || s[7] != '-' ||
      !read_digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !read_digits(s, 11, 2, h) ||
      s[13] != ':' || !read_digits(s, 14, 2, mi) || s[16] != ':' || !read_digits(s, 17, 2, se))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60) return std::nullopt;
  std::size_t i = 19;
  std::int64_t frac = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (n >= 6) {
        if (s[i] != '0') return std::nullopt;  // sub-microsecond precision would be lost
      } else {
        frac = frac * 10 + (s[i] - '0');
      }
      ++n;
      ++i;
    }
    if (n == 0) return std::nullopt;
    for (int k = n; k < 6; ++k) frac *= 10;
  }
  std::int64_t offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!read_digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !read_digits(s, i + 4, 2, om))
      return std::nullopt;
    offset = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  std::int64_t secs = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
                      h * 3600 + mi * 60 + se - offset;
  std::int64_t us = secs * 1000000 + frac;
  // An offset (or a leap second) can carry a time past the four-digit years: it would print as
  // something no parser reads back (export | import must round-trip), so it is refused.
  if (us < kMinUs || us > kMaxUs) return std::nullopt;
  return us;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + i, v);
  if (ec != std::errc() || p != s.data() + i || v < 0) return std::nullopt;
  std::string_view unit = s.substr(i);
  double ms;
  if (unit == "ms") ms = v;
  else if (unit == "s") ms = v * 1000;
  else if (unit == "m") ms = v * 60000;
  else if (unit == "h") ms = v * 3600000;
  else if (unit == "d") ms = v * 86400000;
  else return std::nullopt;
  if (ms > 1e15) return std::nullopt;
  return static_cast<std::int64_t>(ms + 0.5);
}

std::optional<std::int64_t> parse_time_bound(std::string_view text, bool end_of_day, std::int64_t now) {
  if (text.size() == 10 && text[4] == '-' && text[7] == '-') {
    auto start = parse_rfc3339(std::string(text) + "T00:00:00Z");
    if (!start) return std::nullopt;
    return end_of_day ? *start + 86400LL * 1000000 - 1 : *start;
  }
  if (auto t = parse_rfc3339(text)) return t;
  if (auto ms = parse_duration_ms(text)) return now - *ms * 1000;
  return std::nullopt;
}

}  // namespace esctl
