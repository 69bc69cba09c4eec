// The fault-injection VFS (fault_vfs.hpp). Writes go through to the real files at once (they are
// the page cache: every reader in the process sees them); per file, the writes and truncates since
// its last successful sync are also kept, with the content as of that sync (the "durable" image).
// A power loss rewrites each file from its durable image plus a random part of the unsynced
// operations. What is modelled and what is not:
// - unsynced writes: each one reaches the disk or not; the last kept ones may be torn, any subset
//   of their 512-byte sectors written; optionally in a random order (truncates stay barriers);
//   bytes outside a write are never changed (the power-safe overwrite that SQLite's unix VFS
//   assumes);
// - folders: a file created since the last reset may vanish, and a file deleted may come back
//   with its durable content, until its folder is synced: by a delete with SQLite's "sync the
//   folder" flag, or by the first sync of a journal or WAL opened with CREATE (SQLite's unix VFS
//   fsyncs the folder then). A file's own first sync also keeps it (SQLite never syncs the folder
//   of a main database it creates; ext4 and xfs make a synced file's entry durable);
// - a file deleted and then created again counts as new (a power loss never brings back the
//   deleted one's content);
// - renames, deletes and fsyncs made outside SQLite through core/fs_ops.hpp (rebuild's swap):
//   an fsync of a file makes its writes durable, of a folder its creates, deletes and renames; a
//   rename not followed by a sync of its folder may be undone by the power loss, the last ones
//   first (file systems journal metadata in order), the file keeping its own fate (its unsynced
//   writes may be lost either way); a rename is atomic (the target names the old file or the
//   new one, never neither);
// - not modelled: the WAL index (-shm; removed at reboot, SQLite rebuilds it), memory-mapped
//   I/O (refused: SQLite falls back to reads), damage to bytes not being written (a sector
//   garbled as a whole), a path renamed over again, or written outside SQLite, after a rename.
// The real fsync(2) is never called for tracked files: the durable image is the disk.
#include "support/fault_vfs.hpp"

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string_view>

#include <fmt/format.h>

#include "core/fs_ops.hpp"
#include "store/sqlite/wal_vfs.hpp"

