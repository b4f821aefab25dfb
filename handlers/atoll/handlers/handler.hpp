// The handler behaviour: per-connection callbacks with defaults, plus the
// handler's own CAF message handlers (GenServer call/cast/info analogues).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <typeinfo>

#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/message_handler.hpp>

#include "atoll/handlers/basic_handler.hpp"
#include "atoll/handlers/socket.hpp"
#include "atoll/handlers/verdict.hpp"

namespace atl {

extern template class basic_handler<atl::socket>;

/// A connection handler. Derive from it, override the callbacks you need, and
/// keep the connection's state in members: one handler object lives per
/// connection, created by the server's handler factory. Every callback runs
/// inside the connection actor (never concurrently), with the connection's
/// socket.
///
/// Dispatch (Thousand Island's): `handle_connection` once the connection is
/// set up; `handle_data` for each chunk of client data after a `proceed`
/// verdict; then exactly one of `handle_close` (close verdict or peer close),
/// `handle_timeout` (read timeout, socket still open), `handle_shutdown`
/// (server stop, socket still open: a goodbye may be sent), `handle_error`
/// (error verdict, exception, failed handshake or upgrade, socket error).
/// `handle_connection` runs after the TLS handshake, if any. A stop that
/// comes during the handshake waits for it (within the handshake timeout
/// and the server's shutdown timeout): `handle_connection`, then
/// `handle_shutdown`; a handshake that fails ends in `handle_error` as
/// without a stop. `handle_shutdown` never runs without `handle_connection`.
/// `handle_shutdown` runs after `handle_data` got what the client had sent
/// before the stop (so that it can be answered); what it sends is written,
/// then the connection sends a FIN and drops further input until the client
/// closes (at most until the server's drain deadline). `handle_timeout`
/// runs after the read timeout.
///
/// `message_handlers` is called once, when the connection actor starts
/// (before the TLS handshake). Its handlers run only while the connection
/// is open: a message that arrives before `handle_connection` has run, or
/// during the handshake of a `switch_transport` upgrade, waits in the
/// mailbox (in order) until then. Messages nobody matches are dropped;
/// requests get `sec::unexpected_message`. `apply` can also request a
/// continue step (Thousand Island's `handle_continuation`).
///
/// An exception thrown by a callback or a message handler ends this
/// connection only: it is logged and `handle_error` runs with
/// `errc::handler_exception`.
///
/// The connection actor's exit reason (what a monitor or link of it sees)
/// tells how the connection ended: none (a normal exit) after a close
/// verdict or `socket::close`; `errc::peer_closed` when the client closed;
/// `errc::timeout` after the read or handshake timeout;
/// `caf::exit_reason::user_shutdown` after the server's stop; otherwise the
/// error (`errc::handler_error` for an error verdict,
/// `errc::handler_exception`, a transport error, `errc::proxy_header`,
/// `errc::source_limit`, ...). Like Erlang's `{shutdown, peer_closed}`,
/// a peer close is not a normal exit: an actor linked to the connection
/// actor ends with it unless it traps exits (monitor it instead).
class handler : public basic_handler<atl::socket> {
public:
  ~handler() override;

  /// Runs for a `proceed(continue_step{arg})` verdict before any other
  /// message. Default: `verdict::proceed()`.
  virtual verdict handle_continue(const caf::message& arg, socket& sock);
};

/// Creates one handler per connection (the initial state travels in the
/// factory, like Thousand Island's handler options).
using handler_factory = std::function<std::unique_ptr<handler>()>;

/// A factory constructing `Handler` from copies of `args` for each connection.
template <class Handler, class... Ts>
handler_factory make_handler_factory(Ts... args) {
  static_assert(std::is_base_of_v<handler, Handler>, "Handler must derive from atl::handler");
  return [args...]() -> std::unique_ptr<handler> { return std::make_unique<Handler>(args...); };
}

/// A readable name for a handler type (demangled, without
/// `(anonymous namespace)::`), used in telemetry, tree snapshots and logs.
std::string handler_type_name(const std::type_info& type);

} // namespace atl
