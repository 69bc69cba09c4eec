// A VFS over the default one that gathers the writes of a WAL transaction into few write(2)s.
//
// SQLite writes each WAL frame with two write calls (its 24-byte header, then the page), so a
// commit of 60 pages costs 120 system calls; on virtual machines a system call is expensive, and
// they were a third of an import's CPU time. Here appends to a "-wal" file are kept in a buffer
// and written as one call when:
// - the page of a commit frame has been appended (a frame header whose "database size after
//   commit" field is non-zero marks the last frame of a transaction; see the WAL format at
//   sqlite.org/fileformat2.html#walformat). So every committed transaction is in the file before
//   SQLite publishes it in the WAL index, whether or not the commit syncs;
// - anything else touches the file: a write that is not an append, a read, sync, truncate, size,
//   file control or close;
// - the buffer is full (64 KiB).
// Nothing is reordered: bytes reach the file in the order SQLite wrote them, only in fewer calls.
// A failed write is reported by the call that flushes (SQLite then rolls back, as after any
// failed write: frames of an uncommitted transaction are never published).
#include "store/sqlite/wal_vfs.hpp"

#include <sqlite3.h>

#include <cstring>
#include <mutex>
#include <new>
#include <vector>

namespace esctl::sql {
namespace {

// At most this many bytes to one write: the unix VFS passes no more than 128 KiB - 1 to pwrite(2)
// in one call (its seekAndWrite masks the count), and a bigger buffer would save little more.
constexpr std::size_t kBufferBytes = 64 << 10;
constexpr int kFrameHeaderBytes = 24;

sqlite3_vfs* g_base = nullptr;  // the VFS we wrap
sqlite3_vfs g_vfs;
const char* g_open_with = nullptr;  // a test's choice of VFS for connections (see use_base_vfs_for_tests)

struct File {
  sqlite3_file base;          // our methods
  sqlite3_file* real;         // the wrapped file, stored right after this struct
  std::vector<char>* buf = nullptr;  // pending appends; only WAL files have one
  sqlite3_int64 buf_at = 0;          // file offset of buf's first byte
  bool flush_after_next = false;     // the last write was a commit frame's header
};

File* of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }

int flush(File* f) {
  if (!f->buf || f->buf->empty()) return SQLITE_OK;
  int rc = f->real->pMethods->xWrite(f->real, f->buf->data(), static_cast<int>(f->buf->size()), f->buf_at);
  f->buf->clear();
  return rc;
}

std::uint32_t be32(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
}

int x_close(sqlite3_file* pf) {
  File* f = of(pf);
  int rc = flush(f);
  int rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
  delete f->buf;
  f->buf = nullptr;
  return rc != SQLITE_OK ? rc : rc2;
}

int x_read(sqlite3_file* pf, void* out, int n, sqlite3_int64 at) {
  File* f = of(pf);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xRead(f->real, out, n, at);
}

int x_write(sqlite3_file* pf, const void* data, int n, sqlite3_int64 at) {
  File* f = of(pf);
  if (!f->buf) return f->real->pMethods->xWrite(f->real, data, n, at);
  const bool append = !f->buf->empty() && at == f->buf_at + static_cast<sqlite3_int64>(f->buf->size());
  if (!append || f->buf->size() + static_cast<std::size_t>(n) > kBufferBytes) {
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    f->buf_at = at;
  }
  const bool commit_page = f->flush_after_next;
  f->flush_after_next = n == kFrameHeaderBytes && be32(static_cast<const char*>(data) + 4) != 0;
  if (static_cast<std::size_t>(n) > kBufferBytes) return f->real->pMethods->xWrite(f->real, data, n, at);
  const auto* p = static_cast<const char*>(data);
  f->buf->insert(f->buf->end(), p, p + n);
  return commit_page ? flush(f) : SQLITE_OK;
}

int x_truncate(sqlite3_file* pf, sqlite3_int64 size) {
  File* f = of(pf);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xTruncate(f->real, size);
}

int x_sync(sqlite3_file* pf, int flags) {
  File* f = of(pf);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xSync(f->real, flags);
}

int x_file_size(sqlite3_file* pf, sqlite3_int64* size) {
  File* f = of(pf);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFileSize(f->real, size);
}

int x_lock(sqlite3_file* pf, int level) { return of(pf)->real->pMethods->xLock(of(pf)->real, level); }
int x_unlock(sqlite3_file* pf, int level) { return of(pf)->real->pMethods->xUnlock(of(pf)->real, level); }
int x_check_reserved(sqlite3_file* pf, int* out) {
  return of(pf)->real->pMethods->xCheckReservedLock(of(pf)->real, out);
}
int x_file_control(sqlite3_file* pf, int op, void* arg) {
  File* f = of(pf);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFileControl(f->real, op, arg);
}
int x_sector_size(sqlite3_file* pf) { return of(pf)->real->pMethods->xSectorSize(of(pf)->real); }
int x_device_characteristics(sqlite3_file* pf) {
  return of(pf)->real->pMethods->xDeviceCharacteristics(of(pf)->real);
}
int x_shm_map(sqlite3_file* pf, int region, int size, int extend, void volatile** out) {
  return of(pf)->real->pMethods->xShmMap(of(pf)->real, region, size, extend, out);
}
int x_shm_lock(sqlite3_file* pf, int offset, int n, int flags) {
  return of(pf)->real->pMethods->xShmLock(of(pf)->real, offset, n, flags);
}
void x_shm_barrier(sqlite3_file* pf) { of(pf)->real->pMethods->xShmBarrier(of(pf)->real); }
int x_shm_unmap(sqlite3_file* pf, int del) { return of(pf)->real->pMethods->xShmUnmap(of(pf)->real, del); }
int x_fetch(sqlite3_file* pf, sqlite3_int64 at, int n, void** out) {
  File* f = of(pf);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFetch(f->real, at, n, out);
}
int x_unfetch(sqlite3_file* pf, sqlite3_int64 at, void* p) { return of(pf)->real->pMethods->xUnfetch(of(pf)->real, at, p); }

const sqlite3_io_methods kMethods = {
    3,          x_close,       x_read,        x_write,      x_truncate, x_sync,        x_file_size,
    x_lock,     x_unlock,      x_check_reserved, x_file_control, x_sector_size, x_device_characteristics,
    x_shm_map,  x_shm_lock,    x_shm_barrier, x_shm_unmap,  x_fetch,    x_unfetch};

int x_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* pf, int flags, int* out_flags) {
  File* f = of(pf);
  f->base.pMethods = nullptr;
  f->real = reinterpret_cast<sqlite3_file*>(f + 1);
  int rc = g_base->xOpen(g_base, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK || !f->real->pMethods) return rc;
  f->buf = nullptr;
  f->buf_at = 0;
  f->flush_after_next = false;
  if (flags & SQLITE_OPEN_WAL) {
    f->buf = new (std::nothrow) std::vector<char>();
    if (!f->buf) {
      f->real->pMethods->xClose(f->real);
      return SQLITE_NOMEM;
    }
    f->buf->reserve(kBufferBytes);
  }
  // Version 3 methods only if the wrapped file has them (it always does on unix).
  f->base.pMethods = &kMethods;
  return SQLITE_OK;
}