namespace esctl::test::fault {
namespace {

constexpr std::int64_t kSector = 512;

struct PendingOp {
  bool truncate = false;
  std::int64_t at = 0;  // offset, or the new size for a truncate
  std::string bytes;
};

struct Tracked {
  std::string path;             // where it is now (its key in State::files)
  std::string durable;          // content as of the last sync
  bool exists_durable = false;  // the directory entry would survive a power loss
  bool exists_now = true;
  bool delete_durable = false;  // the delete (exists_now false) would survive a power loss
  std::vector<PendingOp> pending;
  std::int64_t writes = 0;
  int open_handles = 0;  // a file open through the VFS keeps its entry (File::t points to it)
};

using FileMap = std::map<std::string, Tracked>;

/// A rename(2) through fs_ops since the last reset.
struct Rename {
  std::string from, to;
  Tracked* moved = nullptr;     // the renamed file (now keyed `to`)
  FileMap::node_type replaced;  // what `to` named before, if anything
  bool durable = false;         // the folder was synced since
};

struct State {
  FileMap files;
  std::vector<Rename> renames;
  std::int64_t count[5] = {};  // per kind, since reset
  std::int64_t crash_n = 0;
  unsigned crash_kinds = 0;
  std::int64_t crash_seen = 0;
  bool crashed = false;
  std::int64_t fail_n = 0;
  unsigned fail_kinds = 0;
  int fail_rc = SQLITE_OK;
  bool fail_sticky = false;
  std::int64_t fail_seen = 0;
  std::int64_t failures = 0;
  std::vector<std::string> failed;  // what each injected failure hit
  std::vector<std::int64_t> outside;  // mutating-call numbers of the fs_ops calls
};

State g;
std::vector<FileMap::node_type> g_still_open;  // replaced files that a connection still had open at a reset
sqlite3_vfs* g_base = nullptr;
sqlite3_vfs g_vfs;

int kind_index(unsigned k) {
  switch (k) {
    case kRead: return 0;
    case kWrite: return 1;
    case kSync: return 2;
    case kTruncate: return 3;
    default: return 4;
  }
}

/// SQLITE_OK if the call may proceed, else the result code it fails with.
const char* kind_name(unsigned k) {
  static const char* names[] = {"read", "write", "sync", "truncate", "lock"};
  return names[kind_index(k)];
}

/// The last part of `path` ("s.db-wal"), or "a temporary file".
std::string base_name(const char* path) {
  if (!path) return "a temporary file";
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/// `what` names the call in failed_calls() if not the kind's name ("rename", "delete").
int gate(unsigned kind, int ioerr, const char* path, const char* what = nullptr) {
  ++g.count[kind_index(kind)];
  if (g.crashed) return ioerr;
  if (g.crash_n > 0 && (kind & g.crash_kinds) && ++g.crash_seen >= g.crash_n) {
    g.crashed = true;
    return ioerr;
  }
  if (g.fail_n > 0 && (kind & g.fail_kinds)) {
    ++g.fail_seen;
    if (g.fail_seen == g.fail_n || (g.fail_sticky && g.fail_seen > g.fail_n)) {
      ++g.failures;
      g.failed.push_back(fmt::format("{} of {}", what ? what : kind_name(kind), base_name(path)));
      return g.fail_rc;
    }
  }
  return SQLITE_OK;
}

void apply_op(std::string& image, const PendingOp& op) {
  if (op.truncate) {
    image.resize(static_cast<std::size_t>(op.at));
    return;
  }
  auto end = static_cast<std::size_t>(op.at) + op.bytes.size();
  if (image.size() < end) image.resize(end, '\0');
  std::memcpy(image.data() + op.at, op.bytes.data(), op.bytes.size());
}

bool write_whole(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return done == content.size();
}

struct File {
  sqlite3_file base;
  sqlite3_file* real;
  Tracked* t;             // nullptr: not tracked (temporary files)
  bool dir_sync_pending;  // SQLite's unix VFS syncs the folder at this handle's first sync
  const char* path() const { return t ? t->path.c_str() : nullptr; }
};

/// The folder part of `path`, with its trailing slash.
std::string folder_of(const std::string& path) { return path.substr(0, path.rfind('/') + 1); }

/// An fsync of the folder of `path`: every create, delete and rename in it so far is durable.
void sync_folder_of(const std::string& path) {
  const auto dir = folder_of(path);
  for (auto& [p, t] : g.files) {
    if (p.compare(0, dir.size(), dir) != 0 || p.find('/', dir.size()) != std::string::npos) continue;
    if (t.exists_now) t.exists_durable = true;
    else t.delete_durable = true;
  }
  for (auto& r : g.renames)
    if (folder_of(r.to) == dir) r.durable = true;
}

/// An fsync of the file: its writes and truncates so far are durable, and so is its entry.
void sync_file(Tracked& t) {
  for (const auto& op : t.pending) apply_op(t.durable, op);
  t.pending.clear();
  t.exists_durable = true;
}

/// A file deleted: gone now; for good at a power loss only if its folder is synced (`durable`).
void note_deleted(const std::string& path, bool durable) {
  auto it = g.files.find(path);
  if (it == g.files.end()) return;
  it->second.exists_now = false;
  it->second.delete_durable = durable;
  it->second.pending.clear();
}

/// Forgets what a tracked file went through, keeping where it is and who has it open.
void start_over(Tracked& t) {
  Tracked fresh;
  fresh.path = std::move(t.path);
  fresh.writes = t.writes;
  fresh.open_handles = t.open_handles;
  t = std::move(fresh);
}

File* of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
sqlite3_file* real(sqlite3_file* f) { return of(f)->real; }

int x_close(sqlite3_file* pf) {
  if (of(pf)->t) --of(pf)->t->open_handles;
  return real(pf)->pMethods->xClose(real(pf));
}

int x_read(sqlite3_file* pf, void* out, int n, sqlite3_int64 at) {
  if (int rc = gate(kRead, SQLITE_IOERR_READ, of(pf)->path()); rc != SQLITE_OK) return rc;
  return real(pf)->pMethods->xRead(real(pf), out, n, at);
}

int x_write(sqlite3_file* pf, const void* data, int n, sqlite3_int64 at) {
  if (int rc = gate(kWrite, SQLITE_IOERR_WRITE, of(pf)->path()); rc != SQLITE_OK) return rc;
  int rc = real(pf)->pMethods->xWrite(real(pf), data, n, at);
  if (rc == SQLITE_OK && of(pf)->t) {
    of(pf)->t->pending.push_back(PendingOp{false, at, std::string(static_cast<const char*>(data), static_cast<std::size_t>(n))});
    ++of(pf)->t->writes;
  }
  return rc;
}

int x_truncate(sqlite3_file* pf, sqlite3_int64 size) {
  if (int rc = gate(kTruncate, SQLITE_IOERR_TRUNCATE, of(pf)->path()); rc != SQLITE_OK) return rc;
  int rc = real(pf)->pMethods->xTruncate(real(pf), size);
  if (rc == SQLITE_OK && of(pf)->t) of(pf)->t->pending.push_back(PendingOp{true, size, {}});
  return rc;
}

int x_sync(sqlite3_file* pf, int flags) {
  if (int rc = gate(kSync, SQLITE_IOERR_FSYNC, of(pf)->path()); rc != SQLITE_OK) return rc;
  // The real fsync is skipped: this VFS is the disk, and thousands of crash points stay fast.
  // Untracked (temporary) files are synced as usual.
  if (!of(pf)->t) return real(pf)->pMethods->xSync(real(pf), flags);
  if (of(pf)->dir_sync_pending) {
    of(pf)->dir_sync_pending = false;
    sync_folder_of(of(pf)->path());
  }
  sync_file(*of(pf)->t);
  return SQLITE_OK;
}

int x_file_size(sqlite3_file* pf, sqlite3_int64* size) {
  if (g.crashed) return SQLITE_IOERR_FSTAT;
  return real(pf)->pMethods->xFileSize(real(pf), size);
}
int x_lock(sqlite3_file* pf, int level) {
  if (int rc = gate(kLock, SQLITE_IOERR_LOCK, of(pf)->path()); rc != SQLITE_OK) return rc;
  return real(pf)->pMethods->xLock(real(pf), level);
}
std::string g_unlock_suffix;
std::function<void()> g_unlock_hook;
int g_unlock_left = 0;

int x_unlock(sqlite3_file* pf, int level) {
  int rc = real(pf)->pMethods->xUnlock(real(pf), level);
  if (rc == SQLITE_OK && level == SQLITE_LOCK_NONE && g_unlock_hook && of(pf)->path() &&
      std::string_view(of(pf)->path()).ends_with(g_unlock_suffix) && --g_unlock_left == 0) {
    auto fn = std::move(g_unlock_hook);
    g_unlock_hook = nullptr;
    fn();
  }
  return rc;
}
int x_check_reserved(sqlite3_file* pf, int* out) { return real(pf)->pMethods->xCheckReservedLock(real(pf), out); }
int x_file_control(sqlite3_file* pf, int op, void* arg) {
  return real(pf)->pMethods->xFileControl(real(pf), op, arg);
}
int x_sector_size(sqlite3_file* pf) { return real(pf)->pMethods->xSectorSize(real(pf)); }
int x_device_characteristics(sqlite3_file* pf) { return real(pf)->pMethods->xDeviceCharacteristics(real(pf)); }
int x_shm_map(sqlite3_file* pf, int region, int size, int extend, void volatile** out) {
  return real(pf)->pMethods->xShmMap(real(pf), region, size, extend, out);
}
int x_shm_lock(sqlite3_file* pf, int offset, int n, int flags) {
  return real(pf)->pMethods->xShmLock(real(pf), offset, n, flags);
}
void x_shm_barrier(sqlite3_file* pf) { real(pf)->pMethods->xShmBarrier(real(pf)); }
int x_shm_unmap(sqlite3_file* pf, int del) { return real(pf)->pMethods->xShmUnmap(real(pf), del); }
// No memory-mapped I/O: every read goes through x_read.
int x_fetch(sqlite3_file*, sqlite3_int64, int, void** out) {
  *out = nullptr;
  return SQLITE_OK;
}
int x_unfetch(sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; }

const sqlite3_io_methods kMethods = {
    3,         x_close,  x_read,           x_write,        x_truncate,    x_sync,
    x_file_size, x_lock, x_unlock,         x_check_reserved, x_file_control, x_sector_size,
    x_device_characteristics, x_shm_map, x_shm_lock, x_shm_barrier, x_shm_unmap, x_fetch, x_unfetch};

int x_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* pf, int flags, int* out_flags) {
  File* f = of(pf);
  f->base.pMethods = nullptr;
  f->real = reinterpret_cast<sqlite3_file*>(f + 1);
  f->t = nullptr;
  f->dir_sync_pending = false;
  if (g.crashed) return SQLITE_CANTOPEN;
  const bool tracked = name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL |
                                         SQLITE_OPEN_SUPER_JOURNAL));
  const bool existed = name && ::access(name, F_OK) == 0;
  int rc = g_base->xOpen(g_base, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK || !f->real->pMethods) return rc;
  if (tracked) {
    auto [it, fresh] = g.files.try_emplace(name);
    Tracked& t = it->second;
    if (fresh || !t.exists_now) {
      // First seen (its content is as durable as it is now), or created again after a delete.
      t.path = it->first;
      start_over(t);
      t.exists_durable = existed && fresh;
      if (t.exists_durable) t.durable = read_file(name);
    }
    ++t.open_handles;
    f->t = &t;
    // As the unix VFS does: a journal or WAL opened with CREATE syncs its folder at its first sync.
    f->dir_sync_pending = (flags & SQLITE_OPEN_CREATE) &&
                          (flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL | SQLITE_OPEN_SUPER_JOURNAL));
  }
  f->base.pMethods = &kMethods;
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  if (int rc = gate(kTruncate, SQLITE_IOERR_DELETE, name, "delete"); rc != SQLITE_OK) return rc;
  int rc = g_base->xDelete(g_base, name, sync_dir);
  if (rc == SQLITE_OK) note_deleted(name, sync_dir != 0);
  return rc;
}

