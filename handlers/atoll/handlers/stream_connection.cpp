#include "atoll/handlers/stream_connection.hpp"

#include <algorithm>
#include <optional>

#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "atoll/handlers/detail/connection_actor.hpp"
#include "atoll/handlers/detail/connection_common.hpp"
#include "atoll/handlers/detail/connection_deadlines.hpp"
#include "atoll/handlers/detail/socket_access.hpp"
#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/runtime/logger.hpp"
#include "atoll/runtime/reactor.hpp"

namespace atl {

using access = detail::socket_access;

namespace {

/// `(stream_stop_atom)`: to `self` from itself when the server's stop
/// arrived; behind every `stream_data_atom` sent before it.
using stream_stop_atom = caf::atom_constant<caf::atom("strmstop")>;

} // namespace

// -- connection_hand_off ---------------------------------------------------------

connection_hand_off::connection_hand_off() = default;

connection_hand_off::connection_hand_off(std::shared_ptr<const connection_config> config,
                                         accepted_connection accepted)
  : config_(std::move(config)),
    accepted_(std::make_unique<accepted_connection>(std::move(accepted))) {
}

connection_hand_off::connection_hand_off(connection_hand_off&&) noexcept = default;

connection_hand_off& connection_hand_off::operator=(connection_hand_off&&) noexcept = default;

connection_hand_off::~connection_hand_off() = default; // owned_fd closes an unused socket

connection_hand_off::operator bool() const noexcept {
  return accepted_ && accepted_->fd && config_;
}

// -- stream_connection::impl -----------------------------------------------------

/// The connection's state; shared with the cleanup attached to `self`, which
/// runs however the actor ends.
class stream_connection::impl final : public detail::socket_host {
public:
  enum class phase : uint8_t {
    idle,        // before start
    proxy,       // reading the PROXY header
    handshaking, // transport handshake
    open,
    closing,     // close(): writing queued output
    draining,    // drain(): writing queued output before the FIN
    half_closed, // drain(): FIN sent, dropping input
    finished,
  };

  impl(caf::event_based_actor* self, connection_hand_off hand_off)
    : self_(self), conf_(std::move(hand_off.config_)), hand_off_(std::move(hand_off.accepted_)) {
  }

  ~impl() override {
    end(opened_ ? "local_closed" : "error", {});
  }

  // -- the public operations -------------------------------------------------------

  void start() {
    if (phase_ != phase::idle)
      return;
    if (!conf_ || !hand_off_) {
      fail_setup(caf::make_error(errc::closed, "no connection was handed off"));
      return;
    }
    caf::error why;
    auto taken = detail::take_connection(*conf_, *hand_off_, why);
    if (!taken) {
      fail_setup(why ? why : caf::make_error(errc::closed, "the client is gone"));
      return;
    }
    sock_.emplace(access::key());
    access::open(*sock_, std::move(taken->stream), std::move(taken->peer), *conf_,
                 conf_->read_timeout, this);
    if (conf_->proxy) {
      if (auto err = detail::begin_proxy(*conf_, *sock_, proxy_reader_, deadlines_)) {
        refuse("proxy_error", std::move(err));
        return;
      }
      phase_ = phase::proxy;
      update_timer();
      drive_proxy();
      return;
    }
    open_connection();
  }

