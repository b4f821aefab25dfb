// The public UDP server API (Abyss): start a server (a supervision tree) and
// operate it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/typed_actor.hpp>

#include "atoll/handlers/connection_record.hpp"
#include "atoll/runtime/supervisor.hpp"
#include "atoll/runtime/types.hpp"
#include "atoll/supervisors/rate_limiter.hpp"
#include "atoll/supervisors/server.hpp"
#include "atoll/supervisors/server_actor.hpp"
#include "atoll/supervisors/udp_server_options.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl {

namespace detail {
class udp_server_context;
} // namespace detail

/// What a UDP server received and dropped since it started.
struct udp_server_stats {
  /// Datagrams received (before any drop).
  uint64_t received = 0;
  /// Dropped: larger than `max_packet_size`.
  uint64_t too_large = 0;
  /// Dropped: over the rate limit.
  uint64_t rate_limited = 0;
  /// Dropped: no handler actor could be started (limit reached after the
  /// retries), or too many datagrams waiting for a per-peer actor (64 while
  /// it starts, 256 in its mailbox while it runs).
  uint64_t spawn_failed = 0;
  /// The rate limiter's own figures (when rate limiting is on).
  std::optional<rate_limit_stats> rate_limit;
  /// Peers with a handler actor (per-peer lifetime).
  size_t peers = 0;
};

/// The typed interface of a UDP server's root actor: the TCP server's
/// protocol (`atl::server_actor`) where it applies. Every request is
/// answered asynchronously; an actor never blocks on it.
/// - `(listening_atom)`: the bound `endpoint` once the server started, or
///   the error of its start if asked while it started.
/// - `(listener_info_atom)`: the bound `endpoint`; `errc::suspended`.
/// - `(status_atom)`: the `server_status`.
/// - `(server_info_atom)`: a `server_info` (status, address, handler
///   actors alive as `active_connections`).
/// - `(connections_atom)`: the records of the handler actors alive now
///   (`connection_record`: handle, peer, local address, transport "udp",
///   handler, datagrams and bytes each way, age).
/// - `(tree_atom)`: a `tree_node` snapshot.
/// - `(suspend_atom)`: stops receiving (every socket closes); `ok`, also
///   if suspended. Atomic: one child holds every socket.
/// - `(resume_atom)`: opens the sockets again (all or none); `ok`, also if
///   running, or the bind error.
/// - `(stop_atom)`: stops the server (handlers get `handle_shutdown`);
///   `ok` once it is gone.
/// Suspend and resume fail with `errc::shutting_down` once it stops.
using udp_server_actor =
    caf::typed_actor<caf::replies_to<listening_atom>::with<endpoint>,
                     caf::replies_to<listener_info_atom>::with<endpoint>,
                     caf::replies_to<status_atom>::with<server_status>,
                     caf::replies_to<server_info_atom>::with<server_info>,
                     caf::replies_to<connections_atom>::with<std::vector<connection_record>>,
                     caf::replies_to<tree_atom>::with<tree_node>,
                     caf::replies_to<suspend_atom>::with<caf::ok_atom>,
                     caf::replies_to<resume_atom>::with<caf::ok_atom>,
                     caf::replies_to<stop_atom>::with<caf::ok_atom>>;

/// A blocking handle to a running UDP server, for code outside actors.
/// Cheap to copy. Each member function but `status`, `stats` and
/// `set_rate_limit` is one request of `atl::udp_server_actor` to the root,
/// waited for on the calling thread; on the system's only scheduler thread
/// they fail at once with `errc::would_deadlock` instead of hanging.
class udp_server {
public:
  udp_server() = default;

  /// The server's supervisor actor (root of its supervision tree).
  caf::actor handle() const;

  /// The same actor, typed: the requests of `atl::udp_server_actor`.
  udp_server_actor actor() const;

  /// The bound address (the real port when started with port 0). Errors:
  /// `errc::suspended`.
  [[nodiscard]] caf::expected<endpoint> listener_info() const;

  /// Running, suspended or stopped. Reads the state the server's actors
  /// share, without a request: never blocks.
  server_status status() const;

  /// Status, address and the number of handler actors (in
  /// `active_connections`).
  [[nodiscard]] caf::expected<server_info> info() const;

  /// The records of the handler actors alive now (a snapshot; see
  /// `connections_atom`).
  [[nodiscard]] caf::expected<std::vector<connection_record>> connections() const;

  /// Stops receiving: the listeners end and the sockets close (the port is
  /// free; datagrams sent meanwhile are not received). Handler actors go on;
  /// their sends fail with `errc::closed`. One request to the server.
  [[nodiscard]] caf::error suspend();

  /// Re-opens the sockets (a new port if started with port 0) and receives
  /// again. Errors: the bind error, e.g. `errc::address_in_use`.
  [[nodiscard]] caf::error resume();

  /// Stops the server: nothing more is received, every handler actor gets
  /// `handle_shutdown` (then a kill after the shutdown timeout), then the
  /// tree stops. Waits up to `timeout` (default: the shutdown timeout plus
  /// `default_stop_grace`, 5 s; forever if that is infinite). Errors:
  /// `errc::timeout` (the tree keeps stopping).
  [[nodiscard]] caf::error stop(std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  /// A snapshot of the server's supervision tree.
  [[nodiscard]] caf::expected<tree_node> tree() const;

  /// Received and dropped datagrams (counters; cheap, any thread).
  udp_server_stats stats() const;

  /// Changes the rate limit on the running server (existing buckets keep
  /// their fill). Errors: `errc::invalid_option` (values as the options
  /// allow), `errc::unsupported_operation` (rate limiting is off).
  [[nodiscard]] caf::error set_rate_limit(uint32_t max_packets, std::chrono::milliseconds window);

  /// True if this handle refers to a server.
  explicit operator bool() const noexcept {
    return ctx_ != nullptr;
  }

  /// Used by `start_udp_server` and `make_udp_server_child`.
  udp_server(caf::actor_system* sys, std::shared_ptr<detail::udp_server_context> ctx)
    : sys_(sys), ctx_(std::move(ctx)) {}

private:
  caf::actor_system* sys_ = nullptr;
  std::shared_ptr<detail::udp_server_context> ctx_;
};

/// Spawns a UDP server without waiting for it: validates `opts` and returns
/// its root actor at once; ask it `listening_atom` to learn when it
/// receives (and where) or why it could not start. Never blocks; callable
/// from actors. Errors: as the validation of `start_udp_server`.
[[nodiscard]] caf::expected<udp_server_actor> spawn_udp_server(caf::actor_system& sys,
                                                               udp_server_options opts);

/// Starts a UDP server and blocks until it receives. Callable from any
/// thread outside actors. Errors: `errc::missing_option` /
/// `errc::invalid_option` (validation), bind errors
/// (`errc::address_in_use`, `errc::access_denied`, `errc::invalid_address`),
/// `errc::reactor_unavailable`, `errc::would_deadlock` (called on the only
/// scheduler thread).
[[nodiscard]] caf::expected<udp_server> start_udp_server(caf::actor_system& sys,
                                                         udp_server_options opts);

/// A UDP server to run under your own supervisor.
struct udp_server_child {
  /// A child spec of type supervisor.
  child_spec spec;
  /// The server's handle.
  udp_server handle;
};

/// Builds a UDP server's child spec. Errors: as `start_udp_server`'s
/// validation.
[[nodiscard]] caf::expected<udp_server_child>
make_udp_server_child(caf::actor_system& sys, std::string id, udp_server_options opts);

} // namespace atl
