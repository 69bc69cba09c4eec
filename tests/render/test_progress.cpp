// render/progress: the text of the progress line, and that a disabled display writes nothing.
#include <doctest/doctest.h>

#include <unistd.h>

#include "render/progress.hpp"

using namespace esctl;

TEST_SUITE("render/progress") {
  TEST_CASE("with a known total the line has a bar, a percentage, the item count, the rate and an ETA") {
    auto l = progress_line("import", "events", 50, 200, 1000, 2.0, 8);
    CHECK(l == "import [##------]  25%  1000 events  500/s  eta 6s");
    CHECK(progress_line("import", "events", 200, 200, 7, 0.0, 4) == "import [####] 100%  7 events");
    CHECK(progress_line("x", "events", 500, 200, 7, 0.0, 4) == "x [####] 100%  7 events");
  }

  TEST_CASE("with a known total and some work done, the line ends with an ETA") {
    CHECK(progress_line("drain q", "events", 100, 400, 100, 2.0, 4) == "drain q [#---]  25%  100 events  50/s  eta 6s");
    CHECK(progress_line("d", "events", 10, 1000, 10, 1.0, 4) == "d [----]   1%  10 events  10/s  eta 1m39s");
    CHECK(progress_line("d", "events", 1, 10000, 1, 1.0, 4).ends_with("eta 2h46m"));
    CHECK(progress_line("d", "events", 0, 10, 0, 2.0, 4).find("eta") == std::string::npos);   // nothing done yet
    CHECK(progress_line("d", "events", 5, 10, 5, 0.2, 4).find("eta") == std::string::npos);   // too early to say
    CHECK(progress_line("d", "events", 10, 10, 10, 2.0, 4).find("eta") == std::string::npos); // done
  }

  TEST_CASE("output written through the display erases the line first and draws it again after a full line") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    {
      Progress p(true, "drain", "events", 0, fds[1]);
      p.write_through(fds[1], "before any line\n");
      ::usleep(120000);
      p.update(5);
      p.write_through(fds[1], "part");
      ::usleep(120000);
      p.update(6);  // not drawn over an unfinished line
      p.write_through(fds[1], "ial\n");
      p.finish();
    }
    ::close(fds[1]);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    CHECK(out.starts_with("before any line\n\rdrain  5 events  "));
    CHECK(out.ends_with("/s\x1b[K\r\x1b[Kpartial\n"));
    CHECK(out.find("6 events") == std::string::npos);
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
