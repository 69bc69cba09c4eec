// render/event_format, render/output and render/style: the JSON object, human line and `show`
// block of an event (stored JSON passed through verbatim), indented JSON, buffered output to a
// string or a descriptor (a closed pipe is BrokenPipe), and the colour decision.
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "core/error.hpp"
#include "render/event_format.hpp"
#include "render/output.hpp"
#include "render/style.hpp"

using namespace esctl;

namespace {

const std::string kId("\x01\x8f\x00\x00\x00\x00\x70\x00\x80\x00\x00\x00\x00\x00\x00\x2a", 16);

EventRef sample() {
  // 2024-01-02T03:04:05.000006Z
  return EventRef{7, "order-1", 2, kId, "Placed", R"({"n":1,"tags":["a","b"],"e":{}})", "{}", 1704164645000006};
}

}  // namespace

TEST_SUITE("render/event_format") {
  TEST_CASE("the JSON form has every field in order, stored JSON verbatim, and extra members last") {
    std::string out;
    append_event_json(out, sample());
    CHECK(out == R"({"position":7,"stream":"order-1","version":2,"id":"018f0000-0000-7000-8000-00000000002a",)"
                 R"("type":"Placed","data":{"n":1,"tags":["a","b"],"e":{}},"meta":{},)"
                 R"("recorded_at":"2024-01-02T03:04:05.000006Z"})");
    out.clear();
    append_event_json(out, sample(), "\"attempt\":2");
    CHECK(out.substr(out.size() - 13) == ",\"attempt\":2}");
  }

  TEST_CASE("a name needing escapes is quoted as JSON") {
    EventRef e = sample();
    e.stream = "a\"b";
    std::string out;
    append_event_json(out, e);
    CHECK(out.find(R"("stream":"a\"b")") != std::string::npos);
  }

  TEST_CASE("the human line is position, stream@version, type, time and data, coloured only when asked") {
    std::string plain;
    append_event_line(plain, sample(), Style{false});
    CHECK(plain == R"(7 order-1@2 Placed 2024-01-02T03:04:05.000006Z {"n":1,"tags":["a","b"],"e":{}})");
    std::string coloured;
    append_event_line(coloured, sample(), Style{true});
    CHECK(coloured.find("\x1b[36morder-1@2\x1b[0m") != std::string::npos);
    CHECK(coloured.find("\x1b[33mPlaced\x1b[0m") != std::string::npos);
  }

  TEST_CASE("indented JSON puts members on lines of their own, keeps strings and empty containers whole") {
    std::string out;
    append_indented_json(out, R"({"a":[1,2],"s":"x,{\"y\"}","e":[],"o":{}})", "> ");
    CHECK(out ==
          "> {\n"
          ">   \"a\": [\n"
          ">     1,\n"
          ">     2\n"
          ">   ],\n"
          ">   \"s\": \"x,{\\\"y\\\"}\",\n"
          ">   \"e\": [],\n"
          ">   \"o\": {}\n"
          "> }");
  }

  TEST_CASE("the show block names every field, then data and meta indented") {
    std::string out;
    append_event_block(out, sample(), Style{false});
    CHECK(out.rfind("position:    7\nstream:      order-1\nversion:     2\ntype:        Placed\n", 0) == 0);
    CHECK(out.find("id:          018f0000-0000-7000-8000-00000000002a\n") != std::string::npos);
    CHECK(out.find("recorded_at: 2024-01-02T03:04:05.000006Z\n") != std::string::npos);
    CHECK(out.find("data:\n  {\n    \"n\": 1,") != std::string::npos);
    CHECK(out.substr(out.size() - 10) == "meta:\n  {}");
  }
}

TEST_SUITE("render/output") {
  TEST_CASE("output is buffered until a flush, or per record when line-buffered") {
    std::string sink;
    {
      Output out(&sink);
      out.write("a\n");
      CHECK(sink.empty());  // far below a chunk
      out.set_line_buffered(true);
      out.write("b\n");
      CHECK(sink == "a\nb\n");
      out.set_line_buffered(false);
      out.write("c\n");
      CHECK(sink == "a\nb\n");
    }
    CHECK(sink == "a\nb\nc\n");  // flushed when it goes away
  }

  TEST_CASE("writing to a pipe whose reader is gone throws BrokenPipe") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    ::close(fds[0]);
    auto old = ::signal(SIGPIPE, SIG_IGN);
    bool broken = false;
    {
      Output out(fds[1]);
      out.buf().append("x\n");
      try {
        out.flush();
      } catch (const BrokenPipe&) {
        broken = true;
      }
    }
    ::signal(SIGPIPE, old);
    ::close(fds[1]);
    CHECK(broken);
  }
}

TEST_SUITE("render/style") {
  TEST_CASE("--color always and never decide alone, auto honours NO_COLOR and needs a terminal, others are usage errors") {
    CHECK(want_color("always", -1));
    CHECK_FALSE(want_color("never", STDOUT_FILENO));
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    CHECK_FALSE(want_color("auto", fds[1]));  // a pipe is not a terminal
    ::close(fds[0]);
    ::close(fds[1]);
    ::setenv("NO_COLOR", "1", 1);
    CHECK_FALSE(want_color("auto", STDOUT_FILENO));
    ::unsetenv("NO_COLOR");
    try {
      want_color("sometimes", STDOUT_FILENO);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::usage);
      CHECK(std::string(e.what()) == "invalid --color value 'sometimes': use auto, always or never");
    }
    std::string out;
    Style{true}.paint(out, "1", "x");
    Style{false}.paint(out, "1", "y");
    CHECK(out == "\x1b[1mx\x1b[0my");
  }
}
