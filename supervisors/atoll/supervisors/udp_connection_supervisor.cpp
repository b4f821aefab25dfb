#include "atoll/supervisors/udp_connection_supervisor.hpp"

#include <caf/event_based_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/connection_sup.hpp"

namespace atl::detail {

child_spec udp_connection_supervisor_spec(std::shared_ptr<udp_server_context> ctx) {
  const auto& opts = ctx->options();
  auto start = [conf{ctx->sessions()}](start_context& sc) -> caf::expected<caf::actor> {
    const auto& args = sc.args();
    if (!args.match_elements<udp_hand_off>())
      return caf::make_error(errc::invalid_spec, "start_child expects a udp_hand_off");
    // Listeners spawn their handler actors and hand them over with
    // `adopt_children`; this path serves `start_child` callers.
    auto h = args.get_as<udp_hand_off>(0);
    if (!conf->slots->try_take())
      return caf::make_error(errc::max_children, "connection_sup");
    h.holds_slot = true;
    return spawn_udp_session(sc.self(), conf, std::move(h));
  };
  return connection_sup_child(
      "handler", std::move(start), opts.shutdown_timeout, opts.num_connections,
      [ctx](const caf::actor& sup) { ctx->set_connection_supervisor(sup); });
}

} // namespace atl::detail
