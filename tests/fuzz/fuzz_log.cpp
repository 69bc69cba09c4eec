// Fuzz target for the `verify --log` reader: a whole log file, split into lines the way
// commands/io.cpp's LineReader does ("\n", then one "\r" stripped), each through parse_log_line()
// and into two OrderLog checkers (with and without --no-gaps). A line the reader refuses is
// skipped here (verify stops at it), so one input exercises many deliveries.
// Properties, beyond "no crash, no sanitizer report":
//  - an accepted line is valid JSON and nlohmann reads the same stream and version from it;
//  - OrderLog agrees, line by line, with a naive model (a std::set of seen versions per stream):
//    same redelivery/first-delivery classification, same violation kind, stream, version, line;
//  - counts are consistent: lines == accepted lines == first deliveries + redeliveries, and
//    streams == distinct streams accepted.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"
#include "core/error.hpp"
#include "core/json_text.hpp"
#include "core/order_log.hpp"

using namespace esctl;

namespace {

std::string_view g_input;

constexpr const char* kTarget = "fuzz_log";

// The checker's contract (order_log.hpp), written the obvious way.
struct Model {
  struct Stream {
    std::set<std::int64_t> seen;
    std::int64_t high = -1;
  };
  bool no_gaps;
  std::map<std::string, Stream> streams;
  std::int64_t first = 0, re = 0;

  // The violation kind a delivery shows ("" for none); `redelivery` set accordingly.
  std::string add(const LogEntry& e, bool& redelivery) {
    Stream& s = streams[e.stream];
    redelivery = s.seen.count(e.version) > 0;
    if (redelivery) {
      ++re;
      return "";
    }
    ++first;
    std::string kind;
    if (s.high >= 0 && e.version < s.high) kind = "delivery_order";
    else if (no_gaps && s.high >= 0 && e.version - s.high > 1) kind = "delivery_gap";
    s.seen.insert(e.version);
    if (e.version > s.high) s.high = e.version;
    return kind;
  }
};

void check_entry(const LogEntry& e, std::string_view line) {
  FUZZ_CHECK(!json::validate(line), line);
  FUZZ_CHECK(e.version >= 0, line);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::out_of_range&) {
    return;  // holds a number nlohmann cannot (1e400): no opinion
  } catch (const nlohmann::json::parse_error&) {
    fuzz::fail(kTarget, "nlohmann parses an accepted line", line);
  }
  FUZZ_CHECK(j.is_object() && j["stream"].is_string() && j["stream"].get<std::string>() == e.stream, line);
  FUZZ_CHECK(j["version"].is_number_integer() && j["version"].get<std::int64_t>() == e.version, line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  g_input = std::string_view(reinterpret_cast<const char*>(data), size);
  OrderLog plain(false), strict(true);
  Model mplain{false, {}}, mstrict{true, {}};
  std::int64_t accepted = 0, line_no = 0;
  std::set<std::string> names;
  for (std::size_t at = 0; at < g_input.size();) {
    std::size_t nl = g_input.find('\n', at);
    std::size_t end = nl == std::string_view::npos ? g_input.size() : nl;
    std::string_view line = g_input.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    at = end + 1;
    ++line_no;
    std::optional<LogEntry> e;
    try {
      e = parse_log_line(line, line_no);
    } catch (const Error& err) {
      FUZZ_CHECK(err.code() == Errc::invalid_input, line);
      continue;
    }
    if (!e) {
      FUZZ_CHECK(line.find_first_not_of(" \t\r") == std::string_view::npos, line);
      continue;
    }
    check_entry(*e, line);
    ++accepted;
    names.insert(e->stream);
    for (auto [log, model] : {std::pair{&plain, &mplain}, std::pair{&strict, &mstrict}}) {
      auto before = log->counts();
      bool redelivery = false;
      std::string want = model->add(*e, redelivery);
      auto got = log->add(*e, line_no);
      FUZZ_CHECK(log->counts().redeliveries == before.redeliveries + (redelivery ? 1 : 0), line);
      FUZZ_CHECK(got.has_value() == !want.empty(), line);
      if (got) {
        FUZZ_CHECK(got->kind == want, line);
        FUZZ_CHECK(got->stream == e->stream && got->version == e->version && got->line == line_no, line);
        FUZZ_CHECK(got->position == e->position, line);
      }
    }
  }
  for (auto [log, model] : {std::pair{&plain, &mplain}, std::pair{&strict, &mstrict}}) {
    const LogCounts& c = log->counts();
    FUZZ_CHECK(c.lines == accepted, g_input);
    FUZZ_CHECK(c.first_deliveries + c.redeliveries == c.lines, g_input);
    FUZZ_CHECK(c.first_deliveries == model->first && c.redeliveries == model->re, g_input);
    FUZZ_CHECK(c.streams == static_cast<std::int64_t>(names.size()), g_input);
  }
  return 0;
}
