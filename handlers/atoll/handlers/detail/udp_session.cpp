#include "atoll/handlers/detail/udp_session.hpp"

#include <exception>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

#include "atoll/handlers/connection_record.hpp"
#include "atoll/handlers/detail/traffic_report_period.hpp"
#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/runtime/logger.hpp"
#include "atoll/runtime/span.hpp"
#include "atoll/transports/tcp_options.hpp"

namespace atl {

namespace detail {

// -- udp_peer_table ---------------------------------------------------------------

udp_peer_table::outcome udp_peer_table::route(const udp_peer& peer, detail::udp_payload& payload) {
  return peers_.with_shard(peer, [&](auto& map) {
    auto i = map.find(peer);
    if (i == map.end()) {
      map.emplace(peer, entry{});
      return outcome::start;
    }
    if (i->second.actor) {
      caf::anon_send(i->second.actor, udp_datagram_atom::value, std::move(payload));
      return outcome::delivered;
    }
    if (i->second.pending.size() >= max_pending)
      return outcome::dropped;
    i->second.pending.push_back(std::move(payload));
    return outcome::held;
  });
}

void udp_peer_table::started(const udp_peer& peer, const caf::actor& actor) {
  peers_.with_shard(peer, [&](auto& map) {
    auto i = map.find(peer);
    if (i == map.end())
      return; // the actor already ended
    // In order, under the lock: no datagram can overtake the held ones.
    for (auto& p : i->second.pending)
      caf::anon_send(actor, udp_datagram_atom::value, std::move(p));
    i->second.pending.clear();
    i->second.actor = actor;
  });
}

size_t udp_peer_table::failed(const udp_peer& peer) {
  return peers_.with_shard(peer, [&](auto& map) -> size_t {
    auto i = map.find(peer);
    if (i == map.end() || i->second.actor)
      return 0;
    auto n = i->second.pending.size();
    map.erase(i);
    return n;
  });
}

void udp_peer_table::ended(const udp_peer& peer, const caf::actor_addr& actor) {
  peers_.with_shard(peer, [&](auto& map) {
    auto i = map.find(peer);
    // A starting entry (no actor yet) may belong to this actor too: `started`
    // has not run. Either way, the peer's next datagram starts a new actor.
    if (i != map.end() && (!i->second.actor || i->second.actor.address() == actor))
      map.erase(i);
  });
}

size_t udp_peer_table::size() const {
  return peers_.size();
}

} // namespace detail

namespace {

using udp_timeout_atom = caf::atom_constant<caf::atom("udptmo")>;
/// The session's traffic-report tick (private, so a handler's own
/// `reactor_timer_atom` messages still reach the handler).
using udp_report_atom = caf::atom_constant<caf::atom("udprpt")>;

/// How a handler actor ends (the connection.stop `reason`).
enum class end_kind : uint8_t { close, handler_close, timeout, shutdown, error, exception };

const char* reason_text(end_kind k) {
  switch (k) {
    case end_kind::close: return "local_closed";
    case end_kind::handler_close: return "handler_closed";
    case end_kind::timeout: return "timeout";
    case end_kind::shutdown: return "shutdown";
    case end_kind::error: return "error";
    case end_kind::exception: return "exception";
  }
  return "error";
}

std::string exception_text(const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

class udp_session final : public caf::event_based_actor, public detail::handler_host {
public:
  udp_session(caf::actor_config& cfg, std::shared_ptr<const detail::udp_session_config> conf,
              detail::udp_hand_off hand_off)
    : caf::event_based_actor(cfg), conf_(std::move(conf)), peer_(hand_off.peer),
      sock_(std::move(hand_off.sock), hand_off.peer), first_(std::move(hand_off.first)),
      parent_span_(hand_off.parent_span), started_at_(first_.received_at),
      timeout_(conf_->read_timeout), holds_slot_(hand_off.holds_slot),
      adopter_(std::move(hand_off.adopter)) {}

  ~udp_session() override {
    give_back_slot(); // killed before it ever ran
  }

  /// However the actor ends (CAF calls this before its monitors hear of
  /// it; no allocation, unlike an attached functor).
  void on_exit() override {
    cleanup(fail_state());
  }

  const char* name() const override {
    return "atoll.udp_handler";
  }

  // -- handler_host --------------------------------------------------------------

  void apply_verdict(verdict v) override {
    apply(std::move(v));
  }

  caf::event_based_actor* actor() noexcept override {
    return this;
  }

  caf::behavior make_behavior() override {
    // Everything up to the first datagram's verdict runs under `guarded`;
    // the actor's own handlers are set only if it lives on (most
    // per-datagram actors end right here).
    span_ = detail::start_udp_connection_span(*conf_, peer_, parent_span_, first_.received_at);
    detail::udp_socket_access::wire(sock_, &span_, conf_->send_event.get());
    detail::udp_socket_access::set_batched(sock_, true);
    caf::message_handler user;
    if (!guarded([this, &user] {
          handler_ = conf_->factory();
          detail::handler_binding::bind(*handler_, this);
          auto v = handler_->handle_connection(sock_);
          if (v.which() != verdict::kind::proceed) {
            apply(std::move(v));
            return;
          }
          user = handler_->message_handlers(sock_);
        }))
      return {};
    if (done_)
      return {};
    if (span_.enabled())
      span_.emit("ready", {{"monotonic_time", telemetry::monotonic_time()}});
    auto first = std::move(first_);
    deliver(first);
    if (done_)
      return {}; // most per-datagram actors: no behavior built
    set_exit_handler([this](caf::exit_msg& msg) { on_exit_message(msg); });
    set_exception_handler([this](std::exception_ptr& ep) { return on_uncaught(ep); });
    set_default_handler(caf::drop);
    request_adoption();
    caf::message_handler internal{
        [this](udp_datagram_atom, detail::udp_payload& p) { deliver(p); },
        [this](udp_timeout_atom, uint64_t gen) {
          if (gen == timer_gen_ && !done_)
            finish(end_kind::timeout);
        },
        [this](connection_info_atom) { return record(); },
        [this](udp_report_atom) { on_report_timer(); },
    };
    return user ? caf::behavior{internal.or_else(user)} : caf::behavior{internal};
  }

private:
  /// Runs a callback; an exception ends the actor through `handle_error`.
  template <class F> bool guarded(F&& f) {
    try {
      f();
      return true;
    } catch (const std::exception& ex) {
      on_callback_exception(ex.what());
    } catch (...) {
      on_callback_exception("unknown exception");
    }
    return false;
  }

  void deliver(detail::udp_payload& p) {
    if (done_)
      return;
    detail::udp_socket_access::received(sock_, p.data.size());
    detail::udp_socket_access::set_destination(sock_, p.destination, p.interface_index);
    if (conf_->recv_event && span_.enabled(*conf_->recv_event))
      span_.emit(*conf_->recv_event, telemetry::fields{{"data", p.data}});
    guarded([this, &p] {
      auto v = handler_->handle_data(p.data, sock_);
      apply(std::move(v), true);
    });
    report_traffic();
  }

  // -- traffic reports (`progress`) ----------------------------------------------

  /// After a datagram: reports the session's totals if they changed and a
  /// period passed since the last report (the first counts from the start),
  /// or sets a timer for when one has.
  void report_traffic() {
    if (done_ || report_timer_ || !conf_->progress_event
        || !span_.enabled(*conf_->progress_event) || !traffic_changed())
      return;
    auto now = telemetry::monotonic_time();
    if (reported_at_ == 0)
      reported_at_ = span_.start_time();
    auto due = reported_at_ + detail::traffic_report_period_ns;
    if (now >= due) {
      report(now);
      return;
    }
    report_timer_ = true;
    delayed_send(this, std::chrono::nanoseconds{due - now}, udp_report_atom::value);
  }

  void on_report_timer() {
    report_timer_ = false;
    if (!done_ && conf_->progress_event && span_.enabled(*conf_->progress_event)
        && traffic_changed())
      report(telemetry::monotonic_time());
  }

  bool traffic_changed() const {
    auto s = sock_.stats();
    return s.recv_cnt + s.send_cnt != reported_ops_;
  }

  void report(int64_t now) {
    auto s = sock_.stats();
    reported_at_ = now;
    reported_ops_ = s.recv_cnt + s.send_cnt;
    span_.emit(*conf_->progress_event, {{"recv_oct", s.recv_oct},
                                        {"recv_cnt", s.recv_cnt},
                                        {"send_oct", s.send_oct},
                                        {"send_cnt", s.send_cnt}});
  }

  /// Applies a verdict. `after_data`: returned by `handle_data`, where a
  /// plain `proceed` ends a per-datagram actor.
  void apply(verdict v, bool after_data = false) {
    if (done_)
      return;
    switch (v.which()) {
      case verdict::kind::proceed: {
        auto wait = timeout_;
        switch (v.timeout_variant()) {
          case verdict::timeout_kind::standard:
            if (after_data && conf_->lifetime == udp_lifetime::per_datagram) {
              finish(end_kind::close);
              return;
            }
            break;
          case verdict::timeout_kind::once: wait = v.timeout(); break;
          case verdict::timeout_kind::persistent:
            timeout_ = v.timeout();
            wait = timeout_;
            break;
        }
        arm(wait);
        return;
      }
      case verdict::kind::close: finish(end_kind::handler_close); return;
      case verdict::kind::error:
        if (v.reason() == errc::timeout) {
          finish(end_kind::timeout);
          return;
        }
        if (!conf_->silent_terminate_on_error)
          log(log_level::error, "atoll: UDP handler " + conf_->handler_name +
                                    " ended with an error: " + describe(v.reason()));
        finish(end_kind::error, caf::make_error(errc::handler_error, describe(v.reason())));
        return;
      case verdict::kind::switch_transport:
        finish(end_kind::error,
               caf::make_error(errc::unsupported_upgrade, "UDP handlers cannot switch transport"));
        return;
      case verdict::kind::hold:
        finish(end_kind::error, caf::make_error(errc::unsupported_operation,
                                                "UDP handlers cannot hold their input"));
        return;
    }
  }

  /// What `connection_info_atom` answers.
  connection_record record() {
    connection_record r;
    r.handle = caf::actor_cast<caf::actor>(this);
    if (auto ep = peer_.to_endpoint())
      r.peer = std::move(*ep);
    r.local = sock_.sockname();
    r.transport = "udp";
    r.handler = conf_->handler_name;
    r.state = done_ ? connection_state::closed : connection_state::open;
    auto s = sock_.stats();
    r.recv_oct = s.recv_oct;
    r.recv_cnt = s.recv_cnt;
    r.send_oct = s.send_oct;
    r.send_cnt = s.send_cnt;
    r.age = std::chrono::nanoseconds{telemetry::monotonic_time() - started_at_};
    return r;
  }

  void arm(std::chrono::milliseconds wait) {
    ++timer_gen_;
    if (wait == infinite)
      return;
    delayed_send(this, wait, udp_timeout_atom::value, timer_gen_);
  }

  void on_exit_message(caf::exit_msg& msg) {
    if (!msg.reason || msg.reason == caf::exit_reason::normal)
      return;
    if (msg.reason == caf::exit_reason::user_shutdown)
      finish(end_kind::shutdown);
    else
      finish(end_kind::error, msg.reason);
  }

  caf::error on_uncaught(std::exception_ptr& ep) {
    auto what = exception_text(ep);
    on_callback_exception(what);
    return caf::make_error(errc::handler_exception, what);
  }

  void on_callback_exception(const std::string& what) {
    std::string peer = "?";
    if (auto ep = peer_.to_endpoint())
      peer = to_string(*ep);
    log(log_level::error, "atoll: UDP handler " + conf_->handler_name + " raised an exception (" +
                              what + "); ending its actor for " + peer);
    finish(end_kind::exception, caf::make_error(errc::handler_exception, what));
  }

  /// Runs the one final callback and ends the actor.
  void finish(end_kind kind, caf::error reason = {}) {
    if (done_)
      return;
    done_ = true;
    ++timer_gen_;
    if (conf_->peers)
      conf_->peers->ended(peer_, address());
    if (handler_) {
      try {
        switch (kind) {
          case end_kind::close:
          case end_kind::handler_close: handler_->handle_close(sock_); break;
          case end_kind::timeout: handler_->handle_timeout(sock_); break;
          case end_kind::shutdown: handler_->handle_shutdown(sock_); break;
          case end_kind::error:
          case end_kind::exception: handler_->handle_error(reason, sock_); break;
        }
      } catch (const std::exception& ex) {
        log(log_level::error, "atoll: UDP handler " + conf_->handler_name +
                                  " raised an exception in its final callback: " + ex.what());
      } catch (...) {
        log(log_level::error, "atoll: UDP handler " + conf_->handler_name +
                                  " raised an exception in its final callback");
      }
    }
    stop_span(kind, reason);
    switch (kind) {
      case end_kind::shutdown: quit(caf::exit_reason::user_shutdown); break;
      case end_kind::error:
      case end_kind::exception: quit(reason); break;
      default: quit(); break;
    }
  }

  void stop_span(end_kind kind, const caf::error& reason) {
    if (!span_.active())
      return;
    detail::stop_udp_connection_span(span_, sock_.stats(), reason_text(kind), reason);
  }

  /// Outlived its first run: asks the supervisor it was spawned for to
  /// adopt it (an actor that ends in its first run never bothers it). If
  /// that supervisor is gone or refuses, this actor ends as in a stop; a
  /// stopping supervisor stops it itself.
  void request_adoption() {
    if (!adopter_)
      return;
    auto sup = std::move(adopter_);
    adopter_ = nullptr;
    std::vector<caf::actor> me{caf::actor_cast<caf::actor>(this)};
    request(sup, caf::infinite, adopt_children_atom::value, std::move(me))
        .then([](caf::ok_atom) {},
              [this](caf::error& err) {
                if (err != errc::shutting_down)
                  finish(end_kind::shutdown);
              });
  }

  void give_back_slot() noexcept {
    if (std::exchange(holds_slot_, false) && conf_->slots)
      conf_->slots->give_back();
  }

  void cleanup(const caf::error& reason) {
    give_back_slot();
    // Killed (or ended without `finish`): the peer entry and span still end.
    if (!done_) {
      done_ = true;
      if (conf_->peers)
        conf_->peers->ended(peer_, address());
      stop_span(end_kind::error, reason ? reason : caf::make_error(errc::closed, "killed"));
    }
    handler_.reset();
  }

  std::shared_ptr<const detail::udp_session_config> conf_;
  udp_peer peer_;
  udp_socket sock_;
  detail::udp_payload first_;
  uint64_t parent_span_;
  /// When the first datagram arrived (monotonic ns): the record's age.
  int64_t started_at_;
  std::chrono::milliseconds timeout_;
  bool holds_slot_; // one of conf_->slots, given back when this actor ends
  caf::actor adopter_; // asked to adopt this actor after its first run
  std::unique_ptr<udp_handler> handler_;
  telemetry::span span_;
  uint64_t timer_gen_ = 0;
  int64_t reported_at_ = 0;   // the last traffic report (0: none yet)
  uint64_t reported_ops_ = 0; // recv_cnt + send_cnt at that report
  bool report_timer_ = false; // a report timer is pending
  bool done_ = false;
};

} // namespace

namespace detail {

telemetry::span start_udp_connection_span(const udp_session_config& conf, const udp_peer& peer,
                                          uint64_t parent, int64_t start_time) {
  telemetry::fields meta;
  if (conf.events->enabled()) {
    if (auto ep = peer.to_endpoint()) {
      meta.set("remote_address", ep->address);
      meta.set("remote_port", uint64_t{ep->port});
    }
    meta.set("handler", conf.handler_name);
  }
  return telemetry::span::start(conf.events.get(), conf.span_prefix.get(), {}, std::move(meta),
                                parent, start_time);
}

void stop_udp_connection_span(telemetry::span& span, const datagram_stats& stats,
                              const char* reason, const caf::error& error) {
  if (!span.enabled()) {
    span.stop(); // nobody listens: build nothing
    return;
  }
  telemetry::fields meta{{"reason", std::string{reason}}};
  if (error)
    meta.set("error", describe(error));
  span.stop({{"send_oct", stats.send_oct},
             {"send_cnt", stats.send_cnt},
             {"recv_oct", stats.recv_oct},
             {"recv_cnt", stats.recv_cnt}},
            std::move(meta));
}

} // namespace detail

caf::actor spawn_udp_session(caf::event_based_actor* parent,
                             std::shared_ptr<const detail::udp_session_config> config,
                             detail::udp_hand_off hand_off) {
  if (config->detached)
    return parent->spawn<udp_session, caf::detached>(std::move(config), std::move(hand_off));
  return parent->spawn<udp_session>(std::move(config), std::move(hand_off));
}

} // namespace atl
