#include <doctest/doctest.h>

#include "core/error.hpp"

using namespace esctl;

TEST_SUITE("core/error") {
  TEST_CASE("every error kind maps to the exit code esctl(1) documents") {
    CHECK(exit_code_for(Errc::usage) == 2);
    CHECK(exit_code_for(Errc::conflict) == 3);
    CHECK(exit_code_for(Errc::not_found) == 4);
    CHECK(exit_code_for(Errc::invalid_input) == 5);
    CHECK(exit_code_for(Errc::busy) == 7);
    CHECK(exit_code_for(Errc::interrupted) == 130);
    CHECK(exit_code_for(Errc::corrupt) == 1);
    CHECK(exit_code_for(Errc::read_only) == 1);
    CHECK(exit_code_for(Errc::io) == 1);
    CHECK(exit_code_for(Errc::internal) == 1);
  }

  TEST_CASE("every error kind has a distinct name") {
    const Errc all[] = {Errc::usage, Errc::not_found, Errc::conflict, Errc::invalid_input, Errc::corrupt,
                        Errc::busy,  Errc::read_only, Errc::io,       Errc::internal,      Errc::interrupted};
    for (auto a : all)
      for (auto b : all)
        if (a != b) CHECK(std::string(errc_name(a)) != errc_name(b));
  }

  TEST_CASE("a SettingError names its setting in its own words, and in the words a command gives it") {
    SettingError e(Errc::usage, "max attempts", {"invalid ", " 0: a queue needs at least 1 attempt"});
    CHECK(e.code() == Errc::usage);
    CHECK(e.setting() == "max attempts");
    CHECK(std::string(e.what()) == "invalid max attempts 0: a queue needs at least 1 attempt");
    CHECK(e.worded("--max-attempts") == "invalid --max-attempts 0: a queue needs at least 1 attempt");
    SettingError twice(Errc::usage, "from", {"", " position 9 is beyond (use '", " end')"});
    CHECK(twice.worded("--from") == "--from position 9 is beyond (use '--from end')");
  }
}
