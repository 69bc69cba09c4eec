// BatchOutcome's constructors (see batch_handler.hpp).
#include "drain/batch_handler.hpp"

namespace esctl {

BatchOutcome BatchOutcome::ack_all(const std::vector<Delivery>& batch) {
  BatchOutcome out;
  out.results.reserve(batch.size());
  for (const auto& d : batch) out.results.emplace_back(d.event.position, std::nullopt);
  return out;
}

BatchOutcome BatchOutcome::nack_all(const std::vector<Delivery>& batch, const std::string& reason) {
  BatchOutcome out;
  out.results.reserve(batch.size());
  for (const auto& d : batch) out.results.emplace_back(d.event.position, reason);
  return out;
}

}  // namespace esctl
