// Internal: the steps every kind of connection actor shares (the built-in
// connection actor and `atl::stream_connection`): taking over an accepted
// socket, the connection span, the PROXY source check, dropping input after
// a stop's FIN. Not part of the public API.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>

#include "atoll/handlers/detail/connection_actor.hpp"
#include "atoll/handlers/detail/connection_deadlines.hpp"
#include "atoll/handlers/detail/traffic_report_period.hpp"
#include "atoll/handlers/connection_record.hpp"
#include "atoll/handlers/socket.hpp"
#include "atoll/runtime/telemetry.hpp"

namespace atl::detail {

constexpr int64_t ns_per_ms = 1000000;

/// `t` in nanoseconds.
constexpr int64_t to_ns(std::chrono::milliseconds t) noexcept {
  return t.count() * ns_per_ms;
}

/// After a stop's FIN: input is read and dropped until the client closes or
/// sends nothing for this long (closing with unread input would reset the
/// connection and could destroy the answers still in flight) ...
constexpr int64_t half_close_quiet_ns = 500 * ns_per_ms;
/// ... or for at most this long.
constexpr int64_t half_close_limit_ns = 5000 * ns_per_ms;
/// Reads per socket event before yielding to other messages.
constexpr int max_reads_per_event = 16;
/// The read buffer of connection actors.
constexpr size_t read_buffer_size = 65536;

/// An accepted socket taken over: its transport and its client.
struct taken_connection {
  std::unique_ptr<transport> stream;
  peer_address peer;
};

/// Takes the fd of `hand_off`, finds the client's address, applies the
/// server's socket options and wraps the fd in its transport. Nothing
/// (with `why` empty) if the client is already gone or there was no fd;
/// nothing with `why` set (and logged) if the transport cannot be made. The
/// fd is closed on failure.
std::optional<taken_connection> take_connection(const connection_config& conf,
                                                accepted_connection& hand_off, caf::error& why);

/// Starts the connection span of `sock` (metadata: addresses, PROXY
/// address, handler name) and emits `ready`.
void start_connection_span(socket& sock, const connection_config& conf,
                           const accepted_connection& hand_off);

/// Stops the span of `sock` (if active) with its statistics, `reason` and
/// `error` (empty: none) in the stop event.
void stop_connection_span(socket& sock, const char* reason, const std::string& error,
                          int64_t first_byte_at);

/// The record of the connection on `sock` (actor `self`, accepted at
/// `accepted_at`, monotonic ns) in `state`.
connection_record make_record(socket& sock, const connection_config& conf, caf::actor self,
                              connection_state state, int64_t accepted_at);

/// Tells the server's subscribers (if any) that the connection started.
void notify_started(socket& sock, const connection_config& conf, caf::actor self,
                    connection_state state);

/// Tells the server's subscribers (if any) that the connection stopped
/// (call before the span's stop, while the statistics are final).
void notify_stopped(socket& sock, const connection_config& conf, caf::actor self,
                    const char* reason, const std::string& error);

/// True if `peer` may send a PROXY header (Unix-socket peers always may).
bool trusted_proxy_source(const proxy_protocol_options& proxy, const endpoint& peer);

/// Reads and drops input of a half-closed connection (at most one event's
/// worth). Moves `quiet_until` when bytes came. False once the client
/// closed or the stream broke (the connection ends then).
bool drop_input(transport& stream, int64_t& quiet_until);

/// The outcome of one step of a connection's set-up or output.
struct step_result {
  enum kind_t : uint8_t {
    done,   ///< finished
    wait,   ///< wants the fd's readiness (`interest`)
    failed, ///< ended with `error`
  } kind = done;
  uint32_t interest = 0;
  caf::error error;
  /// With `failed`: the peer closed (rather than an error).
  bool closed = false;
};

/// Starts reading the PROXY header of `sock`: makes `reader` and sets the
/// set-up deadline (the PROXY timeout). Errors: `errc::untrusted_source`
/// (nothing set) for a client that may not send one.
caf::error begin_proxy(const connection_config& conf, socket& sock,
                       std::unique_ptr<proxy_header_reader>& reader,
                       connection_deadlines& deadlines);

/// Reads (more of) the PROXY header; when complete, records it in `sock`,
/// drops `reader` and clears the set-up deadline (the handshake gets its
/// own). A client that closes before the header ends fails with
/// `errc::proxy_header`.
step_result proxy_step(std::unique_ptr<proxy_header_reader>& reader, socket& sock,
                       connection_deadlines& deadlines);

/// Advances the transport handshake. While it waits: `interest` is what it
/// waits for, and the set-up deadline is set (the handshake timeout) unless
/// it is already (an upgrade's handshake is bounded from its start). A
/// client that closes fails with `errc::closed`.
step_result handshake_step(const connection_config& conf, socket& sock,
                           connection_deadlines& deadlines, uint32_t& interest);

/// Counts `data` as read from the client of `sock` and emits it with the
/// `recv` event (`async` false: read by a call of the owner) or `async_recv`
/// (read for an event), if anyone listens. Sets `first_byte_at` at the first
/// bytes only if the connection's events have a subscriber then: no clock
/// read otherwise (a subscriber that attaches later sees no
/// `time_to_first_byte` for connections already past their first bytes).
void note_received(socket& sock, const connection_config& conf, std::string_view data,
                   bool async, int64_t& first_byte_at);

/// Whether a new connection should read before its first readiness event
/// (a speculative first read). It pays when clients send with the connection
/// (the bytes are there when the actor first runs): it saves the event, its
/// delivery and a second actor run; otherwise it costs a `recv` that would
/// block. Decided from the recent outcomes on the calling thread (a worker):
/// always while it has seen fewer than 16, then while at least one in four
/// found something, else on one new connection in 16 (a probe: one that
/// finds something starts the learning again).
/// Runs on the connection's actor; thread-local, no synchronization.
[[nodiscard]] bool first_read_worth_trying() noexcept;

/// Records the outcome of a speculative first read on the calling thread:
/// `found` if it got bytes or the end of the stream (anything but "would
/// block").
void first_read_tried(bool found) noexcept;

/// A connection's periodic traffic report: the `progress` event of its
/// span, with its totals so far (`recv_oct`, `recv_cnt`, `send_oct`,
/// `send_cnt`), so subscribers that count (metrics) see a long connection's
/// bytes while it runs, not only in its stop event. Only when a subscriber
/// wants `progress`, only after traffic, and at most once a period: the
/// first period counts from the connection's start, so connections shorter
/// than a period report only at their stop. Used on the connection's actor.
class traffic_reports {
public:
  /// After the connection's I/O: reports now if its traffic changed and a
  /// period passed since the last report, or sets `due` (a deadline of the
  /// connection) to when one has, unless it is set. Returns true if it set
  /// `due` (the caller updates its timer).
  bool after_io(socket& sock, const connection_config& conf, int64_t& due) {
    if (!may_report(conf, due))
      return false;
    return after_io_subscribed(sock, conf, due);
  }

