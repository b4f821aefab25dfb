// The UDP handler behaviour (Abyss's Handler): callbacks with defaults, the
// socket a handler replies through, and the handler's own CAF message
// handlers.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/message_handler.hpp>

#include "atoll/handlers/basic_handler.hpp"
#include "atoll/handlers/verdict.hpp"
#include "atoll/transports/datagram_socket.hpp"
#include "atoll/transports/endpoint.hpp"
#include "atoll/transports/tcp_options.hpp"

namespace atl {

namespace telemetry {
class span;
class interest;
} // namespace telemetry

namespace detail {
struct udp_socket_access;
} // namespace detail

/// How long a UDP handler actor lives (`udp_server_options::lifetime`).
enum class udp_lifetime : uint8_t {
  /// One handler per datagram (Abyss's model): a fresh handler object,
  /// `handle_data` runs once; the handler then ends with `handle_close`,
  /// unless the verdict asks it to wait (`verdict::proceed(timeout)`: it
  /// stays for its mailbox messages, e.g. an upstream's answer, until the
  /// timeout (`handle_timeout`) or a `close` applied from a message
  /// handler). Its first callbacks (`handle_connection`, `handle_data`)
  /// run in the listener that received the datagram; the handler gets an
  /// actor of its own only when it needs one: when it calls `self()` (the
  /// actor is made at once; what it is sent waits in its mailbox until the
  /// callback returns), or when it waits. So a handler that answers and
  /// ends costs no actor; one that blocks holds up its listener (use
  /// `detached_connections`, which gives every handler an actor with a
  /// thread of its own).
  per_datagram,
  /// One handler actor per peer (source address and port): every datagram of
  /// the peer goes to the same actor, in order; it ends after the read
  /// timeout of silence (`handle_timeout`) or a `close` verdict (the peer's
  /// next datagram then starts a new one). For request/response protocols
  /// that keep per-client state.
  per_peer,
  /// No actor per datagram: one handler object per listener runs inside the
  /// listener actor and gets every datagram that listener receives
  /// (`socket::peer` is each datagram's sender). Replies are collected and
  /// sent together (sendmmsg) when the listener's receive batch ends. For
  /// stateless request/response protocols (DNS) at the highest rate.
  /// `handle_connection` runs when the listener starts; verdicts only
  /// matter for errors (logged; the handler object is replaced by a fresh
  /// one, as after an exception); there are no timeouts and no connection
  /// spans; `handle_shutdown` (server stop) or `handle_close` (suspend)
  /// runs when the listener ends. The handler's message handlers run in the
  /// listener actor.
  in_listener,
};

/// Returns "per_datagram", "per_peer" or "in_listener".
std::string to_string(udp_lifetime x);

/// What a UDP handler uses to send: replies to its peer, datagrams to any
/// address, the addresses and counters. Valid while the handler lives (at
/// the same address, also when a per-datagram handler moves from its
/// listener to an actor of its own); used only from the handler's
/// callbacks and message handlers.
class udp_socket {
public:
  /// Used by the handler actor.
  udp_socket(std::shared_ptr<datagram_socket> sock, udp_peer peer);

  /// Sends `data` to the peer. Errors: `errc::closed` (the server was
  /// suspended or stopped: its socket is closed), `errc::timeout` (the send
  /// buffer is full, the datagram is dropped), `errc::system_error`. A
  /// failed send emits the connection span's `send_error` event (`data`,
  /// `error`).
  ///
  /// Replies are batched: a handler running on an `io_scheduler` worker
  /// (in its actor, or a per-datagram handler's first run in its listener)
  /// queues the reply, and the replies of every handler that ran on
  /// that worker go out together (one `sendmmsg` per socket) when the
  /// worker's run of jobs ends, at the latest after 32 actor runs (or 32
  /// per-datagram handlers run in one listener). A queued
  /// reply reports only `errc::closed`; one that then cannot go (a full send
  /// buffer) is dropped, as UDP drops it. Replies larger than 65,507 bytes,
  /// and those of a detached handler actor, go out at once with every error
  /// above.
  [[nodiscard]] caf::error send(std::string_view data);