// The rest of the VFS is the base VFS's.
int x_delete(sqlite3_vfs*, const char* name, int sync_dir) { return g_base->xDelete(g_base, name, sync_dir); }
int x_access(sqlite3_vfs*, const char* name, int flags, int* out) { return g_base->xAccess(g_base, name, flags, out); }
int x_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_base->xFullPathname(g_base, name, n, out);
}
void* x_dl_open(sqlite3_vfs*, const char* name) { return g_base->xDlOpen(g_base, name); }
void x_dl_error(sqlite3_vfs*, int n, char* out) { g_base->xDlError(g_base, n, out); }
void (*x_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) { return g_base->xDlSym(g_base, h, sym); }
void x_dl_close(sqlite3_vfs*, void* h) { g_base->xDlClose(g_base, h); }
int x_randomness(sqlite3_vfs*, int n, char* out) { return g_base->xRandomness(g_base, n, out); }
int x_sleep(sqlite3_vfs*, int us) { return g_base->xSleep(g_base, us); }
int x_current_time(sqlite3_vfs*, double* out) { return g_base->xCurrentTime(g_base, out); }
int x_get_last_error(sqlite3_vfs*, int n, char* out) { return g_base->xGetLastError(g_base, n, out); }
int x_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) { return g_base->xCurrentTimeInt64(g_base, out); }

}  // namespace

namespace {

void register_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_base = sqlite3_vfs_find(nullptr);
    std::memset(&g_vfs, 0, sizeof g_vfs);
    g_vfs.iVersion = 2;
    g_vfs.szOsFile = static_cast<int>(sizeof(File)) + g_base->szOsFile;
    g_vfs.mxPathname = g_base->mxPathname;
    g_vfs.zName = "esctl-wal";
    g_vfs.xOpen = x_open;
    g_vfs.xDelete = x_delete;
    g_vfs.xAccess = x_access;
    g_vfs.xFullPathname = x_full_pathname;
    g_vfs.xDlOpen = x_dl_open;
    g_vfs.xDlError = x_dl_error;
    g_vfs.xDlSym = x_dl_sym;
    g_vfs.xDlClose = x_dl_close;
    g_vfs.xRandomness = x_randomness;
    g_vfs.xSleep = x_sleep;
    g_vfs.xCurrentTime = x_current_time;
    g_vfs.xGetLastError = x_get_last_error;
    g_vfs.xCurrentTimeInt64 = x_current_time_int64;
    sqlite3_vfs_register(&g_vfs, 0);
  });
}

}  // namespace

const char* wal_vfs_name() {
  register_once();
  return g_open_with ? g_open_with : g_vfs.zName;
}

void use_base_vfs_for_tests(const char* base, bool gather) {
  register_once();
  sqlite3_vfs* b = sqlite3_vfs_find(base);
  if (!b) return;
  g_base = b;
  g_vfs.szOsFile = static_cast<int>(sizeof(File)) + g_base->szOsFile;
  g_vfs.mxPathname = g_base->mxPathname;
  g_open_with = gather ? nullptr : b->zName;
}

}  // namespace esctl::sql