  /// False when `after_io` would do nothing: no subscriber or `due` set.
  /// Inline: with nobody subscribed, one relaxed load per call (callers
  /// that keep their reports out of line check this first).
  static bool may_report(const connection_config& conf, int64_t due) {
    return due == 0 && conf.events && conf.events->enabled();
  }

  /// The connection's timer fired at `now`: reports if `due` passed, and
  /// clears it.
  void on_timer(socket& sock, const connection_config& conf, int64_t& due, int64_t now);

private:
  bool after_io_subscribed(socket& sock, const connection_config& conf, int64_t& due);
  void report(socket& sock, const telemetry::interest& what, int64_t now);

  int64_t last_ = 0;        // when the last report was (0: none yet)
  uint64_t reported_ = 0;   // recv_cnt + send_cnt at the last report
};

/// Takes the fd of a connection out of the reactor before it is closed
/// (no-op without a registration).
void release_fd(const connection_config& conf, fd_registration& reg, uint32_t& armed) noexcept;

/// Writes queued output (`progressed`: some bytes went out). Output that
/// cannot be written anymore emits `send_error` with `bytes_pending`.
step_result flush_step(socket& sock, bool& progressed);

/// Counts the connection against the per-source limit (if the server has
/// one): sets `key` on success. Errors: `errc::source_limit`.
caf::error acquire_source(const connection_config& conf, socket& sock,
                          std::unique_ptr<std::string>& key);

/// The error of a connection whose PROXY header did not come in time.
caf::error proxy_timeout_error(const connection_config& conf);

/// Logs a connection refused for its PROXY header (unless silent).
void log_refused(const connection_config& conf, socket& sock, const caf::error& reason);

/// Registers the fd of `sock` for `owner` (events by message, or through
/// `sink`) or re-arms it with `interest`; skips the call when `interest`
/// is 0 or already armed (`armed`). A strong reference to `owner` is taken
/// only when registering (not at every re-arm: two atomic operations).
caf::error arm_fd(const connection_config& conf, socket& sock, fd_registration& reg,
                  caf::abstract_actor* owner, io_sink* sink, uint32_t interest,
                  uint32_t& armed);

/// For a handshake that a stop waits for: moves `deadlines.setup` to the
/// drain's deadline (`conf.give_up_at`) if that is earlier. False if the
/// handshake then has no deadline at all (no handshake timeout, no drain
/// deadline): the stop cannot wait for it.
bool bound_handshake_by_drain(const connection_config& conf, connection_deadlines& deadlines);

/// Whether the drain's deadline (`conf.give_up_at`) has passed; false
/// without one.
bool drain_deadline_passed(const connection_config& conf);

/// Sends our FIN after a stop and sets the limits of the drop-input phase
/// (`until`: at most; `quiet_until`: unless bytes come). False if the
/// socket cannot be half-closed (close it at once then).
bool begin_half_close(const connection_config& conf, socket& sock, int64_t& until,
                      int64_t& quiet_until);

/// The text of an exception pointer's exception.
std::string exception_text(std::exception_ptr ep);

} // namespace atl::detail
