// The PostgreSQL backend's queue rows (store/queue_rows.hpp): the SQL of every queue operation on
// a store in schema `esctl`. The layout is in schema.cpp; what the rows mean, in store/queue.cpp.
#pragma once
#include <memory>

#include "store/postgres/pg.hpp"
#include "store/queue_rows.hpp"

namespace esctl::pg {

/// Queue rows over `conn`, a connection to the store's database.
std::unique_ptr<QueueRows> make_queue_rows(Conn& conn);

}  // namespace esctl::pg
