// core/outage: a server restart seen by several connections is one outage: one "lost" and one
// "reconnected" notice, however many connections find out and whenever they do; a connection
// attempt that fails once the server was back is a new outage.
#include <doctest/doctest.h>

#include "core/outage.hpp"

using namespace esctl;

TEST_CASE("outage: one lost and one reconnected notice per outage, however many connections find out") {
  outage::reconnected();  // whatever an earlier test left: no outage under way
  const auto opened = outage::epoch();  // three connections opened before the restart
  CHECK(outage::lost(opened));          // the first to find out tells the user
  CHECK_FALSE(outage::lost(opened));    // the others do not
  CHECK_FALSE(outage::lost(outage::epoch()));  // nor a connection attempt that fails meanwhile
  CHECK(outage::reconnected());
  CHECK_FALSE(outage::reconnected());
  // Found out only now, after another connection is back: the same outage.
  CHECK_FALSE(outage::lost(opened));
  CHECK_FALSE(outage::reconnected());
}

TEST_CASE("outage: a loss of a connection opened after the last outage, or a failed attempt once back, is a new outage") {
  outage::reconnected();
  const auto before = outage::epoch();
  CHECK(outage::lost(before));
  CHECK(outage::reconnected());
  const auto after = outage::epoch();  // a connection opened once the server was back
  CHECK(after == before + 1);
  CHECK(outage::lost(after));
  CHECK(outage::reconnected());
  CHECK(outage::lost(outage::epoch()));  // the server is gone again before an old connection reconnects
  CHECK(outage::reconnected());
}
