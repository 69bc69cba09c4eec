// Projection files and the Projector (see projection.hpp).
//
// Parsing: a line whose first non-blank characters are `--`, optional blanks and `@` is a marker;
// `@init` and `@on LIST` open sections, any other word is an error. Outside markers only blank
// lines and comments may precede the first marker. A section's text is split into statements at
// each `;` after which sqlite3_complete() says the text so far is complete (so semicolons inside
// strings, comments and CREATE TRIGGER bodies do not split), keeping each statement's line.
//
// Effectively-once (Projector::apply): per stream, `_esctl_applied` holds the highest version
// applied; `_esctl_pending` holds events this db failed to apply (or held back behind a failure).
// An event is applied iff version > applied version, or (stream, version) is pending. Per-stream
// delivery order makes "version <= applied" mean "already applied", except for events that were
// skipped while their stream moved on (parked under --on-poison park): those are exactly the ones
// that failed here, hence pending. A global position checkpoint would be wrong: a stream held
// behind a parked event falls behind positions that other streams have passed.
//
// Replacement by `rebuild`: the Projector opens DB and runs each transaction while holding
// QueryDbLock::Use, and first checks that DB still names the file its connection has open (else
// it reopens). Never starting a transaction on a replaced file is what keeps it from taking a
// writer's journal of the new file for its own hot journal; the protocol is in query_db_lock.cpp.
//
// Identity: a query db records, in _esctl_meta, the queue it is fed from; a Projector for
// another queue refuses it (Errc::conflict) before writing anything.
#include "store/projection.hpp"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/time.hpp"
#include "store/projection_db.hpp"
#include "store/query_db_lock.hpp"

namespace esctl {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
// Whitespace as SQLite's tokenizer sees it: no '\v'. Statement boundaries come from
// sqlite3_complete(), so what is trimmed from a statement must be what SQLite would skip; a '\v'
// trimmed here made "\vCREATE TRIGGER ... BEGIN ...; END;" split inside its body.
bool is_sql_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'; }

// Offset of the first character that is not blank, a comment or a lone ';'.
std::size_t skip_filler(std::string_view s, std::size_t i = 0) {
  for (;;) {
    while (i < s.size() && (is_sql_space(s[i]) || s[i] == ';')) ++i;
    if (s.substr(i, 2) == "--") {
      i = s.find('\n', i);
      if (i == std::string_view::npos) return s.size();
      continue;
    }
    if (s.substr(i, 2) == "/*") {
      i = s.find("*/", i + 2);
      if (i == std::string_view::npos) return s.size();
      i += 2;
      continue;
    }
    return i;
  }
}

int count_lines(std::string_view s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && is_blank(s[b])) ++b;
  while (e > b && is_blank(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

std::string fnv1a_hex(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

// True if `line` is a marker line; `word` and `rest` receive what follows the '@'.
bool marker(std::string_view line, std::string& word, std::string& rest) {
  std::size_t i = 0;
  while (i < line.size() && is_blank(line[i])) ++i;
  if (line.substr(i, 2) != "--") return false;
  i += 2;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i >= line.size() || line[i] != '@') return false;
  ++i;
  std::size_t w = i;
  while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == '-')) ++i;
  word = std::string(line.substr(w, i - w));
  rest = trim(line.substr(i));
  return true;
}

struct Body {
  std::string text;
  int first_line = 0;
};

void split_statements(ProjectionSection& section, const Body& body, const std::string& name) {
  std::string_view text = body.text;
  auto emit = [&](std::size_t from, std::size_t to) {
    std::string_view chunk = text.substr(from, to - from);
    std::size_t f = skip_filler(chunk);
    if (f >= chunk.size()) return;
    ProjectionStatement st;
    std::string_view body_text = chunk.substr(f);
    while (!body_text.empty() && is_sql_space(body_text.back())) body_text.remove_suffix(1);
    st.sql = std::string(body_text);
    st.line = body.first_line + count_lines(text.substr(0, from + f));
    std::string_view head = std::string_view(st.sql).substr(0, 7);
    std::string lower;
    for (char c : head) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.rfind("vacuum", 0) == 0 && (lower.size() == 6 || !std::isalnum(static_cast<unsigned char>(lower[6]))))
      throw Error(Errc::invalid_input, fmt::format("{}:{}: in section '{}': VACUUM is not allowed in a projection",
                                                   name, st.line, section.label));
    section.statements.push_back(std::move(st));
  };
  std::size_t start = 0;
  std::string chunk;
  for (std::size_t k = text.find(';'); k != std::string_view::npos; k = text.find(';', k + 1)) {
    chunk.assign(text.substr(start, k + 1 - start));
    if (sqlite3_complete(chunk.c_str())) {
      emit(start, k + 1);
      start = k + 1;
    }
  }
  emit(start, text.size());
}

