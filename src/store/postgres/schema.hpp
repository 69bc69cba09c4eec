// The PostgreSQL schema of an esctl store (schema `esctl` of one database): creating it,
// recognising it, and refusing what is not one.
#pragma once
#include "store/postgres/pg.hpp"
#include "store/store.hpp"

namespace esctl::pg {

/// The version of the `esctl` schema this esctl creates and understands.
inline constexpr int kSchemaVersion = 2;

/// Checks that `conn`'s database holds an esctl store of this schema version, creating it
/// (Access::write) if the database has no `esctl` schema or an empty one. An `esctl` schema
/// that is not an esctl store, or of a newer version, is refused (Errc::corrupt) and never
/// modified. Concurrent creators are serialised: one creates, the others find it done. A store
/// of an older version is migrated to this one unless `access` is read (readers use it as is).
void prepare_schema(Conn& conn, Access access);

}  // namespace esctl::pg
