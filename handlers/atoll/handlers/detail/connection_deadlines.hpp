// Internal: the deadlines of one connection (set-up, client silence, send
// progress, the drop-input phase after a stop) and the one lazy reactor
// timer that serves them all. Shared by the built-in connection actor and
// `atl::stream_connection`. Not part of the public API.
#pragma once

#include <chrono>
#include <cstdint>

#include <caf/abstract_actor.hpp>

#include "atoll/runtime/reactor.hpp"

namespace atl::detail {

/// Which deadlines count in a connection's current phase.
struct deadline_phase {
  /// Reading the PROXY header or handshaking: the set-up deadline counts.
  bool setting_up = false;
  /// Open and reading: client silence counts.
  bool reading = false;
  /// Output is queued and must make progress within the send timeout.
  bool sending = false;
  /// Dropping input after a stop's FIN: the half-close limits count.
  bool half_closed = false;
};

/// The first deadline found passed, in the order connections check them.
enum class expired_deadline : uint8_t { none, half_close, setup, read, send };

/// The deadlines of one connection, as monotonic ns (0: none). Used on the
/// connection's actor only.
class connection_deadlines {
public:
  /// The PROXY header's or the handshake's deadline.
  int64_t setup = 0;
  /// The read deadline (client silence).
  int64_t read = 0;
  /// When queued output last made progress.
  int64_t send_progress = 0;
  /// After a stop's FIN: the limit of the drop-input phase...
  int64_t half_close_until = 0;
  /// ... and its end unless bytes come.
  int64_t half_close_quiet_until = 0;
  /// When the next traffic report (`progress`) is due. Not an expiry: the
  /// owner reports (see `traffic_reports`) and goes on.
  int64_t report = 0;

  /// Now plus `t`, or 0 (none) for `atl::infinite`.
  static int64_t from_now(std::chrono::milliseconds t) noexcept;

  /// The earliest deadline that counts in `phase`, or the traffic report
  /// if that comes first (0: none).
  int64_t next(deadline_phase phase, std::chrono::milliseconds send_timeout) const noexcept;

  /// The first deadline of `phase` passed at `now`: the half-close limits,
  /// then set-up, read and send. A passed send deadline that does not end
  /// the connection (`send_ends` false) restarts the send period (checked
  /// again one send timeout later) and is not reported.
  expired_deadline check(deadline_phase phase, std::chrono::milliseconds send_timeout,
                         bool send_ends, int64_t now) noexcept;

  /// Moves the timer to the next deadline of `phase` if that comes earlier
  /// than the timer (one lazy timer: when it fires, the owner calls `check`
  /// and then this again). `owner` (the calling actor) gets
  /// `(reactor_timer_atom, 0)`; a reference to it is taken only when the
  /// timer moves, not on every call.
  void update_timer(reactor& io, caf::abstract_actor* owner, deadline_phase phase,
                    std::chrono::milliseconds send_timeout);

  /// Disarms the timer (the connection ends).
  void cancel_timer();

private:
  reactor_timer timer_;
};

} // namespace atl::detail
