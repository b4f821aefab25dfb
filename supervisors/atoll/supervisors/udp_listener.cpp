#include "atoll/supervisors/udp_listener.hpp"

#include <exception>

#include <caf/event_based_actor.hpp>

#include "atoll/handlers/detail/connection_common.hpp"
#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/runtime/logger.hpp"
#include "atoll/runtime/span.hpp"

namespace atl::detail {

namespace {

using udp_retry_atom = caf::atom_constant<caf::atom("udpretry")>;

/// Datagrams per recvmmsg call, and calls per socket event before the
/// listener yields to other messages.
constexpr size_t batch_size = 32;
constexpr int batches_per_event = 4;

/// Per-datagram handlers run in a listener between its flushes of their
/// queued replies (at most).
constexpr uint32_t flush_every = 32;

/// Receive buffers, one set per scheduler thread: a listener copies what it
/// keeps before it returns, so listeners on one thread can share them (100
/// listeners do not need 100 sets).
datagram_batch& thread_batch(size_t slot_size) {
  thread_local std::unique_ptr<datagram_batch> batch;
  if (!batch || batch->slot_size() != slot_size)
    batch = std::make_unique<datagram_batch>(batch_size, slot_size);
  return *batch;
}

/// What an in_listener handler's datagrams emit.
enum class inline_watch {
  /// Nothing: nobody subscribes to their connection events.
  none,
  /// One `handled` event per receive batch: the connection events' only
  /// subscribers accept summaries (metrics).
  summary,
  /// A connection span per datagram, as a per-datagram handler actor has.
  spans,
};

class udp_listener final : public caf::event_based_actor, public handler_host {
public:
  udp_listener(caf::actor_config& cfg, std::shared_ptr<udp_server_context> ctx,
               std::shared_ptr<udp_endpoint> sock)
    : caf::event_based_actor(cfg), ctx_(std::move(ctx)), sock_(std::move(sock)) {}

  const char* name() const override {
    return "atoll.udp_listener";
  }

  // -- handler_host (in_listener) ----------------------------------------------------

  void apply_verdict(verdict v) override {
    inline_verdict(v);
  }

