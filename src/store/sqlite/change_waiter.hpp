// The SQLite backend's ChangeSource: inotify on the store's WAL plus PRAGMA data_version.
#pragma once
#include <memory>
#include <string>

#include "store/backend.hpp"

namespace esctl::sql { class Db; }

namespace esctl::sqlite {

/// Waits for commits to the store on `db` by other connections (ChangeWaiter's contract).
/// Errc::read_only for a store opened as an immutable snapshot: it can never change.
std::unique_ptr<ChangeSource> make_wal_waiter(sql::Db& db, const std::string& location);

}  // namespace esctl::sqlite
