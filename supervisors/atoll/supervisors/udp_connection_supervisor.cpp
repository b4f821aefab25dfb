#include "atoll/supervisors/udp_connection_supervisor.hpp"

#include <caf/event_based_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/gather.hpp"

namespace atl::detail {

child_spec udp_connection_supervisor_spec(std::shared_ptr<udp_server_context> ctx) {
  const auto& opts = ctx->options();
  child_spec handler;
  handler.id = "handler";
  handler.restart = restart_type::temporary;
  handler.shutdown = opts.shutdown_timeout;
  handler.start = [conf{ctx->sessions()}](start_context& sc) -> caf::expected<caf::actor> {
    const auto& args = sc.args();
    if (!args.match_elements<udp_hand_off>())
      return caf::make_error(errc::invalid_spec, "start_child expects a udp_hand_off");
    return spawn_udp_session(sc.self(), conf, args.get_as<udp_hand_off>(0));
  };
  // Tree snapshots show each handler actor's record.
  handler.describe = describe_connection;
  supervisor_flags flags;
  flags.strategy = strategy::simple_one_for_one;
  flags.max_children = opts.num_connections;
  flags.name = "connection_sup";
  auto spec = supervisor_child("connection_sup", std::move(flags), {std::move(handler)});
  auto start = std::move(spec.start);
  spec.start = [start{std::move(start)}, ctx](start_context& sc) {
    auto sup = start(sc);
    if (sup)
      ctx->set_connection_supervisor(*sup);
    return sup;
  };
  return spec;
}

} // namespace atl::detail
