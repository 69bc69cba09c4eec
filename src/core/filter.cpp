// A stream matches when no stream criteria are given, or it matches any glob OR belongs to any
// of the categories (a subscription is a union); an event then matches when its type is among
// the types (if any are given).
#include "core/filter.hpp"

#include <fnmatch.h>

#include <algorithm>

#include "core/names.hpp"

namespace esctl {

bool EventFilter::matches_stream(std::string_view stream) const {
  if (stream_globs.empty() && categories.empty()) return true;
  if (!categories.empty() && std::find(categories.begin(), categories.end(), category_of(stream)) != categories.end())
    return true;
  std::string s(stream);
  return std::any_of(stream_globs.begin(), stream_globs.end(),
                     [&](const std::string& g) { return fnmatch(g.c_str(), s.c_str(), 0) == 0; });
}

bool EventFilter::matches_type(std::string_view type) const {
  return types.empty() || std::find(types.begin(), types.end(), type) != types.end();
}

}  // namespace esctl
