#include "atoll/supervisors/udp_rate_limiter.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>

namespace atl::detail {

namespace {

using expire_atom = caf::atom_constant<caf::atom("rlexpire")>;

/// The limiter's `expire` (forgetting sources whose bucket is full again)
/// runs once a window, but not more often than this...
constexpr std::chrono::milliseconds min_expiry_period{1000};
/// ... nor less often than this.
constexpr std::chrono::milliseconds max_expiry_period{60000};

caf::behavior rate_limiter_actor(caf::event_based_actor* self,
                                 std::shared_ptr<udp_server_context> ctx) {
  auto period = [ctx] {
    auto window = ctx->limiter()->config().window;
    return std::clamp(window, min_expiry_period, max_expiry_period);
  };
  self->delayed_send(self, period(), expire_atom::value);
  return {
      [self, ctx, period](expire_atom) {
        ctx->limiter()->expire(telemetry::monotonic_time());
        self->delayed_send(self, period(), expire_atom::value);
      },
  };
}

} // namespace

child_spec udp_rate_limiter_spec(std::shared_ptr<udp_server_context> ctx) {
  child_spec spec; // a permanent worker
  spec.id = "rate_limiter";
  spec.start = [ctx](start_context& sc) -> caf::expected<caf::actor> {
    return sc.self()->spawn(rate_limiter_actor, ctx);
  };
  return spec;
}

} // namespace atl::detail
