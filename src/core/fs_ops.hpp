// The file-system calls that replace a file atomically (rename, fsync of a file or a folder,
// unlink), made through a table that a test can swap to model a power loss (the fault VFS of
// tests/support). Production code calls these instead of the POSIX functions; by default they
// are the POSIX functions, with the same results and errno.
#pragma once

namespace esctl::fs_ops {

/// The calls, POSIX-style: 0 on success, -1 with errno set on failure.
struct Ops {
  int (*rename)(const char* from, const char* to);
  int (*unlink)(const char* path);
  /// fsync(2) of `fd`, an open descriptor of `path` (a regular file or, with `directory`, a folder).
  int (*fsync)(int fd, const char* path, bool directory);
};

/// rename(2), through the current table.
int rename(const char* from, const char* to);
/// unlink(2), through the current table.
int unlink(const char* path);
/// fsync(2) of `fd`, which is open on `path`, through the current table.
int fsync(int fd, const char* path, bool directory);

/// For tests only: makes the calls above go to `ops` (nullptr: back to POSIX). Not thread-safe:
/// swap it while no other thread makes these calls.
void use_for_tests(const Ops* ops);

}  // namespace esctl::fs_ops
