#include "atoll/supervisors/acceptor_supervisor.hpp"

#include "atoll/supervisors/acceptor.hpp"
#include "atoll/supervisors/connection_supervisor.hpp"

namespace atl::detail {

child_spec acceptor_supervisor_spec(std::shared_ptr<server_context> ctx, uint32_t id) {
  auto group = std::make_shared<acceptor_group>(ctx->options().num_connections);
  supervisor_flags flags;
  flags.strategy = strategy::rest_for_one;
  // An acceptor's crash costs its group's connections nothing (it is the
  // last child: rest_for_one restarts it alone), but giving up on restart
  // intensity would end them all. So the group tolerates 30 acceptor
  // restarts in 5 s (Thousand Island: 3), enough for an acceptor killed
  // every 10 ms at random among the default 100 while a real crash loop
  // (6 restarts a second and more) still escalates.
  flags.max_restarts = 30;
  flags.period = default_restart_period;
  flags.name = "acceptor-" + std::to_string(id);
  return supervisor_child(flags.name, flags,
                          {connection_supervisor_spec(ctx, group),
                           acceptor_spec(ctx, id, group)});
}

} // namespace atl::detail
