// Strict RFC 8259 JSON text checks for event data and NDJSON lines: validate, minify (drop
// insignificant whitespace, keep every other byte as written) and split an object into raw members.
// Not a JSON library: it builds no tree, never converts numbers and never re-encodes strings.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/function_ref.hpp"

namespace esctl::json {

/// Why a text is not JSON. `offset` is a byte offset into the input: the first offending byte,
/// the opening quote of an unterminated string, or the input's size for a premature end.
/// `message` is lower case without a trailing period, e.g. "unexpected character 'x'".
struct Error {
  std::size_t offset;
  std::string message;
};

/// Arrays and objects may nest this deep and no deeper (SQLite's JSON functions use the same).
inline constexpr int kMaxDepth = 1000;

/// Validates `in` as one strict RFC 8259 JSON text (any value type; leading/trailing whitespace
/// allowed) and appends its minified form to `out`: the input with the whitespace between tokens
/// removed, every other byte (numbers, escapes) unchanged. On error returns it and `out` is
/// restored to its original size. `in` must not view `out`'s own buffer.
std::optional<Error> minify(std::string_view in, std::string& out);

/// Validates `in` exactly as minify() does, producing no output.
std::optional<Error> validate(std::string_view in);

/// `in` must be a JSON object. Calls fn(key, raw_value) for every member in order: key is the
/// decoded key (escapes resolved, UTF-8), raw_value the exact slice of `in` holding the member's
/// value, without surrounding whitespace and not minified. fn is called only after the whole
/// text validated, so a malformed input yields an error and no calls at all. A non-object top
/// level is the error "expected a JSON object". Duplicate keys are passed through in order.
/// The views are valid only during the call.
std::optional<Error> for_each_member(std::string_view in,
                                     FunctionRef<void(std::string_view key, std::string_view raw_value)> fn);

/// As for_each_member, and also tells whether raw_value is already minified (no whitespace
/// between its tokens), so that a caller can take it as it is instead of calling minify().
std::optional<Error> for_each_member(
    std::string_view in, FunctionRef<void(std::string_view key, std::string_view raw_value, bool minified)> fn);

/// Appends `s` as a JSON string literal: quotes, `\"` and `\\`, `\b \f \n \r \t` and `\u00XX` for
/// the other bytes below 0x20. Other bytes, including those from 0x80 up, are copied unchanged;
/// the result is valid JSON only if `s` is valid UTF-8.
void append_quoted(std::string& out, std::string_view s);

/// `values` as a JSON array of strings, each quoted as append_quoted() does.
std::string string_array(const std::vector<std::string>& values);

/// Decodes a JSON string literal, quotes included, into UTF-8; nullopt unless `literal` is
/// exactly one valid string literal.
std::optional<std::string> decode_string(std::string_view literal);

/// True if `s` is valid UTF-8: no overlong forms, no surrogates U+D800..U+DFFF, nothing past
/// U+10FFFF, no truncated sequences.
bool valid_utf8(std::string_view s);

}  // namespace esctl::json
