// Store locations, backend-neutral: which backend a location names, and how a location is shown
// in messages. A location is a SQLite file path or a PostgreSQL connection URI.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace esctl {

/// The length of the `postgresql://` or `postgres://` scheme `location` starts with, or 0: a
/// location with such a scheme names a PostgreSQL store, any other a SQLite file.
std::size_t postgres_scheme_length(std::string_view location);
/// True if `location` is a PostgreSQL connection URI (`postgresql://` or `postgres://`).
inline bool is_postgres_uri(std::string_view location) { return postgres_scheme_length(location) > 0; }

/// `location` as esctl shows it: a URI without its password (the `:secret` of the user part,
/// and any `password=` parameter); a file path unchanged. The only form in which a connection
/// URI is printed.
std::string display_location(std::string_view location);

}  // namespace esctl