// ---- The file-system calls made outside SQLite (core/fs_ops.hpp) ----

/// -1 with the errno of an injected failure (or of the power being off).
int fail_errno(int rc) {
  errno = rc == SQLITE_FULL ? ENOSPC : EIO;
  return -1;
}

/// `path` as SQLite names the files it opens: absolute, without symbolic links.
std::string full_path(const char* path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(path), ec);
  return ec ? std::string(path) : p.string();
}

/// Tracks `path` from now on if it exists and is not tracked yet (as durable as it is now).
void track(const std::string& path) {
  if (g.files.count(path) || ::access(path.c_str(), F_OK) != 0) return;
  Tracked& t = g.files[path];
  t.path = path;
  t.exists_durable = true;
  t.durable = read_file(path);
}

/// Notes the number of the fs_ops call just gated, as crash_at counts mutating calls.
void note_outside() { g.outside.push_back(calls(kMutating)); }

int fs_rename(const char* from, const char* to) {
  const std::string f = full_path(from), t = full_path(to);
  note_outside();
  if (int rc = gate(kTruncate, SQLITE_IOERR, f.c_str(), "rename"); rc != SQLITE_OK) return fail_errno(rc);
  track(f);
  track(t);
  if (::rename(from, to) != 0) return -1;
  Rename r;
  r.from = f;
  r.to = t;
  if (auto it = g.files.find(t); it != g.files.end()) r.replaced = g.files.extract(it);
  auto node = g.files.extract(f);
  node.key() = t;
  node.mapped().path = t;
  r.moved = &node.mapped();
  g.files.insert(std::move(node));
  g.renames.push_back(std::move(r));
  return 0;
}

