#include "atoll/supervisors/udp_rate_limiter.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>

namespace atl::detail {

namespace {

using expire_atom = caf::atom_constant<caf::atom("rlexpire")>;

caf::behavior rate_limiter_actor(caf::event_based_actor* self,
                                 std::shared_ptr<udp_server_context> ctx) {
  auto period = [ctx] {
    auto window = ctx->limiter()->config().window;
    return std::clamp(window, std::chrono::milliseconds{1000}, std::chrono::milliseconds{60000});
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
  child_spec spec;
  spec.id = "rate_limiter";
  spec.restart = restart_type::permanent;
  spec.shutdown = shutdown_policy::timeout(default_worker_shutdown);
  spec.start = [ctx](start_context& sc) -> caf::expected<caf::actor> {
    return sc.self()->spawn(rate_limiter_actor, ctx);
  };
  return spec;
}

} // namespace atl::detail
