// store and drain: a setting they refuse is a SettingError in their own words, naming no
// command-line flag (the commands add the flags: tests/cli/test_queue_basic.cpp).
#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "core/error.hpp"
#include "drain/drain.hpp"
#include "store/queue.hpp"
#include "store/store.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
using esctl::test::TempStore;

namespace {

// The SettingError `f` throws (fails the test if it throws none or another).
SettingError refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const SettingError& e) {
    CHECK_MESSAGE(std::string(e.what()).find("--") == std::string::npos, e.what(), " names a flag");
    return e;
  }
  FAIL("no SettingError");
  return SettingError(Errc::internal, "", {});
}

}  // namespace

TEST_SUITE("store/setting_errors") {
  TEST_CASE("queue settings out of range name the setting, not a flag") {
    TempStore t;
    Store store(t.options(), Access::write);
    Queues queues(store);
    NewEvent e;
    e.stream = "a-1";
    e.type = "T";
    store.append({e});
    QueueSpec spec;
    spec.name = "q";
    spec.max_attempts = 0;
    auto r = refusal([&] { queues.create(spec, {StartPoint::start}); });
    CHECK(r.code() == Errc::usage);
    CHECK(r.setting() == "max attempts");
    CHECK(std::string(r.what()) == "invalid max attempts 0: a queue needs at least 1 attempt");
    spec.max_attempts = 5;
    r = refusal([&] { queues.create(spec, {StartPoint::at, 7}); });
    CHECK(r.setting() == "from");
    CHECK(r.worded("--from") ==
          "--from position 7 is beyond the store's head position 1 (use '--from end' to start after the last event)");
    queues.create(spec, {StartPoint::start});
    PullOptions po;
    po.max = 0;
    CHECK(refusal([&] { queues.pull("q", po, Clock::now()); }).setting() == "max");
    CHECK(refusal([&] { queues.reset("q", {StartPoint::at, -1}); }).setting() == "to");
    CHECK(refusal([&] { queues.nack_targets("q", {{1, std::nullopt}}, -1, "", Clock::now()); }).setting() == "delay");
  }

  TEST_CASE("drain settings out of range name the setting, before anything runs") {
    TempStore t;
    DrainOptions o;
    o.queue = "q";
    o.batch = 0;
    HandlerFactory no_handler = [](int) -> BatchHandler {
      FAIL("a handler was made");
      return {};
    };
    CHECK(refusal([&] { drain(t.options(), o, no_handler); }).setting() == "batch");
    o.batch = 1;
    o.parallel = 0;
    CHECK(refusal([&] { drain(t.options(), o, no_handler); }).setting() == "parallel");
  }

  TEST_CASE("an import's version that does not fit names the setting that would append it at the end") {
    TempStore t;
    Store store(t.options(), Access::write);
    NewEvent e;
    e.stream = "a-1";
    e.type = "T";
    e.version = 3;
    auto r = refusal([&] { store.append({e}); });
    CHECK(r.code() == Errc::conflict);
    CHECK(r.setting() == "ignoring versions");
    CHECK(std::string(r.what()).find("ignoring versions appends at the end") != std::string::npos);
  }
}
