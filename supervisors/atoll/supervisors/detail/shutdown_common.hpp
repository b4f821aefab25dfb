// Internal: what the TCP and UDP shutdown listeners share: their child spec
// and the drain of connection supervisors that ends them.
#pragma once

#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/behavior.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/supervisor.hpp"

namespace atl::detail {

/// Sends `drain_atom` to every supervisor of `sups` at once and quits `self`
/// with `reason` when all have answered (a failed drain counts as done), or
/// at once if there is none. Runs on `self`.
void drain_then_quit(caf::event_based_actor* self, const std::vector<caf::actor>& sups,
                     caf::error reason);

/// The behavior of a shutdown listener, which ends first when the server
/// stops (its tree's children stop in reverse order): on an exit message
/// while `ctx->stopping` is set, `stop_intake(*ctx)` ends the server's
/// intake and returns the connection supervisors, which are then drained
/// before it quits (`drain_then_quit`). An exit message without a stop is
/// a restart of the tree: it quits at once. Runs on `self`.
template <class Context, class StopIntake>
caf::behavior shutdown_listener_behavior(caf::event_based_actor* self,
                                         std::shared_ptr<Context> ctx, StopIntake stop_intake) {
  self->set_exit_handler([self, ctx, stop_intake](caf::exit_msg& msg) {
    if (!msg.reason || msg.reason == caf::exit_reason::normal)
      return;
    auto reason = msg.reason;
    if (!ctx->stopping.load()) {
      self->quit(reason); // a restart of the tree, not a stop
      return;
    }
    drain_then_quit(self, stop_intake(*ctx), reason);
  });
  return {
    [](int) {}, // no messages of its own
  };
}

/// The child spec of a shutdown listener (id "shutdown_listener",
/// permanent, waited for as long as its drain takes) whose actor runs
/// `behavior(self, ctx)`.
template <class Context>
child_spec shutdown_listener_child(caf::behavior (*behavior)(caf::event_based_actor*,
                                                             std::shared_ptr<Context>),
                                   std::shared_ptr<Context> ctx) {
  child_spec spec;
  spec.id = "shutdown_listener";
  spec.restart = restart_type::permanent;
  spec.shutdown = shutdown_policy::infinity();
  spec.start = [behavior, ctx](start_context& sc) -> caf::expected<caf::actor> {
    return sc.self()->spawn(behavior, ctx);
  };
  return spec;
}

} // namespace atl::detail