  /// Sends `data` to `to` (any address; broadcast needs
  /// `udp_options::broadcast`). From a handler actor it goes out at once,
  /// not batched, so that its error (such as a refused broadcast) reaches
  /// the caller; an `in_listener` handler's goes out with the listener's
  /// replies. Errors as `send`, plus `errc::invalid_address` (not sent, no
  /// event).
  [[nodiscard]] caf::error send_to(const endpoint& to, std::string_view data);

  /// The peer (address and port) this handler serves.
  [[nodiscard]] caf::expected<endpoint> peername() const;

  /// The peer as the kernel gave it (cheap; for tables keyed by peer).
  const udp_peer& peer() const noexcept {
    return peer_;
  }

  /// The server's bound address.
  endpoint sockname() const;

  /// With `udp_options::pktinfo`: the address the current datagram was sent
  /// to (e.g. a broadcast or multicast group, or which of the host's
  /// addresses) and the receiving interface's index; empty otherwise.
  const std::optional<std::string>& destination() const noexcept {
    return destination_;
  }

  /// See `destination`.
  int interface_index() const noexcept {
    return interface_index_;
  }

  /// Reads an option of the server's socket (the socket and IP ones:
  /// `recbuf`, `sndbuf`, `tos`, `ttl`, `priority`, ...; the TCP ones fail).
  /// Errors: `errc::closed`, `errc::system_error`.
  [[nodiscard]] caf::expected<int> getopt(socket_option opt) const;

  /// Sets an option of the server's socket: it applies to the whole server
  /// (every handler shares the socket). Errors: `errc::closed`,
  /// `errc::invalid_option`, `errc::system_error`.
  [[nodiscard]] caf::error setopt(socket_option opt, int value);

  /// Datagrams and octets this handler received and sent.
  datagram_stats stats() const noexcept {
    return stats_;
  }

private:
  friend struct detail::udp_socket_access;
  caf::error send_to_peer(const udp_peer& to, std::string_view data);
  void sent(std::string_view data);
  void send_failed(std::string_view data, const caf::error& err) const;

  std::shared_ptr<datagram_socket> sock_;
  udp_peer peer_;
  datagram_stats stats_;
  const telemetry::span* span_ = nullptr;
  const telemetry::interest* send_event_ = nullptr;
  std::vector<std::pair<udp_peer, std::string>>* outbox_ = nullptr; // in_listener: deferred
  bool batched_ = false; // a handler actor's: sent when its worker's run of jobs ends
  std::optional<std::string> destination_;
  int interface_index_ = 0;
};

extern template class basic_handler<udp_socket>;

/// A UDP handler. Derive from it and override what you need; keep state in
/// members. One handler object lives per datagram or per peer (see
/// `udp_lifetime`), created by the server's factory; its callbacks run in
/// its handler actor (a per-datagram handler's first ones in the listener,
/// until it needs an actor), never concurrently.
///
/// Dispatch: `handle_connection` when the handler starts; `handle_data` for
/// its datagram(s); then exactly one of `handle_close` (close verdict, or
/// the end of a per-datagram handler), `handle_timeout` (silence for the
/// timeout), `handle_shutdown` (the server stops; a goodbye may be sent)
/// or `handle_error` (error verdict, exception). An exception thrown by a
/// callback or a message handler ends this actor only: it is logged and
/// `handle_error` runs with `errc::handler_exception`.
///
/// A `close` or `error` verdict of `handle_connection` ends the actor
/// without `handle_data`. A datagram may be empty. `message_handlers` is
/// called once, after `handle_connection`; `apply` takes `close`, `error`,
/// or `proceed(timeout)` to re-arm the timeout.
class udp_handler : public basic_handler<udp_socket> {
public:
  ~udp_handler() override;
};

/// Creates one UDP handler per handler actor.
using udp_handler_factory = std::function<std::unique_ptr<udp_handler>()>;

/// A factory constructing `Handler` from copies of `args` for each actor.
template <class Handler, class... Ts> udp_handler_factory make_udp_handler_factory(Ts... args) {
  static_assert(std::is_base_of_v<udp_handler, Handler>,
                "Handler must derive from atl::udp_handler");
  return [args...]() -> std::unique_ptr<udp_handler> { return std::make_unique<Handler>(args...); };
}

} // namespace atl
