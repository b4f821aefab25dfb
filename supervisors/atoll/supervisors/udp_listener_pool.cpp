#include "atoll/supervisors/udp_listener_pool.hpp"

#include <caf/event_based_actor.hpp>

#include "atoll/supervisors/udp_listener.hpp"

namespace atl::detail {

child_spec udp_listener_pool_spec(std::shared_ptr<udp_server_context> ctx) {
  const auto& opts = ctx->options();
  std::vector<child_spec> listeners;
  listeners.reserve(opts.num_listeners);
  for (uint32_t i = 0; i < opts.num_listeners; ++i)
    listeners.push_back(udp_listener_spec(ctx, i));
  supervisor_flags flags;
  flags.strategy = strategy::one_for_one;
  flags.name = "listener_pool";
  auto spec = supervisor_child("listener_pool", std::move(flags), std::move(listeners),
                               restart_type::transient);
  auto start = std::move(spec.start);
  spec.start = [start{std::move(start)}, ctx](start_context& sc) -> caf::expected<caf::actor> {
    const auto& o = ctx->options();
    auto count = o.transport.reuseport ? o.num_listeners : 1u;
    std::vector<std::shared_ptr<udp_endpoint>> sockets;
    auto port = static_cast<uint16_t>(o.port);
    for (uint32_t i = 0; i < count; ++i) {
      auto sock = datagram_socket::open(o.address, port, o.transport);
      if (!sock)
        return sock.error();
      // With port 0, every further socket binds the port the first one got.
      if (i == 0)
        port = (*sock)->local().port;
      auto ep = udp_endpoint::make(std::shared_ptr<datagram_socket>{std::move(*sock)}, ctx->io());
      if (!ep)
        return ep.error();
      sockets.push_back(std::move(*ep));
    }
    ctx->publish_sockets(sockets);
    auto sup = start(sc);
    if (!sup) {
      ctx->close_sockets();
      return sup;
    }
    // Whatever ends the pool, its sockets close with it.
    (*sup)->attach_functor([ctx, sockets](const caf::error&) {
      ctx->close_sockets();
      for (auto& s : sockets)
        s->close();
    });
    return sup;
  };
  return spec;
}

} // namespace atl::detail
