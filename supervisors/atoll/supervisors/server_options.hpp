// Everything a server can be configured with (Thousand Island's options),
// with its defaults, and the validation that runs when a server starts.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <caf/error.hpp>

#include "atoll/handlers/handler.hpp"
#include "atoll/handlers/stream_connection.hpp"
#include "atoll/runtime/supervisor.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/transports/endpoint.hpp"
#include "atoll/transports/listen_socket.hpp"
#include "atoll/transports/proxy_protocol.hpp"
#include "atoll/transports/tcp_options.hpp"
#include "atoll/transports/tls.hpp"

namespace atl {

/// The server supervisor's restart intensity and registration (Thousand
/// Island's supervisor_options).
struct server_supervisor_options {
  /// At most this many restarts of the server's children (listener,
  /// acceptor pool, shutdown listener)...
  uint32_t max_restarts = 3;
  /// ...within this period; beyond it the server stops with
  /// `errc::restart_intensity_reached`. Positive.
  std::chrono::milliseconds period{5000};
  /// Registers the server's root actor in the actor system's registry
  /// (`sys.registry().get(caf::atom_from_string(name))`, also reachable
  /// from other nodes through the middleman) while the server runs: 1 to 10
  /// characters of [0-9A-Za-z_], not already registered. Empty: none.
  std::string registered_name;
};

namespace detail {
struct server_options_access;
} // namespace detail

/// A server's configuration. Defaults are Thousand Island's.
struct server_options {
  /// Creates each connection's handler (and its initial state). Required
  /// unless `connection_process` is set; `set_handler<H>(args...)` fills it
  /// and `handler_name`.
  handler_factory handler;
  /// Instead of a handler: spawns the user's own actor for each connection
  /// and hands it the socket (Thousand Island's custom connection process;
  /// see `atl::stream_connection`). `set_connection_process<A>(args...)`
  /// fills it and `handler_name`. `detached_connections`,
  /// `hidden_connections` and `lightweight_connections` are refused with it
  /// (`errc::invalid_option`: the function spawns as it likes).
  connection_process_factory connection_process;
  /// The handler's (or the connection process's) name in telemetry and logs.
  std::string handler_name = "handler";
  /// TCP port; 0 picks a free port (see `server::listener_info`). Must be 0
  /// for Unix domain sockets.
  uint32_t port = 4000;
  /// Where to listen: any IPv4 interface by default, loopback, an address, or
  /// a Unix socket path.
  bind_address address = bind_address::any();
  /// Socket options (backlog 1024, nodelay, send timeout 30 s closing the
  /// connection, reuseaddr).
  tcp_options transport;
  /// Serve TLS with these settings (certificates, SNI, ALPN, client
  /// verification, versions, ciphers); empty: clear TCP. Checked at start:
  /// a missing file or a key that does not match its certificate fails it.
  std::optional<tls_options> tls;
  /// Makes each connection's transport (set by `tls`); empty: clear TCP.
  transport_factory transport_layer;
  /// The transport's name in telemetry (`transport_module`; "tls" with `tls`).
  std::string transport_name = "tcp";
  /// The most acceptors a server may have (`num_acceptors`): each is a
  /// supervisor, an acceptor and a connection supervisor (a few KB), all
  /// started before the server listens.
  static constexpr uint32_t max_num_acceptors = 10000;
  /// The most listen sockets a server may have (`num_listen_sockets`): one
  /// file descriptor each, the default descriptor limit (1024) at most.
  static constexpr uint32_t max_num_listen_sockets = 1024;

