#include "atoll/supervisors/server.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/logger.hpp"
#include "atoll/supervisors/acceptor_pool.hpp"
#include "atoll/supervisors/inspector.hpp"
#include "atoll/supervisors/listener.hpp"
#include "atoll/supervisors/detail/blocking_call.hpp"
#include "atoll/supervisors/detail/server_protocol.hpp"
#include "atoll/supervisors/server_context.hpp"
#include "atoll/supervisors/server_metrics.hpp"
#include "atoll/supervisors/shutdown_listener.hpp"
#include "atoll/supervisors/udp_server.hpp"

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
  flags.extension = [ctx](caf::event_based_actor* self) {
    return detail::server_protocol(self, ctx);
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

using detail::check_blocking;

/// One request to the server's root, waiting on this thread.
template <class T, class... Ts>
caf::expected<T> call(caf::actor_system& sys, const detail::server_context& ctx,
                      const caf::actor& root, Ts&&... xs) {
  return detail::blocking_call<T>(sys, *ctx.io(), root, std::forward<Ts>(xs)...);
}

/// As `call` for requests answered with `ok`.
template <class... Ts>
caf::error call_ok(caf::actor_system& sys, const detail::server_context& ctx,
                   const caf::actor& root, Ts&&... xs) {
  return detail::blocking_call_ok(sys, *ctx.io(), root, std::forward<Ts>(xs)...);
}

caf::error no_server() {
  return caf::make_error(errc::not_found, "no server");
}

/// Answers one `listening_atom` request for `root`: its address, or the
/// reason it went down (its start error). A failed root may be gone before
/// it sees the request; its exit reason then comes with the down message.
caf::behavior start_watcher(caf::event_based_actor* self, caf::actor root) {
  struct state {
    caf::error reason;
    bool down = false;
    std::optional<caf::typed_response_promise<endpoint>> waiting; // for the down message
  };
  auto st = std::make_shared<state>();
  self->set_down_handler([self, st](caf::down_msg& dm) {
    st->down = true;
    st->reason = dm.reason ? std::move(dm.reason)
                           : caf::make_error(errc::shutting_down, "the server stopped");
    if (st->waiting) {
      st->waiting->deliver(st->reason);
      self->quit();
    }
  });
  self->monitor(root);
  return {
    [self, st, root](listening_atom) -> caf::result<endpoint> {
      auto rp = self->make_response_promise<endpoint>();
      self->request(root, caf::infinite, listening_atom::value)
        .then(
          [self, rp](endpoint& ep) mutable {
            rp.deliver(ep);
            self->quit();
          },
          [self, st, rp](caf::error& err) mutable {
            if (err != caf::sec::request_receiver_down) {
              rp.deliver(std::move(err));
              self->quit();
            } else if (st->down) {
              rp.deliver(st->reason);
              self->quit();
            } else {
              st->waiting = rp; // the down message tells why
            }
          });
      return rp;
    },
  };
}

} // namespace

caf::expected<server_actor> spawn_server(caf::actor_system& sys, server_options opts) {
  auto ctx = make_context(sys, std::move(opts));
  if (!ctx)
    return ctx.error();
  auto [flags, children] = server_tree(sys, *ctx);
  auto sup = spawn_supervisor(sys, std::move(flags), std::move(children));
  if (!sup)
    return sup.error();
  (*ctx)->set_server(*sup);
  register_server(sys, **ctx, *sup);
  return caf::actor_cast<server_actor>(*sup);
}

void spawn_server(caf::event_based_actor* self, server_options opts,
                  std::function<void(caf::expected<listening_server>)> then) {
  auto srv = spawn_server(self->system(), std::move(opts));
  if (!srv) {
    then(std::move(srv.error()));
    return;
  }
  auto watcher = self->spawn(start_watcher, caf::actor_cast<caf::actor>(*srv));
  self->request(watcher, caf::infinite, listening_atom::value)
    .then([then, root{*srv}](endpoint& ep) { then(listening_server{root, std::move(ep)}); },
          [then](caf::error& err) { then(std::move(err)); });
}

