// drain/pipe_handler: the --pipe line protocol against real `sh` handlers, without a store:
// answers taken in order, the inside-a-stream rule, each way a handler fails (the first
// unanswered event nacked, the rest returned, a restart announced), and the end of a drain
// (stdin closed, the handler waited for).
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "drain/pipe_handler.hpp"

using namespace esctl;

namespace {

struct Dir {
  std::string path;
  Dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "esctl-pipe-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~Dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t line_count(const std::string& path) {
  std::string s = slurp(path);
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

Delivery event(std::int64_t position, const std::string& stream, std::int64_t version) {
  Delivery d;
  d.event.position = position;
  d.event.stream = stream;
  d.event.version = version;
  d.event.type = "T";
  return d;
}

// A handler with a test's options: small timeouts, and stderr captured instead of printed.
// esctl's main ignores SIGPIPE (core/signals.hpp), so a write to a handler that exited without
// reading its stdin fails with EPIPE and counts as the handler's failure. A test program runs
// the handler the same way, or that write kills it (a handler that exits at once races the
// batch's write).
struct SigpipeIgnored {
  void (*old)(int) = ::signal(SIGPIPE, SIG_IGN);
  ~SigpipeIgnored() { ::signal(SIGPIPE, old); }
};

struct Pipe {
  SigpipeIgnored sigpipe;  // first: ignored until the handler is ended
  std::string said;  // what the handler and esctl wrote to stderr
  std::mutex m;
  PipeOptions o;
  BatchHandler handle;

