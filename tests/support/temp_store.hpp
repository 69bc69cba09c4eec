// A store file in a fresh temporary directory, removed with everything beside it (WAL, query
// dbs) when the test case ends. For the unit tests of the store library.
#pragma once
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "store/store.hpp"

namespace esctl::test {

struct TempStore {
  std::string dir, path;
  TempStore() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "esctl-unit-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    path = dir + "/s.db";
  }
  TempStore(const TempStore&) = delete;
  TempStore& operator=(const TempStore&) = delete;
  ~TempStore() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  StoreOptions options() const { return StoreOptions{path, 5000}; }
};

}  // namespace esctl::test
