#include "atoll/supervisors/acceptor_pool.hpp"

#include "atoll/supervisors/acceptor_supervisor.hpp"

namespace atl::detail {

child_spec acceptor_pool_spec(std::shared_ptr<server_context> ctx) {
  std::vector<child_spec> groups;
  for (uint32_t id = 1; id <= ctx->options().num_acceptors; ++id)
    groups.push_back(acceptor_supervisor_spec(ctx, id));
  supervisor_flags flags;
  flags.strategy = strategy::one_for_one;
  flags.name = "acceptor_pool";
  return supervisor_child("acceptor_pool", std::move(flags), std::move(groups));
}

} // namespace atl::detail
