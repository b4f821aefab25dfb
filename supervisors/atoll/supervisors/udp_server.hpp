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

#include "atoll/runtime/supervisor.hpp"
#include "atoll/runtime/types.hpp"
#include "atoll/supervisors/rate_limiter.hpp"
#include "atoll/supervisors/server.hpp"
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
  /// retries, or too many datagrams held for a starting per-peer actor).
  uint64_t spawn_failed = 0;
  /// The rate limiter's own figures (when rate limiting is on).
  std::optional<rate_limit_stats> rate_limit;
  /// Peers with a handler actor (per-peer lifetime).
  size_t peers = 0;
};

/// A UDP server's state as reported by `udp_server::info`.
struct udp_server_info {
  /// Running, suspended or stopped.
  server_status status = server_status::stopped;
  /// The bound address while running.
  std::optional<endpoint> local;
  /// Handler actors alive now.
  uint64_t active_handlers = 0;
};

/// A handle to a running UDP server. Cheap to copy. The member functions
/// block the calling thread: call them from outside actors.
class udp_server {
public:
  udp_server() = default;

  /// The server's supervisor actor (root of its supervision tree).
  caf::actor handle() const;

  /// The bound address (the real port when started with port 0). Errors:
  /// `errc::suspended`.
  [[nodiscard]] caf::expected<endpoint> listener_info() const;

  /// Running, suspended or stopped.
  server_status status() const;

  /// Status, address and the number of handler actors.
  [[nodiscard]] caf::expected<udp_server_info> info() const;

  /// The handler actors alive now (a snapshot).
  [[nodiscard]] caf::expected<std::vector<caf::actor>> connections() const;

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
  /// 5 s). Errors: `errc::timeout` (the tree keeps stopping).
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

/// Starts a UDP server and blocks until it receives. Callable from any
/// thread outside actors. Errors: `errc::missing_option` /
/// `errc::invalid_option` (validation), bind errors
/// (`errc::address_in_use`, `errc::access_denied`, `errc::invalid_address`),
/// `errc::reactor_unavailable`.
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
