// Following a store, backend-neutral: ChangeWaiter over the backend's ChangeSource, and
// read_after, which reads in chunks without holding a read transaction while the caller works.
#include "store/follow.hpp"

#include <utility>

namespace esctl {

ChangeWaiter::ChangeWaiter(Store& store) : source_(store.backend().change_source()) {}
ChangeWaiter::~ChangeWaiter() = default;
void ChangeWaiter::wake_on_hangup(int fd) { source_->wake_on_hangup(fd); }
Wake ChangeWaiter::wait(int timeout_ms) { return source_->wait(timeout_ms); }

std::int64_t read_after(Store& store, std::int64_t after, const EventFilter& filter, const EventFn& fn, int chunk) {
  StreamFilter pass(store, filter);
  std::vector<Event> batch;
  for (;;) {
    batch.clear();
    std::int64_t rows = 0;
    std::int64_t examined = after;
    store.read_chunk(after, INT64_MAX, chunk, [&](const EventRow& r) {
      ++rows;
      examined = r.position;
      if (!pass.matches(r.stream_id, r.type)) return true;
      batch.push_back(Event{r.position, std::string(store.stream_name(r.stream_id)), r.version, std::string(r.id),
                            std::string(r.type), std::string(r.data), std::string(r.meta), r.recorded_at_us});
      return true;
    });  // the read snapshot ends before anyone sees the events
    for (const auto& e : batch) {
      if (!fn(e.ref())) return e.position;
    }
    after = examined;
    if (rows < chunk) return after;
  }
}

}  // namespace esctl
