# SQLite for esctl: the system library only if it is >= 3.51.3 (older releases have the
# WAL-reset race, sqlite.org/wal.html#walresetbug, which esctl's many-connection use hits);
# otherwise the official amalgamation, fetched once from the npm registry (the only source
# reachable from our machines), checked against a pinned SHA-256 and cached in the build tree.
set(ESCTL_SQLITE_MIN 3.51.3)
set(ESCTL_SQLITE_NPM better-sqlite3@12.11.1)
set(ESCTL_SQLITE_SHA256 60d2f39a3726cd6b9021da6f4e868608d66fbb6528a9f513dc8ffcc640493422)

find_package(SQLite3 QUIET)
if(SQLite3_FOUND AND SQLite3_VERSION VERSION_GREATER_EQUAL ${ESCTL_SQLITE_MIN})
  message(STATUS "esctl: using system SQLite ${SQLite3_VERSION}")
  add_library(esctl_sqlite INTERFACE)
  target_link_libraries(esctl_sqlite INTERFACE SQLite::SQLite3)
  return()
endif()

set(_dir ${CMAKE_BINARY_DIR}/_deps/sqlite)
set(_c ${_dir}/package/deps/sqlite3/sqlite3.c)
if(EXISTS ${_c})
  file(SHA256 ${_c} _have)
endif()
if(NOT _have STREQUAL ESCTL_SQLITE_SHA256)
  find_program(NPM npm)
  if(NOT NPM)
    message(FATAL_ERROR "esctl needs SQLite >= ${ESCTL_SQLITE_MIN} (system has ${SQLite3_VERSION}); "
      "install npm (apt-get install -y npm) so the build can fetch the amalgamation")
  endif()
  file(MAKE_DIRECTORY ${_dir})
  message(STATUS "esctl: fetching the SQLite amalgamation from npm ${ESCTL_SQLITE_NPM}")
  execute_process(COMMAND ${NPM} pack --silent ${ESCTL_SQLITE_NPM}
    WORKING_DIRECTORY ${_dir} OUTPUT_VARIABLE _tgz RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "esctl: 'npm pack ${ESCTL_SQLITE_NPM}' failed (${_rc})")
  endif()
  execute_process(COMMAND tar xzf ${_tgz} package/deps/sqlite3/sqlite3.c package/deps/sqlite3/sqlite3.h
    WORKING_DIRECTORY ${_dir} RESULT_VARIABLE _rc)
  file(SHA256 ${_c} _have)
  if(NOT _have STREQUAL ESCTL_SQLITE_SHA256)
    file(REMOVE ${_c})
    message(FATAL_ERROR "esctl: sqlite3.c from ${ESCTL_SQLITE_NPM} has SHA-256 ${_have}, "
      "expected ${ESCTL_SQLITE_SHA256}; refusing to build with it")
  endif()
endif()

add_library(esctl_sqlite STATIC ${_c})
target_include_directories(esctl_sqlite SYSTEM PUBLIC ${_dir}/package/deps/sqlite3)
# Never instrument SQLite itself: it is well tested, and ASan on it triples test time.
set_source_files_properties(${_c} PROPERTIES COMPILE_OPTIONS "-fno-sanitize=all;-O2")
target_compile_definitions(esctl_sqlite PUBLIC
  # One connection per thread, never shared: no per-call mutexes needed.
  SQLITE_THREADSAFE=2
  # Strict SQL: double quotes are identifiers only, so a typo in a projection is an error.
  SQLITE_DQS=0
  # No global memory accounting mutex on every malloc.
  SQLITE_DEFAULT_MEMSTATUS=0
  # Durability: WAL commits are fsynced (synchronous=FULL) unless a command says otherwise.
  SQLITE_DEFAULT_WAL_SYNCHRONOUS=2
  # Projections must not load code; compile the capability out entirely.
  SQLITE_OMIT_LOAD_EXTENSION
  SQLITE_OMIT_DEPRECATED
  SQLITE_OMIT_SHARED_CACHE
  SQLITE_LIKE_DOESNT_MATCH_BLOBS
  SQLITE_USE_ALLOCA
  # Sub-second busy-handler sleeps; without these the busy timeout sleeps whole seconds.
  HAVE_USLEEP=1
  HAVE_FDATASYNC=1
  # Useful in projections (round, floor, ...); JSON is built in since 3.38.
  SQLITE_ENABLE_MATH_FUNCTIONS
  SQLITE_ENABLE_DBSTAT_VTAB)
target_link_libraries(esctl_sqlite PUBLIC Threads::Threads m)
set(ESCTL_SQLITE_AMALGAMATION ${_c} CACHE INTERNAL "")
