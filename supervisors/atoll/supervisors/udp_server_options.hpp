// Everything a UDP server can be configured with (Abyss's options), with its
// defaults, and the validation that runs when it starts.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <caf/error.hpp>

#include "atoll/handlers/handler.hpp"
#include "atoll/handlers/udp_handler.hpp"
#include "atoll/runtime/supervisor.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/transports/datagram_socket.hpp"
#include "atoll/transports/tcp_options.hpp" // default_read_timeout
#include "atoll/transports/endpoint.hpp"

namespace atl {

/// A UDP server's configuration. Defaults are Abyss's.
struct udp_server_options {
  /// Creates each handler actor's handler. Required; `set_handler<H>(args...)`
  /// fills it and `handler_name`.
  udp_handler_factory handler;
  /// The handler's name in telemetry and logs.
  std::string handler_name = "handler";
  /// One handler per datagram (Abyss's model; an actor only when the
  /// handler needs one), one handler actor per peer, or one handler object
  /// per listener (see `udp_lifetime`).
  udp_lifetime lifetime = udp_lifetime::per_datagram;
  /// UDP port; 0 picks a free port (see `udp_server::listener_info`).
  uint32_t port = 4000;
  /// Where to listen: any IPv4 interface by default, loopback, or an address.
  bind_address address = bind_address::any();
  /// Socket options (reuseaddr on; buffers, broadcast, multicast).
  udp_options transport;
  /// The most listeners a server may have.
  static constexpr uint32_t max_num_listeners = 10000;
  /// Number of listener actors, 1..`max_num_listeners`. With
  /// `transport.reuseport` each has its own socket on the port (the kernel
  /// spreads peers over them); otherwise all share one socket.
  uint32_t num_listeners = 100;
  /// The most handler actors alive at once; empty: unlimited.
  std::optional<uint32_t> num_connections = 16384;
  /// How often a datagram that finds the server at its limit is retried
  /// before it is dropped (`spawn_error`).
  uint32_t max_connections_retry_count = 5;
  /// The wait between those retries.
  std::chrono::milliseconds max_connections_retry_wait{1000};
  /// Silence before a per-peer actor's `handle_timeout` (`atl::infinite`:
  /// none); also the default of `verdict::proceed` timeouts.
  std::chrono::milliseconds read_timeout = default_read_timeout;
  /// How stopping treats handler actors: `handle_shutdown`, then a kill
  /// after this timeout (default 15 s), wait forever, or kill at once.
  shutdown_policy shutdown_timeout = shutdown_policy::timeout(std::chrono::milliseconds{15000});
  /// Do not log error verdicts (exceptions are always logged).
  bool silent_terminate_on_error = false;
  /// Limit each source IP to `rate_limit_max_packets` per
  /// `rate_limit_window` (a token bucket; excess datagrams are dropped,
  /// counted and emitted as `rate_limit_exceeded`).
  bool rate_limit_enabled = false;
  /// Datagrams per window and source IP, 1..10,000,000.
  uint32_t rate_limit_max_packets = 1000;
  /// The window, 1 ms..1 day (Abyss's `rate_limit_window_ms`).
  std::chrono::milliseconds rate_limit_window{1000};
  /// The most source IPs tracked at once (bounds memory under a flood of
  /// spoofed sources; beyond it new sources are dropped), at least 1.
  uint32_t rate_limit_max_sources = uint32_t{1} << 20;
  /// Larger datagrams are dropped, counted and emitted as
  /// `packet_too_large`; 1..65535.
  uint32_t max_packet_size = 8192;
  /// Broadcast mode: sets `transport.broadcast` (SO_BROADCAST), so handlers
  /// may send to broadcast addresses (DHCP and similar).
  bool broadcast = false;
  /// Run each handler actor on its own thread (for handlers that block,
  /// e.g. in `send_recv`). Not with `udp_lifetime::in_listener`, which has
  /// no handler actors (refused as an invalid option).
  bool detached_connections = false;
  /// The server's name: the root of its tree snapshots.
  std::string name = "udp_server";
  /// Where telemetry goes (default: `telemetry::default_bus()`).
  std::shared_ptr<telemetry::bus> telemetry;

  /// Uses `Handler` built from copies of `args` for every handler actor.
  template <class Handler, class... Ts> udp_server_options& set_handler(Ts... args) {
    handler = make_udp_handler_factory<Handler>(std::move(args)...);
    handler_name = handler_type_name(typeid(Handler));
    return *this;
  }
};

/// Checks every option. Errors: `errc::missing_option` (no handler),
/// `errc::invalid_option` naming the option and the reason.
[[nodiscard]] caf::error validate(const udp_server_options& opts);

} // namespace atl
