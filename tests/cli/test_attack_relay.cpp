// Attack (issue 8, "between services": one service relays to another): a relay
// `esctl --store A queue drain relay --follow --exec 'esctl --store B import --ignore-versions -'`
// is killed with SIGKILL at random moments and restarted, while another process keeps appending
// to several streams of A. At the end B holds every event of A exactly once, each stream in A's
// order, and both stores verify. Not: a relay that is stopped cleanly (test_queue_drain.cpp).
// CI runs 20 kills of the whole relay and 8 of the drainer alone; ESCTL_ATTACK_FULL=1 runs
// 200 and 100.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/cli.hpp"

using namespace esctl::test;
using nlohmann::json;

extern char** environ;

namespace {

bool full_size() { return std::getenv("ESCTL_ATTACK_FULL") != nullptr; }

/// Starts `/bin/sh -c script` as the leader of a new process group, stdout appended to `out`.
///
/// What a crash of the relay means: a relay is a service, and a service crashes as a whole —
/// its container is OOM-killed, systemd stops the unit (KillMode=control-group kills every
/// process in it), the machine loses power. Killing only the drainer's pid leaves its `sh -c`
/// and the `esctl import` it runs alive, and that import finishes (or, with its input cut
/// short, refuses) the batch after the "crash" while a restarted relay may already send the
/// batch again. So the main case runs the relay in its own process group and `kill(-pgid,
/// SIGKILL)` takes down the drainer, the shell and the import at the same instant; the second
/// case kills the drainer alone, for the orphaned import racing the restarted relay.
int spawn_group(const std::string& script, const std::string& out, const std::string& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  const char* argv[] = {"/bin/sh", "-c", script.c_str(), nullptr};
  pid_t pid;
  int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return pid;
}

/// Kills a process group started by spawn_group if the test leaves early (a failed REQUIRE).
struct GroupGuard {
  int pid = -1;
  ~GroupGuard() {
    if (pid > 0) {
      ::kill(-pid, SIGKILL);
      wait_for(pid);
    }
  }
};

/// Whether a process of group `pgid` is still running (zombies do not count).
bool group_running(int pgid) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string stat = read_file(entry.path().string() + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0, pgrp = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z')
      return true;
  }
  return false;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

/// Per stream, the events of `store` in version order, without their store-local position.
std::map<std::string, std::vector<json>> streams_of(const std::string& store) {
  auto r = run({"--store", store, "export", "--all"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  std::map<std::string, std::vector<json>> out;
  for (const auto& l : lines(r.out)) {
    auto e = json::parse(l);
    e.erase("position");
    out[e["stream"].get<std::string>()].push_back(std::move(e));
  }
  return out;
}

/// The attack: `kills` times, start the relay and SIGKILL it after a random delay — its whole
/// process group (a crashed service), or with `whole_service` false the drainer alone.
void attack_relay(int kills, bool whole_service) {
  constexpr int kStreams = 5, kBacklog = 120;
  TempDir d;
  const std::string a = d / "a.db", b = d / "b.db", stop = d / "stop", relay_out = d / "relay.out",
                    relay_err = d / "relay.err";
  REQUIRE(run({"--store", a, "init"}).status == 0);
  // A long enough ack timeout that a busy sanitizer build renews leases in time; the test
  // waits for the killed relays' leases to lapse, so a shorter one only makes it faster.
  REQUIRE(run({"--store", a, "queue", "create", "relay", "--from", "start", "--ack-timeout", "1s", "--max-attempts",
               "1000000"})
              .status == 0);

  // A backlog, so that every relay has batches to hand over from its first moment on.
  std::string backlog;
  for (int i = 0; i < kBacklog; ++i)
    backlog += fmt::format("{{\"stream\":\"s-{}\",\"type\":\"Old\",\"data\":{{\"i\":{}}}}}\n", i % kStreams, i);
  REQUIRE(run({"--store", a, "-q", "import", "-"}, {backlog}).status == 0);

  // The appender: three events per call, round robin over the streams, until told to stop.
  const std::string appender = fmt::format(
      "i=0; while [ ! -e {stop} ]; do "
      "printf '{{\"type\":\"T\",\"data\":{{\"n\":%d,\"k\":0}}}}\\n{{\"type\":\"U\",\"data\":{{\"n\":%d,\"k\":1}}}}\\n"
      "{{\"type\":\"V\",\"data\":{{\"n\":%d,\"k\":2}}}}\\n' $i $i $i"
      " | {bin} --store {a} --busy-timeout 60s -q append \"s-$((i % {streams}))\" --ndjson - || exit 1; "
      "i=$((i + 1)); done",
      fmt::arg("stop", q(stop)), fmt::arg("bin", q(bin())), fmt::arg("a", q(a)), fmt::arg("streams", kStreams));
  GroupGuard appending{spawn_group(appender, "/dev/null", d / "append.err")};

  // The relay between services, with two handlers at once so B sees concurrent imports too.
  const std::string import = bin() + " --store " + b + " --busy-timeout 60s import --ignore-versions -";
  const std::string relay =
      fmt::format("exec {} --store {} --busy-timeout 60s queue drain relay --parallel 2 {}--exec {}", q(bin()), q(a),
                  "{options}", q(import));
  // Small batches while it is attacked (more batch boundaries for the kills to hit), bigger
  // ones to catch up at the end.
  const std::string follow = fmt::format(fmt::runtime(relay), fmt::arg("options", "--batch 7 --follow "));
  const std::string once = fmt::format(fmt::runtime(relay), fmt::arg("options", "--batch 50 "));

  const auto t0 = std::chrono::steady_clock::now();
  std::mt19937 rng(20261127);
  // A relay (sanitizer build, busy CI machine) needs ~0.3 s to start and ~0.5 s per batch,
  // most of it the import process: kills land before, during and after its first batches.
  std::uniform_int_distribution<int> delay_ms(0, 1999);
  int killed = 0;
  std::vector<int> groups;
  for (int k = 0; k < kills; ++k) {
    GroupGuard relaying{spawn_group(follow, relay_out, relay_err)};
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    if (::kill(whole_service ? -relaying.pid : relaying.pid, SIGKILL) == 0) ++killed;
    int status = wait_for(relaying.pid);
    groups.push_back(relaying.pid);
    relaying.pid = -1;
    CHECK_MESSAGE(status == 128 + SIGKILL, "the relay ended by itself with status ", status, ": ",
                  read_file(relay_err));
  }
  CHECK(killed == kills);
  // An orphaned import (the drainer alone was killed) may still be writing to B.
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       std::chrono::steady_clock::now() < until &&
       std::any_of(groups.begin(), groups.end(), [](int g) { return group_running(g); });)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));

