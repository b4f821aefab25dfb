#include "atoll/supervisors/detail/shutdown_common.hpp"

#include <caf/event_based_actor.hpp>

#include "atoll/runtime/atoms.hpp"

namespace atl::detail {

void drain_then_quit(caf::event_based_actor* self, const std::vector<caf::actor>& sups,
                     caf::error reason) {
  if (sups.empty()) {
    self->quit(std::move(reason));
    return;
  }
  auto pending = std::make_shared<size_t>(sups.size());
  for (auto& sup : sups) {
    auto done = [self, pending, reason] {
      if (--*pending == 0)
        self->quit(reason);
    };
    self->request(sup, caf::infinite, drain_atom::value)
      .then([done](caf::ok_atom) { done(); }, [done](caf::error&) { done(); });
  }
}

} // namespace atl::detail
