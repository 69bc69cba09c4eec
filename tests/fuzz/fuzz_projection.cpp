// Fuzz target for the projection-file parser (esctl-projection(5)): Projection::parse_sections()
// on every input, and the full Projection::from_text() (which also runs @init and prepares every
// statement in the sandbox on a scratch :memory: db) on small inputs the parser accepted.
// Properties, beyond "no crash, no sanitizer report":
//  - every section starts on a marker line ("--", blanks, "@init"/"@on ...") with that label;
//  - sections and statements come in file order, each statement inside its section's lines;
//  - a statement is non-empty, trimmed, a verbatim slice of the file starting on its line, and
//    (except possibly the last of a section) a complete SQL statement per sqlite3_complete();
//  - nothing but blank lines and comments before the first marker;
//  - from_text fails only with invalid_input (never internal/corrupt), and agrees with the parser.
#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "core/error.hpp"
#include "projection/projection.hpp"

using namespace esctl;

namespace {

std::string_view g_input;

constexpr const char* kTarget = "fuzz_projection";
#define CHECK(cond) FUZZ_CHECK(cond, g_input)

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
// SQLite's whitespace (no '\v'): what may be trimmed off a statement.
bool sql_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'; }

// Byte offset where each 1-based line starts; entry 0 unused, one past the last line = size+1.
std::vector<std::size_t> line_starts(std::string_view s) {
  std::vector<std::size_t> v{0, 0};
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n') v.push_back(i + 1);
  v.push_back(s.size() + 1);
  return v;
}

std::string_view line_at(std::string_view s, const std::vector<std::size_t>& starts, int n) {
  std::size_t b = starts[static_cast<std::size_t>(n)];
  std::size_t e = starts[static_cast<std::size_t>(n) + 1] - 1;
  return s.substr(b, e - b);
}

void check_sections(std::string_view text, const std::vector<ProjectionSection>& sections) {
  const auto starts = line_starts(text);
  const int lines = static_cast<int>(starts.size()) - 2;
  int prev_line = 0, inits = 0;
  for (std::size_t i = 0; i < sections.size(); ++i) {
    const ProjectionSection& s = sections[i];
    CHECK(s.line > prev_line && s.line <= lines);
    prev_line = s.line;
    std::string_view marker = line_at(text, starts, s.line);
    std::size_t k = marker.find_first_not_of(" \t\r\n\f\v");
    CHECK(k != std::string_view::npos && marker.substr(k, 2) == "--");
    k = marker.find_first_not_of(" \t", k + 2);
    CHECK(k != std::string_view::npos && marker[k] == '@');
    if (s.init) {
      ++inits;
      CHECK(s.label == "@init" && marker.substr(k, 5) == "@init");
      CHECK(!s.all_types && s.types.empty());
    } else {
      CHECK(s.label.rfind("@on ", 0) == 0 && marker.substr(k, 3) == "@on");
      CHECK(s.all_types != !s.types.empty());
      for (const auto& t : s.types) CHECK(!t.empty() && t != "*" && !blank(t.front()) && !blank(t.back()));
    }
    const int next = i + 1 < sections.size() ? sections[i + 1].line : lines + 1;
    int prev_stmt = s.line;
    for (std::size_t j = 0; j < s.statements.size(); ++j) {
      const ProjectionStatement& st = s.statements[j];
      CHECK(st.line > s.line && st.line < next && st.line >= prev_stmt);
      prev_stmt = st.line;
      CHECK(!st.sql.empty() && !sql_space(st.sql.front()) && !sql_space(st.sql.back()));
      std::size_t at = text.find(st.sql, starts[static_cast<std::size_t>(st.line)]);
      CHECK(at != std::string_view::npos && at < starts[static_cast<std::size_t>(st.line) + 1]);
      if (j + 1 < s.statements.size()) CHECK(sqlite3_complete(st.sql.c_str()));
    }
  }
  CHECK(inits <= 1);
  // Before the first marker: only blanks, ';' and comments. Checked with SQLite's own idea of a
  // comment: appending a complete statement must leave a text that is exactly one statement.
  const int first = sections.empty() ? lines + 1 : sections.front().line;
  std::string_view pre = text.substr(0, starts[static_cast<std::size_t>(first)] - (first > lines ? 1 : 0));
  for (char c : pre)
    if (!sql_space(c) && c != ';' && c != '-' && c != '/' && c != '*') {
      // Some non-filler byte: it must be inside a comment. A '--' comment runs to its line's end;
      // a '/*' comment to the next '*/' (or the end of the text).
      std::string p(pre);
      std::size_t i = 0;
      while (i < p.size()) {
        if (sql_space(p[i]) || p[i] == ';') {
          ++i;
        } else if (p.compare(i, 2, "--") == 0) {
          std::size_t e = p.find('\n', i);
          i = e == std::string::npos ? p.size() : e + 1;
        } else if (p.compare(i, 2, "/*") == 0) {
          std::size_t e = p.find("*/", i + 2);
          i = e == std::string::npos ? p.size() : e + 2;
        } else {
          fuzz::fail(kTarget, "only comments before the first marker", g_input);
        }
      }
      break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  g_input = std::string_view(reinterpret_cast<const char*>(data), size);
  std::vector<ProjectionSection> sections;
  try {
    sections = Projection::parse_sections(g_input, "fuzz.sql");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::invalid_input);
    CHECK(std::string_view(e.what()).rfind("fuzz.sql:", 0) == 0);
    return 0;
  }
  CHECK(g_input.find('\0') == std::string_view::npos);
  check_sections(g_input, sections);
  // The whole validation (SQLite, sandbox) is ~100x slower: only for small inputs.
  if (size > 2048) return 0;
  try {
    Projection p = Projection::from_text(std::string(g_input), "fuzz.sql");
    CHECK(p.sections().size() == sections.size());
    for (std::size_t i = 0; i < sections.size(); ++i) {
      CHECK(p.sections()[i].label == sections[i].label);
      CHECK(p.sections()[i].statements.size() == sections[i].statements.size());
    }
  } catch (const Error& e) {
    if (e.code() != Errc::invalid_input) {
      std::fprintf(stderr, "from_text: %s\n", e.what());
      fuzz::fail(kTarget, "from_text fails only with invalid_input", g_input);
    }
  }
  return 0;
}
