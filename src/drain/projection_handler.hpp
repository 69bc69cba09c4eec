// The --projection handler of `queue drain`: the adapter between the drain loop's batch-handler
// interface and a Projector (projection/projector.hpp), which does the work.
#pragma once
#include <memory>
#include <string>

#include "drain/batch_handler.hpp"
#include "projection/projector.hpp"

namespace esctl {

/// The handler of one `queue drain --projection FILE --into DB` worker: a Projector (its own
/// connection) on `db_path`, applying each batch in one transaction. Events it applied (now or
/// before) or does not handle are acked; an event whose statements fail is nacked with the
/// SQLite error (file, line, section), and so are later events of its stream in the batch.
/// Operational failures (I/O, busy) throw and stop the drain.
BatchHandler make_projection_handler(std::shared_ptr<const Projection> projection, const std::string& db_path,
                                     const ProjectorOptions& options);

}  // namespace esctl