std::vector<ProjectionSection> parse(std::string_view text, const std::string& name) {
  std::vector<ProjectionSection> sections;
  std::vector<Body> bodies;
  Body preamble;
  preamble.first_line = 1;
  Body* body = &preamble;
  int init_line = 0;
  int line_no = 0;
  std::string word, rest;
  for (std::size_t at = 0; at <= text.size();) {
    std::size_t nl = text.find('\n', at);
    std::string_view line = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    ++line_no;
    if (marker(line, word, rest)) {
      ProjectionSection s;
      s.line = line_no;
      if (word == "init") {
        if (!rest.empty())
          throw Error(Errc::invalid_input,
                      fmt::format("{}:{}: unexpected '{}' after '-- @init' (it takes no arguments)", name, line_no, rest));
        if (init_line)
          throw Error(Errc::invalid_input, fmt::format("{}:{}: a second '-- @init' section (the first is at line {}); "
                                                       "put all of @init in one section",
                                                       name, line_no, init_line));
        init_line = line_no;
        s.init = true;
        s.label = "@init";
      } else if (word == "on") {
        std::vector<std::string> types;
        std::stringstream list(rest);
        for (std::string t; std::getline(list, t, ',');) types.push_back(trim(t));
        if (rest.empty() || std::any_of(types.begin(), types.end(), [](auto& t) { return t.empty(); }) ||
            (!rest.empty() && rest.back() == ','))
          throw Error(Errc::invalid_input,
                      fmt::format("{}:{}: '-- @on' needs a comma-separated list of event types, or '*' for every "
                                  "type (e.g. '-- @on OrderPlaced, OrderShipped')",
                                  name, line_no));
        if (types.size() == 1 && types[0] == "*") {
          s.all_types = true;
        } else {
          for (const auto& t : types)
            if (t == "*")
              throw Error(Errc::invalid_input,
                          fmt::format("{}:{}: '*' must stand alone ('-- @on *'), not in a list of types", name, line_no));
          s.types = types;
        }
        s.label = "@on " + rest;
      } else {
        throw Error(Errc::invalid_input, fmt::format("{}:{}: unknown marker '-- @{}' (expected '-- @init' or "
                                                     "'-- @on TYPE[, TYPE...]' or '-- @on *')",
                                                     name, line_no, word));
      }
      sections.push_back(std::move(s));
      bodies.emplace_back();
      bodies.back().first_line = line_no + 1;
      body = &bodies.back();
    } else {
      body->text.append(line);
      body->text += '\n';
    }
    if (nl == std::string_view::npos) break;
    at = nl + 1;
    // `bodies` may have grown: re-point at the current one.
    body = bodies.empty() ? &preamble : &bodies.back();
  }
  std::size_t f = skip_filler(preamble.text);
  if (f < preamble.text.size()) {
    int line = 1 + count_lines(std::string_view(preamble.text).substr(0, f));
    throw Error(Errc::invalid_input,
                fmt::format("{}:{}: SQL before the first section marker; put it under '-- @init' (run once) or "
                            "'-- @on TYPE' (run per event)",
                            name, line));
  }
  for (std::size_t i = 0; i < sections.size(); ++i) split_statements(sections[i], bodies[i], name);
  return sections;
}

}  // namespace

