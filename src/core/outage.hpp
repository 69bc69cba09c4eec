// One notice per outage of a store's server. A server restart cuts every connection a process
// holds (a reader's, its LISTEN connection, each drain worker's), and each connection finds out
// on its own, at its own time: the user is told once that the connection was lost and once that
// it is back, however many connections find out.
#pragma once
#include <cstdint>

namespace esctl::outage {

/// How many outages this process has reported so far: note it just before opening a connection.
std::uint64_t epoch();

/// A connection opened at `opened_at` (an epoch() read before opening it) was found lost, or an
/// attempt to connect failed (pass epoch()). True if that is news for the user ("lost the
/// connection ...; reconnecting"); false if an outage already reported covers it: one reported
/// since the connection was opened (over or not), or one not over yet.
bool lost(std::uint64_t opened_at);

/// A connection was made again. True once per reported outage ("reconnected to ...").
bool reconnected();

}  // namespace esctl::outage
