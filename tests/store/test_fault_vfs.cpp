// Unit tests of the fault-injection VFS itself (tests/support/fault_vfs.hpp), driven through its
// file methods: after a power loss an unsynced write is gone or there, a synced one is always
// there, a torn write is cut at 512-byte sectors, new files never synced may vanish; and an
// injected failure fails exactly the call it names.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "core/fs_ops.hpp"
#include "support/fault_vfs.hpp"
#include "support/temp_store.hpp"

using namespace esctl;
namespace fault = esctl::test::fault;

namespace {

/// One file opened through the fault VFS as a main database file.
class RawFile {
 public:
  explicit RawFile(const std::string& path) {
    vfs_ = sqlite3_vfs_find(fault::vfs_name());
    REQUIRE(vfs_);
    name_ = sqlite3_create_filename(path.c_str(), "", "", 0, nullptr);
    mem_.reset(new char[static_cast<std::size_t>(vfs_->szOsFile)]());
    int out = 0;
    REQUIRE(vfs_->xOpen(vfs_, name_, file(), SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &out) ==
            SQLITE_OK);
  }
  ~RawFile() {
    if (file()->pMethods) file()->pMethods->xClose(file());
    sqlite3_free_filename(name_);
  }
  int write(const std::string& bytes, std::int64_t at) {
    return file()->pMethods->xWrite(file(), bytes.data(), static_cast<int>(bytes.size()), at);
  }
  int sync() { return file()->pMethods->xSync(file(), SQLITE_SYNC_NORMAL); }
  int read(std::string& out, int n, std::int64_t at) {
    out.assign(static_cast<std::size_t>(n), '\0');
    return file()->pMethods->xRead(file(), out.data(), n, at);
  }

