#include "atoll/supervisors/shutdown_listener.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/supervisors/detail/shutdown_common.hpp"

namespace atl::detail {

namespace {

caf::behavior shutdown_listener(caf::event_based_actor* self,
                                std::shared_ptr<server_context> ctx) {
  return shutdown_listener_behavior(self, std::move(ctx), [](server_context& c) {
    c.stop_listening();
    // Blocking socket calls of the connections give up when the drain does.
    const auto& policy = c.options().shutdown_timeout;
    if (policy.which() != shutdown_policy::kind::infinity) {
      auto grace = policy.which() == shutdown_policy::kind::timeout ? policy.time().count() : 0;
      // Clamped to a century: a larger grace would overflow in nanoseconds.
      constexpr int64_t century_ms = int64_t{100} * 365 * 24 * 3600 * 1000;
      c.connections()->give_up_at->store(telemetry::monotonic_time()
                                         + std::min(grace, century_ms) * 1000000);
    }
    return c.connection_supervisors();
  });
}

} // namespace

child_spec shutdown_listener_spec(std::shared_ptr<server_context> ctx) {
  return shutdown_listener_child(shutdown_listener, std::move(ctx));
}

} // namespace atl::detail
