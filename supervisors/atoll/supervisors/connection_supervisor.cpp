#include "atoll/supervisors/connection_supervisor.hpp"

#include <caf/event_based_actor.hpp>

#include "atoll/handlers/connection_record.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/gather.hpp"

namespace atl::detail {

child_spec connection_supervisor_spec(std::shared_ptr<server_context> ctx,
                                      std::shared_ptr<acceptor_group> group) {
  const auto& opts = ctx->options();
  child_spec connection;
  connection.id = "connection";
  connection.restart = restart_type::temporary;
  connection.shutdown = opts.shutdown_timeout;
  connection_spawn_options how;
  how.detached = opts.detached_connections;
  how.hidden = opts.hidden_connections;
  connection.start = [conf{ctx->connections()}, how, process{opts.connection_process}](
                       start_context& sc) -> caf::expected<caf::actor> {
    const auto& args = sc.args();
    if (!args.match_elements<accepted_connection>())
      return caf::make_error(errc::invalid_spec, "start_child expects an accepted_connection");
    if (!process)
      return spawn_connection(sc.self(), conf, args.get_as<accepted_connection>(0), how);
    // The user's own actor: a failed spawn (or an exception) loses this
    // connection only; its socket closes with the hand-off.
    try {
      auto actor = process(sc.self(), connection_hand_off{conf, args.get_as<accepted_connection>(0)});
      if (!actor)
        return caf::make_error(errc::start_failed, "connection_process returned no actor");
      return actor;
    } catch (const std::exception& ex) {
      return caf::make_error(errc::start_failed,
                             std::string{"connection_process threw: "} + ex.what());
    }
  };
  // Tree snapshots show each connection's record.
  connection.describe = describe_connection;
  supervisor_flags flags;
  flags.strategy = strategy::simple_one_for_one;
  flags.max_children = opts.num_connections;
  flags.name = "connection_sup";
  auto spec = supervisor_child("connection_sup", std::move(flags), {std::move(connection)});
  auto start = std::move(spec.start);
  spec.start = [start{std::move(start)}, ctx, group](start_context& sc) {
    auto sup = start(sc);
    if (sup) {
      group->set_connection_supervisor(*sup);
      ctx->add_connection_supervisor(*sup);
    }
    return sup;
  };
  return spec;
}

} // namespace atl::detail
