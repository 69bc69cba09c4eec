// render/progress: the text of the progress line, and that a disabled display writes nothing.
#include <doctest/doctest.h>

#include <unistd.h>

#include "render/progress.hpp"

using namespace esctl;

TEST_SUITE("render/progress") {
  TEST_CASE("with a known total the line has a bar, a percentage, the item count and the rate") {
    auto l = progress_line("import", "events", 50, 200, 1000, 2.0, 8);
    CHECK(l == "import [##------]  25%  1000 events  500/s");
    CHECK(progress_line("import", "events", 200, 200, 7, 0.0, 4) == "import [####] 100%  7 events");
    CHECK(progress_line("x", "events", 500, 200, 7, 0.0, 4) == "x [####] 100%  7 events");
  }

  TEST_CASE("without a total there is no bar, only the count and the rate") {
    CHECK(progress_line("drain", "events", 10, 0, 10, 0.5) == "drain  10 events  20/s");
  }

  TEST_CASE("a disabled progress display writes nothing to its descriptor") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    {
      Progress p(false, "import", "events", 100, fds[1]);
      for (int i = 0; i <= 100; ++i) p.update(i);
      p.finish();
    }
    ::close(fds[1]);
    char buf[16];
    CHECK(::read(fds[0], buf, sizeof buf) == 0);
    ::close(fds[0]);
  }

  TEST_CASE("an enabled display draws over one line and erases it when finished") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    {
      Progress p(true, "import", "events", 0, fds[1]);
      p.update(5);
      ::usleep(120000);  // more than the 100 ms between redraws
      p.update(9);
      p.finish();
      p.finish();
    }
    ::close(fds[1]);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    CHECK(out.rfind("\rimport  ", 0) == 0);
    CHECK(out.find("\rimport  9 events") != std::string::npos);
    CHECK(out.find('\n') == std::string::npos);
    CHECK(out.size() >= 4);
    CHECK(out.substr(out.size() - 4) == "\r\x1b[K");
  }
}
