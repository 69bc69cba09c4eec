// Projection files as text (see projection_file.hpp).
//
// Parsing: a line whose first non-blank characters are `--`, optional blanks and `@` is a marker;
// `@init` and `@on LIST` open sections, any other word is an error. Outside markers only blank
// lines and comments may precede the first marker. A section's text is split into statements at
// each `;` after which sqlite3_complete() says the text so far is complete (so semicolons inside
// strings, comments and CREATE TRIGGER bodies do not split), keeping each statement's line.
#include "projection/projection_file.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include <fmt/format.h>

#include "core/error.hpp"

namespace esctl {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
// Whitespace as SQLite's tokenizer sees it: no '\v'. Statement boundaries come from
// sqlite3_complete(), so what is trimmed from a statement must be what SQLite would skip; a '\v'
// trimmed here made "\vCREATE TRIGGER ... BEGIN ...; END;" split inside its body.
bool is_sql_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'; }

// Offset of the first character that is not blank, a comment or a lone ';'.
std::size_t skip_filler(std::string_view s, std::size_t i = 0) {
  for (;;) {
    while (i < s.size() && (is_sql_space(s[i]) || s[i] == ';')) ++i;
    if (s.substr(i, 2) == "--") {
      i = s.find('\n', i);
      if (i == std::string_view::npos) return s.size();
      continue;
    }
    if (s.substr(i, 2) == "/*") {
      i = s.find("*/", i + 2);
      if (i == std::string_view::npos) return s.size();
      i += 2;
      continue;
    }
    return i;
  }
}

int count_lines(std::string_view s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && is_blank(s[b])) ++b;
  while (e > b && is_blank(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

// True if `line` is a marker line; `word` and `rest` receive what follows the '@'.
bool marker(std::string_view line, std::string& word, std::string& rest) {
  std::size_t i = 0;
  while (i < line.size() && is_blank(line[i])) ++i;
  if (line.substr(i, 2) != "--") return false;
  i += 2;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i >= line.size() || line[i] != '@') return false;
  ++i;
  std::size_t w = i;
  while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == '-')) ++i;
  word = std::string(line.substr(w, i - w));
  rest = trim(line.substr(i));
  return true;
}

struct Body {
  std::string text;
  int first_line = 0;
};

void split_statements(ProjectionSection& section, const Body& body, const std::string& name) {
  std::string_view text = body.text;
  auto emit = [&](std::size_t from, std::size_t to) {
    std::string_view chunk = text.substr(from, to - from);
    std::size_t f = skip_filler(chunk);
    if (f >= chunk.size()) return;
    ProjectionStatement st;
    std::string_view body_text = chunk.substr(f);
    while (!body_text.empty() && is_sql_space(body_text.back())) body_text.remove_suffix(1);
    st.sql = std::string(body_text);
    st.line = body.first_line + count_lines(text.substr(0, from + f));
    std::string_view start = std::string_view(st.sql).substr(0, 7);
    std::string lower;
    for (char c : start) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.rfind("vacuum", 0) == 0 && (lower.size() == 6 || !std::isalnum(static_cast<unsigned char>(lower[6]))))
      throw Error(Errc::invalid_input, fmt::format("{}:{}: in section '{}': VACUUM is not allowed in a projection",
                                                   name, st.line, section.label));
    section.statements.push_back(std::move(st));
  };
  std::size_t start = 0;
  std::string chunk;
  for (std::size_t k = text.find(';'); k != std::string_view::npos; k = text.find(';', k + 1)) {
    chunk.assign(text.substr(start, k + 1 - start));
    if (sqlite3_complete(chunk.c_str())) {
      emit(start, k + 1);
      start = k + 1;
    }
  }
  emit(start, text.size());
}

std::vector<ProjectionSection> parse(std::string_view text, const std::string& name) {
  std::vector<ProjectionSection> sections;
  std::vector<Body> bodies;
  Body preamble;
  preamble.first_line = 1;
  Body* body = &preamble;
  int init_line = 0;
  int line_no = 0;
  std::string word, rest;
  for (std::size_t at = 0; at <= text.size();) {
    std::size_t nl = text.find('\n', at);
    std::string_view line = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    ++line_no;
    if (marker(line, word, rest)) {
      ProjectionSection s;
      s.line = line_no;
      if (word == "init") {
        if (!rest.empty())
          throw Error(Errc::invalid_input,
                      fmt::format("{}:{}: unexpected '{}' after '-- @init' (it takes no arguments)", name, line_no, rest));
        if (init_line)
          throw Error(Errc::invalid_input, fmt::format("{}:{}: a second '-- @init' section (the first is at line {}); "
                                                       "put all of @init in one section",
                                                       name, line_no, init_line));
        init_line = line_no;
        s.init = true;
        s.label = "@init";
      } else if (word == "on") {
        std::vector<std::string> types;
        std::stringstream list(rest);
        for (std::string t; std::getline(list, t, ',');) types.push_back(trim(t));
        if (rest.empty() || std::any_of(types.begin(), types.end(), [](auto& t) { return t.empty(); }) ||
            (!rest.empty() && rest.back() == ','))
          throw Error(Errc::invalid_input,
                      fmt::format("{}:{}: '-- @on' needs a comma-separated list of event types, or '*' for every "
                                  "type (e.g. '-- @on OrderPlaced, OrderShipped')",
                                  name, line_no));
        if (types.size() == 1 && types[0] == "*") {
          s.all_types = true;
        } else {
          for (const auto& t : types)
            if (t == "*")
              throw Error(Errc::invalid_input,
                          fmt::format("{}:{}: '*' must stand alone ('-- @on *'), not in a list of types", name, line_no));
          s.types = types;
        }
        s.label = "@on " + rest;
      } else {
        throw Error(Errc::invalid_input, fmt::format("{}:{}: unknown marker '-- @{}' (expected '-- @init' or "
                                                     "'-- @on TYPE[, TYPE...]' or '-- @on *')",
                                                     name, line_no, word));
      }
      sections.push_back(std::move(s));
      bodies.emplace_back();
      bodies.back().first_line = line_no + 1;
      body = &bodies.back();
    } else {
      body->text.append(line);
      body->text += '\n';
    }
    if (nl == std::string_view::npos) break;
    at = nl + 1;
    // `bodies` may have grown: re-point at the current one.
    body = bodies.empty() ? &preamble : &bodies.back();
  }
  std::size_t f = skip_filler(preamble.text);
  if (f < preamble.text.size()) {
    int line = 1 + count_lines(std::string_view(preamble.text).substr(0, f));
    throw Error(Errc::invalid_input,
                fmt::format("{}:{}: SQL before the first section marker; put it under '-- @init' (run once) or "
                            "'-- @on TYPE' (run per event)",
                            name, line));
  }
  for (std::size_t i = 0; i < sections.size(); ++i) split_statements(sections[i], bodies[i], name);
  return sections;
}

}  // namespace

std::vector<ProjectionSection> parse_projection_file(std::string_view text, const std::string& name) {
  // sqlite3_complete() and sqlite3_prepare() stop at a NUL: SQL after one would be silently dropped.
  if (text.find('\0') != std::string_view::npos)
    throw Error(Errc::invalid_input, fmt::format("{}: contains a NUL byte; a projection file is SQL text", name));
  return parse(text, name);
}

}  // namespace esctl
