// The VFS esctl opens its SQLite files with: the default one, with the writes of each WAL
// transaction gathered into few system calls (see wal_vfs.cpp).
#pragma once

namespace esctl::sql {

/// Registers the VFS on first use (not as the default) and returns its name for sqlite3_open_v2.
const char* wal_vfs_name();

}  // namespace esctl::sql
