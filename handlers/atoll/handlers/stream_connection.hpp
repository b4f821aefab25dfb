// Custom connection actors ("when a handler isn't enough"): a server can
// spawn the user's own actor for each connection and hand it the socket;
// `atl::stream_connection` drives that socket inside the user's actor.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/message_handler.hpp>

#include "atoll/handlers/socket.hpp"

namespace atl {

struct connection_config;
struct accepted_connection;

/// `(stream_open_atom)`: the connection is set up (PROXY header read, TLS
/// handshake done); the socket may be used.
using stream_open_atom = caf::atom_constant<caf::atom("strmopen")>;
/// `(stream_data_atom, std::string bytes)`: bytes from the client, one
/// message per `stream_connection::activate`.
using stream_data_atom = caf::atom_constant<caf::atom("strmdata")>;
/// `(stream_closed_atom)`: the client closed the connection (the socket is
/// closed now).
using stream_closed_atom = caf::atom_constant<caf::atom("strmclosed")>;
/// `(stream_error_atom, caf::error reason)`: the connection failed (set-up,
/// handshake, socket error, send timeout); the socket is closed now.
using stream_error_atom = caf::atom_constant<caf::atom("strmerror")>;

/// What a server hands to a custom connection actor (Thousand Island's
/// `thousand_island_ready` message): the accepted socket and the server's
/// connection settings. Move it into a `stream_connection`; a hand-off
/// that is dropped unused closes its socket.
class connection_hand_off {
public:
  /// An empty hand-off (no socket).
  connection_hand_off();
  /// Used by the connection supervisor.
  connection_hand_off(std::shared_ptr<const connection_config> config,
                      accepted_connection accepted);
  /// Moves the socket along (the source is left empty).
  connection_hand_off(connection_hand_off&&) noexcept;
  /// Moves the socket along (closing one this held unused).
  connection_hand_off& operator=(connection_hand_off&&) noexcept;
  connection_hand_off(const connection_hand_off&) = delete;
  connection_hand_off& operator=(const connection_hand_off&) = delete;
  ~connection_hand_off();

  /// True if it still holds a socket.
  explicit operator bool() const noexcept;

private:
  friend class stream_connection;
  std::shared_ptr<const connection_config> config_;
  std::unique_ptr<accepted_connection> accepted_;
};

/// Spawns a custom connection actor for one accepted connection, from
/// inside `supervisor` (the connection supervisor, which links to and
/// monitors the actor it returns: return it spawned, not lazily
/// initialized). The actor owns `hand_off` and drives it with a
/// `stream_connection`. An invalid actor counts as a failed spawn (the
/// socket is closed). Runs on the connection supervisor.
using connection_process_factory
  = std::function<caf::actor(caf::event_based_actor* supervisor, connection_hand_off hand_off)>;

/// A `connection_process_factory` spawning `Actor` (a class derived from
/// `caf::event_based_actor`, constructed from `(caf::actor_config&,
/// connection_hand_off, args...)`) with CAF's spawn options `Os` (e.g.
/// `caf::detached`).
template <class Actor, caf::spawn_options Os = caf::no_spawn_options, class... Ts>
connection_process_factory make_connection_process(Ts... args) {
  static_assert(std::is_base_of_v<caf::event_based_actor, Actor>,
                "Actor must derive from caf::event_based_actor");
  return [args...](caf::event_based_actor* supervisor, connection_hand_off hand_off) {
    return supervisor->spawn<Actor, Os>(std::move(hand_off), args...);
  };
}

/// One connection driven from a user's own actor (`self`): the set-up the
/// server configured (PROXY header, per-source limit, TLS handshake), the
/// `atl::socket` API, socket events as messages in Erlang's `{active,
/// once}` style, telemetry (the same connection span as built-in handlers),
/// and the server's drain. Keep it as a member of the actor; every member
/// function runs on `self` only.
///
/// Protocol:
/// 1. Construct it from the hand-off in the actor's constructor, put
///    `handlers()` first in the actor's behavior (and in every `become`),
///    and call `start()` in `make_behavior` (it also sets `self`'s exit
///    handler, see below).
/// 2. `self` gets `(stream_open_atom)` when the connection is set up, or
///    `(stream_error_atom, reason)` if it could not be.
/// 3. `activate()` asks for the next bytes: `(stream_data_atom, bytes)`,
///    or `(stream_closed_atom)` / `(stream_error_atom, reason)` when the
///    connection ends. `socket().send` never blocks (output is queued and
///    written when the socket is writable, bounded by the send timeout);
///    `socket().recv` blocks as for handlers.
/// 4. `close()` ends the connection and the actor (`drain()` for a server
///    stop). After `stream_closed`/`stream_error`, `close()` only ends the
///    actor.
///
/// A server stop sends `self` an exit message with
/// `caf::exit_reason::user_shutdown`. `start()` sets `self`'s exit handler
/// so that the stop drains the connection, losing nothing that was read:
/// from the stop on, nothing more is read from the socket for `activate()`;
/// every `(stream_data_atom)` read before the stop is still delivered (the
/// exit message can arrive after bytes were read and before their message
/// was handled: the stop is taken up behind it); then the `on_stop`
/// callback runs (to answer, e.g. with `read_available()`), then `drain()`. An actor with its own exit handler
/// sets it after `start()` and passes each exit message to `handle_exit`
/// first. The server kills the actor at its shutdown timeout in any case.
///
/// However the actor ends (kill, exception, quit), the socket is closed and
/// the span stops exactly once, with reason and statistics.
class stream_connection {
public:
  /// Takes over `hand_off` inside `self`. Nothing happens before `start`.
  stream_connection(caf::event_based_actor* self, connection_hand_off hand_off);

