#include "atoll/supervisors/udp_shutdown_listener.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/atoms.hpp"

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
    auto sup = ctx->connection_supervisor();
    if (!sup) {
      self->quit(reason);
      return;
    }
    self->request(sup, caf::infinite, drain_atom::value)
        .then([self, reason](caf::ok_atom) { self->quit(reason); },
              [self, reason](caf::error&) { self->quit(reason); });
  });
  return {
      [](int) {}, // no messages of its own
  };
}

} // namespace

child_spec udp_shutdown_listener_spec(std::shared_ptr<udp_server_context> ctx) {
  child_spec spec;
  spec.id = "shutdown_listener";
  spec.restart = restart_type::permanent;
  spec.shutdown = shutdown_policy::infinity();
  spec.start = [ctx](start_context& sc) -> caf::expected<caf::actor> {
    return sc.self()->spawn(udp_shutdown_listener, ctx);
  };
  return spec;
}

} // namespace atl::detail
