#include "render/output.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/error.hpp"

namespace esctl {

Output::~Output() {
  try {
    flush();
  } catch (...) {
    // A closed pipe at exit is not an error (`esctl read --all | head` ends quietly).
  }
}

void Output::flush() {
  if (sink_) {
    sink_->append(buf_);
    buf_.clear();
    return;
  }
  std::size_t done = 0;
  while (done < buf_.size()) {
    ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      buf_.clear();
      if (err == EPIPE) throw BrokenPipe{};
      throw Error(Errc::io, fmt::format("cannot write output: {}", std::strerror(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  buf_.clear();
}

bool Output::is_tty() const { return !sink_ && ::isatty(fd_); }

}  // namespace esctl