  void activate(std::optional<std::chrono::milliseconds> timeout) {
    if (phase_ != phase::open || active_ || stopping_)
      return; // a stop reads nothing more (but `read_available`)
    active_ = true;
    auto limit = timeout ? *timeout : sock_->read_timeout();
    deadlines_.read = detail::connection_deadlines::from_now(limit);
    update_timer();
    if (access::stream(*sock_).has_buffered_input()) {
      // Buffered inside the transport: the fd will not tell.
      self_->send(caf::actor_cast<caf::actor>(self_), socket_ready_atom::value, reg_.fd,
                  io_events::readable, reg_.token);
      return;
    }
    if (!first_read_tried_) {
      // A speculative first read, as the built-in connection actor does
      // (and only while it recently paid on this thread): when clients send
      // their request with the connection, its bytes are there by now;
      // reading them here saves the readiness event and its message. Only
      // the first time: later, a read that would block is the likely
      // outcome.
      first_read_tried_ = true;
      if (detail::first_read_worth_trying()) {
        auto received = access::stats(*sock_).recv_cnt;
        in_io_ = true;
        read_once();
        in_io_ = false;
        detail::first_read_tried(phase_ != phase::open || eof_
                                 || access::stats(*sock_).recv_cnt != received);
        report_traffic();
      }
    }
    arm();
  }

  caf::expected<std::string> read_available(size_t max) {
    if (phase_ != phase::open || eof_)
      return caf::make_error(errc::closed, "the connection is not open");
    std::string out;
    char buf[4096];
    while (out.size() < max) {
      auto res = access::stream(*sock_).read(buf, std::min(sizeof(buf), max - out.size()));
      if (res.bytes > 0) {
        out.append(buf, res.bytes);
        continue;
      }
      if (res.status == io_status::closed) {
        eof_ = true;
        break;
      }
      if (res.status == io_status::failed) {
        if (out.empty())
          return res.error;
        break;
      }
      break; // nothing more for now
    }
    if (out.empty() && eof_)
      return caf::make_error(errc::closed, "the client closed the connection");
    if (!out.empty()) {
      detail::note_received(*sock_, *conf_, out, false, first_byte_at_);
      report_traffic();
    }
    return out;
  }

  void close() {
    switch (phase_) {
      case phase::open:
        if (!access::pending(*sock_).empty()) {
          phase_ = phase::closing;
          active_ = false;
          note_send_progress();
          arm();
          return;
        }
        end("local_closed", {});
        self_->quit();
        return;
      case phase::closing:
      case phase::draining:
      case phase::half_closed:
        return; // already ending
      default:
        end(opened_ ? "local_closed" : "error", {});
        self_->quit();
    }
  }

  void drain() {
    switch (phase_) {
      case phase::open:
      case phase::closing:
        phase_ = phase::draining;
        active_ = false;
        if (access::pending(*sock_).empty()) {
          half_close();
          return;
        }
        note_send_progress();
        arm();
        return;
      case phase::draining:
      case phase::half_closed:
        return;
      default:
        end("shutdown", {});
        self_->quit(caf::exit_reason::user_shutdown);
    }
  }

  void on_stop(std::function<void()> answer) {
    on_stop_ = std::move(answer);
  }

  /// The server's stop: in an open connection, nothing more is read for
  /// `activate` and the stop is taken up behind the `stream_data_atom`
  /// messages already sent (an exit message overtakes them).
  bool handle_exit(const caf::exit_msg& msg) {
    if (msg.reason != caf::exit_reason::user_shutdown)
      return false;
    if (stopping_)
      return true;
    stopping_ = true;
    if (phase_ == phase::open) {
      active_ = false;
      deadlines_.read = 0;
      arm();
      notify(stream_stop_atom::value);
      return true;
    }
    if (phase_ == phase::handshaking && !access::stream(*sock_).handshake_begun()) {
      // A client that has not sent a byte of its handshake is not waited
      // for (as in the built-in connection actor).
      end("shutdown", {});
      self_->quit(caf::exit_reason::user_shutdown);
      return true;
    }
    if (phase_ == phase::handshaking && detail::bound_handshake_by_drain(*conf_, deadlines_)) {
      // As the built-in connection actor: the handshake goes on (within
      // the drain's deadline), then the open, then the stop.
      update_timer();
      return true;
    }
    if (phase_ == phase::finished)
      self_->quit(caf::exit_reason::user_shutdown);
    else
      drain(); // setting up: ends now; closing, draining: goes on
    return true;
  }

