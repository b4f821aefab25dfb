#include "atoll/runtime/detail/io_clock.hpp"

namespace atl::detail {

void io_clock::note(caf::abstract_actor* self) {
  auto& s = shard_of(self->id());
  std::lock_guard<std::mutex> guard{s.mtx};
  s.ids.insert(self->id());
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
  {
    std::lock_guard<std::mutex> guard{s.mtx};
    if (s.ids.erase(self->id()) == 0)
      return; // never set one: nothing to cancel
  }
  super::cancel_timeouts(self);
}

} // namespace atl::detail
