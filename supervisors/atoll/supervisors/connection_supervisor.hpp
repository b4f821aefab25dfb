// The connection supervisor role: a dynamic supervisor of one acceptor's
// connection actors.
#pragma once

#include <memory>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/acceptor.hpp"
#include "atoll/supervisors/server_context.hpp"

namespace atl::detail {

/// The connection supervisor's child spec: a `simple_one_for_one`
/// supervisor (at most `num_connections` children) of temporary connection
/// actors, each stopped with the server's shutdown policy. It registers
/// itself in `group` (for its acceptor) and in `ctx` (for draining).
child_spec connection_supervisor_spec(std::shared_ptr<server_context> ctx,
                                      std::shared_ptr<acceptor_group> group);

} // namespace atl::detail
