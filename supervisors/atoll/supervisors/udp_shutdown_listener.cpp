#include "atoll/supervisors/udp_shutdown_listener.hpp"

#include <caf/event_based_actor.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/supervisors/detail/shutdown_common.hpp"

namespace atl::detail {

namespace {

caf::behavior udp_shutdown_listener(caf::event_based_actor* self,
                                    std::shared_ptr<udp_server_context> ctx) {
  return shutdown_listener_behavior(self, std::move(ctx), [](udp_server_context& c) {
    // Nothing more is received; the sockets stay open for the goodbyes of
    // `handle_shutdown` and close with the listener pool, after the drain.
    c.stop_receiving();
    std::vector<caf::actor> sups;
    if (auto sup = c.connection_supervisor())
      sups.push_back(std::move(sup));
    return sups;
  });
}

} // namespace

child_spec udp_shutdown_listener_spec(std::shared_ptr<udp_server_context> ctx) {
  return shutdown_listener_child(udp_shutdown_listener, std::move(ctx));
}

} // namespace atl::detail
