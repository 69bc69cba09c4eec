// The --projection handler (see projection_handler.hpp).
#include "drain/projection_handler.hpp"

#include <optional>
#include <span>
#include <vector>

namespace esctl {

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
