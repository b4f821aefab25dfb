// The UDP listener pool role: opens the server's sockets and supervises its
// listeners.
#pragma once

#include <memory>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/udp_server_context.hpp"

namespace atl::detail {

/// The listener pool's child spec (supervisor, one_for_one, transient). Its
/// start function opens the sockets (one shared by all listeners, or one per
/// listener with `transport.reuseport`, all on the port the first one got),
/// so a bind error fails the start; then it starts `num_listeners`
/// listeners. When the pool ends (suspend, stop, crash) its sockets close:
/// the port is free and nothing is received any more.
child_spec udp_listener_pool_spec(std::shared_ptr<udp_server_context> ctx);

} // namespace atl::detail