caf::typed_response_promise<server_actor, endpoint> spawn_server(caf::event_based_actor* self,
                                                                 server_options opts) {
  auto rp = self->make_response_promise<server_actor, endpoint>();
  spawn_server(self, std::move(opts), [rp](caf::expected<listening_server> started) mutable {
    if (started)
      rp.deliver(std::move(started->root), std::move(started->local));
    else
      rp.deliver(std::move(started.error()));
  });
  return rp;
}

caf::expected<server> start_server(caf::actor_system& sys, server_options opts) {
  auto ctx = make_context(sys, std::move(opts));
  if (!ctx)
    return ctx.error();
  if (auto err = check_blocking(*(*ctx)->io()))
    return err;
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

server_actor server::actor() const {
  return caf::actor_cast<server_actor>(handle());
}

caf::expected<endpoint> server::listener_info() const {
  if (!ctx_)
    return no_server();
  return call<endpoint>(*sys_, *ctx_, handle(), listener_info_atom::value);
}

server_status server::status() const {
  // Read from the state the server's actors share: never blocks.
  if (!ctx_ || ctx_->stopping.load() || !handle())
    return server_status::stopped;
  return ctx_->listener() ? server_status::running : server_status::suspended;
}

caf::expected<std::vector<connection_record>> server::connections() const {
  if (!ctx_)
    return no_server();
  return call<std::vector<connection_record>>(*sys_, *ctx_, handle(), connections_atom::value);
}

caf::expected<server_info> server::info() const {
  if (!ctx_)
    return no_server();
  return call<server_info>(*sys_, *ctx_, handle(), server_info_atom::value);
}

caf::error server::suspend() {
  if (!ctx_)
    return no_server();
  return call_ok(*sys_, *ctx_, handle(), suspend_atom::value);
}

caf::error server::resume() {
  if (!ctx_)
    return no_server();
  return call_ok(*sys_, *ctx_, handle(), resume_atom::value);
}

caf::error server::stop(std::optional<std::chrono::milliseconds> timeout) {
  if (!ctx_)
    return no_server();
  auto sup = handle();
  if (!sup)
    return caf::none; // already gone
  if (auto err = check_blocking(*ctx_->io()))
    return err;
  if (!timeout)
    timeout = ctx_->options().shutdown_timeout.wait_bound(default_stop_grace);
  return stop_supervisor(*sys_, sup, *timeout);
}

caf::expected<tree_node> server::tree() const {
  if (!ctx_)
    return no_server();
  return call<tree_node>(*sys_, *ctx_, handle(), tree_atom::value);
}

scoped_server& scoped_server::operator=(scoped_server&& other) noexcept {
  if (this != &other) {
    scoped_server old{release()};
    srv_ = other.release();
  }
  return *this;
}

scoped_server::~scoped_server() {
  if (!srv_)
    return;
  if (auto err = srv_.stop())
    log(log_level::error, "atoll: scoped_server could not stop its server: " + describe(err));
}

void register_types(caf::actor_system_config& cfg) {
  register_runtime_types(cfg);
  cfg.add_message_type<endpoint>("atoll::endpoint");
  cfg.add_message_type<server_status>("atl::server_status");
  cfg.add_message_type<server_info>("atl::server_info");
  cfg.add_message_type<connection_state>("atl::connection_state");
  cfg.add_message_type<connection_record>("atl::connection_record");
  cfg.add_message_type<std::vector<connection_record>>("std::vector<atl::connection_record>");
  cfg.add_message_type<connection_event>("atl::connection_event");
  cfg.add_message_type<histogram_snapshot>("atl::histogram_snapshot");
  cfg.add_message_type<metrics_snapshot>("atl::metrics_snapshot");
  cfg.add_message_type<inspected_server>("atl::inspected_server");
}

} // namespace atl
