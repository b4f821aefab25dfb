// The callbacks TCP and UDP handlers share (`atl::handler`,
// `atl::udp_handler`): their defaults, and the helpers a handler's message
// handlers use.
#pragma once

#include <string_view>

#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/message_handler.hpp>

#include "atoll/handlers/verdict.hpp"

namespace atl {

namespace detail {
class handler_host;
struct handler_binding;
} // namespace detail

/// The callbacks every handler has, on its transport's `Socket`
/// (`atl::socket` for TCP and TLS connections, `atl::udp_socket` for UDP).
/// Derive from `atl::handler` or `atl::udp_handler`, not from this: each
/// of them says when its callbacks run and what their verdicts do. Every
/// callback runs inside the actor that owns the handler (a per-datagram UDP
/// handler's first ones: inside its listener), never concurrently.
template <class Socket>
class basic_handler {
public:
  /// Lets derived handlers write `socket` (plain `socket` would otherwise
  /// find the POSIX function socket(2)).
  using socket = Socket;

  virtual ~basic_handler();

  /// The connection (or handler actor) is ready. Default:
  /// `verdict::proceed()`.
  virtual verdict handle_connection(socket& sock);

  /// Bytes from the peer; `data` is valid during the call only. Default:
  /// `verdict::proceed()`.
  virtual verdict handle_data(std::string_view data, socket& sock);

  /// The normal end. TCP and TLS: after a close verdict or a close by the
  /// peer. UDP: after a close verdict, or when a per-datagram handler is done
  /// with its datagram; an `in_listener` handler object gets it when its
  /// listener ends (a peer cannot close a UDP "connection"). Last callback.
  virtual void handle_close(socket& sock);

  /// The end with an error. Last callback.
  virtual void handle_error(const caf::error& reason, socket& sock);

  /// The server is stopping; `sock` still sends. Last callback.
  virtual void handle_shutdown(socket& sock);

  /// The peer was silent for the timeout; `sock` still sends. Last callback.
  virtual void handle_timeout(socket& sock);

  /// The handler's own message handlers, matched after the actor's internal
  /// messages; the returned lambdas may capture `this` and `sock`. Mailbox
  /// messages do not reset the timeout; call `apply` for that. An exception
  /// thrown by one of them is handled as a callback's (`handle_error`);
  /// for an `in_listener` UDP handler it also ends the listener, which its
  /// supervisor restarts with a fresh handler object. Default: none.
  virtual caf::message_handler message_handlers(socket& sock);

protected:
  /// Applies a verdict now, from a message handler (or a response handler
  /// of the handler's actor): close or end the connection, re-arm the
  /// timeout, hold the input (`verdict::hold`) or read again after a hold
  /// (`verdict::proceed`). Does nothing before the handler's actor runs it.
  void apply(verdict v);

  /// The actor running the handler (e.g. to send messages, spawn, monitor);
  /// null before it runs the handler. Throws `std::logic_error` on a
  /// lightweight connection (`server_options::lightweight_connections`),
  /// which has no `event_based_actor`: thrown from a callback, it ends the
  /// connection as any exception does (`handle_error`).
  caf::event_based_actor* self() const;

private:
  friend struct detail::handler_binding;
  detail::handler_host* host_ = nullptr;
};

} // namespace atl