int fs_unlink(const char* path) {
  const std::string p = full_path(path);
  note_outside();
  if (int rc = gate(kTruncate, SQLITE_IOERR_DELETE, p.c_str(), "delete"); rc != SQLITE_OK) return fail_errno(rc);
  if (::unlink(path) != 0) return -1;
  note_deleted(p, false);
  return 0;
}

int fs_fsync(int fd, const char* path, bool directory) {
  const std::string p = full_path(path);
  note_outside();
  if (int rc = gate(kSync, SQLITE_IOERR_FSYNC, p.c_str(), directory ? "folder fsync" : nullptr);
      rc != SQLITE_OK)
    return fail_errno(rc);
  if (directory) {
    sync_folder_of(p + "/");
    return 0;
  }
  auto it = g.files.find(p);
  if (it == g.files.end()) return ::fsync(fd);  // not tracked: as durable as it is, once really synced
  sync_file(it->second);
  return 0;
}

const fs_ops::Ops kFsOps{fs_rename, fs_unlink, fs_fsync};

/// At a power loss: renames that no folder sync made durable are undone from the last one back
/// to a random point (all, some or none of them).
void settle_renames(std::mt19937_64& rng, CrashReport& report) {
  std::size_t durable = 0;
  for (std::size_t i = 0; i < g.renames.size(); ++i)
    if (g.renames[i].durable) durable = i + 1;
  const std::size_t cut = durable + static_cast<std::size_t>(rng() % (g.renames.size() - durable + 1));
  for (std::size_t i = g.renames.size(); i-- > cut;) {
    Rename& r = g.renames[i];
    auto it = g.files.find(r.to);
    if (it == g.files.end() || &it->second != r.moved) continue;  // `to` renamed over again: not modelled
    auto node = g.files.extract(it);
    g.files.erase(r.from);  // a file created at `from` after the rename is lost with it
    ::unlink(r.to.c_str());
    node.key() = r.from;
    node.mapped().path = r.from;
    g.files.insert(std::move(node));
    if (!r.replaced.empty()) g.files.insert(std::move(r.replaced));
    ++report.renames_lost;
  }
  for (std::size_t i = 0; i < cut; ++i) {
    auto it = g.files.find(g.renames[i].to);
    if (it != g.files.end() && &it->second == g.renames[i].moved) it->second.exists_durable = true;
    ++report.renames_kept;
  }
}
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

