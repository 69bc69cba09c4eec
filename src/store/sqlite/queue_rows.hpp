// The SQLite backend's queue rows (store/queue_rows.hpp): the SQL of every queue operation on a
// store file. The layout is in schema.cpp; what the rows mean, in store/queue.cpp.
#pragma once
#include <memory>
#include <string>

#include "store/queue_rows.hpp"

namespace esctl::sql { class Db; }

namespace esctl::sqlite {

/// Queue rows over `db`, the connection of the store file at `location`.
std::unique_ptr<QueueRows> make_queue_rows(sql::Db& db, const std::string& location);

}  // namespace esctl::sqlite