  /// Number of acceptors, 1..`max_num_acceptors` (10000).
  uint32_t num_acceptors = 100;
  /// Number of listen sockets, 1..`max_num_listen_sockets` (1024); more
  /// than 1 needs `transport.reuseport` and at most `num_acceptors`. All
  /// bind the same port.
  uint32_t num_listen_sockets = 1;
  /// The most connections per acceptor at once; empty: unlimited.
  std::optional<uint32_t> num_connections = 16384;
  /// How often an acceptor at its limit retries before it closes the client.
  uint32_t max_connections_retry_count = 5;
  /// The wait between those retries.
  std::chrono::milliseconds max_connections_retry_wait{1000};
  /// How long a client may stay silent (`atl::infinite` for no limit).
  std::chrono::milliseconds read_timeout = default_read_timeout;
  /// How long a transport handshake may take (`atl::infinite` for no limit).
  std::chrono::milliseconds handshake_timeout = default_handshake_timeout;
  /// How stopping the server treats connections: `handle_shutdown` then
  /// force-close after this timeout (default 15 s), wait forever, or kill at
  /// once (`shutdown_policy::brutal_kill()`).
  shutdown_policy shutdown_timeout = shutdown_policy::timeout(std::chrono::milliseconds{15000});
  /// Every connection starts with a PROXY protocol header (v1, v2 or either)
  /// from a trusted load balancer: it is read before the TLS handshake and
  /// before the handler starts; `socket::peername` and telemetry report the
  /// client it names. A missing (within `timeout`), malformed or untrusted
  /// header ends the connection without a handler callback (stop reason
  /// `proxy_error`, logged unless `silent_terminate_on_error`). Empty: no
  /// PROXY protocol.
  std::optional<proxy_protocol_options> proxy_protocol;
  /// The most connections at once from one client address (with the PROXY
  /// protocol: the client the header names; Unix-socket clients share one
  /// address). A connection past it is closed at once, before its handler
  /// starts (stop reason `source_limit`). Empty: no limit.
  std::optional<uint32_t> max_connections_per_source;
  /// Do not log error verdicts (exceptions are always logged).
  bool silent_terminate_on_error = false;
  /// Run each connection actor on its own thread (for handlers that block;
  /// CAF's `detached` spawn option).
  bool detached_connections = false;
  /// Spawn connection actors hidden (CAF's `hidden` spawn option: they do
  /// not count for `actor_system::await_all_actors_done`). CAF's other spawn
  /// options do not apply: Atoll spawns and launches connection actors
  /// itself (no links, no `lazy_init`).
  bool hidden_connections = false;
  /// Run each connection in a lightweight actor instead of CAF's
  /// `event_based_actor`: about 2,600 fewer user-space instructions per
  /// short connection and half the actor's allocation (768 bytes, not
  /// 1,536). It handles socket events,
  /// the handler's `message_handlers` (with replies to requests), `apply`,
  /// exits, links, monitors and `kill` as the default does, but has no
  /// `self()`: the handler's `self()` throws `std::logic_error` (which ends
  /// the connection with `handle_error`). For handlers that never call
  /// `self()`. Not with `detached_connections` or `connection_process`.
  bool lightweight_connections = false;
  /// The server supervisor's restart intensity and registered name.
  server_supervisor_options supervisor;
  /// The server's name: the root of its tree snapshots.
  std::string name = "server";
  /// Where telemetry goes (default: `telemetry::default_bus()`).
  std::shared_ptr<telemetry::bus> telemetry;

  /// Uses `Handler` built from copies of `args` for every connection.
  template <class Handler, class... Ts> server_options& set_handler(Ts... args) {
    handler = make_handler_factory<Handler>(std::move(args)...);
    handler_name = handler_type_name(typeid(Handler));
    return *this;
  }

  /// Spawns `Actor` (see `atl::make_connection_process`) with spawn options
  /// `Os` for every connection, constructed from `(caf::actor_config&,
  /// atl::connection_hand_off, args...)`.
  template <class Actor, caf::spawn_options Os = caf::no_spawn_options, class... Ts>
  server_options& set_connection_process(Ts... args) {
    connection_process = make_connection_process<Actor, Os>(std::move(args)...);
    handler_name = handler_type_name(typeid(Actor));
    return *this;
  }

private:
  friend struct detail::server_options_access;
  accept_function accept_hook_; // fault injection in tests: replaces accept4(2)
};

/// Checks every option. Errors: `errc::missing_option` (no handler),
/// `errc::invalid_option` naming the option and the reason.
[[nodiscard]] caf::error validate(const server_options& opts);

} // namespace atl
