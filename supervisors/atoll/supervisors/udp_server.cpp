#include "atoll/supervisors/udp_server.hpp"

#include <caf/actor_system.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/blocking_call.hpp"
#include "atoll/supervisors/detail/server_protocol.hpp"
#include "atoll/supervisors/udp_connection_supervisor.hpp"
#include "atoll/supervisors/udp_listener_pool.hpp"
#include "atoll/supervisors/udp_rate_limiter.hpp"
#include "atoll/supervisors/udp_server_context.hpp"
#include "atoll/supervisors/udp_shutdown_listener.hpp"

namespace atl {

namespace {

caf::expected<std::shared_ptr<detail::udp_server_context>> make_context(caf::actor_system& sys,
                                                                        udp_server_options opts) {
  if (auto err = validate(opts))
    return err;
  auto io = reactor::of(sys);
  if (!io)
    return io.error();
  auto events = opts.telemetry ? opts.telemetry : telemetry::default_bus();
  return std::make_shared<detail::udp_server_context>(std::move(opts), std::move(*io),
                                                      std::move(events));
}

/// The tree: rate limiter (if on), connection supervisor, listener pool,
/// shutdown listener, under rest_for_one. The connection supervisor comes
/// before the listeners because they hand it datagrams: when it restarts,
/// they restart too.
std::pair<supervisor_flags, std::vector<child_spec>>
server_tree(const std::shared_ptr<detail::udp_server_context>& ctx) {
  supervisor_flags flags;
  flags.strategy = strategy::rest_for_one;
  flags.name = ctx->options().name;
  flags.on_stop = [ctx] { ctx->set_stopping(true); };
  flags.extension = [ctx](caf::event_based_actor* self) {
    return detail::udp_server_protocol(self, ctx);
  };
  std::vector<child_spec> children;
  if (ctx->limiter())
    children.push_back(detail::udp_rate_limiter_spec(ctx));
  children.push_back(detail::udp_connection_supervisor_spec(ctx));
  children.push_back(detail::udp_listener_pool_spec(ctx));
  children.push_back(detail::udp_shutdown_listener_spec(ctx));
  return {std::move(flags), std::move(children)};
}

caf::error no_server() {
  return caf::make_error(errc::not_found, "no server");
}

} // namespace

caf::expected<udp_server_actor> spawn_udp_server(caf::actor_system& sys,
                                                 udp_server_options opts) {
  auto ctx = make_context(sys, std::move(opts));
  if (!ctx)
    return ctx.error();
  auto [flags, children] = server_tree(*ctx);
  auto sup = spawn_supervisor(sys, std::move(flags), std::move(children));
  if (!sup)
    return sup.error();
  (*ctx)->set_server(*sup);
  return caf::actor_cast<udp_server_actor>(*sup);
}

caf::expected<udp_server> start_udp_server(caf::actor_system& sys, udp_server_options opts) {
  auto ctx = make_context(sys, std::move(opts));
  if (!ctx)
    return ctx.error();
  if (auto err = detail::check_blocking(*(*ctx)->io()))
    return err;
  auto [flags, children] = server_tree(*ctx);
  auto sup = start_supervisor(sys, std::move(flags), std::move(children));
  if (!sup)
    return sup.error();
  (*ctx)->set_server(*sup);
  return udp_server{&sys, std::move(*ctx)};
}

caf::expected<udp_server_child> make_udp_server_child(caf::actor_system& sys, std::string id,
                                                      udp_server_options opts) {
  auto ctx = make_context(sys, std::move(opts));
  if (!ctx)
    return ctx.error();
  auto [flags, children] = server_tree(*ctx);
  auto spec = supervisor_child(std::move(id), std::move(flags), std::move(children));
  auto start = std::move(spec.start);
  spec.start = [start{std::move(start)}, ctx{*ctx}](start_context& sc) {
    ctx->set_stopping(false); // a restart runs again
    auto sup = start(sc);
    if (sup)
      ctx->set_server(*sup);
    return sup;
  };
  return udp_server_child{std::move(spec), udp_server{&sys, *ctx}};
}

caf::actor udp_server::handle() const {
  return ctx_ ? ctx_->server() : caf::actor{};
}

udp_server_actor udp_server::actor() const {
  return caf::actor_cast<udp_server_actor>(handle());
}

caf::expected<endpoint> udp_server::listener_info() const {
  if (!ctx_)
    return no_server();
  return detail::blocking_call<endpoint>(*sys_, *ctx_->io(), handle(), listener_info_atom::value);
}

server_status udp_server::status() const {
  if (!ctx_ || ctx_->stopping.load() || !handle())
    return server_status::stopped;
  return ctx_->sockets().empty() ? server_status::suspended : server_status::running;
}

caf::expected<server_info> udp_server::info() const {
  if (!ctx_)
    return no_server();
  return detail::blocking_call<server_info>(*sys_, *ctx_->io(), handle(), server_info_atom::value);
}

caf::expected<std::vector<connection_record>> udp_server::connections() const {
  if (!ctx_)
    return no_server();
  return detail::blocking_call<std::vector<connection_record>>(*sys_, *ctx_->io(), handle(),
                                                               connections_atom::value);
}

caf::error udp_server::suspend() {
  if (!ctx_)
    return no_server();
  return detail::blocking_call_ok(*sys_, *ctx_->io(), handle(), suspend_atom::value);
}

caf::error udp_server::resume() {
  if (!ctx_)
    return no_server();
  return detail::blocking_call_ok(*sys_, *ctx_->io(), handle(), resume_atom::value);
}

caf::error udp_server::stop(std::optional<std::chrono::milliseconds> timeout) {
  if (!ctx_)
    return no_server();
  auto sup = handle();
  if (!sup)
    return caf::none;
  if (auto err = detail::check_blocking(*ctx_->io()))
    return err;
  if (!timeout)
    timeout = ctx_->options().shutdown_timeout.wait_bound(default_stop_grace);
  return stop_supervisor(*sys_, sup, *timeout);
}

caf::expected<tree_node> udp_server::tree() const {
  if (!ctx_)
    return no_server();
  return detail::blocking_call<tree_node>(*sys_, *ctx_->io(), handle(), tree_atom::value);
}

udp_server_stats udp_server::stats() const {
  udp_server_stats s;
  if (!ctx_)
    return s;
  auto& d = ctx_->drops();
  s.received = d.received.load(std::memory_order_relaxed);
  s.too_large = d.too_large.load(std::memory_order_relaxed);
  s.rate_limited = d.rate_limited.load(std::memory_order_relaxed);
  s.spawn_failed = d.spawn_failed.load(std::memory_order_relaxed);
  if (ctx_->limiter())
    s.rate_limit = ctx_->limiter()->stats();
  if (auto& peers = ctx_->sessions()->peers)
    s.peers = peers->size();
  return s;
}

caf::error udp_server::set_rate_limit(uint32_t max_packets, std::chrono::milliseconds window) {
  if (!ctx_)
    return no_server();
  if (!ctx_->limiter())
    return caf::make_error(errc::unsupported_operation,
                           "rate limiting is off (rate_limit_enabled = false)");
  auto check = ctx_->options();
  check.rate_limit_max_packets = max_packets;
  check.rate_limit_window = window;
  if (auto err = validate(check))
    return err;
  ctx_->limiter()->set_config(rate_limit_config{max_packets, window}, telemetry::monotonic_time());
  return caf::none;
}

} // namespace atl
