// A fresh database on the throwaway PostgreSQL test server (ESCTL_TEST_PG, the URI of its
// `postgres` database; see tests/support/pg_cluster.sh), dropped when the object goes away.
#pragma once
#include <optional>
#include <string>

#include "core/event.hpp"
#include "core/uuid.hpp"

namespace esctl::test {

/// A new event as the PostgreSQL tests append it: `data` is a JSON text; no id means one is
/// generated on append.
inline NewEvent event(std::string stream, std::string type = "t", std::string data = "{}",
                      std::optional<Uuid> id = std::nullopt) {
  NewEvent e;
  e.stream = std::move(stream);
  e.type = std::move(type);
  e.data = std::move(data);
  e.id = id;
  return e;
}

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
