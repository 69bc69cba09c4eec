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
}