Projection Projection::load(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(Errc::not_found, fmt::format("projection file '{}' not found", path));
  if (S_ISDIR(st.st_mode)) throw Error(Errc::usage, fmt::format("projection file '{}' is a directory", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Errc::io, fmt::format("cannot read projection file '{}'", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return from_text(ss.str(), path);
}

std::vector<ProjectionSection> Projection::parse_sections(std::string_view text, const std::string& name) {
  // sqlite3_complete() and sqlite3_prepare() stop at a NUL: SQL after one would be silently dropped.
  if (text.find('\0') != std::string_view::npos)
    throw Error(Errc::invalid_input, fmt::format("{}: contains a NUL byte; a projection file is SQL text", name));
  return parse(text, name);
}

Projection Projection::from_text(std::string text, std::string name) {
  Projection p;
  p.name_ = std::move(name);
  p.text_ = std::move(text);
  p.hash_ = fnv1a_hex(p.text_);
  p.sections_ = parse_sections(p.text_, p.name_);
  for (const auto& s : p.sections_) {
    if (s.init) continue;
    p.all_types_ |= s.all_types;
    p.types_.insert(p.types_.end(), s.types.begin(), s.types.end());
  }
  std::sort(p.types_.begin(), p.types_.end());
  p.types_.erase(std::unique(p.types_.begin(), p.types_.end()), p.types_.end());
  // Validate on a scratch db: @init must run, every @on statement must prepare against its result.
  {
    detail::ProjectionDb scratch(p, ":memory:", sql::OpenMode::create, 0);
    sql::Txn txn(scratch.db());
    scratch.initialize();
    scratch.prepare_statements("");
  }
  return p;
}

bool Projection::handles(std::string_view type) const {
  return all_types_ || std::binary_search(types_.begin(), types_.end(), type);
}

// ---------------------------------------------------------------------------------------------

struct Projector::Impl {
  std::shared_ptr<const Projection> projection;
  std::string path;
  ProjectorOptions options;
  std::unique_ptr<QueryDbLock> lock;  // DB.lock: DB is not replaced while we hold a Use of it
  std::unique_ptr<detail::ProjectionDb> qdb;
  dev_t dev = 0;
  ino_t ino = 0;
  bool created = false;
  bool changed = false;
  std::int64_t last_position = 0;

  void open();  // call holding a Use of `lock`
  bool replaced() const;
};

namespace {
// Errc::conflict if the db records a queue other than `queue` (a db that records none is anyone's).
void check_recorded_queue(detail::ProjectionDb& qdb, const std::string& path, const std::string& queue) {
  if (queue.empty()) return;
  std::string recorded = qdb.meta("queue");
  if (!recorded.empty() && recorded != queue)
    throw Error(Errc::conflict,
                fmt::format("query db '{}' is fed from queue '{}', not '{}': draining '{}' into it would mix the two "
                            "queues' events (drain '{}' into it, or choose another --into for '{}')",
                            path, recorded, queue, queue, recorded, queue));
}
}  // namespace

void Projector::Impl::open() {
  qdb.reset();
  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) throw Error(Errc::usage, fmt::format("query db '{}' is a directory", path));
  if (exists && st.st_size > 0) {
    auto header = sql::read_header(path);
    if (header && !sql::is_sqlite_header(*header))
      throw Error(Errc::corrupt, fmt::format("'{}' is not a SQLite database; refusing to use it as a query db", path));
  }
  qdb = std::make_unique<detail::ProjectionDb>(*projection, path, sql::OpenMode::create, options.busy_timeout_ms);
  auto& db = qdb->db();
  // Before anything is changed: refuse a db that is not ours (the store itself, say).
  if (!qdb->is_query_db() && !qdb->is_empty())
    throw Error(Errc::corrupt, fmt::format("'{}' is not a query db made by esctl (it has tables but no _esctl_meta); "
                                           "refusing to write to it: choose another path",
                                           path));
  if (qdb->is_query_db()) check_recorded_queue(*qdb, path, options.queue);
  // Rollback journal, not WAL: the db is one file, so `rebuild` can replace it with a rename
  // (a WAL file beside it would belong to the old inode). Durable commits: an event is acked
  // to the queue only after its rows are on disk. EXTRA, not FULL: a commit deletes the journal,
  // and only EXTRA syncs the folder after that; otherwise a power loss can bring the journal
  // back, and the next open rolls the committed batch back while its acks stay in the store.
  {
    auto s = db.prepare_new("PRAGMA journal_mode = DELETE");
    if (s.step() && s.text(0) != "delete")
      throw Error(Errc::busy, fmt::format("query db '{}' is in {} mode and in use elsewhere; esctl keeps query dbs in "
                                          "rollback-journal mode (close its other users and retry)",
                                          path, s.text(0)));
  }
  db.exec("PRAGMA synchronous = EXTRA; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8192");
  created = false;
  {
    sql::Txn txn(db);
    if (!qdb->is_query_db()) {
      if (!qdb->is_empty())
        throw Error(Errc::corrupt, fmt::format("'{}' is not a query db made by esctl (it has tables but no _esctl_meta); "
                                               "refusing to write to it: choose another path",
                                               path));
      qdb->initialize();
      qdb->set_meta("projection", projection->name());
      qdb->set_meta("projection_hash", projection->hash());
      qdb->set_meta("created_by", "queue drain");
      qdb->set_meta("created_at", format_rfc3339(now_us()));
      if (!options.store_path.empty())
        qdb->set_meta("store", std::filesystem::absolute(options.store_path).lexically_normal().string());
      if (!options.queue.empty()) qdb->set_meta("queue", options.queue);
      qdb->set_meta("last_position", std::int64_t{0});
      created = true;
    } else if (!options.queue.empty()) {
      check_recorded_queue(*qdb, path, options.queue);  // again, under the write lock
      if (qdb->meta("queue").empty()) qdb->set_meta("queue", options.queue);
    }
    txn.commit();
  }
  qdb->prepare_statements(created ? std::string() : path);
  changed = qdb->meta("projection_hash") != projection->hash();
  std::string last = qdb->meta("last_position");
  last_position = last.empty() ? 0 : std::strtoll(last.c_str(), nullptr, 10);
  if (::stat(path.c_str(), &st) == 0) {
    dev = st.st_dev;
    ino = st.st_ino;
  }
}

bool Projector::Impl::replaced() const {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(Errc::not_found, fmt::format("query db '{}' disappeared while esctl was writing to it", path));
  return st.st_dev != dev || st.st_ino != ino;
}

Projector::Projector(std::shared_ptr<const Projection> projection, const std::string& db_path,
                     const ProjectorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->projection = std::move(projection);
  impl_->path = db_path;
  impl_->options = options;
  impl_->lock = std::make_unique<QueryDbLock>(db_path, options.busy_timeout_ms);
  try {
    QueryDbLock::Use use(*impl_->lock);
    impl_->open();
  } catch (const Error& e) {
    if (e.code() == Errc::corrupt || e.code() == Errc::usage) impl_->lock->remove_if_created();  // not a query db
    throw;
  }
}

Projector::~Projector() = default;

bool Projector::created() const { return impl_->created; }
bool Projector::projection_changed() const { return impl_->changed; }
const std::string& Projector::path() const { return impl_->path; }

std::vector<ApplyResult> Projector::apply(std::span<const Event> batch) {
  std::vector<EventRef> refs;
  refs.reserve(batch.size());
  for (const auto& e : batch) refs.push_back(e.ref());
  return apply(std::span<const EventRef>(refs));
}

std::vector<ApplyResult> Projector::apply(std::span<const EventRef> batch) {
  std::vector<ApplyResult> out(batch.size());
  if (batch.empty()) return out;
  // No rename of DB while we hold this: check that DB is still our file BEFORE any transaction.
  QueryDbLock::Use use(*impl_->lock);
  if (impl_->replaced()) impl_->open();
  auto* db = &impl_->qdb->db();
  std::optional<sql::Txn> txn;
  txn.emplace(*db);
  auto& qdb = *impl_->qdb;
  auto& get_applied = db->prepare("SELECT version FROM _esctl_applied WHERE stream = ?1");
  auto& set_applied = db->prepare(
      "INSERT INTO _esctl_applied (stream, version) VALUES (?1, ?2) "
      "ON CONFLICT (stream) DO UPDATE SET version = max(version, excluded.version)");
  auto& is_pending = db->prepare("SELECT 1 FROM _esctl_pending WHERE stream = ?1 AND version = ?2");
  auto& add_pending = db->prepare(
      "INSERT OR REPLACE INTO _esctl_pending (stream, version, position, reason) VALUES (?1, ?2, ?3, ?4)");
  auto& del_pending = db->prepare("DELETE FROM _esctl_pending WHERE stream = ?1 AND version = ?2");
  auto& savepoint = db->prepare("SAVEPOINT esctl_event");
  auto& release = db->prepare("RELEASE esctl_event");

  bool any_pending = db->query_i64("SELECT EXISTS (SELECT 1 FROM _esctl_pending)") != 0;
  std::unordered_map<std::string_view, std::int64_t> applied;  // stream -> version, this batch
  std::unordered_map<std::string_view, std::int64_t> held;     // stream -> position that failed
  std::int64_t last = impl_->last_position;

  auto applied_version = [&](std::string_view stream) {
    auto it = applied.find(stream);
    if (it != applied.end()) return it->second;
    sql::StmtScope s(get_applied);
    s->bind(1, stream);
    std::int64_t v = s->step() ? s->i64(0) : -1;
    applied.emplace(stream, v);
    return v;
  };
  auto record_pending = [&](const EventRef& e, const std::string& reason) {
    sql::StmtScope s(add_pending);
    s->bind(1, e.stream).bind(2, e.version).bind(3, e.position).bind(4, reason);
    s->run();
    any_pending = true;
  };

  for (std::size_t i = 0; i < batch.size(); ++i) {
    const EventRef& e = batch[i];
    ApplyResult& r = out[i];
    r.position = e.position;
    if (auto h = held.find(e.stream); h != held.end()) {
      r.ok = false;
      r.held = true;
      r.error = fmt::format("held behind position {} of stream '{}', which failed", h->second, e.stream);
      record_pending(e, r.error);
      continue;
    }
    std::int64_t done = applied_version(e.stream);
    bool pending = false;
    if (e.version <= done) {
      if (any_pending) {
        sql::StmtScope s(is_pending);
        s->bind(1, e.stream).bind(2, e.version);
        pending = s->step();
      }
      if (!pending) continue;  // applied before: a redelivery
    }
    const detail::Plan& plan = qdb.plan(e.type);
    if (plan.empty()) {
      if (pending) {
        sql::StmtScope s(del_pending);
        s->bind(1, e.stream).bind(2, e.version);
        s->run();
      }
      continue;
    }
    savepoint.run();
    std::string error;
    if (!qdb.run(plan, e, error)) {
      db->exec("ROLLBACK TO esctl_event; RELEASE esctl_event");
      r.ok = false;
      r.error = std::move(error);
      held.emplace(e.stream, e.position);
      record_pending(e, r.error);
      continue;
    }
    {
      sql::StmtScope s(set_applied);
      s->bind(1, e.stream).bind(2, e.version);
      s->run();
    }
    if (pending || any_pending) {
      sql::StmtScope s(del_pending);
      s->bind(1, e.stream).bind(2, e.version);
      s->run();
    }
    release.run();
    applied[e.stream] = std::max(done, e.version);
    r.applied = true;
    last = std::max(last, e.position);
  }
  if (last != impl_->last_position) qdb.set_meta("last_position", last);
  txn->commit();
  impl_->last_position = last;
  return out;
}

BatchHandler make_projection_handler(std::shared_ptr<const Projection> projection, const std::string& db_path,
                                     const ProjectorOptions& options) {
  auto projector = std::make_shared<Projector>(std::move(projection), db_path, options);
  return [projector](const std::vector<Delivery>& batch) {
    std::vector<EventRef> refs;
    refs.reserve(batch.size());
    for (const auto& d : batch) refs.push_back(d.event.ref());
    auto results = projector->apply(std::span<const EventRef>(refs));
    BatchOutcome out;
    out.results.reserve(results.size());
    for (auto& r : results) {
      if (r.held) out.returned.push_back(r.position);
      out.results.emplace_back(r.position, r.ok ? std::nullopt : std::optional<std::string>(std::move(r.error)));
    }
    return out;
  };
}

}  // namespace esctl
