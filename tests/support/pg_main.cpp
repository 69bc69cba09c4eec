// The doctest main of the PostgreSQL test programs: without a throwaway server (ESCTL_TEST_PG
// unset: no PostgreSQL binaries when the build was configured) every test is skipped, with
// exit 77, which CTest reports as skipped rather than passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::string_view(argv[i]).find("list") != std::string_view::npos ||
                                           std::string_view(argv[i]).rfind("-l", 0) == 0;
  const char* uri = std::getenv("ESCTL_TEST_PG");
  if (!listing && (!uri || !*uri)) {
    std::fprintf(stderr, "skipped: no PostgreSQL test server (ESCTL_TEST_PG is not set; install postgresql, then "
                         "reconfigure so that ctest starts one with tests/support/pg_cluster.sh)\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
