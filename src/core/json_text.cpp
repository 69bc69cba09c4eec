// The one-pass, non-recursive scanner behind esctl::json's validate, minify and for_each_member.
// Not a parser: no tree, no number conversion; minify's output is its input minus whitespace.
//
// How it works. scan_text() walks the text once with an explicit stack of the open containers' closing
// bytes (one byte a level, at most kMaxDepth, on the C++ stack), so hostile nesting costs no
// recursion and no allocation. Its loop has two halves. "A value starts here" dispatches on the
// first byte: scalars are scanned whole; '[' and '{' push, then either close at once (empty) or go
// round again for their first element (after reading the first key). "A value ended here" pops
// every container the following bytes close, then finishes at depth 0 (only whitespace may
// follow) or consumes ',' (and the next key) and goes round again.
// The entry points differ only in a Hooks type whose calls compile away when unused: minify
// copies the bytes between whitespace runs; for_each_member records where depth-1 keys and values
// begin and end, and reports them after the whole text validated.
// Strings are skipped 8 bytes at a time until a byte that needs attention: '"', '\\', a control
// byte, or a byte from 0x80 that must start a well-formed UTF-8 sequence (Unicode table 3-7).
#include "core/json_text.hpp"

#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/utf8.hpp"

namespace esctl::json {
namespace {

using Byte = unsigned char;

// Returned instead of an offset when a helper has stored an Error.
constexpr std::size_t kFail = static_cast<std::size_t>(-1);

bool is_ws(Byte c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(Byte c) { return static_cast<unsigned>(c - '0') < 10; }

// The error paths below are cold and out of line so that the scanning loops stay small.

[[gnu::cold, gnu::noinline]] std::size_t fail(std::optional<Error>& err, std::size_t offset, const char* message) {
  err = Error{offset, message};
  return kFail;
}

// "character 'x'" for visible ASCII, else "byte 0x1f": never echoes raw control or non-ASCII bytes.
std::string describe(Byte c) {
  if (c > 0x20 && c < 0x7f) return std::string("character '") + static_cast<char>(c) + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02x", static_cast<unsigned>(c));
  return buf;
}

// "unexpected character 'x'", then ", expected <expected>" unless `expected` is empty.
[[gnu::cold, gnu::noinline]] std::size_t fail_unexpected(std::optional<Error>& err, std::size_t offset, Byte c,
                                                         std::string_view expected) {
  std::string message = "unexpected " + describe(c);
  if (!expected.empty()) message.append(", expected ").append(expected);
  err = Error{offset, std::move(message)};
  return kFail;
}

[[gnu::cold, gnu::noinline]] std::size_t fail_escape(std::optional<Error>& err, std::size_t offset, Byte c) {
  if (c > 0x20 && c < 0x7f) {
    err = Error{offset, std::string("invalid escape '\\") + static_cast<char>(c) + "'"};
  } else {
    err = Error{offset, "invalid escape: backslash before " + describe(c)};
  }
  return kFail;
}

// `hex` is the escape's four digits, echoed as written.
[[gnu::cold, gnu::noinline]] std::size_t fail_lone_surrogate(std::optional<Error>& err, std::size_t offset,
                                                             const Byte* hex) {
  err = Error{offset, "lone surrogate \\u" + std::string(reinterpret_cast<const char*>(hex), 4)};
  return kFail;
}

[[gnu::cold, gnu::noinline]] std::size_t fail_control(std::optional<Error>& err, std::size_t offset, Byte c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "unescaped control character U+%04X in string", static_cast<unsigned>(c));
  err = Error{offset, buf};
  return kFail;
}

constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

std::uint64_t zero_bytes(std::uint64_t x) { return (x - kOnes) & ~x & kHighBits; }

// Sets the top bit of (at least) the first byte of v that a string scan must stop at: '"', '\\',
// below 0x20, or from 0x80. Bits above the first may be spurious (borrows); the lowest is exact,
// and it is the only one used.
std::uint64_t string_stops(std::uint64_t v) {
  return zero_bytes(v ^ (kOnes * '"')) | zero_bytes(v ^ (kOnes * '\\')) |
         ((v - kOnes * 0x20) & ~v & kHighBits) | (v & kHighBits);
}

constexpr std::array<bool, 256> kPlainStringByte = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

int hex_digit(Byte c) {
  if (is_digit(c)) return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// The code unit of the \uXXXX escape whose backslash is at p: -1 if a digit is not hex,
// -2 if the input ends first.
long u_escape(const Byte* in, std::size_t n, std::size_t p) {
  long v = 0;
  for (std::size_t i = p + 2; i < p + 6; ++i) {
    if (i >= n) return -2;
    const int d = hex_digit(in[i]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

bool is_high_surrogate(long u) { return u >= 0xD800 && u <= 0xDBFF; }
bool is_low_surrogate(long u) { return u >= 0xDC00 && u <= 0xDFFF; }

// Checks the escape whose backslash is at p inside the string opened at `open`; returns the
// offset after it.
std::size_t scan_escape(const Byte* in, std::size_t n, std::size_t p, std::size_t open, std::optional<Error>& err) {
  if (p + 1 >= n) return fail(err, open, "unterminated string");
  switch (in[p + 1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
      return p + 2;
    case 'u':
      break;
    default:
      return fail_escape(err, p, in[p + 1]);
  }
  auto lone = [&] { return fail_lone_surrogate(err, p, in + p + 2); };
  const long unit = u_escape(in, n, p);
  if (unit == -2) return fail(err, open, "unterminated string");
  if (unit == -1) return fail(err, p, "invalid \\u escape: expected 4 hex digits");
  if (is_low_surrogate(unit)) return lone();
  if (!is_high_surrogate(unit)) return p + 6;
  const std::size_t next = p + 6;
  if (next >= n || (in[next] == '\\' && next + 1 >= n)) return fail(err, open, "unterminated string");
  if (in[next] != '\\' || in[next + 1] != 'u') return lone();
  const long low = u_escape(in, n, next);
  if (low == -2) return fail(err, open, "unterminated string");
  if (low == -1) return fail(err, next, "invalid \\u escape: expected 4 hex digits");
  if (!is_low_surrogate(low)) return lone();
  return next + 6;
}

// `pos` is at the opening quote; returns the offset after the closing quote.
std::size_t scan_string(const Byte* in, std::size_t n, std::size_t pos, std::optional<Error>& err) {
  std::size_t p = pos + 1;
  for (;;) {
    if constexpr (std::endian::native == std::endian::little) {
      while (p + 8 <= n) {
        std::uint64_t word;
        std::memcpy(&word, in + p, 8);
        if (const std::uint64_t stops = string_stops(word)) {
          p += static_cast<std::size_t>(std::countr_zero(stops)) / 8;
          break;
        }
        p += 8;
      }
    }
    while (p < n && kPlainStringByte[in[p]]) ++p;
    if (p == n) return fail(err, pos, "unterminated string");
    const Byte c = in[p];
    if (c == '"') return p + 1;
    if (c == '\\') {
      p = scan_escape(in, n, p, pos, err);
      if (p == kFail) return kFail;
    } else if (c < 0x20) {
      return fail_control(err, p, c);
    } else {
      const std::size_t len = utf8::sequence_length(in + p, in + n);
      if (len == 0) return fail(err, p, "invalid UTF-8");
      p += len;
    }
  }
}

// `pos` is at '-' or a digit; returns the offset after the number.
std::size_t scan_number(const Byte* in, std::size_t n, std::size_t pos, std::optional<Error>& err) {
  std::size_t p = pos;
  if (in[p] == '-') {
    ++p;
    if (p == n || !is_digit(in[p])) return fail(err, p, "expected a digit after '-'");
  }
  if (in[p] == '0') {
    ++p;
    if (p < n && is_digit(in[p])) return fail(err, p - 1, "leading zeros are not allowed in numbers");
  } else {
    while (p < n && is_digit(in[p])) ++p;
  }
  if (p < n && in[p] == '.') {
    ++p;
    if (p == n || !is_digit(in[p])) return fail(err, p, "expected a digit after '.'");
    while (p < n && is_digit(in[p])) ++p;
  }
  if (p < n && (in[p] == 'e' || in[p] == 'E')) {
    ++p;
    if (p < n && (in[p] == '+' || in[p] == '-')) ++p;
    if (p == n || !is_digit(in[p])) return fail(err, p, "expected a digit in the exponent");
    while (p < n && is_digit(in[p])) ++p;
  }
  return p;
}

// `word` is the literal quoted, as in "'true'".
std::size_t scan_literal(const Byte* in, std::size_t n, std::size_t pos, std::string_view word,
                         std::optional<Error>& err) {
  const std::string_view bare = word.substr(1, word.size() - 2);
  for (std::size_t i = 0; i < bare.size(); ++i) {
    if (pos + i == n) return fail(err, n, "unexpected end of input");
    if (in[pos + i] != static_cast<Byte>(bare[i])) return fail_unexpected(err, pos + i, in[pos + i], word);
  }
  return pos + bare.size();
}

// What scan() reports besides errors; every entry point overrides only what it needs.
struct NoHooks {
  void skipped(std::size_t /*from*/, std::size_t /*to*/) {}   // whitespace [from, to)
  void key(int /*depth*/, std::size_t /*begin*/, std::size_t /*end*/) {}  // quotes included
  void value_begin(int /*depth*/, std::size_t /*pos*/) {}
  void value_end(int /*depth*/, std::size_t /*pos*/) {}
  void finish(std::size_t /*size*/) {}
};

static_assert(kMaxDepth == 1000, "the nesting error message spells out the limit");

// Returns n, or kFail with `err` set.
template <class Hooks>
std::size_t scan_text(const Byte* in, std::size_t n, Hooks& hooks, std::optional<Error>& err) {
  std::array<Byte, kMaxDepth> closers;  // only [0, depth) is ever read
  int depth = 0;

  auto skip_ws = [&](std::size_t p) {
    std::size_t q = p;
    while (q < n && is_ws(in[q])) ++q;
    if (q != p) hooks.skipped(p, q);
    return q;
  };
  // From just after '{' or ',' in an object to the start of the member's value.
  auto read_key = [&](std::size_t p) -> std::size_t {
    if (p == n) return fail(err, n, "unexpected end of input");
    if (in[p] != '"') {
      // An empty object was handled by the caller, so '}' here follows a comma.
      if (in[p] == '}') return fail(err, p, "trailing comma before '}'");
      return fail_unexpected(err, p, in[p], "a string key");
    }
    const std::size_t end = scan_string(in, n, p, err);
    if (end == kFail) return kFail;
    hooks.key(depth, p, end);
    const std::size_t colon = skip_ws(end);
    if (colon == n) return fail(err, n, "unexpected end of input");
    if (in[colon] != ':') return fail_unexpected(err, colon, in[colon], "':'");
    return skip_ws(colon + 1);
  };

  std::size_t pos = skip_ws(0);
  if (pos == n) return fail(err, n, "empty input, expected a JSON value");
  for (;;) {
    // A value starts at pos.
    if (pos == n) return fail(err, n, "unexpected end of input");
    hooks.value_begin(depth, pos);
    const Byte c = in[pos];
    switch (c) {
      case '{':
      case '[': {
        if (depth == kMaxDepth) return fail(err, pos, "nesting deeper than 1000 levels");
        const Byte closer = c == '{' ? '}' : ']';
        closers[depth++] = closer;
        pos = skip_ws(pos + 1);
        if (pos < n && in[pos] == closer) {
          --depth;
          ++pos;
          break;
        }
        if (c == '{') {
          pos = read_key(pos);
          if (pos == kFail) return kFail;
        }
        continue;
      }
      case '"':
        pos = scan_string(in, n, pos, err);
        break;
      case 't':
        pos = scan_literal(in, n, pos, "'true'", err);
        break;
      case 'f':
        pos = scan_literal(in, n, pos, "'false'", err);
        break;
      case 'n':
        pos = scan_literal(in, n, pos, "'null'", err);
        break;
      case '-': case '0': case '1': case '2': case '3': case '4':
      case '5': case '6': case '7': case '8': case '9':
        pos = scan_number(in, n, pos, err);
        break;
      default:
        // An empty array was handled above, so ']' here follows a comma.
        if (c == ']' && depth > 0 && closers[depth - 1] == ']') return fail(err, pos, "trailing comma before ']'");
        return fail_unexpected(err, pos, c, {});
    }
    if (pos == kFail) return kFail;

    // A value ended at pos: close every container that ends here, then find the next value.
    for (;;) {
      hooks.value_end(depth, pos);
      pos = skip_ws(pos);
      if (depth == 0) {
        if (pos != n) return fail(err, pos, "trailing characters after JSON value");
        hooks.finish(n);
        return n;
      }
      if (pos == n) return fail(err, n, "unexpected end of input");
      const Byte closer = closers[depth - 1];
      if (in[pos] == closer) {
        --depth;
        ++pos;
        continue;
      }
      if (in[pos] != ',') return fail_unexpected(err, pos, in[pos], closer == '}' ? "',' or '}'" : "',' or ']'");
      pos = skip_ws(pos + 1);
      if (closer == '}') {
        pos = read_key(pos);
        if (pos == kFail) return kFail;
      }
      break;
    }
  }
}

template <class Hooks>
std::optional<Error> scan(std::string_view text, Hooks& hooks) {
  std::optional<Error> err;
  scan_text(reinterpret_cast<const Byte*>(text.data()), text.size(), hooks, err);
  return err;
}

class MinifyHooks : public NoHooks {
 public:
  MinifyHooks(const char* in, std::string& out) : in_(in), out_(out) {}
  void skipped(std::size_t from, std::size_t to) {
    out_.append(in_ + copied_to_, from - copied_to_);
    copied_to_ = to;
  }
  void finish(std::size_t size) { out_.append(in_ + copied_to_, size - copied_to_); }

 private:
  const char* in_;
  std::string& out_;
  std::size_t copied_to_ = 0;
};

// Offsets of one top-level member: key with its quotes, value trimmed.
struct MemberSpan {
  std::size_t key_begin, key_end, value_begin, value_end;
  bool minified;  // no whitespace was skipped inside the value
};

// Collects the top-level object's members; the first few without allocating.
class MemberHooks : public NoHooks {
 public:
  // Whitespace skipped between a depth-1 value's begin and end lies inside that value (the
  // whitespace around keys, colons and commas is skipped outside those two calls).
  void skipped(std::size_t /*from*/, std::size_t /*to*/) { pending_.minified = false; }
  void key(int depth, std::size_t begin, std::size_t end) {
    if (depth == 1) {
      pending_.key_begin = begin;
      pending_.key_end = end;
    }
  }
  void value_begin(int depth, std::size_t pos) {
    if (depth == 1) {
      pending_.value_begin = pos;
      pending_.minified = true;
    }
  }
  void value_end(int depth, std::size_t pos) {
    if (depth != 1) return;
    pending_.value_end = pos;
    if (count_ < inline_.size()) {
      inline_[count_] = pending_;
    } else {
      spill_.push_back(pending_);
    }
    ++count_;
  }
  std::size_t size() const { return count_; }
  const MemberSpan& operator[](std::size_t i) const {
    return i < inline_.size() ? inline_[i] : spill_[i - inline_.size()];
  }

 private:
  std::array<MemberSpan, 16> inline_;
  std::vector<MemberSpan> spill_;
  std::size_t count_ = 0;
  MemberSpan pending_{};
};

void append_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Appends the decoded contents of an already validated string literal without its quotes.
void decode_body(std::string_view body, std::string& out) {
  const Byte* in = reinterpret_cast<const Byte*>(body.data());
  std::size_t i = 0;
  for (;;) {
    const std::size_t slash = body.find('\\', i);
    out.append(body.substr(i, slash == std::string_view::npos ? std::string_view::npos : slash - i));
    if (slash == std::string_view::npos) return;
    i = slash + 2;
    switch (body[slash + 1]) {
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        unsigned long cp = static_cast<unsigned long>(u_escape(in, body.size(), slash));
        i = slash + 6;
        if (is_high_surrogate(static_cast<long>(cp))) {
          const auto low = static_cast<unsigned long>(u_escape(in, body.size(), i));
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          i += 6;
        }
        append_utf8(out, cp);
        break;
      }
      default: out.push_back(body[slash + 1]); break;  // '"', '\\' or '/'
    }
  }
}

}  // namespace

std::optional<Error> minify(std::string_view in, std::string& out) {
  const std::size_t original = out.size();
  MinifyHooks hooks(in.data(), out);
  auto err = scan(in, hooks);
  if (err) out.resize(original);
  return err;
}

std::optional<Error> validate(std::string_view in) {
  NoHooks hooks;
  return scan(in, hooks);
}

std::optional<Error> for_each_member(std::string_view in,
                                     FunctionRef<void(std::string_view key, std::string_view raw_value)> fn) {
  return for_each_member(in, [&](std::string_view key, std::string_view raw, bool) { fn(key, raw); });
}

std::optional<Error> for_each_member(
    std::string_view in, FunctionRef<void(std::string_view key, std::string_view raw_value, bool minified)> fn) {
  std::size_t start = 0;
  while (start < in.size() && is_ws(static_cast<Byte>(in[start]))) ++start;
  if (start == in.size() || in[start] != '{') return Error{start, "expected a JSON object"};
  MemberHooks members;
  if (auto err = scan(in, members)) return err;
  std::string decoded;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const MemberSpan& m = members[i];
    std::string_view key = in.substr(m.key_begin + 1, m.key_end - m.key_begin - 2);
    if (key.find('\\') != std::string_view::npos) {
      decoded.clear();
      decode_body(key, decoded);
      key = decoded;
    }
    fn(key, in.substr(m.value_begin, m.value_end - m.value_begin), m.minified);
  }
  return std::nullopt;
}

void append_quoted(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t copied_to = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<Byte>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + copied_to, i - copied_to);
    copied_to = i + 1;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default: {
        const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(esc, sizeof esc);
      }
    }
  }
  out.append(s.data() + copied_to, s.size() - copied_to);
  out.push_back('"');
}

std::optional<std::string> decode_string(std::string_view literal) {
  if (literal.size() < 2 || literal.front() != '"') return std::nullopt;
  std::optional<Error> err;
  if (scan_string(reinterpret_cast<const Byte*>(literal.data()), literal.size(), 0, err) != literal.size())
    return std::nullopt;
  std::string out;
  out.reserve(literal.size() - 2);
  decode_body(literal.substr(1, literal.size() - 2), out);
  return out;
}

bool valid_utf8(std::string_view s) {
  const Byte* in = reinterpret_cast<const Byte*>(s.data());
  const Byte* end = in + s.size();
  const Byte* p = in;
  while (p < end) {
    if (end - p >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, 8);
      if ((word & kHighBits) == 0) {
        p += 8;
        continue;
      }
    }
    if (*p < 0x80) {
      ++p;
      continue;
    }
    const std::size_t len = utf8::sequence_length(p, end);
    if (len == 0) return false;
    p += len;
  }
  return true;
}

std::string string_array(const std::vector<std::string>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out.push_back(',');
    append_quoted(out, values[i]);
  }
  out.push_back(']');
  return out;
}

}  // namespace esctl::json