const char* vfs_name() {
  if (!g_base) {
    g_base = sqlite3_vfs_find(nullptr);
    std::memset(&g_vfs, 0, sizeof g_vfs);
    g_vfs.iVersion = 2;
    g_vfs.szOsFile = static_cast<int>(sizeof(File)) + g_base->szOsFile;
    g_vfs.mxPathname = g_base->mxPathname;
    g_vfs.zName = "esctl-fault";
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
  }
  return g_vfs.zName;
}

Install::Install(bool wal_vfs) {
  sql::use_base_vfs_for_tests(vfs_name(), wal_vfs);
  fs_ops::use_for_tests(&kFsOps);
}
Install::~Install() {
  g_unlock_hook = nullptr;
  sql::use_base_vfs_for_tests(nullptr, true);
  fs_ops::use_for_tests(nullptr);
}

void on_unlock(std::string suffix, int n, std::function<void()> fn) {
  g_unlock_suffix = std::move(suffix);
  g_unlock_left = n;
  g_unlock_hook = std::move(fn);
}

void reset() {
  auto files = std::move(g.files);
  for (auto& r : g.renames)
    if (!r.replaced.empty() && r.replaced.mapped().open_handles > 0) g_still_open.push_back(std::move(r.replaced));
  g = State{};
  // Files still open keep their entry (open handles point to it), as they are now on disk.
  for (auto it = files.begin(); it != files.end();) {
    Tracked& t = it->second;
    if (t.open_handles == 0) {
      it = files.erase(it);
      continue;
    }
    start_over(t);
    t.exists_now = ::access(it->first.c_str(), F_OK) == 0;
    t.exists_durable = t.exists_now;
    t.delete_durable = true;
    if (t.exists_now) t.durable = read_file(it->first);
    ++it;
  }
  g.files = std::move(files);  // a moved std::map keeps its nodes
}