  /// The stop, behind every byte read before it.
  void on_stop_turn() {
    if (phase_ == phase::open && on_stop_) {
      auto answer = on_stop_; // may replace itself
      answer();
    }
    if (phase_ == phase::open)
      drain();
    else if (phase_ == phase::finished)
      self_->quit(caf::exit_reason::user_shutdown); // ended meanwhile
    // else: a `close()` or `drain()` in progress goes on
  }

  caf::message_handler handlers() {
    return {
      [this](stream_stop_atom) { on_stop_turn(); },
      [this](socket_ready_atom, int, uint32_t events, uint32_t token) {
        on_socket_ready(events, token);
      },
      [this](reactor_timer_atom, uint64_t) { on_timer(); },
      [this](connection_info_atom) -> caf::result<connection_record> {
        if (!sock_)
          return caf::make_error(errc::closed, "the connection ended");
        auto accepted_at = hand_off_ ? hand_off_->start_time : access::span(*sock_).start_time();
        return detail::make_record(*sock_, *conf_, self_handle(), state(), accepted_at);
      },
    };
  }

  /// `self_`'s handle; invalid once nothing references it any more (the
  /// cleanup of an unreachable actor must not revive it).
  caf::actor self_handle() const {
    return caf::actor_cast<caf::actor>(self_->address());
  }

  /// The phase as the connection's record shows it.
  connection_state state() const noexcept {
    switch (phase_) {
      case phase::idle: return connection_state::handshaking;
      case phase::handshaking:
        return stopping_ ? connection_state::draining : connection_state::handshaking;
      case phase::proxy: return connection_state::proxy;
      case phase::open: return connection_state::open;
      case phase::closing:
      case phase::draining:
      case phase::half_closed: return connection_state::draining;
      case phase::finished: break;
    }
    return connection_state::closed;
  }

  /// Starts the connection span and tells the server's subscribers.
  void start_span() {
    detail::start_connection_span(*sock_, *conf_, *hand_off_);
    hand_off_.reset();
    detail::notify_started(*sock_, *conf_, self_handle(), connection_state::handshaking);
  }

  /// Runs when `self` ends, however it ends.
  void on_actor_end(const caf::error& reason) {
    if (phase_ == phase::finished)
      return;
    if (reason == caf::exit_reason::user_shutdown)
      end("shutdown", {});
    else if (!reason || reason == caf::exit_reason::normal)
      end(opened_ ? "local_closed" : "error", {});
    else
      end("error", describe(reason));
  }

  bool is_open() const noexcept {
    return phase_ == phase::open;
  }

  caf::event_based_actor* self() const noexcept {
    return self_;
  }

  bool has_socket() const noexcept {
    return sock_.has_value();
  }

  atl::socket& socket() {
    return *sock_;
  }

  // -- socket_host -----------------------------------------------------------------

  void releasing_fd() noexcept override {
    release_registration();
  }

  void output_pending(bool started) override {
    if (started)
      note_send_progress();
    if (!in_io_)
      arm();
  }

  void wrote() override {
    report_traffic();
  }

  /// Reports the traffic if a report is due, or sets the timer for it.
  void report_traffic() {
    if (phase_ != phase::finished && reports_.after_io(*sock_, *conf_, deadlines_.report))
      update_timer();
  }

private:
  // -- set-up ----------------------------------------------------------------------

  void open_connection() {
    if (auto err = detail::acquire_source(*conf_, *sock_, source_key_)) {
      refuse("source_limit", std::move(err));
      return;
    }
    start_span();
    phase_ = phase::handshaking;
    deadlines_.setup = 0;
    drive_handshake();
  }

  void drive_proxy() {
    auto step = detail::proxy_step(proxy_reader_, *sock_, deadlines_);
    if (step.kind == detail::step_result::done)
      open_connection();
    else if (step.kind == detail::step_result::failed)
      refuse("proxy_error", std::move(step.error));
    else if (!in_io_)
      arm();
  }

