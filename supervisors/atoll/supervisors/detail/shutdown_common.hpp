// Internal: what the TCP and UDP shutdown listeners share: their child spec
// and the drain of connection supervisors that ends them.
#pragma once

#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/behavior.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>

#include "atoll/runtime/supervisor.hpp"

namespace atl::detail {

/// Sends `drain_atom` to every supervisor of `sups` at once and quits `self`
/// with `reason` when all have answered (a failed drain counts as done), or
/// at once if there is none. Runs on `self`.
void drain_then_quit(caf::event_based_actor* self, const std::vector<caf::actor>& sups,
                     caf::error reason);

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