  caf::event_based_actor* actor() noexcept override {
    return this;
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
    // Abyss's acceptor span: what this listener hands to handlers.
    acceptor_span_ = telemetry::span::start(ctx_->events().get(), ctx_->acceptor_prefix().get(),
                                            {}, {}, span_.context());
    attach_functor([this](const caf::error& reason) { cleanup(reason); });
    if (auto err =
            sock_->io().join(sock_->registration(), caf::actor_cast<caf::strong_actor_ptr>(this))) {
      quit(err);
      return {};
    }
    joined_ = true;
    caf::message_handler user;
    if (ctx_->options().lifetime == udp_lifetime::in_listener) {
      inline_sock_.emplace(sock_->socket(), udp_peer{});
      const auto& conf = *ctx_->sessions();
      inline_start_ = std::make_unique<telemetry::interest>(
          ctx_->events().get(), telemetry::join(*conf.span_prefix, "start"));
      inline_stop_ = std::make_unique<telemetry::interest>(
          ctx_->events().get(), telemetry::join(*conf.span_prefix, "stop"));
      if (!new_inline_handler())
        return {};
      // An exception in one of the handler's own message handlers ends this
      // listener (CAF ends an actor whose handler threw); its supervisor
      // starts a fresh one. handle_error runs first, as for a callback.
      set_exception_handler([this](std::exception_ptr& ep) { return on_uncaught(ep); });
    }
    emit("ready");
    internal_ = caf::message_handler{
        [this](socket_ready_atom, int, uint32_t, uint32_t token) {
          if (token == sock_->registration().token)
            receive_now();
        },
        [this](udp_retry_atom, udp_hand_off& h, uint32_t retries_left) {
          start_session(std::move(h), retries_left);
        },
    };
    return inline_ ? inline_behavior() : caf::behavior{internal_};
  }

private:
  void receive_now() {
    const auto& opts = ctx_->options();
    auto& batch = thread_batch(opts.max_packet_size);
    if (inline_)
      inline_mode_ = watch_inline();
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
      if (inline_sock_)
        udp_socket_access::set_outbox(*inline_sock_, &outbox_);
      auto before = inline_mode_ == inline_watch::summary ? inline_sock_->stats() : datagram_stats{};
      for (size_t i = 0; i < *n; ++i)
        dispatch(batch.meta(i), batch.data(i), now);
      flush();
      if (inline_mode_ == inline_watch::summary)
        emit_handled(before);
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
        emit_peer(span_, "packet_too_large", meta.peer, {{"packet_size", uint64_t{meta.size}}});
      return;
    }
    if (auto& limiter = ctx_->limiter();
        limiter && !limiter->allow(rate_limit_key::of(meta.peer.addr), now)) {
      ctx_->drops().rate_limited.fetch_add(1, std::memory_order_relaxed);
      if (span_.enabled())
        emit_peer(span_, "rate_limit_exceeded", meta.peer, {});
      return;
    }
    ++handed_;
    if (inline_sock_) {
      udp_socket_access::set_destination(*inline_sock_, meta.destination, meta.interface_index);
      run_inline(meta.peer, data, now);
      return;
    }
    udp_hand_off h;
    h.sock = sock_->socket();
    h.peer = meta.peer;
    h.first.received_at = now;
    h.first.destination = meta.destination;
    h.first.interface_index = meta.interface_index;
    h.parent_span = acceptor_span_.context();
    if (auto& peers = ctx_->sessions()->peers) {
      h.first.data.assign(data.data(), data.size());
      switch (peers->route(h.peer, h.first, h.queued)) {
        case udp_peer_table::outcome::delivered:
        case udp_peer_table::outcome::held: return;
        case udp_peer_table::outcome::dropped:
          spawn_failed(h.peer, caf::make_error(errc::max_children,
                                               "too many datagrams waiting for the peer's "
                                               "handler"));
          return;
        case udp_peer_table::outcome::start: break;
      }
      start_session(std::move(h), opts.max_connections_retry_count);
      return;
    }
    // Not copied yet: a per-datagram handler that runs here reads it in
    // place.
    start_session(std::move(h), opts.max_connections_retry_count, data);
  }

  /// Starts a handler for `h`: a per-datagram one (not detached) runs its
  /// first datagram right here and gets an actor only if it needs one
  /// (`run_udp_session`); others get a handler actor. An actor that
  /// outlives its first run asks the connection supervisor to adopt it
  /// (`adopt_children`); one that ends in it never costs the supervisor a
  /// message, unless it is detached (it asks before its first run, which
  /// may block). At the `num_connections` limit, retries later (holding the
  /// datagram) and finally drops it. `data`: the first datagram's bytes
  /// when they are not in `h.first.data` yet.
  void start_session(udp_hand_off h, uint32_t retries_left,
                     std::optional<std::string_view> data = std::nullopt) {
    if (ctx_->stopping.load()) {
      give_up(h.peer, caf::make_error(errc::shutting_down, "the server is stopping"));
      return;
    }
    h.adopter = ctx_->connection_supervisor();
    if (!h.adopter) {
      give_up(h.peer, caf::make_error(errc::not_found, "no connection supervisor"));
      return;
    }
    const auto& conf = ctx_->sessions();
    if (!conf->slots->try_take()) {
      if (retries_left > 0) {
        h.adopter = nullptr;
        if (data)
          h.first.data.assign(data->data(), data->size());
        delayed_send(this, ctx_->options().max_connections_retry_wait, udp_retry_atom::value,
                     std::move(h), retries_left - 1);
        return;
      }
      give_up(h.peer, caf::make_error(errc::max_children, "connection_sup"));
      return;
    }
    h.holds_slot = true;
    if (conf->lifetime == udp_lifetime::per_datagram && !conf->detached) {
      run_udp_session(this, conf, h, data ? *data : std::string_view{h.first.data});
      // Their replies are queued and leave when this worker's run of jobs
      // ends, and at the latest after every 32 handlers run here, as those
      // of handler actors leave after at most 32 actor runs.
      if (++unflushed_ >= flush_every) {
        unflushed_ = 0;
        static_cast<void>(sock_->socket()->try_flush_queued());
      }
      return;
    }
    if (data)
      h.first.data.assign(data->data(), data->size());
    auto peer = h.peer;
    auto hdl = spawn_udp_session(this, conf, std::move(h));
    if (auto& peers = conf->peers)
      peers->started(peer, hdl);
  }

