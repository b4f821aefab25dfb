#include "atoll/supervisors/udp_listener.hpp"

#include <caf/event_based_actor.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/runtime/span.hpp"

namespace atl::detail {

namespace {

using udp_retry_atom = caf::atom_constant<caf::atom("udpretry")>;

/// Datagrams per recvmmsg call, and calls per socket event before the
/// listener yields to other messages.
constexpr size_t batch_size = 32;
constexpr int batches_per_event = 4;

/// Receive buffers, one set per scheduler thread: a listener copies what it
/// keeps before it returns, so listeners on one thread can share them (100
/// listeners do not need 100 sets).
datagram_batch& thread_batch(size_t slot_size) {
  thread_local std::unique_ptr<datagram_batch> batch;
  if (!batch || batch->slot_size() != slot_size)
    batch = std::make_unique<datagram_batch>(batch_size, slot_size);
  return *batch;
}

class udp_listener final : public caf::event_based_actor {
public:
  udp_listener(caf::actor_config& cfg, std::shared_ptr<udp_server_context> ctx,
               std::shared_ptr<udp_endpoint> sock)
    : caf::event_based_actor(cfg), ctx_(std::move(ctx)), sock_(std::move(sock)) {}

  const char* name() const override {
    return "atoll.udp_listener";
  }

  caf::behavior make_behavior() override {
    telemetry::fields meta;
    if (ctx_->events()->enabled()) {
      auto& local = sock_->socket()->local();
      meta.set("local_address", local.address);
      meta.set("local_port", uint64_t{local.port});
      meta.set("transport_module", std::string{"udp"});
      meta.set("transport_options", describe(ctx_->options().transport));
      meta.set("handler", ctx_->options().handler_name);
    }
    span_ = telemetry::span::start(ctx_->events().get(), ctx_->listener_prefix().get(), {},
                                   std::move(meta));
    attach_functor([this](const caf::error& reason) { cleanup(reason); });
    if (auto err =
            sock_->io().join(sock_->registration(), caf::actor_cast<caf::strong_actor_ptr>(this))) {
      quit(err);
      return {};
    }
    joined_ = true;
    emit("ready");
    return {
        [this](socket_ready_atom, int, uint32_t, uint32_t token) {
          if (token == sock_->registration().token)
            receive_now();
        },
        [this](udp_retry_atom, udp_hand_off& h, uint32_t retries_left) {
          start_session(std::move(h), retries_left);
        },
    };
  }

private:
  void receive_now() {
    const auto& opts = ctx_->options();
    auto& batch = thread_batch(opts.max_packet_size);
    for (int round = 0; round < batches_per_event; ++round) {
      if (sock_->stopped()) {
        quit();
        return;
      }
      auto n = sock_->socket()->receive(batch);
      if (!n) {
        if (sock_->stopped())
          quit();
        else
          quit(n.error()); // restarted by the pool
        return;
      }
      if (*n == 0)
        break;
      if (span_.enabled(ctx_->receiving_event()))
        span_.emit(ctx_->receiving_event(),
                   {{"monotonic_time", telemetry::monotonic_time()}, {"datagrams", uint64_t{*n}}});
      auto now = telemetry::monotonic_time();
      ctx_->drops().received.fetch_add(*n, std::memory_order_relaxed);
      count_ += *n;
      for (size_t i = 0; i < *n; ++i)
        dispatch(batch.meta(i), batch.data(i), now);
      if (*n < batch.capacity())
        break;
    }
    if (span_.enabled(ctx_->waiting_event()))
      span_.emit(ctx_->waiting_event(), {{"monotonic_time", telemetry::monotonic_time()}});
    if (auto err = sock_->io().rearm(sock_->registration(), io_events::readable)) {
      if (sock_->stopped())
        quit();
      else
        quit(err);
    }
  }

