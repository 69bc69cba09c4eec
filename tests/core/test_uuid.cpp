// core/uuid: parsing and printing the 8-4-4-4-12 form, raw bytes, and UUIDv7 generation order.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "core/time.hpp"
#include "core/uuid.hpp"

using namespace esctl;

TEST_SUITE("core/uuid") {
  TEST_CASE("a UUID parses in either case and prints in lower case") {
    auto u = parse_uuid("0190A6E4-6D5A-7C4E-9A51-3F0C2D1E8B77");
    REQUIRE(u.has_value());
    CHECK(u->bytes[0] == 0x01);
    CHECK(u->bytes[15] == 0x77);
    CHECK(format_uuid(*u) == "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b77");
  }

  TEST_CASE("malformed UUIDs are refused") {
    for (const char* bad : {"", "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b7", "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b777",
                            "0190a6e46d5a7c4e9a513f0c2d1e8b77", "0190a6e4_6d5a-7c4e-9a51-3f0c2d1e8b77",
                            "0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8bxz", "{0190a6e4-6d5a-7c4e-9a51-3f0c2d1e8b7}"}) {
      INFO(bad);
      CHECK_FALSE(parse_uuid(bad).has_value());
    }
  }

  TEST_CASE("raw bytes round-trip and need exactly 16 bytes") {
    auto u = parse_uuid("00112233-4455-6677-8899-aabbccddeeff");
    REQUIRE(u);
    auto back = uuid_from_bytes(u->view());
    REQUIRE(back);
    CHECK(*back == *u);
    CHECK_FALSE(uuid_from_bytes("short").has_value());
  }

  TEST_CASE("generated ids are version 7, RFC 4122 variant, carry the current millisecond and strictly increase") {
    auto before_ms = static_cast<std::uint64_t>(now_us() / 1000);
    Uuid prev = new_uuid_v7();
    std::set<std::string> seen;
    for (int i = 0; i < 20000; ++i) {
      Uuid u = new_uuid_v7();
      CHECK((u.bytes[6] >> 4) == 7);
      CHECK((u.bytes[8] & 0xc0) == 0x80);
      REQUIRE(std::string(prev.view()) < std::string(u.view()));  // byte order = creation order
      seen.insert(std::string(u.view()));
      prev = u;
    }
    CHECK(seen.size() == 20000);
    std::uint64_t ms = 0;
    for (int i = 0; i < 6; ++i) ms = (ms << 8) | prev.bytes[static_cast<std::size_t>(i)];
    CHECK(ms >= before_ms);
    CHECK(ms <= static_cast<std::uint64_t>(now_us() / 1000) + 1000);  // the counter may run ahead a little
  }

  TEST_CASE("a forked child does not generate the random bits its parent generates next") {
    new_uuid_v7();  // the parent has buffered randomness now
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      Uuid u = new_uuid_v7();
      ssize_t n = ::write(fds[1], u.bytes.data(), 16);
      ::_exit(n == 16 ? 0 : 1);
    }
    Uuid mine = new_uuid_v7();
    Uuid theirs;
    REQUIRE(::read(fds[0], theirs.bytes.data(), 16) == 16);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(fds[0]);
    ::close(fds[1]);
    CHECK(std::memcmp(mine.bytes.data() + 8, theirs.bytes.data() + 8, 8) != 0);
  }
}
