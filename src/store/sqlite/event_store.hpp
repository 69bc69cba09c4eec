// The SQLite backend of the event store: one store file, one connection per Store. Implements
// StoreBackend (store/backend.hpp); the layout it relies on is explained in schema.cpp, the
// stream walk (prev links and marks) at the top of event_store.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/backend.hpp"
#include "store/store.hpp"

namespace esctl::sql { class Db; }

namespace esctl::sqlite {

/// Opens (and with Access::write creates) the store file at options.location: refuses a folder,
/// a missing file or folder, and a file that is not a SQLite database before SQLite touches it.
std::unique_ptr<StoreBackend> open(const StoreOptions& options, Access access);

/// The checks of a store file before SQLite opens it, shared by every opener: refuses a folder
/// (Errc::usage), a missing file unless `access` is write (Errc::not_found, with `missing_hint`:
/// what to do), a missing folder to create it in, an unreadable file when reading
/// (Errc::read_only) and a file that is not a SQLite database (Errc::corrupt). Returns whether
/// the file exists.
bool check_store_file(const std::string& path, Access access, std::string_view missing_hint);

/// The SQLite connection of a store this backend opened: for this backend's own modules and
/// its tests. Errc::internal for a store of another backend.
sql::Db& connection(Store& store);

/// The highest committed position of the store on `db` (0 for an empty store): the one query
/// for it, in the caller's transaction if one is open.
std::int64_t last_position(sql::Db& db);

/// The version of the linked SQLite library.
std::string library_version();

}  // namespace esctl::sqlite
