#include "atoll/handlers/detail/connection_actor.hpp"
#include "atoll/handlers/detail/connection_common.hpp"
#include "atoll/handlers/detail/connection_deadlines.hpp"
#include "atoll/handlers/detail/socket_access.hpp"

#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <caf/event_based_actor.hpp>
#include <caf/logger.hpp>
#include <caf/make_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/detail/light_actor.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/runtime/logger.hpp"
#include "atoll/runtime/span.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl {

namespace {

using access = detail::socket_access;

using detail::to_ns;

/// Stop reading while this much output waits (back-pressure).
constexpr uint64_t output_high_watermark = 1 << 20;
/// Reads at a stop to hand the handler what arrived before it.
constexpr int max_reads_at_drain = 64;

} // namespace

/// What the light shell's `on_message` did with a message.
using light_handled = detail::light_actor::handled;

/// See connection_actor.hpp. The class is in namespace atl (not anonymous) as
/// the handler's friend. `Base` is the shell: CAF's `event_based_actor` (the
/// handler may use `self()`; detached connections), or `detail::light_actor`
/// (`connection_spawn_options::light`: a quarter fewer instructions per short
/// connection, half the allocation, no `self()`). The state machine is the same for both; the few places where
/// they differ test `is_light`.
template <class Base>
class basic_connection_actor final : public Base,
                                     public detail::socket_host,
                                     public detail::handler_host,
                                     public io_sink {
public:
  /// The light shell runs this actor.
  static constexpr bool is_light = std::is_base_of_v<detail::light_actor, Base>;

  using resume_result = caf::resumable::resume_result;

  basic_connection_actor(caf::actor_config& cfg, std::shared_ptr<const connection_config> conf,
                         accepted_connection hand_off)
    : Base(cfg),
      conf_(std::move(conf)),
      hand_off_(std::make_unique<accepted_connection>(std::move(hand_off))) {
  }

  const char* name() const override {
    return "atoll.connection";
  }

  /// The event_based_actor shell's first run.
  caf::behavior make_behavior() {
    this->set_exit_handler([this](caf::exit_msg& msg) { on_exit(msg); });
    this->set_exception_handler([this](std::exception_ptr& ep) { return on_uncaught(ep); });
    this->set_default_handler(caf::drop);
    if (!start())
      return {};
    return gated_ ? caf::behavior{internal_handlers()} : full_behavior();
  }

  // -- the light shell's hooks ------------------------------------------------------

  /// The light shell's first run.
  void on_start() {
    start();
  }

  /// A mailbox message in the light shell: the internal ones by their types,
  /// then the handler's (skipped while they are gated), then CAF's `drop`.
  light_handled on_message(caf::mailbox_element& x) {
    auto& content = x.content();
    if (content.match_elements<socket_ready_atom, int, uint32_t, uint32_t>()) {
      on_socket_ready(content.get_as<uint32_t>(2), content.get_as<uint32_t>(3));
      return light_handled::consumed;
    }
    if (content.match_elements<reactor_timer_atom, uint64_t>()) {
      on_timer();
      return light_handled::consumed;
    }
    if (content.match_elements<connection_info_atom>()) {
      if (!has_sock_)
        this->reply(caf::make_error(errc::closed, "the connection ended"));
      else
        this->reply(caf::make_message(record()));
      return light_handled::consumed;
    }
    if (gated_)
      return light_handled::skipped;
    if (user_) {
      auto res = this->invoke(user_, x);
      if (res == caf::match_case::skip)
        return light_handled::skipped;
      if (res == caf::match_case::match)
        return light_handled::consumed;
    }
    this->drop(x);
    return light_handled::consumed;
  }

  /// The light shell's exit messages (other than `kill`).
  void on_exit_message(caf::exit_msg& msg) {
    on_exit(msg);
  }

  /// The light shell's uncaught exceptions.
  caf::error on_exception(std::exception_ptr& ep) {
    return on_uncaught(ep);
  }

  /// Sets the connection up and opens it (both shells' first run); false if
  /// it could not start (having quit).
  bool start() {
    if (!set_up())
      return false;
    try {
      user_ = handler_->message_handlers(sock_);
    } catch (const std::exception& ex) {
      log_exception(ex.what());
      access::close_now(sock_);
      phase_ = phase::finished;
      this->quit(caf::make_error(errc::handler_exception, ex.what()));
      return false;
    }
    // Internal messages first, then the handler's own. The handler's wait
    // (skipped, in order) until the connection is open: none runs before
    // `handle_connection` or during a transport switch's handshake.
    in_make_behavior_ = true; // no become: the behavior is returned
    in_io_ = true;            // registered once, below
    start_connection();       // a clear connection opens right here
    if (phase_ == phase::open && reading_ && detail::first_read_worth_trying()) {
      // A speculative first read: when clients send their request with the
      // connection, its bytes are there by now. Reading them here saves the
      // readiness event, its delivery and a second run of this actor; if
      // nothing is there, it costs one read that would block (so it is
      // tried only while it recently paid: `first_read_worth_trying`).
      auto received = access::stats(sock_).recv_cnt;
      read_loop();
      detail::first_read_tried(phase_ != phase::open
                               || access::stats(sock_).recv_cnt != received);
    }
    in_io_ = false;
    if (user_ && (phase_ == phase::handshaking || phase_ == phase::proxy))
      gate_user_messages();
    in_make_behavior_ = false;
    if (phase_ != phase::finished) {
      report_traffic();
      arm();
    }
    return true;
  }

  // -- socket events without messages (io_sink) ---------------------------------

  /// A poller saw `events`: remember them and, if this actor is idle, take
  /// its turn (as a message would) on the poller's execution unit.
  void post_io(uint32_t events, caf::execution_unit* unit) noexcept override {
    posted_.fetch_or(events);
    if (unblock_mailbox()) {
      intrusive_ptr_add_ref(this->ctrl());
      if (unit != nullptr)
        unit->exec_later(this);
      else
        this->home_system().scheduler().enqueue(this);
    }
  }

  /// Handles posted socket events, then the mailbox. Whoever unblocks the
  /// mailbox runs the actor: the poster (`post_io`), a message's sender, or
  /// this loop after events were posted while the mailbox was being
  /// blocked.
  resume_result resume(caf::execution_unit* unit, size_t max_throughput) override {
    for (;;) {
      if (posted_.load() != 0 && this->getf(caf::abstract_actor::is_initialized_flag)) {
        auto events = posted_.exchange(0); // dropped once shutting down
        if (!shutting_down()) {
          this->context(unit);
          run_posted(events);
          // As CAF's resume does after each message: an actor that quit is
          // cleaned up (monitors, links, attached functions) here.
          if (this->finalize())
            return caf::resumable::done;
          // No message waits (none in the inbox, none fetched and left
          // over): CAF's resume would find nothing to do and block the
          // mailbox, after about 400 instructions of bookkeeping (a fifth
          // of a ping-pong echo's). Blocking it here is the same step, with
          // the same check for events posted meanwhile. (Messages it skipped
          // earlier stay cached either way: CAF looks at them again only
          // after it handles a message.)
          if (block_mailbox()) {
            if (posted_.load() == 0 || !unblock_mailbox())
              return caf::resumable::awaiting_message;
            continue; // events came meanwhile, and this run unblocked it
          }
        }
      }
      auto result = Base::resume(unit, max_throughput);
      if (result != caf::resumable::awaiting_message || posted_.load() == 0
          || !unblock_mailbox())
        return result;
    }
  }

  /// Blocks the mailbox if no message waits (see `resume`).
  bool block_mailbox() noexcept {
    if constexpr (is_light)
      return this->try_block_mailbox();
    else
      return this->mailbox().try_block();
  }

  /// Unblocks a blocked mailbox; true if this call did (see `post_io`).
  bool unblock_mailbox() noexcept {
    if constexpr (is_light)
      return this->try_unblock_mailbox();
    else
      return this->mailbox().try_unblock();
  }

  /// The actor quit or is being cleaned up: posted events are dropped.
  bool shutting_down() const noexcept {
    if constexpr (is_light)
      return this->quitting() || this->getf(caf::abstract_actor::is_cleaned_up_flag);
    else
      return this->getf(caf::abstract_actor::is_shutting_down_flag
                        | caf::abstract_actor::is_cleaned_up_flag);
  }

  // -- socket_host / handler_host -----------------------------------------------

  void output_pending(bool started) override {
    // Queuing more output is no progress: only written bytes are (else a
    // client that never reads, fed by others, would never time out).
    if (started)
      note_send_progress();
    if (!in_io_)
      arm();
  }

  void releasing_fd() noexcept override {
    release_registration();
  }

  void wrote() override {
    report_traffic();
  }

  /// Reports the traffic if a report is due, or sets the timer for it.
  void report_traffic() {
    if (phase_ != phase::finished
        && detail::traffic_reports::may_report(*conf_, deadlines_.report)
        && rare().reports.after_io(sock_, *conf_, deadlines_.report))
      update_timer();
  }

  void apply_verdict(verdict v) override {
    apply(std::move(v));
  }

  caf::event_based_actor* actor() override {
    if constexpr (is_light)
      throw std::logic_error("self() is not available to the handlers of lightweight "
                             "connections (server_options::lightweight_connections)");
    else
      return this;
  }

private:
  /// lingering: the final callback ran, queued output is being written;
  /// half_closed: after a stop, our FIN is out, input is dropped until the
  /// client closes (see `half_close`).
  /// proxy: reading the PROXY header (before the span and the handshake).
  enum class phase : uint8_t {
    starting,
    proxy,
    handshaking,
    open,
    lingering,
    half_closed,
    finished
  };
  enum class end_kind : uint8_t {
    peer_closed,
    local_closed,
    handler_closed,
    timeout,
    shutdown,
    error,
    exception,
    proxy_error,  // PROXY header missing, malformed, late or untrusted
    source_limit, // the client's address has the most connections allowed
  };

  /// The `reason` of the stop event: how the connection ended. An end by
  /// error or timeout before the connection opened is a failed handshake.
  const char* reason_name(end_kind kind) const noexcept {
    switch (kind) {
      case end_kind::peer_closed: return "peer_closed";
      case end_kind::local_closed: return "local_closed";
      case end_kind::handler_closed: return "handler_closed";
      case end_kind::timeout: return opened_ ? "timeout" : "handshake_timeout";
      case end_kind::shutdown: return "shutdown";
      case end_kind::error: return opened_ ? "error" : "handshake_error";
      case end_kind::exception: return "exception";
      case end_kind::proxy_error: return "proxy_error";
      case end_kind::source_limit: return "source_limit";
    }
    return "error";
  }

  caf::message_handler internal_handlers() {
    return {
      [this](socket_ready_atom, int, uint32_t events, uint32_t token) {
        on_socket_ready(events, token);
      },
      [this](reactor_timer_atom, uint64_t) { on_timer(); },
      [this](connection_info_atom) -> caf::result<connection_record> {
        if (!has_sock_)
          return caf::make_error(errc::closed, "the connection ended");
        return record();
      },
    };
  }

  /// Internal messages, then the handler's.
  caf::behavior full_behavior() {
    return user_ ? caf::behavior{internal_handlers().or_else(user_)}
                 : caf::behavior{internal_handlers()};
  }

  /// Keeps the handler's messages in the mailbox (in order) from now on.
  void gate_user_messages() {
    if (!user_ || gated_)
      return;
    gated_ = true;
    if constexpr (is_light) {
      this->hold_skipped(true);
    } else {
      this->set_default_handler(caf::skip);
      if (!in_make_behavior_)
        this->become(caf::behavior{internal_handlers()});
    }
  }

  /// Lets the handler's messages (waiting ones first) run again.
  void open_user_messages() {
    if (!gated_)
      return;
    gated_ = false;
    if constexpr (is_light) {
      this->hold_skipped(false);
      this->requeue_skipped();
    } else {
      this->set_default_handler(caf::drop);
      this->become(full_behavior());
      // Skipped messages return to the queue when a message is consumed; an
      // opening by a posted socket event consumed none.
      this->mailbox().flush_cache();
    }
  }

  /// Makes the actor read again soon (input buffered in the transport does
  /// not make the fd readable): a socket event through the mailbox.
  void wake_for_read() {
    this->enqueue(caf::make_mailbox_element(this->ctrl(), caf::make_message_id(), {},
                                            socket_ready_atom::value, reg_.fd,
                                            io_events::readable, reg_.token),
                  this->context());
  }

  // -- start-up -------------------------------------------------------------------

  /// Takes the socket and builds the transport, handler and socket object.
  /// Returns false (having quit) if the connection cannot be set up.
  bool set_up() {
    caf::error why;
    auto taken = detail::take_connection(*conf_, *hand_off_, why);
    if (!taken) {
      phase_ = phase::finished;
      this->quit(std::move(why));
      return false;
    }
    auto stream = std::move(taken->stream);
    auto peer = std::move(taken->peer);
    try {
      handler_ = conf_->factory();
    } catch (const std::exception& ex) {
      log(log_level::error, "atoll: handler factory of " + conf_->handler_name
                              + " threw: " + ex.what());
    }
    if (!handler_) {
      stream->close();
      phase_ = phase::finished;
      this->quit(caf::make_error(errc::start_failed, "handler factory failed"));
      return false;
    }
    detail::handler_binding::bind(*handler_, this);
    access::open(sock_, std::move(stream), std::move(peer), *conf_, conf_->read_timeout, this);
    has_sock_ = true;
    return true;
  }

  /// Reads the PROXY header if the listener wants one, then opens.
  void start_connection() {
    if (conf_->proxy)
      begin_proxy();
    else
      open_connection();
  }

  /// Admits the client (per-source limit), starts the span, then the
  /// handshake (and `handle_connection`).
  void open_connection() {
    if (!admit())
      return;
    start_span();
    phase_ = phase::handshaking;
    drive_handshake();
  }

  void start_span() {
    detail::start_connection_span(sock_, *conf_, *hand_off_);
    hand_off_.reset(); // all taken
    detail::notify_started(sock_, *conf_, self_handle(),
                           connection_state::handshaking);
  }

  /// This actor's handle; invalid once nothing references it any more (the
  /// cleanup of an unreachable actor must not revive it).
  caf::actor self_handle() const {
    return caf::actor_cast<caf::actor>(this->address());
  }

  /// The phase as the connection's record shows it.
  connection_state state() const noexcept {
    switch (phase_) {
      case phase::starting:
      case phase::handshaking:
        return rare_ && rare_->stop_pending ? connection_state::draining
                                            : connection_state::handshaking;
      case phase::proxy: return connection_state::proxy;
      case phase::open: return connection_state::open;
      case phase::lingering:
      case phase::half_closed: return connection_state::draining;
      case phase::finished: break;
    }
    return connection_state::closed;
  }

  /// The connection's record (`connection_info_atom`).
  connection_record record() {
    auto accepted_at = hand_off_ ? hand_off_->start_time : access::span(sock_).start_time();
    return detail::make_record(sock_, *conf_, self_handle(), state(),
                               accepted_at);
  }

  /// Counts the connection against its source's limit; refuses it (false)
  /// past the limit.
  bool admit() {
    if (!conf_->sources)
      return true;
    if (auto err = detail::acquire_source(*conf_, sock_, rare().source_key)) {
      refuse(end_kind::source_limit, std::move(err));
      return false;
    }
    return true;
  }

  // -- the PROXY protocol -----------------------------------------------------------

  /// Checks that the connection comes from a trusted source, then reads its
  /// header (bounded by the PROXY timeout).
  void begin_proxy() {
    if (auto err = detail::begin_proxy(*conf_, sock_, rare().proxy_reader, deadlines_)) {
      refuse(end_kind::proxy_error, std::move(err));
      return;
    }
    phase_ = phase::proxy;
    update_timer();
    drive_proxy();
  }

  void drive_proxy() {
    auto step = detail::proxy_step(rare_->proxy_reader, sock_, deadlines_);
    if (step.kind == detail::step_result::done)
      open_connection();
    else if (step.kind == detail::step_result::failed)
      refuse(end_kind::proxy_error, std::move(step.error));
    else if (!in_io_)
      arm();
  }

  /// Ends a connection before its handler starts (no callback runs): a
  /// PROXY header error, the per-source limit, or a stop meanwhile. The
  /// span starts and stops (reason and error in the stop event).
  void refuse(end_kind kind, caf::error reason) {
    if (kind == end_kind::proxy_error)
      detail::log_refused(*conf_, sock_, reason);
    if (rare_)
      rare_->proxy_reader.reset();
    if (hand_off_)
      start_span();
    end_kind_ = kind;
    end_reason_ = reason;
    close_now(kind, reason);
    if (kind == end_kind::shutdown)
      this->quit(caf::exit_reason::user_shutdown);
    else
      this->quit(std::move(reason));
  }

  void drive_handshake() {
    // The set-up deadline bounds this handshake (and an upgrade's).
    auto step = detail::handshake_step(*conf_, sock_, deadlines_, handshake_interest_);
    if (step.kind == detail::step_result::done) {
      handshake_done();
    } else if (step.kind == detail::step_result::failed) {
      fail_handshake(std::move(step.error));
    } else {
      // An upgrade's handshake after the stop came: bounded by the drain too.
      if (rare_ && rare_->stop_pending && !detail::bound_handshake_by_drain(*conf_, deadlines_)) {
        end_stopped_handshake();
        return;
      }
      update_timer();
      if (!in_io_)
        arm();
    }
  }

  void handshake_done() {
    phase_ = phase::open;
    opened_ = true;
    handshake_interest_ = 0;
    deadlines_.setup = 0;
    open_user_messages();
    if (rare_ && rare_->upgrade_then) {
      // After a transport upgrade: continue as the switch verdict said.
      auto then = std::move(*rare_->upgrade_then);
      rare_->upgrade_then.reset();
      apply(std::move(then));
      stop_if_pending();
      return;
    }
    if (auto v = guarded([&] { return handler_->handle_connection(sock_); }))
      apply(std::move(*v));
    stop_if_pending();
  }

  /// Takes up a stop that came during the handshake, now that the
  /// connection is open (see `on_exit`).
  void stop_if_pending() {
    if (!rare_ || !rare_->stop_pending || phase_ == phase::handshaking)
      return; // none, or another handshake (an upgrade) first: its end takes it up
    rare_->stop_pending = false;
    if (phase_ == phase::open)
      drain();
  }

  /// A stop that comes during a handshake waits for it, within the drain's
  /// deadline; with neither that nor a handshake timeout, it ends the
  /// connection at once (see `end_stopped_handshake`).
  void defer_stop() {
    rare().stop_pending = true;
    if (!detail::bound_handshake_by_drain(*conf_, deadlines_)) {
      end_stopped_handshake();
      return;
    }
    update_timer();
  }

  /// A handshake the stop could not wait for: a connection the handler never
  /// saw ends without a callback (reason `shutdown`); in an upgrade's
  /// handshake, `handle_error`.
  void end_stopped_handshake() {
    if (rare_) // none yet for a stop that found the client silent (see on_exit)
      rare_->stop_pending = false;
    if (opened_)
      fail_handshake(
        caf::make_error(errc::closed, "the server stopped during an upgrade's handshake"));
    else
      refuse(end_kind::shutdown, caf::exit_reason::user_shutdown);
  }

  // -- socket events ----------------------------------------------------------------

  /// Runs posted events as the socket_ready message would, exceptions
  /// included (they end the connection, as in a message handler).
  void run_posted(uint32_t events) noexcept {
    try {
      on_socket_ready(events, reg_.token);
    } catch (...) {
      auto ep = std::current_exception();
      this->quit(on_uncaught(ep));
    }
  }

  void on_socket_ready(uint32_t events, uint32_t token) {
    if (token != reg_.token || phase_ == phase::finished || phase_ == phase::starting)
      return; // stale event of an earlier registration
    armed_interest_ = 0;
    in_io_ = true;
    if (phase_ == phase::handshaking) {
      drive_handshake();
    } else if (phase_ == phase::proxy) {
      drive_proxy();
    } else if (phase_ == phase::half_closed) {
      drop_input();
    } else {
      if (!access::pending(sock_).empty())
        flush_output();
      if (phase_ == phase::open && reading_
          && (events & (io_events::readable | io_events::hangup | io_events::error
                        | io_events::peer_shutdown)))
        read_loop();
    }
    in_io_ = false;
    report_traffic();
    arm();
  }

  /// Reads and hands data to the handler. `until_empty`: at a stop, reads
  /// until the socket has nothing more (bounded), not one event's worth.
  void read_loop(bool until_empty = false) {
    static thread_local char buf[detail::read_buffer_size];
    auto max_reads = until_empty ? max_reads_at_drain : detail::max_reads_per_event;
    // The transport is looked up each time: a switch_transport verdict
    // replaces it inside this loop.
    for (int i = 0; i < max_reads && phase_ == phase::open && reading_; ++i) {
      if (backpressured())
        return;
      auto res = access::stream(sock_).read(buf, sizeof(buf));
      if (res.bytes > 0) {
        // The first byte's time is kept for subscribers only.
        int64_t unused = 0;
        auto& first_byte_at = access::span(sock_).enabled() ? rare().first_byte_at : unused;
        detail::note_received(sock_, *conf_, {buf, res.bytes}, true, first_byte_at);
        reading_ = false; // until the verdict says proceed
        auto v = guarded([&] { return handler_->handle_data({buf, res.bytes}, sock_); });
        if (!v)
          return;
        apply(std::move(*v));
        if (phase_ != phase::open)
          return;
        if (!until_empty && res.bytes < sizeof(buf) && !access::stream(sock_).has_buffered_input())
          return; // most likely drained: the re-armed event tells otherwise
        continue;
      }
      // No bytes: wait for the next event unless the stream ended.
      if (res.status == io_status::closed)
        finish(end_kind::peer_closed);
      else if (res.status == io_status::failed)
        finish(end_kind::error, res.error);
      return;
    }
    // Input buffered inside the transport does not make the fd readable.
    if (phase_ == phase::open && reading_ && access::stream(sock_).has_buffered_input())
      wake_for_read();
  }

  void flush_output() {
    bool progressed = false;
    auto step = detail::flush_step(sock_, progressed);
    if (progressed)
      note_send_progress();
    switch (step.kind) {
      case detail::step_result::done:
        if (phase_ == phase::lingering)
          complete_close();
        return;
      case detail::step_result::wait:
        return;
      case detail::step_result::failed:
        if (phase_ == phase::lingering)
          end_now(); // broken: no FIN to send
        else if (step.closed)
          finish(end_kind::peer_closed);
        else
          finish(end_kind::error, std::move(step.error));
        return;
    }
  }

  bool backpressured() const noexcept {
    return access::pending(sock_).pending_bytes() > output_high_watermark;
  }

  /// Registers or re-arms the fd with the interest the state calls for.
  void arm() {
    if (phase_ == phase::finished || phase_ == phase::starting || !has_sock_ || sock_.closed())
      return;
    uint32_t interest = 0;
    if (phase_ == phase::handshaking)
      interest = handshake_interest_;
    else if (phase_ == phase::proxy)
      interest = io_events::readable;
    else if (phase_ == phase::open && reading_ && !backpressured())
      interest |= io_events::readable;
    else if (phase_ == phase::half_closed)
      interest = io_events::readable;
    if (!access::pending(sock_).empty())
      interest |= io_events::writable;
    // Detached actors run on their own thread: messages wake it.
    auto* sink = this->getf(caf::abstract_actor::is_detached_flag) ? nullptr : static_cast<io_sink*>(this);
    if (auto err =
            detail::arm_fd(*conf_, sock_, reg_, this, sink,
                           interest, armed_interest_))
      finish(end_kind::error, err);
  }

  // -- verdicts and timeouts --------------------------------------------------------

  /// Runs a handler callback; an exception ends the connection.
  template <class F>
  auto guarded(F&& fn) -> std::optional<decltype(fn())> {
    try {
      return fn();
    } catch (const std::exception& ex) {
      on_callback_exception(ex.what());
    } catch (...) {
      on_callback_exception("non-standard exception");
    }
    return std::nullopt;
  }

  void apply(verdict v) {
    if (phase_ != phase::open && phase_ != phase::handshaking)
      return;
    if (access::closed_by_handler(sock_)) {
      // The handler closed its socket: done, without handle_close.
      finish(end_kind::handler_closed);
      return;
    }
    switch (v.which()) {
      case verdict::kind::proceed:
        proceed(v);
        return;
      case verdict::kind::close:
        finish(end_kind::local_closed);
        return;
      case verdict::kind::error:
        if (v.reason() == errc::timeout)
          finish(end_kind::timeout, v.reason());
        else
          finish(end_kind::error, v.reason());
        return;
      case verdict::kind::switch_transport:
        switch_transport(std::move(v));
        return;
      case verdict::kind::hold:
        hold_input();
        return;
    }
  }

  /// Reads nothing until another verdict: no read interest, no read
  /// deadline.
  void hold_input() {
    reading_ = false;
    deadlines_.read = 0;
    update_timer();
    if (!in_io_)
      arm();
  }

  void proceed(const verdict& v) {
    switch (v.timeout_variant()) {
      case verdict::timeout_kind::standard:
        set_deadline(sock_.read_timeout());
        break;
      case verdict::timeout_kind::once:
        set_deadline(v.timeout());
        break;
      case verdict::timeout_kind::persistent:
        access::set_read_timeout(sock_, v.timeout());
        set_deadline(v.timeout());
        break;
    }
    reading_ = true;
    if (auto step = v.step()) {
      auto arg = *step;
      if (auto next = guarded([&] { return handler_->handle_continue(arg, sock_); }))
        apply(std::move(*next));
      return;
    }
    if (!in_io_) {
      arm();
      // Input the transport buffered while reading was held (TLS records
      // read ahead) does not make the fd readable.
      if (access::stream(sock_).has_buffered_input())
        wake_for_read();
    }
  }

  void switch_transport(verdict v) {
    if (auto err = access::flush_blocking(sock_)) {
      finish(end_kind::error, err);
      return;
    }
    auto next = (*v.upgrade())(access::stream_ptr(sock_));
    if (!next) {
      finish(end_kind::error, next.error());
      return;
    }
    access::replace_stream(sock_, std::move(*next));
    rare().upgrade_then = std::make_unique<verdict>(proceed_part(v));
    gate_user_messages();
    phase_ = phase::handshaking;
    reading_ = false;
    drive_handshake();
  }

  /// The proceed verdict a switch verdict continues with.
  static verdict proceed_part(const verdict& v) {
    switch (v.timeout_variant()) {
      case verdict::timeout_kind::once:
        return verdict::proceed(v.timeout());
      case verdict::timeout_kind::persistent:
        return verdict::proceed(persistent{v.timeout()});
      default:
        if (auto step = v.step())
          return verdict::proceed(continue_step{*step});
        return verdict::proceed();
    }
  }

  /// Client silence is measured from now on.
  void set_deadline(std::chrono::milliseconds timeout) {
    deadlines_.read = detail::connection_deadlines::from_now(timeout);
    update_timer();
  }

  /// Which deadlines count now.
  detail::deadline_phase counting_deadlines() const {
    auto sending = has_sock_ && !access::pending(sock_).empty()
                   && (phase_ == phase::open || phase_ == phase::lingering);
    return {phase_ == phase::handshaking || phase_ == phase::proxy, phase_ == phase::open, sending,
            phase_ == phase::half_closed};
  }

  void update_timer() {
    deadlines_.update_timer(*conf_->io, this,
                            counting_deadlines(), conf_->transport.send_timeout);
  }

  void on_timer() {
    if (phase_ == phase::finished)
      return; // a tick that was in flight when the connection ended
    auto send_ends = phase_ == phase::lingering || conf_->transport.send_timeout_close;
    auto now = telemetry::monotonic_time();
    if (has_sock_ && deadlines_.report != 0)
      rare().reports.on_timer(sock_, *conf_, deadlines_.report, now);
    switch (deadlines_.check(counting_deadlines(), conf_->transport.send_timeout, send_ends,
                             now)) {
      case detail::expired_deadline::half_close:
        end_now();
        return;
      case detail::expired_deadline::setup:
        if (phase_ == phase::proxy)
          refuse(end_kind::proxy_error, detail::proxy_timeout_error(*conf_));
        else if (rare_ && rare_->stop_pending && detail::drain_deadline_passed(*conf_))
          end_stopped_handshake();
        else
          fail_handshake(caf::make_error(errc::timeout, "handshake timeout"));
        return;
      case detail::expired_deadline::read:
        finish(end_kind::timeout, caf::make_error(errc::timeout));
        return;
      case detail::expired_deadline::send:
        if (phase_ == phase::lingering)
          end_now(); // the client does not read: no FIN can follow
        else
          finish(end_kind::error, caf::make_error(errc::timeout, "send timeout"));
        return;
      case detail::expired_deadline::none:
        update_timer();
        return;
    }
  }

  void note_send_progress() {
    deadlines_.send_progress = telemetry::monotonic_time();
    update_timer();
  }

  // -- ending -------------------------------------------------------------------------

  void on_exit(caf::exit_msg& msg) {
    if (!msg.reason || msg.reason == caf::exit_reason::normal)
      return; // normal exits of linked actors do not concern us
    if (phase_ == phase::starting) {
      this->quit(msg.reason);
      return;
    }
    if (phase_ == phase::proxy) {
      refuse(msg.reason == caf::exit_reason::user_shutdown ? end_kind::shutdown : end_kind::error,
             msg.reason);
      return;
    }
    if (msg.reason == caf::exit_reason::user_shutdown) {
      if (phase_ == phase::handshaking) {
        // As in Thousand Island, whose handshake runs before the stop is
        // taken up: the handshake goes on (within its timeout and the
        // drain's), then `handle_connection`, then the stop. A failed
        // handshake ends with `handle_error`, as without a stop. A client
        // that has not sent a byte of its first handshake is not waited
        // for: it is as far along as one not yet accepted, and an idle one
        // would hold the stop for the whole handshake timeout. (An
        // upgrade's client just asked for it: it is waited for.)
        if (!opened_ && !access::stream(sock_).handshake_begun()) {
          end_stopped_handshake();
          return;
        }
        defer_stop();
        return;
      }
      drain();
    } else {
      finish(end_kind::error, msg.reason);
    }
  }

  /// A stop (graceful shutdown): what the client sent before it is read
  /// and handed to the handler, so that it is answered; then
  /// `handle_shutdown`, the queued output, and a FIN (see `complete_close`).
  void drain() {
    if (phase_ == phase::open && reading_) {
      auto was_in_io = std::exchange(in_io_, true);
      read_loop(true);
      in_io_ = was_in_io;
      if (phase_ == phase::handshaking) {
        // A switch_transport verdict for what was read: the upgrade's
        // handshake first, then the stop.
        defer_stop();
        if (!in_io_ && phase_ == phase::handshaking)
          arm();
        return;
      }
    }
    finish(end_kind::shutdown);
    if (!in_io_)
      arm();
  }

  caf::error on_uncaught(std::exception_ptr& ep) {
    auto what = detail::exception_text(ep);
    log_exception(what);
    auto reason = caf::make_error(errc::handler_exception, what);
    if (phase_ == phase::open || phase_ == phase::handshaking) {
      dispatch(end_kind::exception, reason);
      close_now(end_kind::exception, reason);
    }
    return reason;
  }

  void on_callback_exception(const std::string& what) {
    log_exception(what);
    auto reason = caf::make_error(errc::handler_exception, what);
    if (phase_ != phase::open && phase_ != phase::handshaking)
      return; // thrown by a final callback: nothing more to end
    dispatch(end_kind::exception, reason);
    close_now(end_kind::exception, reason);
    this->quit(reason);
  }

  void log_exception(const std::string& what) {
    std::string peer = "?";
    if (has_sock_)
      if (auto ep = sock_.peername())
        peer = to_string(*ep);
    log(log_level::error, "atoll: handler " + conf_->handler_name + " raised an exception ("
                            + what + "); closing its connection from " + peer);
  }

  /// Ends the connection: runs the one final callback for `kind`, then
  /// closes (after writing queued output, unless the stream is broken).
  void finish(end_kind kind, caf::error reason = {}) {
    if (phase_ != phase::open && phase_ != phase::handshaking)
      return;
    dispatch(kind, reason);
    end_kind_ = kind;
    end_reason_ = reason;
    auto broken = kind == end_kind::peer_closed || kind == end_kind::error
                  || kind == end_kind::exception;
    if (!broken && !sock_.closed() && !access::pending(sock_).empty()) {
      // Write the goodbye first; the send timeout bounds the wait.
      phase_ = phase::lingering;
      reading_ = false;
      note_send_progress();
      if (!in_io_)
        arm();
      return;
    }
    complete_close();
  }

  /// Ends a connection whose handshake (the first or an upgrade's) the
  /// failed (OpenSSL's handshake returned an error, which is almost always
  /// the client's doing) or did not finish in time: `handle_error`, but no
  /// log line. Like Thousand Island's shutdown reasons `{handshake, r}` and
  /// `{upgrade, r}`; telemetry shows it (else any scanner of a TLS port fills
  /// the log). A failed registration or a linked actor's error during a
  /// handshake still log.
  void fail_handshake(caf::error reason) {
    quiet_end_ = true;
    finish(end_kind::error, std::move(reason));
  }

  /// Runs the final callback (exceptions in it are logged and ignored).
  void dispatch(end_kind kind, const caf::error& reason) {
    phase_ = phase::lingering; // no further verdicts
    reading_ = false;
    deadlines_.read = 0;
    try {
      switch (kind) {
        case end_kind::peer_closed:
        case end_kind::local_closed:
          handler_->handle_close(sock_);
          break;
        case end_kind::handler_closed:
          break;
        case end_kind::timeout:
          handler_->handle_timeout(sock_);
          break;
        case end_kind::shutdown:
          handler_->handle_shutdown(sock_);
          break;
        case end_kind::error:
          if (!conf_->silent_terminate_on_error && !quiet_end_) // see fail_handshake
            log(log_level::error, "atoll: connection of " + conf_->handler_name
                                    + " ends with an error: " + describe(reason));
          handler_->handle_error(reason, sock_);
          break;
        case end_kind::exception:
          handler_->handle_error(reason, sock_);
          break;
        case end_kind::proxy_error:
        case end_kind::source_limit:
          break; // the handler never started (see refuse)
      }
    } catch (const std::exception& ex) {
      log_exception(ex.what());
    } catch (...) {
      log_exception("non-standard exception");
    }
  }

  void complete_close() {
    if (end_kind_ == end_kind::shutdown && half_close())
      return;
    end_now();
  }

  /// After a stop: sends our FIN (TLS: close_notify first) and keeps reading
  /// and dropping input until the client closes, goes quiet, or the limit
  /// (at most the server's drain deadline) passes. Closing with unread
  /// input would make the kernel reset the connection instead. Returns
  /// false if the socket cannot be half-closed (then it closes at once).
  bool half_close() {
    if (!detail::begin_half_close(*conf_, sock_, deadlines_.half_close_until, deadlines_.half_close_quiet_until))
      return false;
    phase_ = phase::half_closed;
    update_timer();
    if (!in_io_)
      arm();
    return true;
  }

  /// Reads and drops what a half-closed connection's client still sends;
  /// ends the connection when the client closes.
  void drop_input() {
    if (!detail::drop_input(access::stream(sock_), deadlines_.half_close_quiet_until))
      end_now(); // closed by the client, or broken
  }

  /// Closes the socket and ends the actor with the reason of its end kind
  /// (what monitors and links see; see `handler` for the list).
  void end_now() {
    close_now(end_kind_, end_reason_);
    switch (end_kind_) {
      case end_kind::shutdown:
        this->quit(caf::exit_reason::user_shutdown);
        break;
      case end_kind::peer_closed:
        this->quit(caf::make_error(errc::peer_closed)); // the common end: no context text
        break;
      case end_kind::timeout:
        this->quit(caf::make_error(errc::timeout, opened_ ? "read timeout" : "handshake timeout"));
        break;
      case end_kind::local_closed:
      case end_kind::handler_closed:
        this->quit(); // a close the server side chose: the normal end
        break;
      default:
        this->quit(end_reason_ ? end_reason_ : caf::make_error(errc::closed, "connection ended"));
    }
  }

  /// Closes the socket and emits the stop event (once).
  void close_now(end_kind kind, const caf::error& reason) {
    phase_ = phase::finished;
    deadlines_.report = 0; // no more reports: the stop carries the rest
    deadlines_.cancel_timer();
    release_registration();
    release_source();
    std::string error;
    switch (kind) {
      case end_kind::timeout:
        error = "timeout";
        break;
      case end_kind::error:
      case end_kind::exception:
      case end_kind::proxy_error:
      case end_kind::source_limit:
        error = describe(reason);
        break;
      default:
        break;
    }
    // While the fd is open (the record names both ends).
    detail::notify_stopped(sock_, *conf_, self_handle(), reason_name(kind),
                           error);
    access::close_now(sock_);
    detail::stop_connection_span(sock_, reason_name(kind), error,
                                 rare_ ? rare_->first_byte_at : 0);
  }

  /// Takes the fd out of the reactor (before it is closed).
  void release_registration() noexcept {
    detail::release_fd(*conf_, reg_, armed_interest_);
  }

  /// Gives the per-source slot back (once): before the stop event, so that
  /// whoever sees it can connect again from the same source at once.
  void release_source() {
    if (rare_ && rare_->source_key) {
      conf_->sources->release(*rare_->source_key);
      rare_->source_key.reset();
    }
  }

  /// Runs for every exit, kill included: nothing leaks, one stop event.
  /// CAF's clean-up of an actor that ended (by `quit`, an uncaught
  /// exception, or the system's shutdown before or between its runs):
  /// releases the connection first, then lets CAF notify monitors and
  /// links, which therefore see the socket closed: on every path the stop
  /// event precedes the down and exit messages. (An override instead of
  /// an attached function: one allocation and a locked attach less per
  /// connection.) The acceptor's slot goes back here too. Runs in this
  /// actor's context, or where CAF disposes of an actor that is not running.
  bool cleanup(caf::error&& reason, caf::execution_unit* host) override {
    if (!this->getf(caf::abstract_actor::is_cleaned_up_flag)) {
      release_connection(reason);
      if (conf_->slots)
        conf_->slots->give_back();
    }
    return Base::cleanup(std::move(reason), host);
  }

  void release_connection(const caf::error& reason) {
    hand_off_.reset();
    release_source();
    deadlines_.cancel_timer();
    if (!has_sock_)
      return;
    if (phase_ != phase::finished)
      close_now(end_kind::error,
                reason ? reason : caf::make_error(errc::closed, "connection actor ended"));
  }

  /// What only some connections need (a PROXY header, a per-source limit, a
  /// transport upgrade in flight, telemetry subscribers): one pointer in every
  /// actor instead of 40 bytes. The actor's size decides its allocator size
  /// class (with jemalloc: 1,536 bytes up to 1,472 bytes of actor, 1,792 above).
  struct rare_state {
    std::unique_ptr<proxy_header_reader> proxy_reader; // while reading the PROXY header
    std::unique_ptr<std::string> source_key;           // counted by conf_->sources
    std::unique_ptr<verdict> upgrade_then;             // after a transport upgrade
    detail::traffic_reports reports;                   // with telemetry subscribers
    int64_t first_byte_at = 0; // when handle_data got the first bytes (monotonic ns)
    bool stop_pending = false; // a stop came during a handshake (see on_exit)
  };

  rare_state& rare() {
    if (!rare_)
      rare_ = std::make_unique<rare_state>();
    return *rare_;
  }

  // -- state ----------------------------------------------------------------------------

  std::shared_ptr<const connection_config> conf_;
  std::unique_ptr<accepted_connection> hand_off_; // until the connection started
  std::unique_ptr<handler> handler_;
  caf::message_handler user_; // the handler's message handlers
  std::unique_ptr<rare_state> rare_; // made when this connection first needs it
  socket sock_{access::key()}; // inline, open once has_sock_: one allocation less
  fd_registration reg_;
  detail::connection_deadlines deadlines_;
  caf::error end_reason_;
  // Packed: the actor's size decides its allocator size class.
  uint32_t armed_interest_ = 0;
  uint32_t handshake_interest_ = 0;
  std::atomic<uint32_t> posted_{0}; // socket events posted by a poller
  phase phase_ = phase::starting;
  end_kind end_kind_ = end_kind::local_closed;
  bool opened_ = false; // the handshake completed
  bool reading_ = false;
  bool in_io_ = false;
  bool in_make_behavior_ = false;
  bool gated_ = false; // the handler's messages wait (see gate_user_messages)
  bool has_sock_ = false; // sock_ has its connection (set_up succeeded)
  bool quiet_end_ = false; // ended by fail_handshake: not logged
};