  void give_up(const udp_peer& peer, const caf::error& err) {
    if (auto& peers = ctx_->sessions()->peers)
      peers->failed(peer);
    spawn_failed(peer, err);
  }

  void spawn_failed(const udp_peer& peer, const caf::error& err) {
    ctx_->drops().spawn_failed.fetch_add(1, std::memory_order_relaxed);
    if (acceptor_span_.enabled())
      emit_peer(acceptor_span_, "spawn_error", peer, {{"error", describe(err)}});
  }

  void emit(const char* event) {
    if (span_.enabled())
      span_.emit(event, {{"monotonic_time", telemetry::monotonic_time()}});
  }

  static void emit_peer(const telemetry::span& span, const char* event, const udp_peer& peer,
                        telemetry::fields meta) {
    if (auto ep = peer.to_endpoint()) {
      meta.set("remote_address", ep->address);
      meta.set("remote_port", uint64_t{ep->port});
    }
    span.emit(event, {{"monotonic_time", telemetry::monotonic_time()}}, std::move(meta));
  }

  // -- in_listener ----------------------------------------------------------------------

  /// Runs `f` (a handler callback); an exception is logged, `handle_error`
  /// runs, and a fresh handler object takes over.
  template <class F> auto inline_guarded(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const std::exception& ex) {
      inline_failed(caf::make_error(errc::handler_exception, ex.what()));
    } catch (...) {
      inline_failed(caf::make_error(errc::handler_exception, "unknown exception"));
    }
    return {};
  }

  /// Creates the handler object and runs its `handle_connection`; an
  /// exception ends the listener (its supervisor restarts it).
  bool new_inline_handler() {
    try {
      inline_ = ctx_->options().handler();
      detail::handler_binding::bind(*inline_, this);
      inline_verdict(inline_->handle_connection(*inline_sock_));
      return true;
    } catch (const std::exception& ex) {
      log(log_level::error, "atoll: UDP handler " + ctx_->options().handler_name +
                                " raised an exception in handle_connection: " + ex.what());
    } catch (...) {
      log(log_level::error, "atoll: UDP handler " + ctx_->options().handler_name +
                                " raised an exception in handle_connection");
    }
    inline_.reset();
    quit(caf::make_error(errc::handler_exception, "handle_connection failed"));
    return false;
  }

  /// The listener's own handlers, then the current handler object's
  /// message handlers (an exception there ends the listener).
  caf::behavior inline_behavior() {
    caf::message_handler user;
    try {
      user = inline_->message_handlers(*inline_sock_);
    } catch (...) {
      auto ep = std::current_exception();
      quit(on_uncaught(ep));
      return caf::behavior{internal_};
    }
    return user ? caf::behavior{internal_.or_else(user)} : caf::behavior{internal_};
  }

  /// After an exception in a callback: a fresh handler object takes over,
  /// with its own message handlers (the old object's are gone with it).
  void replace_inline_handler() {
    replace_inline_ = false;
    if (new_inline_handler())
      become(inline_behavior());
  }

