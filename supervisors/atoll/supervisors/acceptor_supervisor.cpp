#include "atoll/supervisors/acceptor_supervisor.hpp"

#include "atoll/supervisors/acceptor.hpp"
#include "atoll/supervisors/connection_supervisor.hpp"

namespace atl::detail {

child_spec acceptor_supervisor_spec(std::shared_ptr<server_context> ctx, uint32_t id) {
  auto group = std::make_shared<acceptor_group>();
  supervisor_flags flags;
  flags.strategy = strategy::rest_for_one;
  flags.name = "acceptor-" + std::to_string(id);
  return supervisor_child(flags.name, flags,
                          {connection_supervisor_spec(ctx, group),
                           acceptor_spec(ctx, id, group)});
}

} // namespace atl::detail
