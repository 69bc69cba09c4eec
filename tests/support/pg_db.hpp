// A fresh database on the throwaway PostgreSQL test server (ESCTL_TEST_PG, the URI of its
// `postgres` database; see tests/support/pg_cluster.sh), dropped when the object goes away.
#pragma once
#include <string>

namespace esctl::test {

/// The test server's URI (ESCTL_TEST_PG, else ESCTL_TEST_BACKEND if that is a URI); empty if
/// there is none.
std::string pg_server_uri();

class TempDatabase {
 public:
  /// Creates a database with a unique name on the test server.
  TempDatabase();
  ~TempDatabase();
  TempDatabase(const TempDatabase&) = delete;
  TempDatabase& operator=(const TempDatabase&) = delete;
  /// A connection URI for it.
  const std::string& uri() const { return uri_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_, uri_;
};

}  // namespace esctl::test
