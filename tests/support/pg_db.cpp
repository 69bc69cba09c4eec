#include "support/pg_db.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include "store/location.hpp"
#include "store/postgres/pg.hpp"

namespace esctl::test {

std::string pg_server_uri() {
  const char* uri = std::getenv("ESCTL_TEST_PG");
  if (uri && *uri) return uri;
  // ESCTL_TEST_BACKEND may name the server itself (one variable for CTest's second run).
  const char* backend = std::getenv("ESCTL_TEST_BACKEND");
  if (backend && is_postgres_uri(backend)) return backend;
  return "";
}

TempDatabase::TempDatabase() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  name_ = "esctl_t_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + std::to_string(rd() % 100000);
  const std::string server = pg_server_uri();
  if (server.empty()) throw std::runtime_error("ESCTL_TEST_PG is not set");
  // ESCTL_TEST_PG names the `postgres` database: the test database replaces it in the path.
  const auto at = server.find("/postgres");
  if (at == std::string::npos) throw std::runtime_error("ESCTL_TEST_PG must name the postgres database: " + server);
  uri_ = server.substr(0, at) + "/" + name_ + server.substr(at + 9);
  pg::Conn admin(server, 5000);
  admin.exec_script(("CREATE DATABASE " + name_).c_str());  // a name made here, of [a-z0-9_]
}

TempDatabase::~TempDatabase() {
  try {
    pg::Conn admin(pg_server_uri(), 5000);
    admin.exec_script(("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)").c_str());
  } catch (...) {
  }
}

}  // namespace esctl::test
