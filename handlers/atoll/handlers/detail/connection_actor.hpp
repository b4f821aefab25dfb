// Internal: the connection actor, one per client connection; drives a
// handler with socket events and mailbox messages. Not part of the public API.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <sys/socket.h>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>

#include "atoll/handlers/detail/connection_watchers.hpp"
#include "atoll/handlers/detail/handler_host.hpp"
#include "atoll/handlers/detail/session_slots.hpp"
#include "atoll/handlers/detail/socket_access.hpp"
#include "atoll/handlers/handler.hpp"
#include "atoll/handlers/detail/source_limiter.hpp"
#include "atoll/runtime/reactor.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/transports/owned_fd.hpp"
#include "atoll/transports/proxy_protocol.hpp"
#include "atoll/transports/tcp_options.hpp"
#include "atoll/transports/transport.hpp"

namespace atl {

/// Settings shared by all connections of a server (Thousand Island's handler
/// config). Immutable once connections run.
struct connection_config {
  /// Creates each connection's handler. Required.
  handler_factory factory;
  /// The handler's name in telemetry metadata (`handler`).
  std::string handler_name;
  /// The reactor delivering socket events. Required.
  std::shared_ptr<reactor> io;
  /// Where telemetry goes. Required.
  std::shared_ptr<telemetry::bus> events;
  /// The connection span's event prefix, e.g. {"atoll", "connection"}.
  std::shared_ptr<const telemetry::event_name> span_prefix;
  /// Who wants the data events under `span_prefix` on `events` (null: they
  /// are built whenever `events` has any subscriber).
  std::shared_ptr<const detail::data_events> data_events;
  /// Socket options (nodelay, send timeout, ...).
  tcp_options transport;
  /// The default read timeout (`atl::infinite` for none).
  std::chrono::milliseconds read_timeout = default_read_timeout;
  /// Bound of the transport handshake (`atl::infinite` for none).
  std::chrono::milliseconds handshake_timeout = default_handshake_timeout;
  /// Do not log error verdicts (exceptions are always logged).
  bool silent_terminate_on_error = false;
  /// Makes the transport of an accepted fd; empty: clear TCP.
  transport_factory make_transport;
  /// Read a PROXY header before anything else (null: no PROXY protocol).
  std::shared_ptr<const proxy_protocol_options> proxy;
  /// Limits the connections per client address (null: no limit).
  std::shared_ptr<detail::source_limiter> sources;
  /// When a stopping server gives up on its connections (monotonic ns; 0:
  /// not stopping). Blocking socket calls (`recv`, flushes) give up then, so
  /// that a handler blocked in them cannot delay the stop: CAF cannot kill
  /// an actor that is busy in a callback.
  std::shared_ptr<std::atomic<int64_t>> give_up_at = std::make_shared<std::atomic<int64_t>>(0);
  /// The actors subscribed to connection starts and stops (null: none ever).
  std::shared_ptr<detail::connection_watchers> watchers;
  /// The slots of the acceptor that spawns with this configuration (null:
  /// none): it took one for each connection actor, which gives it back when
  /// it ends (in its clean-up, before its monitors hear of it).
  std::shared_ptr<detail::session_slots> slots;
};

/// The hand-off from an acceptor to a new connection actor (Thousand
/// Island's ready message): the socket, when it was accepted and the
/// acceptor's span.
struct accepted_connection {
  /// The accepted socket; the connection actor takes it.
  std::shared_ptr<owned_fd> fd;
  /// Accept time (monotonic ns): the connection span's start.
  int64_t start_time = 0;
  /// The acceptor span's context (the connection span's parent).
  uint64_t acceptor_span = 0;
  /// The client's address from accept(2) (`peer_len` 0: ask the socket).
  sockaddr_storage peer{};
  /// The length of `peer`.
  socklen_t peer_len = 0;
};

/// How connection actors are spawned (CAF's spawn options that apply to
/// them; Thousand Island's genserver_options).
struct connection_spawn_options {
  /// The actor gets its own thread (for handlers that block, e.g. in
  /// `socket::recv`): `caf::detached`.
  bool detached = false;
  /// The actor does not count for `actor_system::await_all_actors_done`:
  /// `caf::hidden`.
  bool hidden = false;
  /// The actor does not run until `launch_connection` (or a message) wakes
  /// it: `caf::lazy_init`. Not with `detached`.
  bool lazy = false;
  /// The actor is a `detail::light_actor`, not an `event_based_actor`: the
  /// handler's `self()` throws. Not with `detached`.
  bool light = false;
};

/// Spawns a connection actor from inside `parent` (normally the connection
/// supervisor's start function).
caf::actor spawn_connection(caf::event_based_actor* parent,
                            std::shared_ptr<const connection_config> config,
                            accepted_connection hand_off, connection_spawn_options how);

/// Lets a connection actor spawned with `connection_spawn_options::lazy`
/// run, on `unit` (the caller's execution unit; null: the scheduler's
/// choice); `light` as it was spawned. Does nothing if a message woke it
/// already. Thread-safe.
void launch_connection(const caf::actor& connection, caf::execution_unit* unit, bool light);

} // namespace atl

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(atl::accepted_connection)
