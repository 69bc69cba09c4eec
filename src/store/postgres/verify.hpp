// `esctl verify` for a PostgreSQL store: the same logical checks as for a SQLite store (per-stream
// versions, dense positions, ids, JSON payloads, stream rows and last versions, time order, the
// position counter, the immutability triggers, queue cursors and items), read in one snapshot.
#pragma once
#include "store/verify.hpp"

namespace esctl::pg {

/// verify_store's contract (store/verify.hpp) for the store at the URI `o.location`. The storage
/// check is the server's business: here "storage" is PostgreSQL and the check run is "catalog"
/// (the store's tables, unique indexes and triggers are present and enabled).
VerifyCounts verify_store(const VerifyOptions& o, const ViolationFn& on_violation, const ProgressFn& on_progress = {});

}  // namespace esctl::pg