  void dispatch(const datagram_meta& meta, std::string_view data, int64_t now) {
    const auto& opts = ctx_->options();
    if (meta.truncated || meta.size > opts.max_packet_size) {
      ctx_->drops().too_large.fetch_add(1, std::memory_order_relaxed);
      if (span_.enabled())
        emit_peer("packet_too_large", meta.peer, {{"packet_size", uint64_t{meta.size}}});
      return;
    }
    if (auto& limiter = ctx_->limiter();
        limiter && !limiter->allow(rate_limit_key::of(meta.peer.addr), now)) {
      ctx_->drops().rate_limited.fetch_add(1, std::memory_order_relaxed);
      if (span_.enabled())
        emit_peer("rate_limit_exceeded", meta.peer, {});
      return;
    }
    udp_hand_off h;
    h.sock = sock_->socket();
    h.peer = meta.peer;
    h.first.data.assign(data.data(), data.size());
    h.first.received_at = now;
    h.listener_span = span_.context();
    if (auto& peers = ctx_->sessions()->peers) {
      switch (peers->route(h.peer, h.first)) {
        case udp_peer_table::outcome::delivered:
        case udp_peer_table::outcome::held: return;
        case udp_peer_table::outcome::dropped:
          spawn_failed(h.peer, caf::make_error(errc::max_children,
                                               "too many datagrams for a starting handler"));
          return;
        case udp_peer_table::outcome::start: break;
      }
    }
    start_session(std::move(h), opts.max_connections_retry_count);
  }

  /// Asks the connection supervisor for a handler actor; at the limit,
  /// retries later (holding the datagram) and finally drops it.
  void start_session(udp_hand_off h, uint32_t retries_left) {
    auto sup = ctx_->connection_supervisor();
    if (!sup) {
      give_up(h.peer, caf::make_error(errc::not_found, "no connection supervisor"));
      return;
    }
    auto peer = h.peer;
    request(sup, caf::infinite, start_child_atom::value, caf::make_message(h))
        .then(
            [this, peer](const caf::actor& hdl) {
              if (auto& peers = ctx_->sessions()->peers)
                peers->started(peer, hdl);
            },
            [this, h{std::move(h)}, retries_left](caf::error& err) mutable {
              if (err == errc::max_children && retries_left > 0 && !ctx_->stopping.load()) {
                auto wait = ctx_->options().max_connections_retry_wait;
                delayed_send(this, wait, udp_retry_atom::value, std::move(h), retries_left - 1);
                return;
              }
              give_up(h.peer, err);
            });
  }

  void give_up(const udp_peer& peer, const caf::error& err) {
    if (auto& peers = ctx_->sessions()->peers)
      peers->failed(peer);
    spawn_failed(peer, err);
  }

  void spawn_failed(const udp_peer& peer, const caf::error& err) {
    ctx_->drops().spawn_failed.fetch_add(1, std::memory_order_relaxed);
    if (span_.enabled())
      emit_peer("spawn_error", peer, {{"error", describe(err)}});
  }

  void emit(const char* event) {
    if (span_.enabled())
      span_.emit(event, {{"monotonic_time", telemetry::monotonic_time()}});
  }

  void emit_peer(const char* event, const udp_peer& peer, telemetry::fields meta) {
    if (auto ep = peer.to_endpoint()) {
      meta.set("remote_address", ep->address);
      meta.set("remote_port", uint64_t{ep->port});
    }
    span_.emit(event, {{"monotonic_time", telemetry::monotonic_time()}}, std::move(meta));
  }

  void cleanup(const caf::error& reason) {
    if (joined_)
      sock_->io().leave(sock_->registration(), address());
    telemetry::fields meta;
    if (reason && reason != caf::exit_reason::user_shutdown)
      meta.set("error", describe(reason));
    span_.stop({{"datagrams", count_}}, std::move(meta));
  }

  std::shared_ptr<udp_server_context> ctx_;
  std::shared_ptr<udp_endpoint> sock_;
  telemetry::span span_;
  uint64_t count_ = 0;
  bool joined_ = false;
};

} // namespace

child_spec udp_listener_spec(std::shared_ptr<udp_server_context> ctx, uint32_t index) {
  child_spec spec;
  spec.id = "listener_" + std::to_string(index);
  // Transient: a listener whose socket closed (suspend, stop) ends normally.
  spec.restart = restart_type::transient;
  spec.shutdown = shutdown_policy::timeout(std::chrono::milliseconds{5000});
  spec.start = [ctx, index](start_context& sc) -> caf::expected<caf::actor> {
    auto sockets = ctx->sockets();
    if (sockets.empty())
      return caf::make_error(errc::suspended, "no socket to receive on");
    auto sock = sockets[index % sockets.size()];
    return sc.self()->spawn<udp_listener>(ctx, std::move(sock));
  };
  return spec;
}

} // namespace atl::detail
