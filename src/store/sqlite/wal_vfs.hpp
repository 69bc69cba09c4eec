// The VFS esctl opens its SQLite files with: the default one, with the writes of each WAL
// transaction gathered into few system calls (see wal_vfs.cpp).
#pragma once

namespace esctl::sql {

/// Registers the VFS on first use (not as the default) and returns the name of the VFS esctl's
/// connections open with: this one, unless a test chose otherwise (use_base_vfs_for_tests).
const char* wal_vfs_name();

/// For tests only (fault injection): the WAL VFS wraps the registered VFS named `base` (nullptr:
/// SQLite's default) instead of the default one; with `gather` false, connections open `base`
/// directly, without the WAL VFS. Call only while no esctl connection is open.
void use_base_vfs_for_tests(const char* base, bool gather);

}  // namespace esctl::sql
