// Fuzz target for the NDJSON event reader behind `import` and `append --ndjson`:
// parse_event_line() and the JSON scanner under it (json::validate/minify/for_each_member).
// Properties, beyond "no crash, no sanitizer report":
//  - the scanner agrees with nlohmann::json on what is JSON (except where nlohmann is lax or
//    esctl has a limit: nlohmann skips a UTF-8 BOM and stops at NUL; esctl stops at depth 1000);
//  - an accepted line is a JSON object, and the event agrees with nlohmann's reading of it
//    (stream, type, version, data and meta as JSON values; last duplicate member wins);
//  - data and meta come out minified and valid, and minify is idempotent;
//  - an accepted event written in the export format (append_event_json) parses again to the
//    same event: export | import round-trips.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"
#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/ndjson.hpp"
#include "core/uuid.hpp"
#include "render/event_format.hpp"

using namespace esctl;

namespace {

constexpr const char* kTarget = "fuzz_ndjson";

bool same_event(const NewEvent& a, const NewEvent& b) {
  return a.stream == b.stream && a.type == b.type && a.data == b.data && a.meta == b.meta && a.id == b.id &&
         a.recorded_at == b.recorded_at && a.version == b.version;
}

// nlohmann has no depth limit; esctl stops at 1000 levels. Any text nesting that deep has more
// than 1000 opening brackets.
bool maybe_too_deep(std::string_view s) {
  std::size_t opens = 0;
  for (char c : s) opens += c == '[' || c == '{';
  return opens > static_cast<std::size_t>(json::kMaxDepth);
}

void check_json_agreement(std::string_view line) {
  const bool ours = !json::validate(line);
  bool theirs = true;
  try {
    const nlohmann::json parsed = nlohmann::json::parse(line.begin(), line.end());
    (void)parsed;
  } catch (const nlohmann::json::out_of_range&) {
    theirs = ours;  // a number nlohmann cannot hold (4e400), valid JSON all the same: no opinion
  } catch (const nlohmann::json::parse_error&) {
    theirs = false;
  }
  if (ours) FUZZ_CHECK(theirs, line);
  // nlohmann also skips a UTF-8 BOM and stops at a NUL byte ("5\0" is 5 to it).
  if (theirs && !ours)
    FUZZ_CHECK(line.substr(0, 3) == "\xEF\xBB\xBF" || line.find('\0') != std::string_view::npos || maybe_too_deep(line),
          line);
  std::string once;
  auto err = json::minify(line, once);
  FUZZ_CHECK(!err == ours, line);
  if (ours) {
    std::string twice;
    FUZZ_CHECK(!json::minify(once, twice), line);
    FUZZ_CHECK(once == twice, line);
  } else {
    FUZZ_CHECK(once.empty(), line);  // restored on error
    FUZZ_CHECK(err->offset <= line.size(), line);
  }
}

void check_against_nlohmann(const NewEvent& ev, std::string_view line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::out_of_range&) {
    return;  // a number nlohmann cannot hold (1e400): no opinion
  }
  FUZZ_CHECK(j.is_object(), line);
  FUZZ_CHECK(j.contains("stream") && j["stream"].is_string() && j["stream"].get<std::string>() == ev.stream, line);
  FUZZ_CHECK(j.contains("type") && j["type"].is_string() && j["type"].get<std::string>() == ev.type, line);
  auto same_value = [&](const char* key, const std::string& ours) {
    nlohmann::json want = j.contains(key) ? j[key] : nlohmann::json::object();
    nlohmann::json got;
    try {
      got = nlohmann::json::parse(ours);
    } catch (const nlohmann::json::exception&) {
      fuzz::fail(kTarget, "data/meta re-parses", line);
    }
    FUZZ_CHECK(got == want, line);
  };
  same_value("data", ev.data);
  same_value("meta", ev.meta);
  if (ev.version) {
    FUZZ_CHECK(j["version"].is_number_integer(), line);
    FUZZ_CHECK(j["version"].get<std::int64_t>() == *ev.version, line);
  } else {
    FUZZ_CHECK(!j.contains("version"), line);
  }
  FUZZ_CHECK(j.contains("id") == ev.id.has_value(), line);
  FUZZ_CHECK(j.contains("recorded_at") == ev.recorded_at.has_value(), line);
}

void check_event(const NewEvent& ev, std::string_view line, std::string_view stream) {
  if (!stream.empty()) FUZZ_CHECK(ev.stream == stream, line);
  FUZZ_CHECK(!json::validate(ev.data) && !json::validate(ev.meta), line);
  std::string m;
  json::minify(ev.data, m);
  FUZZ_CHECK(m == ev.data, line);
  m.clear();
  json::minify(ev.meta, m);
  FUZZ_CHECK(m == ev.meta, line);
  FUZZ_CHECK(json::valid_utf8(ev.stream) && json::valid_utf8(ev.type), line);
  if (stream.empty()) check_against_nlohmann(ev, line);

  // export | import: the export format must read back as the same event.
  Uuid id = ev.id.value_or(Uuid{});
  EventRef ref{1,  ev.stream, ev.version.value_or(0), id.view(), ev.type, ev.data, ev.meta,
               ev.recorded_at.value_or(0)};
  std::string out;
  append_event_json(out, ref);
  NewEvent back;
  try {
    back = parse_event_line(out, 1);
  } catch (const Error& e) {
    std::fprintf(stderr, "re-read of %s failed: %s\n", out.c_str(), e.what());
    fuzz::fail(kTarget, "an exported event reads back", line);
  }
  NewEvent want = ev;
  want.id = id;
  want.version = ev.version.value_or(0);
  want.recorded_at = ev.recorded_at.value_or(0);
  if (!same_event(back, want)) {
    std::fprintf(stderr, "exported as %s\n", out.c_str());
    fuzz::fail(kTarget, "an exported event reads back as the same event", line);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  check_json_agreement(line);
  for (std::string_view stream : {std::string_view(), std::string_view("fuzz-1")}) {
    NewEvent ev;
    try {
      ev = parse_event_line(line, 7, stream);
    } catch (const Error& e) {
      FUZZ_CHECK(e.code() == Errc::invalid_input, line);
      FUZZ_CHECK(std::string_view(e.what()).substr(0, 7) == "line 7:", line);
      continue;
    }
    FUZZ_CHECK(!json::validate(line), line);  // never accepts what is not one JSON text
    check_event(ev, line, stream);
  }
  return 0;
}
