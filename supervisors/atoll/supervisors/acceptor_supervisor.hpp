// The acceptor supervisor role: one acceptor with its connection supervisor.
#pragma once

#include <cstdint>
#include <memory>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/server_context.hpp"

namespace atl::detail {

/// The child spec "acceptor-<id>": a rest_for_one supervisor of the
/// connection supervisor and then the acceptor (a crashing connection
/// supervisor restarts the acceptor too; a crashing acceptor restarts alone).
child_spec acceptor_supervisor_spec(std::shared_ptr<server_context> ctx, uint32_t id);

} // namespace atl::detail
