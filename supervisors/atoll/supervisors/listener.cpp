#include "atoll/supervisors/listener.hpp"

#include <caf/event_based_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/span.hpp"
#include "atoll/supervisors/server.hpp"

namespace atl::detail {

namespace {

std::string describe_options(const tcp_options& t) {
  std::string out = "backlog=" + std::to_string(t.backlog);
  out += " nodelay=" + std::string{t.nodelay ? "true" : "false"};
  out += " send_timeout=" + (t.send_timeout == infinite ? std::string{"infinite"}
                                                        : std::to_string(t.send_timeout.count()));
  out += " send_timeout_close=" + std::string{t.send_timeout_close ? "true" : "false"};
  out += " reuseaddr=" + std::string{t.reuseaddr ? "true" : "false"};
  out += " reuseport=" + std::string{t.reuseport ? "true" : "false"};
  return out;
}

/// Starts the listener span (its start event says where we listen).
std::shared_ptr<telemetry::span> start_span(const server_context& ctx, const endpoint& local) {
  telemetry::fields meta;
  if (ctx.events()->enabled()) {
    meta.set("local_address", local.address);
    meta.set("local_port", uint64_t{local.port});
    meta.set("transport_module", ctx.options().transport_name);
    meta.set("transport_options", describe_options(ctx.options().transport));
    meta.set("handler", ctx.options().handler_name);
  }
  return std::make_shared<telemetry::span>(
    telemetry::span::start(ctx.events().get(), ctx.listener_prefix().get(), {}, std::move(meta)));
}

caf::behavior listener_actor(caf::event_based_actor* self, std::shared_ptr<server_context> ctx,
                             std::vector<std::shared_ptr<listen_endpoint>> sockets,
                             std::shared_ptr<telemetry::span> span) {
  // Whatever ends the listener, the port is closed and the span stopped.
  self->attach_functor([ctx, sockets, span, id{self->id()}](const caf::error& reason) {
    ctx->unpublish_listener(id);
    for (auto& sock : sockets)
      sock->stop_listening();
    telemetry::fields stop_meta;
    if (reason && reason != caf::exit_reason::user_shutdown)
      stop_meta.set("error", describe(reason));
    span->stop({}, std::move(stop_meta));
  });
  return {
    [local{sockets.front()->local()}](listener_info_atom) { return local; },
  };
}

} // namespace

child_spec listener_spec(std::shared_ptr<server_context> ctx) {
  child_spec spec;
  spec.id = "listener";
  spec.restart = restart_type::transient;
  spec.start = [ctx](start_context& sc) -> caf::expected<caf::actor> {
    const auto& opts = ctx->options();
    std::vector<std::shared_ptr<listen_endpoint>> sockets;
    auto port = static_cast<uint16_t>(opts.port);
    for (uint32_t i = 0; i < opts.num_listen_sockets; ++i) {
      auto sock = listen_socket::open(opts.address, port, opts.transport);
      if (!sock)
        return sock.error();
      // With port 0, every further socket binds the port the first one got.
      if (i == 0 && sock->local().is_ip())
        port = sock->local().port;
      auto ep = listen_endpoint::make(std::move(*sock), ctx->io());
      if (!ep)
        return ep.error();
      sockets.push_back(std::move(*ep));
    }
    auto span = start_span(*ctx, sockets.front()->local());
    auto hdl = sc.self()->spawn(listener_actor, ctx, sockets, span);
    // Published before the acceptors start (they start right after this).
    listener_state state;
    state.actor = hdl;
    state.sockets = std::move(sockets);
    state.local = state.sockets.front()->local();
    state.span_context = span->context();
    ctx->publish_listener(std::move(state));
    return hdl;
  };
  return spec;
}

} // namespace atl::detail
