#include "atoll/supervisors/connection_supervisor.hpp"

#include <caf/event_based_actor.hpp>

#include "atoll/handlers/connection_record.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/connection_sup.hpp"

namespace atl::detail {

child_spec connection_supervisor_spec(std::shared_ptr<server_context> ctx,
                                      std::shared_ptr<acceptor_group> group) {
  const auto& opts = ctx->options();
  connection_spawn_options how;
  how.detached = opts.detached_connections;
  how.hidden = opts.hidden_connections;
  auto start = [conf{ctx->connections()}, how,
                process{opts.connection_process}](start_context& sc) -> caf::expected<caf::actor> {
    const auto& args = sc.args();
    if (!args.match_elements<accepted_connection>())
      return caf::make_error(errc::invalid_spec, "start_child expects an accepted_connection");
    if (!process)
      return spawn_connection(sc.self(), conf, args.get_as<accepted_connection>(0), how);
    // The user's own actor: a failed spawn (or an exception) loses this
    // connection only; its socket closes with the hand-off.
    try {
      auto actor =
          process(sc.self(), connection_hand_off{conf, args.get_as<accepted_connection>(0)});
      if (!actor)
        return caf::make_error(errc::start_failed, "connection_process returned no actor");
      return actor;
    } catch (const std::exception& ex) {
      return caf::make_error(errc::start_failed,
                             std::string{"connection_process threw: "} + ex.what());
    }
  };
  return connection_sup_child("connection", std::move(start), opts.shutdown_timeout,
                              opts.num_connections, [ctx, group](const caf::actor& sup) {
                                group->set_connection_supervisor(sup);
                                ctx->add_connection_supervisor(sup);
                              });
}

} // namespace atl::detail
