#include "core/ndjson.hpp"

#include <charconv>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/names.hpp"
#include "core/time.hpp"

namespace esctl {

static std::string size_limit_note(std::string_view what, std::size_t size) {
  return fmt::format("{} is {} bytes, over the limit of {} bytes (64 MiB) per event's data or meta", what, size,
                     kMaxJsonBytes);
}

std::string checked_json(std::string_view text, std::string_view what) {
  if (text.size() > kMaxJsonBytes) throw Error(Errc::invalid_input, size_limit_note(what, text.size()));
  std::string out;
  if (auto err = json::minify(text, out))
    throw Error(Errc::invalid_input, fmt::format("{} is not valid JSON: {} at byte {}", what, err->message, err->offset));
  return out;
}

NewEvent parse_event_line(std::string_view line, std::int64_t line_no, std::string_view stream) {
  NewEvent ev;
  bool have_stream = false, have_type = false, have_data = false;
  std::string problem;
  auto bad = [&](std::string msg) {
    if (problem.empty()) problem = std::move(msg);
  };
  // The whole line is validated before the first call, so a string without escapes is its own
  // decoding and a value without whitespace is its own minified form: neither is scanned again.
  auto str = [&](std::string_view key, std::string_view raw, std::string& out) {
    if (raw.size() < 2 || raw[0] != '"') {
      bad(fmt::format("\"{}\" must be a string", key));
      out.clear();
      return;
    }
    std::string_view body = raw.substr(1, raw.size() - 2);
    if (body.find('\\') == std::string_view::npos) {
      out.assign(body);
    } else {
      out = json::decode_string(raw).value_or("");
    }
  };
  auto json_value = [&](std::string_view raw, bool minified, std::string& out) {
    if (minified) {
      out.assign(raw);
    } else {
      out.clear();
      json::minify(raw, out);
    }
  };
  std::string text;
  auto err = json::for_each_member(line, [&](std::string_view key, std::string_view raw, bool minified) {
    if (key == "stream") {
      str(key, raw, ev.stream);
      have_stream = true;
    } else if (key == "type") {
      str(key, raw, ev.type);
      have_type = true;
    } else if ((key == "data" || key == "meta") && raw.size() > kMaxJsonBytes) {
      bad(size_limit_note(fmt::format("\"{}\"", key), raw.size()));
    } else if (key == "data") {
      json_value(raw, minified, ev.data);
      have_data = true;
    } else if (key == "meta") {
      json_value(raw, minified, ev.meta);
    } else if (key == "id") {
      str(key, raw, text);
      ev.id = parse_uuid(text);
      if (!ev.id && problem.empty()) bad(fmt::format("\"id\" '{}' is not a UUID", text));
    } else if (key == "recorded_at") {
      str(key, raw, text);
      ev.recorded_at = parse_rfc3339(text);
      if (!ev.recorded_at && problem.empty())
        bad(fmt::format("\"recorded_at\" '{}' is not an RFC 3339 time", text));
    } else if (key == "version") {
      std::int64_t v = -1;
      auto [p, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), v);
      if (ec != std::errc() || p != raw.data() + raw.size() || v < 0)
        bad("\"version\" must be a non-negative integer");
      else
        ev.version = v;
    }
  });
  if (err)
    throw Error(Errc::invalid_input, fmt::format("line {}: not a JSON object: {} at byte {}", line_no, err->message, err->offset));
  if (!problem.empty()) throw Error(Errc::invalid_input, fmt::format("line {}: {}", line_no, problem));
  if (!stream.empty()) {
    if (have_stream && ev.stream != stream)
      throw Error(Errc::invalid_input,
                  fmt::format("line {}: event is for stream '{}', not '{}'", line_no, ev.stream, stream));
    ev.stream = std::string(stream);
    have_stream = true;
  }
  if (!have_stream) throw Error(Errc::invalid_input, fmt::format("line {}: missing \"stream\"", line_no));
  if (!have_type) throw Error(Errc::invalid_input, fmt::format("line {}: missing \"type\"", line_no));
  if (!have_data)
    throw Error(Errc::invalid_input,
                fmt::format("line {}: missing \"data\" (an event without data says \"data\":{{}})", line_no));
  try {
    check_stream_name(ev.stream);
    check_event_type(ev.type);
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("line {}: {}", line_no, e.what()));
  }
  return ev;
}

}  // namespace esctl
