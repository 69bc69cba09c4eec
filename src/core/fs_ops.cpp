// The swappable file-system calls (fs_ops.hpp): POSIX unless a test installed its own.
#include "core/fs_ops.hpp"

#include <unistd.h>

#include <cstdio>

namespace esctl::fs_ops {
namespace {

int posix_rename(const char* from, const char* to) { return ::rename(from, to); }
int posix_unlink(const char* path) { return ::unlink(path); }
int posix_fsync(int fd, const char*, bool) { return ::fsync(fd); }

const Ops kPosix{posix_rename, posix_unlink, posix_fsync};
const Ops* g_ops = &kPosix;

}  // namespace

int rename(const char* from, const char* to) { return g_ops->rename(from, to); }
int unlink(const char* path) { return g_ops->unlink(path); }
int fsync(int fd, const char* path, bool directory) { return g_ops->fsync(fd, path, directory); }

void use_for_tests(const Ops* ops) { g_ops = ops ? ops : &kPosix; }

}  // namespace esctl::fs_ops