 private:
  sqlite3_file* file() { return reinterpret_cast<sqlite3_file*>(mem_.get()); }
  sqlite3_vfs* vfs_ = nullptr;
  sqlite3_filename name_ = nullptr;
  std::unique_ptr<char[]> mem_;
};

/// Writes `content` to `path` directly (not through the VFS).
void put(const std::string& path, const std::string& content) { std::ofstream(path, std::ios::binary) << content; }

/// fsync of the folder `dir` through core/fs_ops.hpp, as rebuild makes it.
int sync_folder(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  int rc = fs_ops::fsync(fd, dir.c_str(), true);
  ::close(fd);
  return rc;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

}  // namespace

TEST_SUITE("store/fault_vfs") {
  TEST_CASE("a rename over a file is kept or undone by a power loss until its folder is synced, never neither") {
    fault::Install vfs(true);
    test::TempStore t;
    const std::string db = t.dir + "/q.db", tmp = t.dir + "/.q.db.tmp";
    for (bool synced_folder : {false, true}) {
      CAPTURE(synced_folder);
      int kept = 0, undone = 0;
      for (std::uint64_t seed = 1; seed <= 24; ++seed) {
        CAPTURE(seed);
        put(db, "old");
        fault::reset();  // "old" is on disk
        {
          RawFile f(tmp);
          REQUIRE(f.write("new", 0) == SQLITE_OK);
          REQUIRE(f.sync() == SQLITE_OK);
        }
        REQUIRE(fs_ops::rename(tmp.c_str(), db.c_str()) == 0);
        CHECK(fault::read_file(db) == "new");
        CHECK_FALSE(exists(tmp));
        if (synced_folder) REQUIRE(sync_folder(t.dir) == 0);
        fault::CrashOptions o;
        o.seed = seed;
        o.keep = 0;
        auto r = fault::reboot(o);
        CAPTURE(r.summary());
        const std::string got = fault::read_file(db);
        if (got == "new") {
          ++kept;
          CHECK(r.renames_kept == 1);
          CHECK_FALSE(exists(tmp));
        } else {
          ++undone;
          CHECK(got == "old");
          CHECK(r.renames_lost == 1);
          CHECK(fault::read_file(tmp) == "new");  // synced: its own entry stays
        }
        ::unlink(tmp.c_str());
      }
      CHECK(kept > 0);
      if (synced_folder) CHECK(undone == 0);
      else CHECK(undone > 0);
    }
  }

  TEST_CASE("a file renamed before it was synced may have lost its writes, though the rename stays") {
    fault::Install vfs(true);
    test::TempStore t;
    const std::string db = t.dir + "/q.db", tmp = t.dir + "/.q.db.tmp";
    put(db, "old");
    fault::reset();
    {
      RawFile f(tmp);
      REQUIRE(f.write("new", 0) == SQLITE_OK);  // no sync
    }
    REQUIRE(fs_ops::rename(tmp.c_str(), db.c_str()) == 0);
    REQUIRE(sync_folder(t.dir) == 0);
    fault::CrashOptions o;
    o.keep = 0;
    auto r = fault::reboot(o);
    CHECK(r.dropped == 1);
    CHECK(exists(db));
    CHECK(fault::read_file(db).empty());  // neither the old db nor the new one: why rebuild syncs first
  }

  TEST_CASE("a crash or an error at a rename, a delete or a folder fsync fails it and changes nothing") {
    fault::Install vfs(true);
    test::TempStore t;
    const std::string a = t.dir + "/a", b = t.dir + "/b";
    put(a, "a");
    fault::reset();
    fault::fail_at(1, fault::kSync, SQLITE_IOERR_FSYNC);
    errno = 0;
    CHECK(sync_folder(t.dir) == -1);
    CHECK(errno == EIO);
    CHECK(fault::failed_calls().back() == "folder fsync of " + t.dir.substr(t.dir.rfind('/') + 1));
    fault::fail_at(0, 0, SQLITE_OK);
    fault::crash_at(1, fault::kTruncate);
    CHECK(fs_ops::rename(a.c_str(), b.c_str()) == -1);
    CHECK(errno == EIO);
    CHECK(fault::crashed());
    CHECK(fs_ops::unlink(a.c_str()) == -1);
    CHECK(fault::read_file(a) == "a");
    CHECK_FALSE(exists(b));
    fault::reboot({});
    CHECK(fault::read_file(a) == "a");
    CHECK_FALSE(exists(b));
  }


  TEST_CASE("a synced write survives a power loss, an unsynced one is dropped (keep 0) or kept (keep 1)") {
    test::TempStore t;
    for (double keep : {0.0, 1.0}) {
      CAPTURE(keep);
      fault::reset();
      {
        RawFile f(t.path);
        REQUIRE(f.write(std::string(1024, 'a'), 0) == SQLITE_OK);
        REQUIRE(f.sync() == SQLITE_OK);
        REQUIRE(f.write(std::string(1024, 'b'), 1024) == SQLITE_OK);
        REQUIRE(f.write(std::string(512, 'c'), 0) == SQLITE_OK);
        // Before the power loss every write is visible (the page cache).
        CHECK(fault::read_file(t.path) == std::string(512, 'c') + std::string(512, 'a') + std::string(1024, 'b'));
      }
      fault::CrashOptions o;
      o.keep = keep;
      o.tear = false;
      auto r = fault::reboot(o);
      CAPTURE(r.summary());
      if (keep == 0.0) {
        CHECK(r.dropped == 2);
        CHECK(fault::read_file(t.path) == std::string(1024, 'a'));
      } else {
        CHECK(r.kept == 2);
        CHECK(fault::read_file(t.path) == std::string(512, 'c') + std::string(512, 'a') + std::string(1024, 'b'));
      }
    }
  }

  TEST_CASE("a torn write is cut at 512-byte sectors, never inside one") {
    test::TempStore t;
    std::set<std::string> seen;
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
      fault::reset();
      {
        RawFile f(t.path);
        REQUIRE(f.write(std::string(4096, 'a'), 0) == SQLITE_OK);
        REQUIRE(f.sync() == SQLITE_OK);
        REQUIRE(f.write(std::string(4096, 'b'), 0) == SQLITE_OK);
      }
      fault::CrashOptions o;
      o.seed = seed;
      o.keep = 1.0;
      o.tear = true;
      fault::reboot(o);
      std::string got = fault::read_file(t.path);
      REQUIRE(got.size() == 4096);
      std::string pattern;
      for (std::size_t s = 0; s < 8; ++s) {
        std::string sector = got.substr(s * 512, 512);
        CAPTURE(s);
        REQUIRE((sector == std::string(512, 'a') || sector == std::string(512, 'b')));
        pattern += sector[0];
      }
      seen.insert(pattern);
    }
    // Whole, absent and cut in between all happen.
    CHECK(seen.count("bbbbbbbb") == 1);
    CHECK(seen.size() > 3);
  }