  stream_connection(const stream_connection&) = delete;
  stream_connection& operator=(const stream_connection&) = delete;

  /// Closes the socket if still open (stop reason `local_closed`).
  ~stream_connection();

  /// Sets the connection up: the PROXY header (if the server wants one),
  /// the per-source limit, the connection span, the transport handshake.
  /// Ends with `(stream_open_atom)` or `(stream_error_atom, reason)` to
  /// `self` (reasons: `errc::closed` for a client already gone,
  /// `errc::proxy_header`, `errc::untrusted_source`, `errc::source_limit`,
  /// `errc::timeout`, the transport's error). Call once.
  void start();

  /// The messages this connection needs to see (socket readiness, its
  /// timer, and `connection_info_atom`, answered with the connection's
  /// record for the server's `connections` list). Put them first in
  /// `self`'s behavior.
  caf::message_handler handlers();

  /// Asks for the next bytes from the client (one `stream_data_atom`
  /// message), or the end of the connection. If the client sends nothing
  /// within `timeout` (default: the socket's read timeout, the server's
  /// `read_timeout` unless changed; `atl::infinite`: no limit), the
  /// connection ends with `(stream_error_atom, errc::timeout)` (stop reason
  /// `timeout`). Does nothing before `stream_open_atom`, after the end, or
  /// while a request is pending.
  void activate(std::optional<std::chrono::milliseconds> timeout = {});

  /// True between `stream_open_atom` and the end of the connection.
  bool is_open() const noexcept;

  /// The connection's socket (send, sendfile, recv, addresses, options,
  /// statistics, TLS information, telemetry span). Valid from `start()` on
  /// and only if the set-up got that far: check `has_socket()` when
  /// handling a set-up error.
  atl::socket& socket();

  /// True once the socket exists (from `start()` on, unless the client was
  /// already gone or its transport could not be made).
  bool has_socket() const noexcept;

  /// What the client has sent and was not delivered yet, read without
  /// waiting (at most `max` bytes): to answer it before `drain()`. Counts
  /// as received data (statistics, `recv` event). Errors: `errc::closed`
  /// (not open, or the client closed; what came before the close is
  /// returned first), the transport's error.
  [[nodiscard]] caf::expected<std::string> read_available(size_t max = 1 << 20);

  /// Ends the connection: queued output is written (bounded by the send
  /// timeout), the socket closed (stop reason `local_closed`), then `self`
  /// quits normally. Idempotent.
  void close();

  /// What to do on the server's stop, before the drain: runs on `self`
  /// after every `(stream_data_atom)` read before the stop was handled,
  /// while the connection is still open (a connection that ended or is
  /// closing meanwhile skips it). Typically answers what the client sent
  /// last (`read_available()`), and says goodbye; `drain()` follows (the
  /// callback may call `drain()` or `close()` itself). Default: none (the
  /// connection just drains). An exception from it ends the actor as any
  /// handler's would.
  void on_stop(std::function<void()> answer);

  /// For an actor with its own exit handler (set after `start()`): takes
  /// the server's stop (`caf::exit_reason::user_shutdown`) as described
  /// above and returns true; returns false for any other exit message,
  /// which the caller handles (e.g. `self->quit(msg.reason)`).
  [[nodiscard]] bool handle_exit(const caf::exit_msg& msg);

  /// Ends the connection for a server stop: queued output is written, a FIN
  /// sent, input dropped until the client closes (bounded as for built-in
  /// handlers), then the socket is closed (stop reason `shutdown`) and
  /// `self` quits with `caf::exit_reason::user_shutdown`.
  void drain();

private:
  class impl;
  std::shared_ptr<impl> impl_;
};

} // namespace atl
