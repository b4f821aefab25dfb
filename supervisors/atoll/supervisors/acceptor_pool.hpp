// The acceptor pool role: supervises the acceptor supervisors.
#pragma once

#include <memory>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/server_context.hpp"

namespace atl::detail {

/// The child spec "acceptor_pool": a one_for_one supervisor of
/// `num_acceptors` acceptor supervisors. If it dies, the server restarts it
/// while the listener and its port survive.
child_spec acceptor_pool_spec(std::shared_ptr<server_context> ctx);

} // namespace atl::detail
