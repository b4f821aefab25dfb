#include "atoll/supervisors/udp_shutdown_listener.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/supervisors/detail/shutdown_common.hpp"

namespace atl::detail {

namespace {

caf::behavior udp_shutdown_listener(caf::event_based_actor* self,
                                    std::shared_ptr<udp_server_context> ctx) {
  self->set_exit_handler([self, ctx](caf::exit_msg& msg) {
    if (!msg.reason || msg.reason == caf::exit_reason::normal)
      return;
    auto reason = msg.reason;
    if (!ctx->stopping.load()) {
      self->quit(reason); // a restart of the tree, not a stop
      return;
    }
    // Nothing more is received; the sockets stay open for the goodbyes of
    // `handle_shutdown` and close with the listener pool, after the drain.
    ctx->stop_receiving();
    std::vector<caf::actor> sups;
    if (auto sup = ctx->connection_supervisor())
      sups.push_back(std::move(sup));
    drain_then_quit(self, sups, reason);
  });
  return {
      [](int) {}, // no messages of its own
  };
}

} // namespace

child_spec udp_shutdown_listener_spec(std::shared_ptr<udp_server_context> ctx) {
  return shutdown_listener_child(udp_shutdown_listener, std::move(ctx));
}

} // namespace atl::detail
