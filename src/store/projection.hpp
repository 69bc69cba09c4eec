// SQL projections (esctl-projection(5)): parsing and validating a projection file, and applying events to a
// query db effectively-once (Projector, used by `queue drain --projection`). Rebuilding a query
// db from scratch is in rebuild.hpp; the file format is documented in esctl-projection(5).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.hpp"
#include "store/drain.hpp"

namespace esctl {

/// One SQL statement of a projection file, with the line it starts on.
struct ProjectionStatement {
  std::string sql;
  int line = 0;
};

/// One section: `-- @init` or `-- @on T1, T2` / `-- @on *`.
struct ProjectionSection {
  bool init = false;
  bool all_types = false;         ///< `-- @on *`
  std::vector<std::string> types;  ///< for `-- @on T1, T2`
  int line = 0;                    ///< line of the marker
  std::string label;               ///< "@init", "@on OrderPlaced, OrderShipped", "@on *"
  std::vector<ProjectionStatement> statements;
};

/// A parsed and validated projection file. Immutable; cheap to share.
class Projection {
 public:
  /// Reads `path`, parses it and validates every statement (see from_text). Errc::not_found if
  /// the file does not exist.
  static Projection load(const std::string& path);
  /// Parses `text` (`name` is used in messages, e.g. "orders.sql") and validates it: @init is
  /// run on a scratch in-memory db and every @on statement must prepare against the result,
  /// with only the documented parameters, inside the sandbox. Throws Errc::invalid_input naming
  /// `name:line`, the section and the problem; nothing outside memory is touched.
  static Projection from_text(std::string text, std::string name);
  /// The first half of from_text: splits `text` into sections and statements without looking at
  /// the SQL (no db is opened). Throws Errc::invalid_input for a bad marker, SQL before the first
  /// marker, VACUUM or a NUL byte. For tests and fuzzing.
  static std::vector<ProjectionSection> parse_sections(std::string_view text, const std::string& name);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }
  const std::vector<ProjectionSection>& sections() const { return sections_; }
  /// True if some `@on` section names `type` (or is `@on *`).
  bool handles(std::string_view type) const;
  /// A hex digest of the file's bytes (FNV-1a, 64 bit): a change detector, not a security check.
  const std::string& hash() const { return hash_; }

 private:
  std::string name_, text_, hash_;
  std::vector<ProjectionSection> sections_;
  std::vector<std::string> types_;  // sorted, every type some @on section names
  bool all_types_ = false;
};

/// What happened to one event of a batch given to Projector::apply.
struct ApplyResult {
  std::int64_t position = 0;
  /// The query db reflects the event: applied now, applied before (a redelivery), or of a type
  /// the projection does not handle. Ack it. False: nothing of it was applied; nack it.
  bool ok = true;
  bool applied = false;  ///< this call ran the event's statements
  bool held = false;     ///< not run because an earlier event of its stream failed: give it back, not nack it
  std::string error;     ///< when !ok: the SQLite message with file, line and section, or "held behind position P"
};

struct ProjectorOptions {
  int busy_timeout_ms = 5000;
  std::string store_path;  ///< recorded in the query db's meta table (information only)
  /// The queue feeding the db: recorded in its meta table when it records none yet; a db that
  /// records another queue is refused (Errc::conflict). Empty: no check, nothing recorded.
  std::string queue;
};

/// Applies events to one query db with a projection. Creates the db (running @init) if it does
/// not exist. Effectively-once: the db keeps, in table `_esctl_applied`, the last version applied
/// per stream, written in the same transaction as the event's rows, and in `_esctl_pending` the
/// events it failed to apply; an event is applied iff its version is above its stream's or it
/// is pending. So redeliveries change nothing, and an event retried after its stream moved on
/// (parked under --on-poison park) is still applied.
class Projector {
 public:
  /// Opens (or creates) `db_path`, and its lock file `db_path.lock` (see QueryDbLock). Throws
  /// Errc::invalid_input if a statement does not prepare against an existing db, Errc::corrupt if
  /// `db_path` is not a query db made by esctl, Errc::conflict if it records another queue than
  /// options.queue (nothing is written then).
  Projector(std::shared_ptr<const Projection> projection, const std::string& db_path,
            const ProjectorOptions& options = {});
  ~Projector();
  Projector(const Projector&) = delete;

  /// Applies `batch` (in order) in one transaction, each event in its own savepoint. If `rebuild`
  /// replaced the db since the last call, the new file is opened first (checked before the
  /// transaction begins, under the lock that the replacement also takes). An event
  /// whose statements fail is rolled back (nothing of it applied) and reported !ok; later events
  /// of its stream in the batch are then not applied either ("held behind position P"), so
  /// per-stream order holds. Results are in batch order. Throws only for operational failures
  /// (I/O, busy, disk full), after which nothing of the batch is applied.
  std::vector<ApplyResult> apply(std::span<const EventRef> batch);
  std::vector<ApplyResult> apply(std::span<const Event> batch);

  /// True if this Projector created the db (ran @init).
  bool created() const;
  /// True if the db was built with a projection file of different content (its _esctl_meta
  /// projection_hash): past events were applied with the old statements.
  bool projection_changed() const;
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The handler of one `queue drain --projection FILE --into DB` worker: a Projector (its own
/// connection) on `db_path`, applying each batch in one transaction. Events it applied (now or
/// before) or does not handle are acked; an event whose statements fail is nacked with the
/// SQLite error (file, line, section), and so are later events of its stream in the batch.
/// Operational failures (I/O, busy) throw and stop the drain.
BatchHandler make_projection_handler(std::shared_ptr<const Projection> projection, const std::string& db_path,
                                     const ProjectorOptions& options);

}  // namespace esctl