  /// An exception escaped one of the handler object's message handlers:
  /// logged, `handle_error` runs, and the listener ends with the error.
  caf::error on_uncaught(std::exception_ptr& ep) {
    auto reason = caf::make_error(errc::handler_exception, detail::exception_text(ep));
    log(log_level::error, "atoll: UDP handler " + ctx_->options().handler_name + " failed (" +
                              describe(reason) + "); its listener restarts");
    if (inline_ && inline_sock_) {
      try {
        inline_->handle_error(reason, *inline_sock_);
      } catch (...) {
        // The listener ends anyway.
      }
      inline_.reset(); // no handle_close after handle_error
    }
    return reason;
  }

  /// What the subscribers of in_listener handlers' connection events need
  /// (a few cached atomic loads per receive event).
  inline_watch watch_inline() const noexcept {
    const auto& conf = *ctx_->sessions();
    if (inline_start_->detailed() || inline_stop_->detailed()
        || (conf.recv_event && conf.recv_event->detailed())
        || (conf.send_event && conf.send_event->detailed()))
      return inline_watch::spans;
    if ((inline_start_->enabled() || inline_stop_->enabled()) && ctx_->handled_event().enabled())
      return inline_watch::summary;
    return inline_watch::none;
  }

  /// Emits `handled` with the figures of the datagrams handled since
  /// `before` (the handler socket's counters then).
  void emit_handled(const datagram_stats& before) {
    auto after = inline_sock_->stats();
    auto sessions = after.recv_cnt - before.recv_cnt;
    if (sessions == 0 && after.send_cnt == before.send_cnt)
      return;
    span_.emit(ctx_->handled_event(), {{"monotonic_time", telemetry::monotonic_time()},
                                       {"sessions", sessions},
                                       {"recv_cnt", sessions},
                                       {"recv_oct", after.recv_oct - before.recv_oct},
                                       {"send_cnt", after.send_cnt - before.send_cnt},
                                       {"send_oct", after.send_oct - before.send_oct}});
  }

  void run_inline(const udp_peer& peer, std::string_view data, int64_t received_at) {
    if (!inline_)
      return;
    udp_socket_access::set_peer(*inline_sock_, peer);
    auto handle = [&] {
      inline_guarded([&] {
        inline_verdict(inline_->handle_data(data, *inline_sock_));
        return 0;
      });
    };
    if (inline_mode_ != inline_watch::spans) {
      udp_socket_access::received(*inline_sock_, data.size());
      handle();
      if (replace_inline_)
        replace_inline_handler();
      return;
    }
    // Traced: one connection span per datagram, as a per-datagram handler
    // actor has, with this datagram's figures.
    const auto& conf = *ctx_->sessions();
    auto before = inline_sock_->stats();
    udp_socket_access::received(*inline_sock_, data.size());
    auto span =
      detail::start_udp_connection_span(conf, peer, acceptor_span_.context(), received_at);
    // Wired only while this datagram is handled: the guard unwires the
    // span and stops it with this datagram's figures on every way out.
    struct span_scope {
      udp_listener& self;
      telemetry::span& span;
      datagram_stats before;
      int uncaught;
      ~span_scope() {
        udp_socket_access::wire(*self.inline_sock_, nullptr, nullptr);
        try {
          if (std::uncaught_exceptions() > uncaught) {
            self.inline_reason_ = "exception";
            self.inline_error_ = caf::make_error(errc::handler_exception, "escaped the listener");
          }
          auto after = self.inline_sock_->stats();
          datagram_stats figures;
          figures.recv_cnt = after.recv_cnt - before.recv_cnt;
          figures.recv_oct = after.recv_oct - before.recv_oct;
          figures.send_cnt = after.send_cnt - before.send_cnt;
          figures.send_oct = after.send_oct - before.send_oct;
          detail::stop_udp_connection_span(span, figures, self.inline_reason_, self.inline_error_);
        } catch (...) {
          // Out of memory while unwinding: the span ends without its stop.
        }
      }
    };
    {
      span_scope scope{*this, span, before, std::uncaught_exceptions()};
      udp_socket_access::wire(*inline_sock_, &span, conf.send_event.get());
      if (conf.recv_event && span.enabled(*conf.recv_event))
        span.emit(*conf.recv_event, telemetry::fields{{"data", std::string{data}}});
      inline_reason_ = "local_closed";
      inline_error_ = caf::error{};
      handle();
    }
    // The fresh handler's handle_connection belongs to no datagram.
    if (replace_inline_)
      replace_inline_handler();
  }

