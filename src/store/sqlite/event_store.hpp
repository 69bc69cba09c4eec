// The SQLite backend of the event store: one store file, one connection per Store. Implements
// StoreBackend (store/backend.hpp); the layout it relies on is explained in schema.cpp, the
// stream walk (prev links and marks) at the top of event_store.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/backend.hpp"
#include "store/store.hpp"

namespace esctl::sql { class Db; }

namespace esctl::sqlite {

/// Opens (and with Access::write creates) the store file at options.location: refuses a folder,
/// a missing file or folder, and a file that is not a SQLite database before SQLite touches it.
std::unique_ptr<StoreBackend> open(const StoreOptions& options, Access access);

/// The SQLite connection of a store this backend opened: for this backend's own modules and
/// its tests. Errc::internal for a store of another backend.
sql::Db& connection(Store& store);

/// The version of the linked SQLite library.
std::string library_version();

}  // namespace esctl::sqlite
