// render/table and render/units: aligned text tables (numbers right-aligned, UTF-8 names counted
// by character, no trailing blanks, short rows padded) and the human units of byte sizes and
// counted nouns.
#include <doctest/doctest.h>

#include <string>

#include "render/table.hpp"
#include "render/units.hpp"

using namespace esctl;

TEST_SUITE("render/table") {
  TEST_CASE("columns are as wide as their widest cell, numbers right-aligned, no trailing blanks") {
    Table t({"name", "lag", "note"});
    t.right(1);
    t.add({"orders", "7", "ok"});
    t.add({"billing-view", "1200", ""});
    std::string out;
    t.render(out);
    CHECK(out ==
          "name           lag  note\n"
          "orders           7  ok\n"
          "billing-view  1200\n");
  }

  TEST_CASE("a UTF-8 name counts its characters, not its bytes, and a short row is padded") {
    Table t({"stream", "n"});
    t.right(1);
    t.add({"café", "1"});
    t.add({"tea"});
    std::string out;
    t.render(out);
    CHECK(out ==
          "stream  n\n"
          "café    1\n"
          "tea\n");
    CHECK_FALSE(t.empty());
    CHECK(Table({"x"}).empty());
  }
}

TEST_SUITE("render/units") {
  TEST_CASE("byte sizes use the largest binary unit that keeps the figure at least 1") {
    CHECK(human_bytes(0) == "0 B");
    CHECK(human_bytes(1023) == "1023 B");
    CHECK(human_bytes(1024) == "1.0 KiB");
    CHECK(human_bytes(40265318) == "38.4 MiB");
    CHECK(human_bytes(std::int64_t{3} << 40) == "3.0 TiB");
  }

  TEST_CASE("counted nouns are singular for one only, with an optional irregular plural") {
    CHECK(counted(1, "event") == "1 event");
    CHECK(counted(0, "event") == "0 events");
    CHECK(counted(3, "event") == "3 events");
    CHECK(counted(2, "entry", "entries") == "2 entries");
    CHECK(counted(1, "entry", "entries") == "1 entry");
  }
}