  void inline_verdict(const verdict& v) {
    if (v.which() == verdict::kind::hold) {
      inline_verdict(verdict::error(caf::make_error(errc::unsupported_operation,
                                                    "UDP handlers cannot hold their input")));
      return;
    }
    if (v.which() != verdict::kind::error)
      return; // proceed and close: nothing to end here
    inline_reason_ = "error";
    inline_error_ = v.reason();
    if (!ctx_->options().silent_terminate_on_error)
      log(log_level::error, "atoll: UDP handler " + ctx_->options().handler_name +
                                " returned an error: " + describe(v.reason()));
  }

  void inline_failed(const caf::error& reason) {
    inline_reason_ = "exception";
    inline_error_ = reason;
    log(log_level::error, "atoll: UDP handler " + ctx_->options().handler_name + " failed (" +
                              describe(reason) + "); a fresh handler takes over");
    try {
      inline_->handle_error(reason, *inline_sock_);
    } catch (...) {
      // The handler is replaced anyway.
    }
    replace_inline_ = true; // once this datagram's span is stopped
  }

  /// Sends the replies collected during a receive batch.
  void flush() {
    if (!inline_sock_)
      return;
    udp_socket_access::set_outbox(*inline_sock_, nullptr);
    if (outbox_.empty())
      return;
    static_cast<void>(sock_->socket()->send_many(outbox_));
    outbox_.clear();
  }

  void cleanup(const caf::error& reason) {
    if (inline_) {
      try {
        if (ctx_->stopping.load())
          inline_->handle_shutdown(*inline_sock_);
        else
          inline_->handle_close(*inline_sock_);
      } catch (...) {
        log(log_level::error, "atoll: UDP handler " + ctx_->options().handler_name +
                                  " raised an exception in its final callback");
      }
      flush();
      inline_.reset();
    }
    if (joined_)
      sock_->io().leave(sock_->registration(), address());
    telemetry::fields meta;
    if (reason && reason != caf::exit_reason::user_shutdown)
      meta.set("error", describe(reason));
    acceptor_span_.stop({{"connections", handed_}}, meta);
    span_.stop({{"datagrams", count_}}, std::move(meta));
  }

  std::shared_ptr<udp_server_context> ctx_;
  std::shared_ptr<udp_endpoint> sock_;
  caf::message_handler internal_; // the listener's own message handlers
  std::unique_ptr<udp_handler> inline_;
  bool replace_inline_ = false; // a callback threw: a fresh handler object takes over
  std::optional<udp_socket> inline_sock_;
  std::unique_ptr<telemetry::interest> inline_start_; // in_listener: spans only when watched
  std::unique_ptr<telemetry::interest> inline_stop_;
  inline_watch inline_mode_ = inline_watch::none; // for the current receive event
  const char* inline_reason_ = "local_closed"; // how the current datagram's handling ended
  caf::error inline_error_;
  std::vector<std::pair<udp_peer, std::string>> outbox_;
  telemetry::span span_;
  telemetry::span acceptor_span_;
  uint64_t count_ = 0;  // datagrams received
  uint64_t handed_ = 0; // datagrams handed to handlers (not dropped on arrival)
  bool joined_ = false;
  uint32_t unflushed_ = 0; // per-datagram handlers run here since this listener last flushed
};

} // namespace

child_spec udp_listener_spec(std::shared_ptr<udp_server_context> ctx, uint32_t index) {
  child_spec spec;
  spec.id = "listener_" + std::to_string(index);
  // Transient: a listener whose socket closed (suspend, stop) ends normally.
  spec.restart = restart_type::transient;
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
