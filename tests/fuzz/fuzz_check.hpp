// The fuzz targets' property check: on a violated property, print the target, the property and
// (the start of) the input that broke it, then abort so libFuzzer saves the input as a crash.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace esctl::fuzz {

[[noreturn]] inline void fail(const char* target, const char* what, std::string_view input) {
  std::fprintf(stderr, "%s: property violated: %s\ninput (%zu bytes):\n%.*s\n", target, what, input.size(),
               static_cast<int>(input.size() > 2000 ? 2000 : input.size()), input.data());
  std::abort();
}

}  // namespace esctl::fuzz

/// FUZZ_CHECK(cond, input): the target defines kTarget, its name in messages.
#define FUZZ_CHECK(cond, input)                                        \
  do {                                                                 \
    if (!(cond)) ::esctl::fuzz::fail(kTarget, #cond, (input));         \
  } while (0)
