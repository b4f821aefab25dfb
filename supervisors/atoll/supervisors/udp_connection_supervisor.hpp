// The UDP connection supervisor role: a dynamic supervisor of handler
// actors, at most `num_connections` at once.
#pragma once

#include <memory>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/udp_server_context.hpp"

namespace atl::detail {

/// The connection supervisor's child spec (simple_one_for_one, max
/// `num_connections`; children temporary, stopped with `shutdown_timeout`).
/// Listeners spawn handler actors themselves (one slot of the sessions'
/// `session_slots` each) and hand them to it with `adopt_children`;
/// `start_child` takes a `udp_hand_off` and a slot too.
child_spec udp_connection_supervisor_spec(std::shared_ptr<udp_server_context> ctx);

} // namespace atl::detail