using connection_actor = basic_connection_actor<caf::event_based_actor>;
using light_connection_actor = basic_connection_actor<detail::light_actor>;

// Every connection costs one of these (plus CAF's 64-byte control block in
// the same allocation): 1,536 bytes in all is a size class of jemalloc (the
// next is 1,792) and 64 bytes less of glibc's; a light one fits in 768 bytes
// (jemalloc's class after 640). Checked where it was measured (CAF 0.17.6,
// x86-64 with libstdc++).
#if CAF_VERSION == 1706 && defined(__x86_64__) && defined(__GLIBCXX__)
static_assert(sizeof(caf::actor_storage<connection_actor>) <= 1536,
              "connection_actor grew past its allocator size class; see the comment");
static_assert(sizeof(caf::actor_storage<light_connection_actor>) <= 768,
              "light_connection_actor grew past its allocator size class; see the comment");
#endif

namespace {

/// What `spawn` does for a scheduled actor, without installing CAF's logger
/// in the calling thread first (`spawn_impl`'s CAF_SET_LOGGER_SYS): with
/// that logger present, `launch` records the new actor's id around itself
/// in a locked hash map (twice), for log lines that Debian's CAF never
/// writes, and the worker then drops the logger again: about 330
/// instructions of every connection's 13,500.
template <class Actor>
caf::actor make_connection(caf::event_based_actor* parent,
                           std::shared_ptr<const connection_config> config,
                           accepted_connection hand_off, connection_spawn_options how) {
  caf::actor_config cfg{parent->context(), parent};
  if (how.hidden)
    cfg.flags |= caf::abstract_actor::is_hidden_flag;
  auto& sys = parent->home_system();
  if (cfg.host == nullptr)
    cfg.host = sys.dummy_execution_unit();
#if CAF_LOG_LEVEL >= CAF_LOG_LEVEL_DEBUG
  // A CAF built with logging logs each spawn through the thread's logger,
  // which must then be there (`make_actor` does not check).
  CAF_SET_LOGGER_SYS(&sys);
#endif
  auto res = caf::make_actor<Actor, caf::actor>(sys.next_actor_id(), sys.node(), &sys, cfg,
                                                std::move(config), std::move(hand_off));
  auto* ptr = static_cast<Actor*>(caf::actor_cast<caf::abstract_actor*>(res));
#ifdef CAF_ENABLE_ACTOR_PROFILER
  sys.profiler_add_actor(*ptr, cfg.parent);
#endif
  ptr->launch(cfg.host, how.lazy, how.hidden);
  return res;
}

} // namespace

caf::actor spawn_connection(caf::event_based_actor* parent,
                            std::shared_ptr<const connection_config> config,
                            accepted_connection hand_off, connection_spawn_options how) {
  if (how.detached) {
    CAF_ASSERT(!how.lazy && !how.light);
    if (how.hidden)
      return parent->spawn<connection_actor, caf::detached + caf::hidden>(std::move(config),
                                                                           std::move(hand_off));
    return parent->spawn<connection_actor, caf::detached>(std::move(config), std::move(hand_off));
  }
  if (how.light)
    return make_connection<light_connection_actor>(parent, std::move(config),
                                                   std::move(hand_off), how);
  return make_connection<connection_actor>(parent, std::move(config), std::move(hand_off), how);
}

void launch_connection(const caf::actor& connection, caf::execution_unit* unit, bool light) {
  // A lazily spawned actor waits with its mailbox blocked: the same wake-up
  // as a socket event's, with no event.
  auto* ptr = caf::actor_cast<caf::abstract_actor*>(connection);
  if (light)
    static_cast<light_connection_actor*>(ptr)->post_io(0, unit);
  else
    static_cast<connection_actor*>(ptr)->post_io(0, unit);
}

} // namespace atl
