// Which events a reader or queue wants: stream globs, categories and types. An empty list
// means "any". Pure logic, shared by read, tail, queues and rebuild.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace esctl {

struct EventFilter {
  std::vector<std::string> stream_globs;  ///< fnmatch(3) patterns on the whole stream name
  std::vector<std::string> categories;    ///< exact category names
  std::vector<std::string> types;         ///< exact event types

  bool empty() const { return stream_globs.empty() && categories.empty() && types.empty(); }
  /// True if no globs/categories are given, or the stream matches any glob or is in any category.
  bool matches_stream(std::string_view stream) const;
  bool matches_type(std::string_view type) const;
  bool matches(std::string_view stream, std::string_view type) const {
    return matches_stream(stream) && matches_type(type);
  }
};

}  // namespace esctl
