// The one doctest main for each test program. A test program asked to run only tests that
// their backend decorators skip (tests/support/cli.hpp: sqlite_only(), store_free()) exits
// 77, which CTest reports as skipped rather than passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

namespace {

int tests_started = 0;
int tests_skipped_by_decorator = 0;

// Counts the test cases that ran and those a skip decorator held back.
struct SkipCounter : doctest::IReporter {
  explicit SkipCounter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { ++tests_started; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData& tc) override { tests_skipped_by_decorator += tc.m_skip ? 1 : 0; }
};

}  // namespace

DOCTEST_REGISTER_LISTENER("esctl-skip-counter", 1, SkipCounter);

int main(int argc, char** argv) {
  doctest::Context ctx(argc, argv);
  const int rc = ctx.run();
  if (ctx.shouldExit() || rc != 0) return rc;
  if (tests_started == 0 && tests_skipped_by_decorator > 0) {
    std::fprintf(stderr, "skipped: the selected tests do not run on this backend (ESCTL_TEST_BACKEND)\n");
    return 77;
  }
  return rc;
}
