// One notice per outage of a store's server (see outage.hpp): a process-wide count of the
// outages reported, and whether the last one is over.
#include "core/outage.hpp"

#include <mutex>

namespace esctl::outage {
namespace {

std::mutex g_mutex;
std::uint64_t g_epoch = 0;  // outages reported
bool g_down = false;        // the last one reported is not over

}  // namespace

std::uint64_t epoch() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_epoch;
}

bool lost(std::uint64_t opened_at) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_down || opened_at < g_epoch) return false;
  ++g_epoch;
  g_down = true;
  return true;
}

bool reconnected() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_down) return false;
  g_down = false;
  return true;
}

}  // namespace esctl::outage
