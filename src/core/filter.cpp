// A stream matches when it matches any glob (if globs are given) AND belongs to any of the
// categories (if given); an event then matches when its type is among the types (if given).
#include "core/filter.hpp"

#include <fnmatch.h>

#include <algorithm>

#include "core/names.hpp"

namespace esctl {

bool EventFilter::matches_stream(std::string_view stream) const {
  if (!stream_globs.empty()) {
    std::string s(stream);
    bool any = std::any_of(stream_globs.begin(), stream_globs.end(),
                           [&](const std::string& g) { return fnmatch(g.c_str(), s.c_str(), 0) == 0; });
    if (!any) return false;
  }
  if (!categories.empty()) {
    auto cat = category_of(stream);
    if (std::find(categories.begin(), categories.end(), cat) == categories.end()) return false;
  }
  return true;
}

bool EventFilter::matches_type(std::string_view type) const {
  return types.empty() || std::find(types.begin(), types.end(), type) != types.end();
}

}  // namespace esctl
