// The store's schema, its version, and the checks that decide whether a file is an esctl store.
// The one place that knows the table layout's history; migrations are forward-only.
#pragma once
#include <cstdint>

#include "store/store.hpp"

namespace esctl {
namespace sql { class Db; }

inline constexpr std::int64_t kApplicationId = 0x45534354;  // "ESCT"
inline constexpr int kSchemaVersion = 3;

/// Verifies that `db` is an esctl store this build understands; creates the schema in an
/// empty database when `intent` is write; migrates an older schema when writing is allowed
/// (write, update).
/// Refuses (Errc::corrupt / not_found) without modifying anything otherwise.
/// Access::read never writes; update may migrate, never creates; write may create and migrate.
void prepare_schema(sql::Db& db, Access intent);

/// Applies the per-connection settings (synchronous, cache size, ...).
void configure_connection(sql::Db& db);

}  // namespace esctl
