// Buffered output to a file descriptor (stdout) or a string (tests). Flushes in large writes
// for throughput, or per record when following; a closed pipe becomes esctl::BrokenPipe.
#pragma once
#include <string>
#include <string_view>

namespace esctl {

class Output {
 public:
  /// Writes to `fd`.
  explicit Output(int fd) : fd_(fd) {}
  /// Collects into `sink` (for in-process tests).
  explicit Output(std::string* sink) : sink_(sink) {}
  Output(const Output&) = delete;
  ~Output();

  /// The pending buffer: append to it, then call commit().
  std::string& buf() { return buf_; }
  void write(std::string_view s) {
    buf_.append(s);
    commit();
  }
  /// Ends one record: flushes if line-buffered or the buffer is large.
  void commit() {
    if (line_buffered_ || buf_.size() >= kChunk) flush();
  }
  void flush();
  /// Flush after every record (tail -f, drain --follow) so pipes see each event at once.
  void set_line_buffered(bool on) { line_buffered_ = on; }
  bool is_tty() const;

 private:
  static constexpr std::size_t kChunk = 1 << 16;
  int fd_ = -1;
  std::string* sink_ = nullptr;
  std::string buf_;
  bool line_buffered_ = false;
};

}  // namespace esctl
