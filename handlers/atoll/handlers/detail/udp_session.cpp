#include "atoll/handlers/detail/udp_session.hpp"

#include <exception>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/logger.hpp>
#include <caf/make_actor.hpp>
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

udp_peer_table::outcome udp_peer_table::route(const udp_peer& peer, detail::udp_payload& payload,
                                               std::shared_ptr<std::atomic<uint32_t>>& queued) {
  return peers_.with_shard(peer, [&](auto& map) {
    auto i = map.find(peer);
    if (i == map.end()) {
      entry e;
      e.queued = std::make_shared<std::atomic<uint32_t>>(0);
      queued = e.queued;
      map.emplace(peer, std::move(e));
      return outcome::start;
    }
    if (i->second.actor) {
      if (i->second.queued->load(std::memory_order_acquire) >= max_queued)
        return outcome::dropped;
      i->second.queued->fetch_add(1, std::memory_order_acq_rel);
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
    i->second.queued->fetch_add(static_cast<uint32_t>(i->second.pending.size()),
                                std::memory_order_acq_rel);
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

/// Where a session core runs: its handler actor, or (per datagram) the
/// listener that received the datagram, until the handler needs an actor.
class session_owner {
public:
  virtual ~session_owner() = default;

  /// The handler's actor (`self()`); an inline run creates it here.
  virtual caf::event_based_actor* actor() noexcept = 0;

  /// Ends the handler's actor with `reason` (none: normally).
  virtual void end(caf::error reason) = 0;

  /// Whether the handler's actor runs the core now (timers and adoption
  /// wait for it otherwise).
  virtual bool in_actor() const noexcept = 0;
};

/// One handler's session: its handler object, socket, span and verdicts.
/// Heap-allocated, so that the socket a handler captured by reference stays
/// where it is when an inline first run hands the session to an actor.
class udp_session_core final : public detail::handler_host {
public:
  udp_session_core(std::shared_ptr<const detail::udp_session_config> conf,
                   detail::udp_hand_off& hand_off)
    : conf_(std::move(conf)), peer_(hand_off.peer), sock_(std::move(hand_off.sock), peer_),
      parent_span_(hand_off.parent_span), started_at_(hand_off.first.received_at),
      timeout_(conf_->read_timeout), holds_slot_(std::exchange(hand_off.holds_slot, false)),
      adopter_(std::move(hand_off.adopter)),
      stops_at_start_(conf_->stops->load(std::memory_order_acquire)),
      queued_(std::move(hand_off.queued)) {}

  udp_session_core(const udp_session_core&) = delete;
  udp_session_core& operator=(const udp_session_core&) = delete;

  ~udp_session_core() override {
    give_back_slot(); // never ran, or ended: the slot goes back
  }

  void set_owner(session_owner* owner) noexcept {
    owner_ = owner;
  }

  bool done() const noexcept {
    return done_;
  }

  /// Runs on a thread of its own (its handler may block).
  bool detached() const noexcept {
    return conf_->detached;
  }

  // -- handler_host --------------------------------------------------------------

  void apply_verdict(verdict v) override {
    apply(std::move(v));
  }

  caf::event_based_actor* actor() noexcept override {
    return owner_->actor();
  }

  // -- the first datagram ----------------------------------------------------------

  /// Creates the handler, runs `handle_connection`, collects its message
  /// handlers and delivers the first datagram (everything under `guarded`).
  void first_run(std::string_view data, const std::optional<std::string>& destination,
                 int interface_index) {
    span_ = detail::start_udp_connection_span(*conf_, peer_, parent_span_, started_at_);
    detail::udp_socket_access::wire(sock_, &span_, conf_->send_event.get());
    detail::udp_socket_access::set_batched(sock_, true);
    if (!guarded([this] {
          handler_ = conf_->factory();
          detail::handler_binding::bind(*handler_, this);
          auto v = handler_->handle_connection(sock_);
          if (v.which() != verdict::kind::proceed) {
            apply(std::move(v));
            return;
          }
          user_ = handler_->message_handlers(sock_);
        })
        || done_)
      return;
    if (span_.enabled())
      span_.emit("ready", {{"monotonic_time", telemetry::monotonic_time()}});
    deliver(data, destination, interface_index);
  }

  /// The handler's own message handlers (once, for the actor's behavior).
  caf::message_handler take_user_handlers() {
    return std::move(user_);
  }

  /// The supervisor to ask for adoption (once).
  caf::actor take_adopter() {
    return std::exchange(adopter_, caf::actor{});
  }

  /// Arms the read timeout a verdict asked for before the actor ran.
  void arm_pending() {
    if (auto wait = std::exchange(pending_wait_, std::nullopt))
      arm(*wait);
  }

  // -- messages --------------------------------------------------------------------

  /// A datagram from the mailbox (per peer): dropped once the server
  /// stops, since the stop waits behind every datagram queued before it.
  void deliver(const detail::udp_payload& p) {
    if (queued_)
      queued_->fetch_sub(1, std::memory_order_acq_rel);
    if (conf_->stops->load(std::memory_order_acquire) != stops_at_start_)
      return;
    deliver(p.data, p.destination, p.interface_index);
  }

  void on_timeout(uint64_t gen) {
    if (gen == timer_gen_ && !done_)
      finish(end_kind::timeout);
  }

  void on_report_timer() {
    report_timer_ = false;
    if (!done_ && conf_->progress_event && span_.enabled(*conf_->progress_event)
        && traffic_changed())
      report(telemetry::monotonic_time());
  }

  /// What `connection_info_atom` answers.
  connection_record record() {
    connection_record r;
    r.handle = caf::actor_cast<caf::actor>(owner_->actor());
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

  /// The supervisor is gone or refused the actor: it ends as in a stop.
  void adoption_refused() {
    finish(end_kind::shutdown);
  }

  /// The actor ends (however): the slot goes back; if it ended without
  /// `finish` (killed), the peer entry and span end too.
  void cleanup(const caf::error& reason, const caf::actor_addr& self) {
    give_back_slot();
    if (!done_) {
      done_ = true;
      if (conf_->peers)
        conf_->peers->ended(peer_, self);
      stop_span(end_kind::error, reason ? reason : caf::make_error(errc::closed, "killed"));
    }
    handler_.reset();
  }

private:
  /// Runs a callback; an exception ends the handler through `handle_error`.
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

  void deliver(std::string_view data, const std::optional<std::string>& destination,
               int interface_index) {
    if (done_)
      return;
    detail::udp_socket_access::received(sock_, data.size());
    detail::udp_socket_access::set_destination(sock_, destination, interface_index);
    if (conf_->recv_event && span_.enabled(*conf_->recv_event))
      span_.emit(*conf_->recv_event, telemetry::fields{{"data", std::string{data}}});
    guarded([this, data] {
      auto v = handler_->handle_data(data, sock_);
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
    auto* self = owner_->actor();
    self->delayed_send(self, std::chrono::nanoseconds{due - now}, udp_report_atom::value);
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
  /// plain `proceed` ends a per-datagram handler.
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

  void arm(std::chrono::milliseconds wait) {
    ++timer_gen_;
    pending_wait_.reset();
    if (wait == infinite)
      return;
    if (!owner_->in_actor()) {
      pending_wait_ = wait; // armed when the actor runs
      return;
    }
    auto* self = owner_->actor();
    self->delayed_send(self, wait, udp_timeout_atom::value, timer_gen_);
  }

  void on_callback_exception(const std::string& what) {
    std::string peer = "?";
    if (auto ep = peer_.to_endpoint())
      peer = to_string(*ep);
    log(log_level::error, "atoll: UDP handler " + conf_->handler_name + " raised an exception (" +
                              what + "); ending its handler for " + peer);
    finish(end_kind::exception, caf::make_error(errc::handler_exception, what));
  }

  /// Runs the one final callback and ends the handler.
  void finish(end_kind kind, caf::error reason = {}) {
    if (done_)
      return;
    done_ = true;
    ++timer_gen_;
    pending_wait_.reset();
    if (conf_->peers)
      conf_->peers->ended(peer_, owner_->actor()->address());
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
      case end_kind::shutdown: owner_->end(caf::exit_reason::user_shutdown); break;
      case end_kind::error:
      case end_kind::exception: owner_->end(std::move(reason)); break;
      default: owner_->end(caf::error{}); break;
    }
  }

  void stop_span(end_kind kind, const caf::error& reason) {
    if (!span_.active())
      return;
    detail::stop_udp_connection_span(span_, sock_.stats(), reason_text(kind), reason);
  }

  void give_back_slot() noexcept {
    if (std::exchange(holds_slot_, false) && conf_->slots)
      conf_->slots->give_back();
  }

  std::shared_ptr<const detail::udp_session_config> conf_;
  session_owner* owner_ = nullptr;
  udp_peer peer_;
  udp_socket sock_;
  uint64_t parent_span_;
  /// When the first datagram arrived (monotonic ns): the record's age.
  int64_t started_at_;
  std::chrono::milliseconds timeout_;
  bool holds_slot_; // one of conf_->slots, given back when the session ends
  caf::actor adopter_; // asked to adopt the actor (detached: before its first run)
  uint64_t stops_at_start_; // conf_->stops when the session began
  std::shared_ptr<std::atomic<uint32_t>> queued_; // per peer: in the mailbox
  std::unique_ptr<udp_handler> handler_;
  caf::message_handler user_; // the handler's own, until the actor takes them
  telemetry::span span_;
  std::optional<std::chrono::milliseconds> pending_wait_; // a timeout before the actor ran
  uint64_t timer_gen_ = 0;
  int64_t reported_at_ = 0;   // the last traffic report (0: none yet)
  uint64_t reported_ops_ = 0; // recv_cnt + send_cnt at that report
  bool report_timer_ = false; // a report timer is pending
  bool done_ = false;
};

/// A UDP handler actor: runs a session core's callbacks for its mailbox.
class udp_session final : public caf::event_based_actor, public session_owner {
public:
  /// Runs the whole session, from the first datagram.
  udp_session(caf::actor_config& cfg, std::shared_ptr<const detail::udp_session_config> conf,
              detail::udp_hand_off hand_off)
    : caf::event_based_actor(cfg), core_(std::make_unique<udp_session_core>(conf, hand_off)),
      first_(std::move(hand_off.first)) {
    core_->set_owner(this);
  }

  /// Takes over a session whose first datagram ran inline (`adopt`).
  explicit udp_session(caf::actor_config& cfg) : caf::event_based_actor(cfg) {}

  /// Before the launch of an actor made by the inline run: the session it
  /// continues, and how it ended if it did (its `end` before the actor ran).
  void adopt(std::unique_ptr<udp_session_core> core, std::optional<caf::error> ended) {
    core_ = std::move(core);
    core_->set_owner(this);
    ended_ = std::move(ended);
  }

  /// However the actor ends (CAF calls this before its monitors hear of
  /// it; no allocation, unlike an attached functor).
  void on_exit() override {
    if (core_)
      core_->cleanup(fail_state(), address());
  }

  const char* name() const override {
    return "atoll.udp_handler";
  }

  // -- session_owner ---------------------------------------------------------------

  caf::event_based_actor* actor() noexcept override {
    return this;
  }

  void end(caf::error reason) override {
    quit(std::move(reason));
  }

  bool in_actor() const noexcept override {
    return true;
  }

  caf::behavior make_behavior() override {
    // The actor's own handlers are set only if it lives on (most
    // per-datagram actors end in their first run).
    if (!core_)
      return {};
    if (ended_) {
      quit(std::move(*ended_));
      return {};
    }
    if (first_) {
      // A detached handler may block in its first datagram for long: it is
      // adopted first, so that a stop meanwhile waits for it (a kill after
      // the shutdown timeout cannot interrupt a blocked thread either) and
      // then ends it as usual: handle_shutdown, or handle_close for a
      // per-datagram handler whose datagram ended it.
      if (core_->detached())
        request_adoption();
      auto first = std::move(*first_);
      first_.reset();
      core_->first_run(first.data, first.destination, first.interface_index);
    }
    if (core_->done())
      return {};
    set_exit_handler([this](caf::exit_msg& msg) { core_->on_exit_message(msg); });
    set_exception_handler([this](std::exception_ptr& ep) { return core_->on_uncaught(ep); });
    set_default_handler(caf::drop);
    request_adoption();
    core_->arm_pending();
    caf::message_handler internal{
        [this](udp_datagram_atom, detail::udp_payload& p) { core_->deliver(p); },
        [this](udp_timeout_atom, uint64_t gen) { core_->on_timeout(gen); },
        [this](connection_info_atom) { return core_->record(); },
        [this](udp_report_atom) { core_->on_report_timer(); },
    };
    auto user = core_->take_user_handlers();
    return user ? caf::behavior{internal.or_else(user)} : caf::behavior{internal};
  }

private:
  /// Outlived its first run (detached: before it): asks the supervisor it
  /// was spawned for to adopt it (a scheduled actor that ends in its first
  /// run never bothers it). If
  /// that supervisor is gone or refuses, this actor ends as in a stop; a
  /// stopping supervisor stops it itself.
  void request_adoption() {
    auto sup = core_->take_adopter();
    if (!sup)
      return;
    std::vector<caf::actor> me{caf::actor_cast<caf::actor>(this)};
    request(sup, caf::infinite, adopt_children_atom::value, std::move(me))
        .then([](caf::ok_atom) {},
              [this](caf::error& err) {
                if (err != errc::shutting_down)
                  core_->adoption_refused();
              });
  }

  std::unique_ptr<udp_session_core> core_;
  std::optional<detail::udp_payload> first_; // until the first run
  std::optional<caf::error> ended_;         // the inline run ended it
};

/// Runs a per-datagram handler's first datagram inside the listener that
/// received it. The handler gets an actor only if it needs one: when it
/// calls `self()`, or when it outlives the datagram; the actor is made
/// (not yet running) on the spot and launched when the run returns.
class inline_owner final : public session_owner {
public:
  inline_owner(caf::event_based_actor* parent) : parent_(parent) {}

  caf::event_based_actor* actor() noexcept override {
    if (!session_) {
      caf::actor_config cfg{parent_->context(), parent_};
      auto& sys = parent_->home_system();
#if CAF_LOG_LEVEL >= CAF_LOG_LEVEL_DEBUG
      // A CAF built with logging logs each spawn through the thread's
      // logger, which must then be there (`make_actor` does not check).
      CAF_SET_LOGGER_SYS(&sys);
#endif
      handle_ = caf::make_actor<udp_session, caf::actor>(sys.next_actor_id(), sys.node(), &sys,
                                                        cfg);
      session_ = static_cast<udp_session*>(caf::actor_cast<caf::abstract_actor*>(handle_));
    }
    return session_;
  }

  void end(caf::error reason) override {
    ended_ = std::move(reason);
  }

  bool in_actor() const noexcept override {
    return false;
  }

  /// After the run: hands `core` to the actor (made now if the session
  /// lives on) and launches it; a session that ended without one is gone.
  caf::actor finish(std::unique_ptr<udp_session_core> core) {
    if (!session_ && core->done())
      return {};
    actor();
    session_->adopt(std::move(core), std::move(ended_));
    session_->launch(parent_->context(), false, false);
    session_ = nullptr;
    return std::move(handle_);
  }

private:
  caf::event_based_actor* parent_;
  caf::actor handle_;
  udp_session* session_ = nullptr;
  std::optional<caf::error> ended_;
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

void run_udp_session(caf::event_based_actor* parent,
                     std::shared_ptr<const detail::udp_session_config> config,
                     detail::udp_hand_off& hand_off, std::string_view first) {
  inline_owner owner{parent}; // outlives the core, also when unwinding
  auto core = std::make_unique<udp_session_core>(std::move(config), hand_off);
  core->set_owner(&owner);
  core->first_run(first, hand_off.first.destination, hand_off.first.interface_index);
  static_cast<void>(owner.finish(std::move(core)));
}

} // namespace atl
