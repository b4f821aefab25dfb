// The UDP listener role: receives datagrams on a socket, drops the
// oversized and the rate-limited, and hands the rest to handler actors.
#pragma once

#include <cstdint>
#include <memory>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/udp_server_context.hpp"

namespace atl::detail {

/// The child spec of listener number `index` (worker, transient): it
/// receives on socket `index % sockets` of the open set, in batches
/// (recvmmsg), re-arming its one-shot interest after each batch. Emits the
/// listener span (`start`, `ready`, `receiving`, `waiting`,
/// `rate_limit_exceeded`, `packet_too_large`, `spawn_error`, `stop`).
child_spec udp_listener_spec(std::shared_ptr<udp_server_context> ctx, uint32_t index);

} // namespace atl::detail