  TEST_CASE("a file created and never synced may vanish, once synced it stays") {
    test::TempStore t;
    bool vanished = false, stayed = false;
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
      fault::reset();
      ::unlink(t.path.c_str());
      {
        RawFile f(t.path);
        REQUIRE(f.write("x", 0) == SQLITE_OK);
      }
      fault::CrashOptions o;
      o.seed = seed;
      o.keep = 1.0;
      o.tear = false;
      auto r = fault::reboot(o);
      (::access(t.path.c_str(), F_OK) == 0 ? stayed : vanished) = true;
      if (r.vanished == 0) CHECK(fault::read_file(t.path) == "x");
    }
    CHECK(vanished);
    CHECK(stayed);
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
      fault::reset();
      ::unlink(t.path.c_str());
      {
        RawFile f(t.path);
        REQUIRE(f.write("y", 0) == SQLITE_OK);
        REQUIRE(f.sync() == SQLITE_OK);
      }
      fault::CrashOptions o;
      o.seed = seed;
      fault::reboot(o);
      CHECK(fault::read_file(t.path) == "y");
    }
  }

  TEST_CASE("the crash point fails that call and every later one, and changes nothing") {
    test::TempStore t;
    fault::reset();
    {
      RawFile f(t.path);
      fault::crash_at(3);  // the third write, sync or truncate
      CHECK(f.write("1", 0) == SQLITE_OK);
      CHECK(f.sync() == SQLITE_OK);
      CHECK_FALSE(fault::crashed());
      CHECK(f.write("2", 0) != SQLITE_OK);
      CHECK(fault::crashed());
      CHECK(f.sync() != SQLITE_OK);
      std::string got;
      CHECK(f.read(got, 1, 0) != SQLITE_OK);
    }
    fault::reboot({});
    CHECK(fault::read_file(t.path) == "1");
  }

  TEST_CASE("fail_at fails exactly the nth call of its kinds, or every one from it when sticky") {
    test::TempStore t;
    fault::reset();
    RawFile f(t.path);
    fault::fail_at(2, fault::kWrite, SQLITE_FULL);
    CHECK(f.write("a", 0) == SQLITE_OK);
    CHECK(f.sync() == SQLITE_OK);  // not a write: not counted
    CHECK(f.write("b", 1) == SQLITE_FULL);
    CHECK(f.write("c", 1) == SQLITE_OK);
    CHECK(fault::failures() == 1);
    CHECK(fault::read_file(t.path) == "ac");
    fault::fail_at(1, fault::kSync, SQLITE_IOERR_FSYNC, true);
    CHECK(f.sync() == SQLITE_IOERR_FSYNC);
    CHECK(f.sync() == SQLITE_IOERR_FSYNC);
    CHECK(fault::failures() == 3);
    CHECK(fault::calls(fault::kWrite) == 3);
    CHECK(fault::calls(fault::kSync) == 3);
    fault::fail_at(0, 0, SQLITE_OK);
  }
}
