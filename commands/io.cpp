// DATA arguments and NDJSON line input. Reads stop with Error(interrupted) on SIGINT, never
// with a half line: a line cut by a signal is not returned.
#include "commands/io.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/signals.hpp"

namespace esctl::cmd {

namespace {
std::FILE* open_input(const std::string& path, bool& owned) {
  if (path == "-") {
    owned = false;
    return stdin;
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    int err = errno;
    throw Error(err == ENOENT ? Errc::not_found : Errc::io,
                fmt::format("cannot open '{}': {}", path, std::strerror(err)));
  }
  owned = true;
  return f;
}
}  // namespace

std::string read_all_input(const std::string& path) {
  bool owned = false;
  std::FILE* f = open_input(path, owned);
  std::string out;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  bool failed = std::ferror(f);
  if (owned) std::fclose(f);
  if (failed) throw Error(Errc::io, fmt::format("cannot read '{}'", path));
  return out;
}

LineReader::LineReader(const std::string& path) {
  f_ = open_input(path, owned_);
  // Big reads: with stdio's default 4 KiB buffer the read(2) calls alone cost 5% of an import.
  // glibc ignores the size unless it is given the buffer too. stdin outlives this reader, so its
  // buffer is allocated once and kept for the life of the process.
  constexpr std::size_t kBufferBytes = std::size_t{1} << 20;
  char* buffer = nullptr;
  if (owned_) {
    stdio_buf_ = std::make_unique<char[]>(kBufferBytes);
    buffer = stdio_buf_.get();
  } else {
    static const std::unique_ptr<char[]> stdin_buf = std::make_unique<char[]>(kBufferBytes);
    buffer = stdin_buf.get();
  }
  std::setvbuf(f_, buffer, _IOFBF, kBufferBytes);
}

std::int64_t LineReader::size() const {
  struct stat st {};
  if (::fstat(fileno(f_), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  return static_cast<std::int64_t>(st.st_size);
}

LineReader::~LineReader() {
  std::free(buf_);
  if (owned_) std::fclose(f_);
}

bool LineReader::next(std::string_view& line) {
  errno = 0;
  ssize_t n = ::getline(&buf_, &cap_, f_);
  if (n < 0 && std::ferror(f_)) {
    // Only SIGINT/SIGTERM have handlers without SA_RESTART, so EINTR means "stop". getline may
    // have dropped part of a line by now, so reading on is not an option anyway.
    if (errno == EINTR) check_interrupted();
    throw Error(Errc::io, fmt::format("cannot read input: {}", std::strerror(errno)));
  }
  if (n < 0) return false;
  ++line_no_;
  bytes_ += n;
  std::size_t len = static_cast<std::size_t>(n);
  if (len && buf_[len - 1] == '\n') --len;
  if (len && buf_[len - 1] == '\r') --len;
  line = std::string_view(buf_, len);
  return true;
}

}  // namespace esctl::cmd
