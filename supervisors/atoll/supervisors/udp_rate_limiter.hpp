// The UDP rate limiter role: keeps the per-source token buckets bounded.
#pragma once

#include <memory>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/udp_server_context.hpp"

namespace atl::detail {

/// The rate limiter's child spec (worker, permanent; only when rate limiting
/// is on). The listeners consult the server's `rate_limiter` directly (it is
/// thread-safe); this actor expires the buckets of idle sources once per
/// window (at most once a second, at least once a minute), so memory stays
/// bounded under a flood of spoofed sources.
child_spec udp_rate_limiter_spec(std::shared_ptr<udp_server_context> ctx);

} // namespace atl::detail