  void drive_handshake() {
    auto step = detail::handshake_step(*conf_, *sock_, deadlines_, handshake_interest_);
    if (step.kind == detail::step_result::done) {
      phase_ = phase::open;
      opened_ = true;
      deadlines_.setup = 0;
      handshake_interest_ = 0;
      notify(stream_open_atom::value);
      if (stopping_) {
        // The stop came during the handshake: taken up after the open.
        active_ = false;
        deadlines_.read = 0;
        notify(stream_stop_atom::value);
      }
    } else if (step.kind == detail::step_result::failed) {
      fail("handshake_error", std::move(step.error));
      stop_after_failed_handshake();
    } else {
      update_timer();
      if (!in_io_)
        arm();
    }
  }

  /// Ends a connection before it opened because of the PROXY header or the
  /// per-source limit (logged like the built-in connection actor does).
  void refuse(const char* reason, caf::error err) {
    if (std::string{reason} == "proxy_error")
      detail::log_refused(*conf_, *sock_, err);
    proxy_reader_.reset();
    if (hand_off_)
      start_span();
    fail(reason, std::move(err));
  }

  /// The set-up failed before there was a socket.
  void fail_setup(caf::error err) {
    phase_ = phase::finished;
    hand_off_.reset();
    notify(stream_error_atom::value, std::move(err));
  }

  /// Ends the connection with an error and tells `self`.
  void fail(const char* reason, caf::error err) {
    end(reason, std::string{reason} == "timeout" ? "timeout" : describe(err));
    notify(stream_error_atom::value, std::move(err));
  }

  /// A stop that waited for a handshake which then failed: taken up after
  /// the error (it ends the actor, as it would have at once without the
  /// handshake), so that a process that does not close on the error cannot
  /// hold the server's stop.
  void stop_after_failed_handshake() {
    if (stopping_)
      notify(stream_stop_atom::value);
  }

  /// Sends `xs` to `self` (after what is already in its mailbox).
  template <class... Ts> void notify(Ts&&... xs) {
    self_->send(caf::actor_cast<caf::actor>(self_), std::forward<Ts>(xs)...);
  }

  // -- events ----------------------------------------------------------------------

  void on_socket_ready(uint32_t events, uint32_t token) {
    if (token != reg_.token || phase_ == phase::finished || phase_ == phase::idle)
      return; // stale
    armed_interest_ = 0;
    in_io_ = true;
    switch (phase_) {
      case phase::proxy:
        drive_proxy();
        break;
      case phase::handshaking:
        drive_handshake();
        break;
      case phase::half_closed:
        if (!detail::drop_input(access::stream(*sock_), deadlines_.half_close_quiet_until))
          finish_drain();
        break;
      default:
        if (!access::pending(*sock_).empty())
          flush_output();
        if (phase_ == phase::open && active_ && !stopping_
            && (events & (io_events::readable | io_events::hangup | io_events::error
                          | io_events::peer_shutdown)))
          read_once();
        break;
    }
    in_io_ = false;
    report_traffic();
    arm();
  }

  void read_once() {
    static thread_local char buf[detail::read_buffer_size];
    auto res = access::stream(*sock_).read(buf, sizeof(buf));
    if (res.bytes > 0) {
      active_ = false;
      deadlines_.read = 0;
      detail::note_received(*sock_, *conf_, {buf, res.bytes}, true, first_byte_at_);
      notify(stream_data_atom::value, std::string{buf, res.bytes});
      return;
    }
    // No bytes: stay active and wait unless the stream ended.
    if (res.status == io_status::closed) {
      active_ = false;
      end("peer_closed", {});
      notify(stream_closed_atom::value);
    } else if (res.status == io_status::failed) {
      active_ = false;
      fail("error", res.error);
    }
  }

