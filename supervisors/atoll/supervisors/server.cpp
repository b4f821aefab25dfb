#include "atoll/supervisors/server.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/acceptor_pool.hpp"
#include "atoll/supervisors/listener.hpp"
#include "atoll/supervisors/server_context.hpp"
#include "atoll/supervisors/server_metrics.hpp"
#include "atoll/supervisors/shutdown_listener.hpp"

namespace atl {

std::string to_string(server_status x) {
  switch (x) {
    case server_status::running: return "running";
    case server_status::suspended: return "suspended";
    case server_status::stopped: return "stopped";
  }
  return "?";
}

namespace {

/// Validates the options and builds the server's shared context.
caf::expected<std::shared_ptr<detail::server_context>> make_context(caf::actor_system& sys,
                                                                    server_options opts) {
  if (auto err = validate(opts))
    return err;
  if (auto& name = opts.supervisor.registered_name; !name.empty())
    if (sys.registry().get(caf::atom_from_string(name)))
      return caf::make_error(errc::invalid_option, "supervisor.registered_name '" + name
                                                     + "' is already registered");
  if (opts.tls) {
    auto tls = tls_context::make(*opts.tls);
    if (!tls)
      return tls.error();
    opts.transport_layer = tls_transport_factory(*tls);
    opts.transport_name = "tls";
  }
  auto io = reactor::of(sys);
  if (!io)
    return io.error();
  auto events = opts.telemetry ? opts.telemetry : telemetry::default_bus();
  return std::make_shared<detail::server_context>(std::move(opts), std::move(*io),
                                                  std::move(events));
}

/// The server supervisor's flags and children (Thousand Island's tree).
std::pair<supervisor_flags, std::vector<child_spec>>
server_tree(caf::actor_system& sys, const std::shared_ptr<detail::server_context>& ctx) {
  const auto& opts = ctx->options();
  supervisor_flags flags;
  flags.strategy = strategy::rest_for_one;
  flags.name = opts.name;
  flags.max_restarts = opts.supervisor.max_restarts;
  flags.period = opts.supervisor.period;
  flags.on_stop = [ctx, sys{&sys}] {
    // Runs inside the server's supervisor, so the system is alive.
    ctx->stopping = true;
    if (auto& name = ctx->options().supervisor.registered_name; !name.empty()) {
      auto key = caf::atom_from_string(name);
      if (sys->registry().get<caf::actor>(key) == ctx->server())
        sys->registry().erase(key);
    }
  };
  return {std::move(flags),
          {detail::listener_spec(ctx), detail::acceptor_pool_spec(ctx),
           detail::shutdown_listener_spec(ctx)}};
}

/// Registers the server's root actor under `supervisor.registered_name`.
void register_server(caf::actor_system& sys, const detail::server_context& ctx,
                     const caf::actor& sup) {
  if (auto& name = ctx.options().supervisor.registered_name; !name.empty())
    sys.registry().put(caf::atom_from_string(name), sup);
}

} // namespace

caf::expected<server> start_server(caf::actor_system& sys, server_options opts) {
  auto ctx = make_context(sys, std::move(opts));
  if (!ctx)
    return ctx.error();
  auto [flags, children] = server_tree(sys, *ctx);
  auto sup = start_supervisor(sys, std::move(flags), std::move(children));
  if (!sup)
    return sup.error();
  (*ctx)->set_server(*sup);
  register_server(sys, **ctx, *sup);
  return server{&sys, std::move(*ctx)};
}

caf::expected<server_child> make_server_child(caf::actor_system& sys, std::string id,
                                              server_options opts) {
  auto ctx = make_context(sys, std::move(opts));
  if (!ctx)
    return ctx.error();
  auto [flags, children] = server_tree(sys, *ctx);
  auto spec = supervisor_child(std::move(id), std::move(flags), std::move(children));
  auto start = std::move(spec.start);
  spec.start = [start{std::move(start)}, ctx{*ctx}](start_context& sc) {
    ctx->stopping = false; // a restart runs again
    ctx->connections()->give_up_at->store(0);
    auto sup = start(sc);
    if (sup) {
      ctx->set_server(*sup);
      register_server(sc.self()->system(), *ctx, *sup);
    }
    return sup;
  };
  return server_child{std::move(spec), server{&sys, *ctx}};
}

caf::actor server::handle() const {
  return ctx_ ? ctx_->server() : caf::actor{};
}

caf::expected<endpoint> server::listener_info() const {
  if (!ctx_)
    return caf::make_error(errc::not_found, "no server");
  if (auto l = ctx_->listener())
    return l->local;
  return caf::make_error(errc::suspended, "the server is not listening");
}

server_status server::status() const {
  if (!ctx_ || ctx_->stopping.load() || !handle())
    return server_status::stopped;
  return ctx_->listener() ? server_status::running : server_status::suspended;
}

caf::expected<std::vector<caf::actor>> server::connections() const {
  if (!ctx_)
    return caf::make_error(errc::not_found, "no server");
  std::vector<caf::actor> result;
  for (auto& sup : ctx_->connection_supervisors()) {
    auto children = which_children(*sys_, sup);
    if (!children)
      continue; // a supervisor that just went away has no connections
    for (auto& child : *children)
      if (child.handle)
        result.push_back(child.handle);
  }
  return result;
}

caf::expected<server_info> server::info() const {
  if (!ctx_)
    return caf::make_error(errc::not_found, "no server");
  server_info result;
  result.status = status();
  if (auto l = ctx_->listener())
    result.local = l->local;
  for (auto& sup : ctx_->connection_supervisors())
    if (auto counts = count_children(*sys_, sup))
      result.active_connections += counts->active;
  return result;
}

caf::expected<std::vector<caf::actor>> server::acceptor_supervisors() const {
  auto top = which_children(*sys_, handle());
  if (!top)
    return top.error();
  for (auto& child : *top) {
    if (child.id != "acceptor_pool")
      continue;
    if (!child.handle)
      return caf::make_error(errc::not_found, "acceptor pool not running");
    auto groups = which_children(*sys_, child.handle);
    if (!groups)
      return groups.error();
    std::vector<caf::actor> result;
    for (auto& g : *groups)
      if (g.handle)
        result.push_back(g.handle);
    return result;
  }
  return caf::make_error(errc::not_found, "no acceptor pool");
}

caf::error server::suspend() {
  if (!ctx_)
    return caf::make_error(errc::not_found, "no server");
  // Acceptors first (so none is mid-accept), then the listener: the port
  // closes; connections and their supervisors stay.
  auto groups = acceptor_supervisors();
  if (!groups)
    return groups.error();
  for (auto& g : *groups)
    if (auto err = terminate_child(*sys_, g, std::string{"acceptor"}))
      return err;
  return terminate_child(*sys_, handle(), std::string{"listener"});
}

caf::error server::resume() {
  if (!ctx_)
    return caf::make_error(errc::not_found, "no server");
  auto listener = restart_child(*sys_, handle(), "listener");
  if (!listener && listener.error() != errc::running)
    return listener.error();
  auto groups = acceptor_supervisors();
  if (!groups)
    return groups.error();
  for (auto& g : *groups) {
    auto acc = restart_child(*sys_, g, "acceptor");
    if (!acc && acc.error() != errc::running)
      return acc.error();
  }
  return caf::none;
}

caf::error server::stop(std::optional<std::chrono::milliseconds> timeout) {
  if (!ctx_)
    return caf::make_error(errc::not_found, "no server");
  auto sup = handle();
  if (!sup)
    return caf::none; // already gone
  if (!timeout) {
    const auto& policy = ctx_->options().shutdown_timeout;
    if (policy.which() == shutdown_policy::kind::infinity)
      timeout = std::chrono::milliseconds::max();
    else if (policy.time() > std::chrono::milliseconds::max() - std::chrono::milliseconds{5000})
      timeout = std::chrono::milliseconds::max();
    else
      timeout = policy.time() + std::chrono::milliseconds{5000};
  }
  return stop_supervisor(*sys_, sup, *timeout);
}

caf::expected<tree_node> server::tree() const {
  if (!ctx_)
    return caf::make_error(errc::not_found, "no server");
  return snapshot_tree(*sys_, handle());
}

void register_types(caf::actor_system_config& cfg) {
  register_runtime_types(cfg);
  cfg.add_message_type<endpoint>("atoll::endpoint");
  cfg.add_message_type<histogram_snapshot>("atl::histogram_snapshot");
  cfg.add_message_type<metrics_snapshot>("atl::metrics_snapshot");
}

} // namespace atl
