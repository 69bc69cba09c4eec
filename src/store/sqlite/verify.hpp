// `esctl verify` for a SQLite store file: the logical checks (store/verify_checks.hpp) over one
// read of its tables, plus what only the file has (integrity pragma, schema objects, triggers,
// prev links, the marks and id indexes, the queue rows' layout), read in one snapshot.
#pragma once
#include "store/verify.hpp"

namespace esctl::sqlite {

/// verify_store's contract (store/verify.hpp) for the store file at `o.location`. The storage
/// check is SQLite's quick_check (integrity_check with `o.full`).
VerifyCounts verify_store(const VerifyOptions& o, const ViolationFn& on_violation, const ProgressFn& on_progress = {});

}  // namespace esctl::sqlite