std::int64_t calls(unsigned kinds) {
  std::int64_t n = 0;
  for (unsigned k : {kRead, kWrite, kSync, kTruncate, kLock})
    if (kinds & k) n += g.count[kind_index(k)];
  return n;
}

const std::vector<std::int64_t>& outside_calls() { return g.outside; }

std::int64_t writes_to(const std::string& suffix) {
  std::int64_t n = 0;
  for (const auto& [path, t] : g.files)
    if (path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
      n += t.writes;
  return n;
}

void crash_at(std::int64_t n, unsigned kinds) {
  g.crash_n = n;
  g.crash_kinds = kinds;
  g.crash_seen = 0;
}
bool crashed() { return g.crashed; }

void fail_at(std::int64_t n, unsigned kinds, int rc, bool sticky) {
  g.fail_n = n;
  g.fail_kinds = kinds;
  g.fail_rc = rc;
  g.fail_sticky = sticky;
  g.fail_seen = 0;
}
std::int64_t failures() { return g.failures; }
const std::vector<std::string>& failed_calls() { return g.failed; }

std::string CrashReport::summary() const {
  return fmt::format("{} unsynced writes kept, {} dropped, {} torn; {} new files vanished, {} deleted files back; "
                     "{} renames kept, {} undone",
                     kept, dropped, torn, vanished, resurrected, renames_kept, renames_lost);
}

CrashReport reboot(const CrashOptions& o) {
  CrashReport r;
  std::mt19937_64 rng(o.seed);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  settle_renames(rng, r);
  for (auto& [path, t] : g.files) {
    ::unlink((path + "-shm").c_str());
    if (!t.exists_now) {
      if (!t.delete_durable && t.exists_durable && chance(0.5)) {
        write_whole(path, t.durable);
        ++r.resurrected;
      }
      continue;  // gone already, or brought back
    }
    if (!t.exists_durable && chance(0.5)) {
      ::unlink(path.c_str());
      ++r.vanished;
      continue;
    }
    // Which unsynced operations reached the disk, and in which order.
    std::vector<const PendingOp*> kept;
    for (const auto& op : t.pending) {
      if (chance(o.keep)) kept.push_back(&op);
      else ++r.dropped;
    }
    if (o.reorder) {
      auto from = kept.begin();
      for (auto it = kept.begin();; ++it) {
        if (it == kept.end() || (*it)->truncate) {
          std::shuffle(from, it, rng);
          if (it == kept.end()) break;
          from = it + 1;
        }
      }
    }
    std::string image = t.durable;
    for (std::size_t i = 0; i < kept.size(); ++i) {
      const PendingOp& op = *kept[i];
      ++r.kept;
      const bool last = i + 2 >= kept.size();
      if (op.truncate || !o.tear || !last || !chance(0.5)) {
        apply_op(image, op);
        continue;
      }
      // Torn: each 512-byte sector of the write reached the disk or not.
      bool cut = false;
      for (std::int64_t from = op.at; from < op.at + static_cast<std::int64_t>(op.bytes.size());) {
        std::int64_t to = std::min<std::int64_t>((from / kSector + 1) * kSector, op.at + static_cast<std::int64_t>(op.bytes.size()));
        if (chance(0.5)) apply_op(image, PendingOp{false, from, op.bytes.substr(static_cast<std::size_t>(from - op.at),
                                                                             static_cast<std::size_t>(to - from))});
        else cut = true;
        from = to;
      }
      if (cut) ++r.torn;
    }
    write_whole(path, image);
  }
  reset();
  return r;
}

std::string read_file(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace esctl::test::fault