  // Stop the appends, then relay without --follow until the queue is empty (the killed
  // relays' leases lapse first).
  write_file(stop, "");
  CHECK(wait_for(appending.pid) == 0);
  appending.pid = -1;
  CHECK_MESSAGE(read_file(d / "append.err").empty(), read_file(d / "append.err"));
  const auto t1 = std::chrono::steady_clock::now();
  auto deadline = t1 + std::chrono::seconds(120);
  json status;
  for (;;) {
    auto r = sh(once + " >> " + q(relay_out));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    status = json::parse(run({"--store", a, "--json", "queue", "status", "relay"}).out);
    if (status["lag"] == 0 || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  CHECK(status["lag"] == 0);
  CHECK(status["parked"] == 0);
  const auto seconds = [](auto a, auto b) { return std::chrono::duration_cast<std::chrono::seconds>(b - a).count(); };
  const auto kill_phase_s = seconds(t0, t1), final_s = seconds(t1, std::chrono::steady_clock::now());

  // B holds A's events exactly once (ids unique), each stream with A's events in A's order,
  // at A's versions, with the same ids, types, data, meta and recorded_at.
  auto in_a = streams_of(a), in_b = streams_of(b);
  std::size_t events_a = 0, events_b = 0;
  std::set<std::string> ids_b;
  for (const auto& [s, evs] : in_b)
    for (const auto& e : evs) {
      ++events_b;
      CHECK_MESSAGE(ids_b.insert(e["id"].get<std::string>()).second, "duplicate in B: ", e.dump());
    }
  for (const auto& [s, evs] : in_a) events_a += evs.size();
  CHECK(events_b == events_a);
  CHECK(in_a.size() == static_cast<std::size_t>(kStreams));
  for (const auto& [s, evs] : in_a) {
    const auto& got = in_b[s];
    std::size_t same = 0;
    while (same < evs.size() && same < got.size() && evs[same] == got[same]) ++same;
    CHECK_MESSAGE(same == evs.size(), "stream ", s, ": B differs from A at version ", same, " of ", evs.size(),
                  " (B has ", got.size(), ")", same < got.size() ? ": " + got[same].dump() : std::string());
    CHECK_MESSAGE(got.size() == evs.size(), "stream ", s, ": A has ", evs.size(), " events, B ", got.size());
  }

  // A re-delivered batch was skipped, not copied: count what the imports reported.
  std::int64_t skipped = 0, imported = 0;
  for (const auto& l : lines(read_file(relay_out))) {
    long long i = 0, s = 0;
    if (std::sscanf(l.c_str(), "imported %lld event%*[s ](%lld already stored", &i, &s) == 2)
      imported += i, skipped += s;
  }
  MESSAGE("kills: ", killed, " (", std::string(whole_service ? "whole relay" : "drainer alone"), "), relay phase ", kill_phase_s,
          " s, final drain ", final_s, " s; events: ", events_a, " in ", in_a.size(), " streams; imports reported ",
          imported, " imported, ", skipped, " re-delivered and skipped");
  CHECK(imported <= static_cast<std::int64_t>(events_a));
  check_sound(a);
  check_sound(b);
}

}  // namespace

TEST_SUITE("cli/attack_relay") {
  // the relay's handler names its target store by a path the PostgreSQL run does not map
  TEST_CASE("a relay between stores killed with kill -9 at random moments copies every event exactly once, in order" *
            sqlite_only()) {
    attack_relay(full_size() ? 200 : 20, true);
  }

  // as above: the relay's handler names its target store by a path the PostgreSQL run does not map
  TEST_CASE(
      "a relay whose drainer alone is killed (its import finishes the batch) still copies each event once, in order" *
      sqlite_only()) {
    attack_relay(full_size() ? 100 : 8, false);
  }
}
