#include "atoll/runtime/detail/io_clock.hpp"

namespace atl::detail {

void io_clock::note(caf::abstract_actor* self) {
  auto& s = shard_of(self->id());
  std::lock_guard<std::mutex> guard{s.mtx};
  if (s.ids.insert(self->id()).second)
    s.count.fetch_add(1, std::memory_order_relaxed);
}

void io_clock::set_ordinary_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                                    uint64_t id) {
  note(self);
  super::set_ordinary_timeout(t, self, type, id);
}

void io_clock::set_request_timeout(time_point t, caf::abstract_actor* self, caf::message_id id) {
  note(self);
  super::set_request_timeout(t, self, id);
}

void io_clock::set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                                 uint64_t id) {
  note(self);
  super::set_multi_timeout(t, self, type, id);
}

void io_clock::cancel_timeouts(caf::abstract_actor* self) {
  auto& s = shard_of(self->id());
  // An actor's own timeouts are set by the actor itself, which has finished
  // setting them when it terminates: a shard without any needs no lock.
  if (s.count.load(std::memory_order_acquire) == 0)
    return;
  {
    std::lock_guard<std::mutex> guard{s.mtx};
    if (s.ids.erase(self->id()) == 0)
      return; // never set one: nothing to cancel
    s.count.fetch_sub(1, std::memory_order_relaxed);
  }
  super::cancel_timeouts(self);
}

} // namespace atl::detail
