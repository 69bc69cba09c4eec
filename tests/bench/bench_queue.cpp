// Benchmark of projector queues. Not a test; never run in CI.
//  1. `queue drain --exec 'cat >/dev/null' --batch 1000` over N events (default 1M, ~200 B each,
//     10k interleaved streams): events/s, median of 3 (the queue is reset between runs).
//     Baselines in the same run: `export --all > /dev/null` (reading and formatting every event:
//     the work a drain cannot avoid) and N/1000 runs of `sh -c 'cat >/dev/null'` each fed the
//     same bytes (the handler cost), and their sum: what a drain with free bookkeeping would take.
//  2. `queue pull` + `queue ack` of one event per process invocation vs one `append` invocation
//     (median of R rounds each): the target is pull and ack each within 1.5x of an append.
//
// Usage: bench_queue [EVENTS=1000000] [ROUNDS=200]
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "store/store.hpp"

extern char** environ;

using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Ran {
  int status = -1;
  std::string out;
  double seconds = 0;
};

// Runs argv with stdin from `input` (if any) and stdout captured (or to /dev/null).
Ran run(const std::vector<std::string>& argv, bool capture, const std::string* input = nullptr) {
  int out[2] = {-1, -1}, in[2] = {-1, -1};
  if (capture && ::pipe(out) != 0) std::exit(1);
  if (input && ::pipe(in) != 0) std::exit(1);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (capture) {
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, out[1]);
  } else {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  }
  if (input) {
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addclose(&fa, in[0]);
    posix_spawn_file_actions_addclose(&fa, in[1]);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Ran r;
  auto t0 = Clock::now();
  pid_t pid;
  if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) std::exit(1);
  posix_spawn_file_actions_destroy(&fa);
  if (input) {
    ::close(in[0]);
    std::size_t off = 0;
    while (off < input->size()) {
      ssize_t n = ::write(in[1], input->data() + off, input->size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(in[1]);
  }
  if (capture) {
    ::close(out[1]);
    char buf[65536];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<std::size_t>(n));
    ::close(out[0]);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.seconds = secs(Clock::now() - t0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::vector<std::string> esctl_argv(const std::string& store, std::vector<std::string> args) {
  args.insert(args.begin(), {ESCTL_BIN, "--store", store});
  return args;
}

void must(const Ran& r, const char* what) {
  if (r.status != 0) {
    fmt::print(stderr, "{} failed with status {}\n", what, r.status);
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t n = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 200;
  auto dir = std::filesystem::temp_directory_path() / fmt::format("esctl-bench-queue-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const std::string store = (dir / "events.db").string();

  // The store: n events of ~200 B over 10k interleaved streams.
  {
    esctl::Store s(esctl::StoreOptions{store, 5000}, esctl::Access::write);
    std::vector<esctl::NewEvent> batch;
    const std::string data =
        R"({"customer":"c-12345","total":123.45,"items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"benchmark"})";
    for (std::int64_t i = 0; i < n; ++i) {
      esctl::NewEvent e;
      e.stream = fmt::format("order-{}", i % 10000);
      e.type = "OrderPlaced";
      e.data = data;
      batch.push_back(std::move(e));
      if (batch.size() == 20000 || i + 1 == n) {
        s.append(batch, {}, false);
        batch.clear();
      }
    }
  }
  fmt::print("store: {} events, 10000 streams, {:.0f} MB\n", n,
             static_cast<double>(std::filesystem::file_size(store)) / 1e6);

  // --- 1. drain throughput ---
  must(run(esctl_argv(store, {"queue", "create", "bench", "--from", "start"}), false), "queue create");
  std::vector<double> drain_s, export_s;
  std::string sample;  // the NDJSON of one batch, for the handler baseline
  for (int i = 0; i < 3; ++i) {
    auto e = run(esctl_argv(store, {"export", "--all"}), false);
    must(e, "export");
    export_s.push_back(e.seconds);
    auto d = run(esctl_argv(store, {"queue", "drain", "bench", "--batch", "1000", "--exec", "cat >/dev/null"}), false);
    must(d, "drain");
    drain_s.push_back(d.seconds);
    must(run(esctl_argv(store, {"queue", "reset", "bench", "--to", "start"}), false), "reset");
  }
  {
    auto e = run(esctl_argv(store, {"export", "--all"}), true);
    std::size_t cut = 0;
    for (int k = 0; k < 1000 && cut != std::string::npos; ++k) cut = e.out.find('\n', cut + 1);
    sample = e.out.substr(0, cut == std::string::npos ? e.out.size() : cut + 1);
  }
  std::vector<double> handler_s;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    for (std::int64_t b = 0; b < (n + 999) / 1000; ++b) run({"/bin/sh", "-c", "cat >/dev/null"}, false, &sample);
    handler_s.push_back(secs(Clock::now() - t0));
  }
  double d = median(drain_s), ex = median(export_s), h = median(handler_s);
  fmt::print("\ndrain --exec 'cat >/dev/null' --batch 1000, {} events (median of 3):\n", n);
  fmt::print("  drain                         {:8.2f} s  {:9.0f} events/s   (target >= 200000)\n", d, n / d);
  fmt::print("  baseline: export --all        {:8.2f} s  {:9.0f} events/s\n", ex, n / ex);
  fmt::print("  baseline: {} x sh -c cat     {:8.2f} s  {:9.0f} events/s\n", (n + 999) / 1000, h, n / h);
  fmt::print("  baseline sum (no bookkeeping) {:8.2f} s  {:9.0f} events/s   drain / sum = {:.2f}\n", ex + h,
             n / (ex + h), d / (ex + h));

  // --- 2. single pull + ack per invocation vs append ---
  must(run(esctl_argv(store, {"queue", "create", "single"}), false), "queue create");
  std::vector<double> append_s, pull_s, ack_s;
  for (int i = 0; i < rounds; ++i) {
    auto a = run(esctl_argv(store, {"append", "order-1", "OrderPlaced", "{\"n\":1}"}), false);
    must(a, "append");
    append_s.push_back(a.seconds);
    auto p = run(esctl_argv(store, {"queue", "pull", "single"}), true);
    must(p, "pull");
    pull_s.push_back(p.seconds);
    std::string pos = p.out.substr(0, p.out.find(' '));
    if (pos.empty()) {
      fmt::print(stderr, "pull delivered nothing\n");
      return 1;
    }
    auto k = run(esctl_argv(store, {"queue", "ack", "single", pos}), false);
    must(k, "ack");
    ack_s.push_back(k.seconds);
  }
  double ap = median(append_s), pu = median(pull_s), ac = median(ack_s);
  fmt::print("\none event per process invocation (median of {}):\n", rounds);
  fmt::print("  baseline: append   {:7.2f} ms\n", ap * 1e3);
  fmt::print("  queue pull         {:7.2f} ms   {:.2f}x append   (target <= 1.5x)\n", pu * 1e3, pu / ap);
  fmt::print("  queue ack          {:7.2f} ms   {:.2f}x append   (target <= 1.5x)\n", ac * 1e3, ac / ap);
  fmt::print("  pull + ack         {:7.2f} ms   {:.2f}x append\n", (pu + ac) * 1e3, (pu + ac) / ap);

  std::filesystem::remove_all(dir);
  return 0;
}
