// The listener role: owns a server's listen sockets and knows the bound
// address.
#pragma once

#include <memory>

#include <caf/atom.hpp>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/server_context.hpp"

namespace atl {

namespace detail {

/// The listener's child spec (worker, transient). Its start function opens
/// `num_listen_sockets` sockets (all on the port the first one got), so a bind
/// error such as `errc::address_in_use` fails the server's start; the
/// listener actor owns them, publishes them in `ctx`, answers
/// `listener_info_atom`, and stops listening when it exits. Emits the
/// listener span.
child_spec listener_spec(std::shared_ptr<server_context> ctx);

} // namespace detail

} // namespace atl
