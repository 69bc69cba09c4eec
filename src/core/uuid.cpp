// UUIDv7 per RFC 9562 §5.7, with the "fixed-length dedicated counter" method (§6.2) in rand_a
// so that ids from one process sort in creation order, which keeps the id index append-only.
#include "core/uuid.hpp"

#include <pthread.h>
#include <sys/random.h>

#include <chrono>
#include <cstring>
#include <mutex>

namespace esctl {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void fill_random(std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) continue;  // EINTR
    p += got;
    n -= static_cast<std::size_t>(got);
  }
}

// Random bytes for ids, fetched 4 KiB at a time: one getrandom(2) per id cost ~15% of an import
// of events without ids. A forked child must not reuse its parent's buffer (pthread_atfork).
struct RandomPool {
  std::uint8_t bytes[4096];
  std::size_t used = sizeof bytes;
  void take(std::uint8_t* out, std::size_t n) {
    if (used + n > sizeof bytes) {
      fill_random(bytes, sizeof bytes);
      used = 0;
    }
    std::memcpy(out, bytes + used, n);
    used += n;
  }
};
RandomPool g_pool;
void forget_random_pool() { g_pool.used = sizeof g_pool.bytes; }

}  // namespace

std::optional<Uuid> parse_uuid(std::string_view t) {
  if (t.size() != 36) return std::nullopt;
  Uuid u;
  std::size_t b = 0;
  for (std::size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (t[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = hex_value(t[i]), lo = hex_value(t[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    u.bytes[b++] = static_cast<std::uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return u;
}

std::optional<Uuid> uuid_from_bytes(std::string_view raw) {
  if (raw.size() != 16) return std::nullopt;
  Uuid u;
  for (std::size_t i = 0; i < 16; ++i) u.bytes[i] = static_cast<std::uint8_t>(raw[i]);
  return u;
}

void append_uuid(std::string& out, std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[36];
  std::size_t o = 0;
  for (std::size_t i = 0; i < 16 && i < raw.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) buf[o++] = '-';
    auto byte = static_cast<unsigned char>(raw[i]);
    buf[o++] = kHex[byte >> 4];
    buf[o++] = kHex[byte & 15];
  }
  out.append(buf, o);
}

std::string format_uuid(const Uuid& u) {
  std::string s;
  append_uuid(s, u.view());
  return s;
}

Uuid new_uuid_v7() {
  static std::mutex mu;
  static std::uint64_t last_ms = 0;
  static std::uint16_t counter = 0;

  static const bool registered = pthread_atfork(nullptr, nullptr, forget_random_pool) == 0;
  (void)registered;

  Uuid u;
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  std::uint16_t seq;
  {
    std::lock_guard lock(mu);
    g_pool.take(u.bytes.data(), u.bytes.size());
    if (ms <= last_ms) {
      // Same millisecond (or the clock stepped back): keep counting on the last timestamp.
      ms = last_ms;
      if (++counter > 0x0fff) {
        counter = 0;
        ms = ++last_ms;
      }
    } else {
      last_ms = ms;
      counter = static_cast<std::uint16_t>(u.bytes[6] & 0x03);  // small random start
    }
    seq = counter;
  }
  for (int i = 0; i < 6; ++i) u.bytes[i] = static_cast<std::uint8_t>(ms >> (8 * (5 - i)));
  u.bytes[6] = static_cast<std::uint8_t>(0x70 | ((seq >> 8) & 0x0f));
  u.bytes[7] = static_cast<std::uint8_t>(seq & 0xff);
  u.bytes[8] = static_cast<std::uint8_t>(0x80 | (u.bytes[8] & 0x3f));
  return u;
}

}  // namespace esctl
