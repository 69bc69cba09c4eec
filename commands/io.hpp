// Input helpers shared by commands: DATA arguments (JSON text, '-' for stdin, '@FILE') and
// line-by-line NDJSON readers over a file or stdin, in constant memory.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

namespace esctl::cmd {

/// The whole content of `path` ('-' = stdin); Errc::not_found if it cannot be opened.
std::string read_all_input(const std::string& path);

/// Reads lines (without the trailing "\n" or "\r\n") from a file or '-' (stdin).
class LineReader {
 public:
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  /// Next line; false at end of input. The view is valid until the next call. A read cut short
  /// by SIGINT throws Error(interrupted); other read errors Error(io).
  bool next(std::string_view& line);
  std::int64_t line_no() const { return line_no_; }
  /// Bytes consumed so far (for progress against size()).
  std::int64_t bytes() const { return bytes_; }
  /// The input's size if it is a regular file (also stdin redirected from one), else 0.
  std::int64_t size() const;

 private:
  std::FILE* f_ = nullptr;
  bool owned_ = false;
  std::unique_ptr<char[]> stdio_buf_;  // f_'s stdio buffer when f_ is ours (freed after fclose)
  char* buf_ = nullptr;
  std::size_t cap_ = 0;
  std::int64_t line_no_ = 0;
  std::int64_t bytes_ = 0;
};

}  // namespace esctl::cmd