  explicit Pipe(const std::string& command, std::int64_t ack_timeout_ms = 30000) {
    o.command = command;
    o.ack_timeout_ms = ack_timeout_ms;
    o.first_backoff_ms = 1;
    o.format = [](std::string& out, const Delivery& d) {
      out += "{\"position\":" + std::to_string(d.event.position) + ",\"stream\":\"" + d.event.stream +
             "\",\"version\":" + std::to_string(d.event.version) + "}";
    };
    o.relay = [this](int, std::string_view bytes) {
      std::lock_guard<std::mutex> lock(m);
      said.append(bytes);
    };
    handle = make_pipe_handler(o);
  }
};

// The outcome of each position: "ack", "nack: REASON" or "returned" (missing: "none").
std::string of(const BatchOutcome& out, std::int64_t position) {
  if (std::find(out.returned.begin(), out.returned.end(), position) != out.returned.end()) return "returned";
  for (const auto& [p, r] : out.results)
    if (p == position) return r ? "nack: " + *r : "ack";
  return "none";
}

// A script that acks every line, logging it to LOG; the first time it starts (no DIR/tripped
// yet) it does `trip` on line `at` instead of answering.
std::string acker(const Dir& dir, int at, const std::string& trip) {
  return "echo $$ >> '" + dir / "starts" + "'; n=0; while IFS= read -r l; do n=$((n+1)); " +
         "if [ $n -eq " + std::to_string(at) + " ] && [ ! -e '" + dir / "tripped" + "' ]; then : > '" +
         dir / "tripped" + "'; " + trip + "; fi; printf '%s\\n' \"$l\" >> '" + dir / "log" + "'; echo ack; done";
}

}  // namespace

TEST_SUITE("drain/pipe_handler") {
  TEST_CASE("one process answers every batch, ack and nack line by line, in order") {
    Dir dir;
    Pipe p("echo $$ >> '" + dir / "starts" +
           "'; while IFS= read -r l; do case \"$l\" in *'\"position\":2,'*) echo 'nack bad data';; "
           "*'\"position\":4,'*) echo nack;; *) echo ack;; esac; done");
    auto a = p.handle({event(1, "s", 0), event(2, "t", 0), event(3, "u", 0)});
    CHECK(of(a, 1) == "ack");
    CHECK(of(a, 2) == "nack: bad data");
    CHECK(of(a, 3) == "ack");
    CHECK(a.final_answers);
    auto b = p.handle({event(4, "s", 1), event(5, "v", 0)});
    CHECK(of(b, 4) == "nack: nacked by the handler");
    CHECK(of(b, 5) == "ack");
    CHECK(line_count(dir / "starts") == 1);
  }

  TEST_CASE("after S@v is nacked, the answers for later events of S in flight are discarded and they are returned") {
    Pipe p("while IFS= read -r l; do case \"$l\" in *'\"position\":1,'*) echo 'nack no';; *) echo ack;; esac; done");
    auto out = p.handle({event(1, "s", 0), event(2, "t", 0), event(3, "s", 1), event(4, "t", 1), event(5, "s", 2)});
    CHECK(of(out, 1) == "nack: no");
    CHECK(of(out, 2) == "ack");
    CHECK(of(out, 3) == "returned");
    CHECK(of(out, 4) == "ack");
    CHECK(of(out, 5) == "returned");
    CHECK(out.results.size() == 3);
  }

  TEST_CASE("a handler that exits mid-batch: its first unanswered event is nacked with the status and its last stderr line, the rest returned, and it is started again") {
    Dir dir;
    Pipe p(acker(dir, 3, "echo 'boom: bad event' >&2; exit 3"));
    std::vector<Delivery> batch;
    for (int i = 1; i <= 6; ++i) batch.push_back(event(i, "s" + std::to_string(i), 0));
    auto out = p.handle(batch);
    CHECK(of(out, 1) == "ack");
    CHECK(of(out, 2) == "ack");
    CHECK(of(out, 3) == "nack: handler exited with status 3: boom: bad event");
    for (int i = 4; i <= 6; ++i) CHECK(of(out, i) == "returned");
    CHECK(p.said.find("starting it again in 1ms") != std::string::npos);
    auto again = p.handle({event(3, "s3", 0), event(4, "s4", 0)});
    CHECK(of(again, 3) == "ack");
    CHECK(of(again, 4) == "ack");
    CHECK(line_count(dir / "starts") == 2);
    CHECK(line_count(dir / "log") == 4);  // 1, 2, then 3, 4: nothing unanswered was acked
  }

  TEST_CASE("a handler killed by a signal, or by kill -9, nacks one event only") {
    for (const char* trip : {"kill -USR1 $$", "kill -9 $$"}) {
      CAPTURE(trip);
      Dir dir;
      Pipe p(acker(dir, 1, trip));
      std::vector<Delivery> batch;
      for (int i = 1; i <= 50; ++i) batch.push_back(event(i, "s" + std::to_string(i % 7), i / 7));
      auto out = p.handle(batch);
      CHECK(of(out, 1).rfind("nack: handler was killed by signal", 0) == 0);
      CHECK(out.results.size() == 1);
      CHECK(out.returned.size() == 49);
    }
  }

  TEST_CASE("a nacked stream's first unanswered event is returned, not nacked, when the handler then fails") {
    Pipe p("read -r l; echo 'nack first'; read -r l; exit 1");
    auto out = p.handle({event(1, "s", 0), event(2, "s", 1), event(3, "t", 0)});
    CHECK(of(out, 1) == "nack: first");
    CHECK(of(out, 2) == "returned");
    CHECK(of(out, 3) == "returned");
  }

  TEST_CASE("a line that is not an answer is a protocol error for the event it answers") {
    Dir dir;
    Pipe p(acker(dir, 2, "echo ok; continue"));
    auto out = p.handle({event(1, "s", 0), event(2, "t", 0), event(3, "u", 0)});
    CHECK(of(out, 1) == "ack");
    CHECK_MESSAGE(of(out, 2).find("protocol error: the handler answered 'ok'") != std::string::npos, of(out, 2), p.said);
    CHECK(of(out, 3) == "returned");
    CHECK(p.said.find("starting it again") != std::string::npos);
    auto again = p.handle({event(2, "t", 0)});
    CHECK(of(again, 2) == "ack");
  }

  TEST_CASE("more answers than events is a protocol error and the handler is started again") {
    Dir dir;
    Pipe p(acker(dir, 1, "printf 'ack\\nack\\n'; continue"));
    auto out = p.handle({event(1, "s", 0)});
    CHECK(of(out, 1) == "ack");
    auto next = p.handle({event(2, "s", 1)});
    CHECK(p.said.find("more answers than events") != std::string::npos);
    CHECK(of(next, 2) == "ack");
    CHECK(line_count(dir / "starts") == 2);
  }

  TEST_CASE("a handler that closes its stdout fails its first unanswered event") {
    Dir dir;
    Pipe p(acker(dir, 2, "exec >&-; cat >/dev/null"));
    auto out = p.handle({event(1, "s", 0), event(2, "t", 0), event(3, "u", 0)});
    CHECK(of(out, 1) == "ack");
    CHECK(of(out, 2) == "nack: handler closed its stdout");
    CHECK(of(out, 3) == "returned");
  }

  TEST_CASE("a handler that answers nothing for the ack timeout fails, and what it started is ended with it") {
    Dir dir;
    // The timeout also bounds the restarted handler's first answer below: long enough for a shell
    // to start and answer on a loaded machine under sanitizers.
    Pipe p(acker(dir, 1, "sleep 600"), 2000);
    auto out = p.handle({event(1, "s", 0), event(2, "t", 0)});
    CHECK(of(out, 1) == "nack: handler answered nothing for 2s (the queue's --ack-timeout)");
    CHECK(of(out, 2) == "returned");
    auto again = p.handle({event(1, "s", 0)});
    CHECK(of(again, 1) == "ack");
  }

  TEST_CASE("the back-off before a restart doubles while the handler fails without answering, and resets after an answer") {
    Dir dir;
    Pipe p("if [ -e '" + dir / "ok" + "' ]; then read -r l; echo ack; read -r l; fi; exit 1");
    for (int i = 0; i < 3; ++i) CHECK(of(p.handle({event(1, "s", 0)}), 1) == "nack: handler exited with status 1");
    CHECK(p.said.find("starting it again in 1ms") != std::string::npos);
    CHECK(p.said.find("starting it again in 2ms") != std::string::npos);
    CHECK(p.said.find("starting it again in 4ms") != std::string::npos);
    std::ofstream(dir / "ok").put('\n');
    p.said.clear();
    auto out = p.handle({event(1, "s", 0), event(2, "t", 0)});
    CHECK(of(out, 1) == "ack");
    CHECK(of(out, 2) == "nack: handler exited with status 1");
    CHECK(p.said.find("starting it again in 1ms") != std::string::npos);
  }

  TEST_CASE("its stderr is read while no batch is in hand: a handler writing much there between batches goes on") {
    Dir dir;
    // After its answer, with nothing outstanding, it writes 200 KiB to stderr and then says so
    // in a file: unless its stderr is read between batches, the write blocks and the file never
    // appears.
    Pipe p("while IFS= read -r l; do echo ack; yes 'x123456789' | head -c 204800 >&2; echo >&2; "
           "echo 'last words' >&2; : > '" + dir / "written" + "'; done");
    auto out = p.handle({event(1, "s", 0)});
    CHECK(of(out, 1) == "ack");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);  // not a timing assertion
    while (!std::filesystem::exists(dir / "written") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(std::filesystem::exists(dir / "written"));
    // Its output reached the relay, and the next batch is answered as usual.
    CHECK(of(p.handle({event(2, "s", 1)}), 2) == "ack");
    std::lock_guard<std::mutex> lock(p.m);
    CHECK(p.said.size() >= 204800);
    CHECK(p.said.find("last words") != std::string::npos);
  }

  TEST_CASE("a handler that cannot be run throws, and acks nothing") {
    Pipe p("/nonexistent/handler");
    CHECK_THROWS_AS(p.handle({event(1, "s", 0)}), Error);
  }

  TEST_CASE("at the end its stdin is closed and the handler is waited for") {
    Dir dir;
    {
      Pipe p("while IFS= read -r l; do echo ack; done; sleep 0.2; : > '" + dir / "ended" + "'");
      auto out = p.handle({event(1, "s", 0)});
      CHECK(of(out, 1) == "ack");
    }
    CHECK(std::filesystem::exists(dir / "ended"));
  }
}