  void flush_output() {
    bool progressed = false;
    auto step = detail::flush_step(*sock_, progressed);
    if (progressed)
      note_send_progress();
    switch (step.kind) {
      case detail::step_result::done:
        if (phase_ == phase::closing) {
          end("local_closed", {});
          self_->quit();
        } else if (phase_ == phase::draining) {
          half_close();
        }
        return;
      case detail::step_result::wait:
        return;
      case detail::step_result::failed:
        ending_broken(step.error);
        return;
    }
  }

  /// The stream broke (or the client stopped reading) while output waited.
  void ending_broken(const caf::error& err) {
    switch (phase_) {
      case phase::closing:
        end("local_closed", describe(err));
        self_->quit();
        return;
      case phase::draining:
        end("shutdown", describe(err));
        self_->quit(caf::exit_reason::user_shutdown);
        return;
      default:
        active_ = false;
        fail("error", err);
    }
  }

  /// After a stop's output: our FIN (TLS: close_notify), then input is
  /// dropped until the client closes (see `detail::drop_input`).
  void half_close() {
    if (!detail::begin_half_close(*conf_, *sock_, deadlines_.half_close_until, deadlines_.half_close_quiet_until)) {
      finish_drain();
      return;
    }
    phase_ = phase::half_closed;
    update_timer();
    if (!in_io_)
      arm();
  }

  void finish_drain() {
    end("shutdown", {});
    self_->quit(caf::exit_reason::user_shutdown);
  }

  // -- interest and deadlines ------------------------------------------------------

  void arm() {
    if (phase_ == phase::finished || phase_ == phase::idle || !sock_ || sock_->closed())
      return;
    uint32_t interest = 0;
    switch (phase_) {
      case phase::proxy:
      case phase::half_closed:
        interest = io_events::readable;
        break;
      case phase::handshaking:
        interest = handshake_interest_;
        break;
      case phase::open:
        if (active_ && !stopping_)
          interest = io_events::readable;
        break;
      default:
        break;
    }
    if (!access::pending(*sock_).empty())
      interest |= io_events::writable;
    // Events come as messages: `self` may be any actor, detached too.
    if (auto err =
            detail::arm_fd(*conf_, *sock_, reg_, self_,
                           nullptr, interest, armed_interest_))
      ending_broken(err);
  }

  void note_send_progress() {
    deadlines_.send_progress = telemetry::monotonic_time();
    update_timer();
  }

  /// Which deadlines count now.
  detail::deadline_phase counting_deadlines() const {
    auto sending = sock_ && !access::pending(*sock_).empty()
                   && (phase_ == phase::open || phase_ == phase::closing
                       || phase_ == phase::draining);
    return {phase_ == phase::proxy || phase_ == phase::handshaking,
            phase_ == phase::open && active_, sending, phase_ == phase::half_closed};
  }

  void update_timer() {
    deadlines_.update_timer(*conf_->io, self_,
                            counting_deadlines(), conf_->transport.send_timeout);
  }

  void on_timer() {
    if (phase_ == phase::finished)
      return; // a tick that was in flight when the connection ended
    auto send_ends = phase_ != phase::open || conf_->transport.send_timeout_close;
    auto now = telemetry::monotonic_time();
    if (sock_)
      reports_.on_timer(*sock_, *conf_, deadlines_.report, now);
    switch (deadlines_.check(counting_deadlines(), conf_->transport.send_timeout, send_ends,
                             now)) {
      case detail::expired_deadline::half_close:
        finish_drain();
        return;
      case detail::expired_deadline::setup:
        if (phase_ == phase::proxy) {
          refuse("proxy_error", detail::proxy_timeout_error(*conf_));
        } else if (stopping_ && detail::drain_deadline_passed(*conf_)) {
          end("shutdown", {}); // the stop could not wait for the handshake
          self_->quit(caf::exit_reason::user_shutdown);
        } else {
          fail("handshake_timeout", caf::make_error(errc::timeout, "handshake timeout"));
          stop_after_failed_handshake();
        }
        return;
      case detail::expired_deadline::read:
        fail("timeout", caf::make_error(errc::timeout, "read timeout"));
        return;
      case detail::expired_deadline::send:
        ending_broken(caf::make_error(errc::timeout, "send timeout"));
        return;
      case detail::expired_deadline::none:
        update_timer();
        return;
    }
  }

