// The UDP shutdown listener role: at stop, stops receiving first, then
// drains the handler actors.
#pragma once

#include <memory>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/udp_server_context.hpp"

namespace atl::detail {

/// The shutdown listener's child spec (worker, permanent, traps exits, last
/// child). When the server stops it stops receiving (the sockets stay open
/// for goodbyes and close with the listener pool), then drains the connection supervisor
/// (every handler actor gets `handle_shutdown`, bounded by
/// `shutdown_timeout`), then exits, so the rest of the tree stops.
child_spec udp_shutdown_listener_spec(std::shared_ptr<udp_server_context> ctx);

} // namespace atl::detail