  // -- the end ---------------------------------------------------------------------

  /// Closes the socket and stops the span (once); callers tell `self`
  /// what they need to.
  void end(const char* reason, const std::string& error) {
    if (phase_ == phase::finished)
      return;
    phase_ = phase::finished;
    active_ = false;
    deadlines_.report = 0; // no more reports: the stop carries the rest
    deadlines_.cancel_timer();
    release_registration();
    if (source_key_) {
      conf_->sources->release(*source_key_);
      source_key_.reset();
    }
    hand_off_.reset();
    proxy_reader_.reset();
    if (!sock_)
      return;
    // While the fd is open (the record names both ends).
    detail::notify_stopped(*sock_, *conf_, self_handle(), reason, error);
    access::close_now(*sock_);
    detail::stop_connection_span(*sock_, reason, error, first_byte_at_);
  }

  /// Takes the fd out of the reactor (before it is closed).
  void release_registration() noexcept {
    detail::release_fd(*conf_, reg_, armed_interest_);
  }

  caf::event_based_actor* self_;
  std::shared_ptr<const connection_config> conf_;
  std::unique_ptr<accepted_connection> hand_off_; // until the span started
  std::unique_ptr<proxy_header_reader> proxy_reader_;
  std::unique_ptr<std::string> source_key_;
  std::optional<atl::socket> sock_;
  fd_registration reg_;
  detail::connection_deadlines deadlines_;
  detail::traffic_reports reports_;
  int64_t first_byte_at_ = 0;
  uint32_t armed_interest_ = 0;
  uint32_t handshake_interest_ = 0;
  phase phase_ = phase::idle;
  bool opened_ = false;
  bool active_ = false;
  bool eof_ = false;
  bool in_io_ = false;
  bool first_read_tried_ = false; // the speculative first read of `activate`
  bool stopping_ = false; // the server's stop arrived
  std::function<void()> on_stop_;
};

// -- stream_connection -----------------------------------------------------------

stream_connection::stream_connection(caf::event_based_actor* self, connection_hand_off hand_off)
  : impl_(std::make_shared<impl>(self, std::move(hand_off))) {
  self->attach_functor([weak{std::weak_ptr<impl>{impl_}}](const caf::error& reason) {
    if (auto state = weak.lock())
      state->on_actor_end(reason);
  });
}

stream_connection::~stream_connection() = default;

void stream_connection::start() {
  // The server's stop drains; any other exit reason ends the actor as
  // CAF's default handler does.
  auto* self = impl_->self();
  self->set_exit_handler([self, weak{std::weak_ptr<impl>{impl_}}](caf::exit_msg& msg) {
    auto state = weak.lock();
    if (!state || !state->handle_exit(msg))
      self->quit(std::move(msg.reason));
  });
  impl_->start();
}

void stream_connection::on_stop(std::function<void()> answer) {
  impl_->on_stop(std::move(answer));
}

bool stream_connection::handle_exit(const caf::exit_msg& msg) {
  return impl_->handle_exit(msg);
}

caf::message_handler stream_connection::handlers() {
  return impl_->handlers();
}

void stream_connection::activate(std::optional<std::chrono::milliseconds> timeout) {
  impl_->activate(timeout);
}

bool stream_connection::is_open() const noexcept {
  return impl_->is_open();
}

atl::socket& stream_connection::socket() {
  return impl_->socket();
}

bool stream_connection::has_socket() const noexcept {
  return impl_->has_socket();
}

caf::expected<std::string> stream_connection::read_available(size_t max) {
  return impl_->read_available(max);
}

void stream_connection::close() {
  impl_->close();
}

void stream_connection::drain() {
  impl_->drain();
}

} // namespace atl
