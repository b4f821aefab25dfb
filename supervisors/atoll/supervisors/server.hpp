// The public server API: start a server (a supervision tree) and operate it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/runtime/types.hpp"
#include "atoll/supervisors/server_options.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl {

namespace detail {
class server_context;
} // namespace detail

/// `(listener_info_atom)` to a server's listener (the `listener` child of
/// its tree): replies the bound `endpoint`. Usable from other actors and
/// nodes; `server::listener_info` is the blocking form.
using listener_info_atom = caf::atom_constant<caf::atom("lstninfo")>;

/// Whether a server accepts connections.
enum class server_status : uint8_t {
  /// Listening.
  running,
  /// Suspended: the port is closed, existing connections go on.
  suspended,
  /// Stopping or stopped.
  stopped,
};

/// Returns "running", "suspended" or "stopped".
std::string to_string(server_status x);

/// A server's state as reported by `server::info`.
struct server_info {
  /// Running, suspended or stopped.
  server_status status = server_status::stopped;
  /// The bound address while running.
  std::optional<endpoint> local;
  /// Connections alive now (summed over the connection supervisors).
  uint64_t active_connections = 0;
};

/// A handle to a running server (Thousand Island's server pid). Cheap to
/// copy. The member functions block the calling thread: call them from
/// outside actors (inside an actor, message the actors of `tree()` instead).
class server {
public:
  server() = default;

  /// The server's supervisor actor (root of its supervision tree).
  caf::actor handle() const;

  /// The bound address (the real port when started with port 0). Errors:
  /// `errc::suspended`.
  [[nodiscard]] caf::expected<endpoint> listener_info() const;

  /// The connection actors alive now (a snapshot: connections come and go).
  [[nodiscard]] caf::expected<std::vector<caf::actor>> connections() const;

  /// Running, suspended or stopped.
  server_status status() const;

  /// Status, address and the number of active connections.
  [[nodiscard]] caf::expected<server_info> info() const;

  /// Closes the port and stops accepting; existing connections go on. With
  /// port 0, `resume` binds a new port.
  [[nodiscard]] caf::error suspend();

  /// Re-opens the port (a new one if the server was started with port 0)
  /// and accepts again. Errors: the bind error, e.g. `errc::address_in_use`.
  [[nodiscard]] caf::error resume();

  /// Stops the server synchronously: the port closes at once (new connects
  /// are refused), then all connections drain concurrently (each gets
  /// `handle_shutdown`; after the shutdown timeout they are closed by force),
  /// then the tree stops. Waits up to `timeout` (default: the shutdown
  /// timeout plus 5 s; forever if that is infinite). Errors: `errc::timeout`
  /// (the tree keeps stopping).
  [[nodiscard]] caf::error stop(std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  /// A snapshot of the server's supervision tree.
  [[nodiscard]] caf::expected<tree_node> tree() const;

  /// True if this handle refers to a server.
  explicit operator bool() const noexcept {
    return ctx_ != nullptr;
  }

  /// Used by `start_server` and `make_server_child`.
  server(caf::actor_system* sys, std::shared_ptr<detail::server_context> ctx)
    : sys_(sys), ctx_(std::move(ctx)) {}

private:
  [[nodiscard]] caf::expected<std::vector<caf::actor>> acceptor_supervisors() const;

  caf::actor_system* sys_ = nullptr;
  std::shared_ptr<detail::server_context> ctx_;
};

/// Starts a server and blocks until it listens. Callable from any thread
/// outside actors. Errors: `errc::missing_option` / `errc::invalid_option`
/// (validation), bind errors (`errc::address_in_use`, `errc::access_denied`,
/// `errc::invalid_address`), `errc::reactor_unavailable`.
[[nodiscard]] caf::expected<server> start_server(caf::actor_system& sys, server_options opts);

/// A server to run under your own supervisor: add `spec` to it; `handle`
/// operates the server once started (and after restarts).
struct server_child {
  /// A child spec of type supervisor.
  child_spec spec;
  /// The server's handle.
  server handle;
};

/// Builds a server's child spec. Errors: as the validation of `start_server`.
[[nodiscard]] caf::expected<server_child> make_server_child(caf::actor_system& sys, std::string id,
                                                            server_options opts);

/// Prepares `cfg` for Atoll (the one call a program needs): loads Atoll's
/// scheduler (`atl::io_scheduler`, whose workers also poll the sockets;
/// servers cannot start without it), registers the "atoll" error category
/// and every message type Atoll's actors exchange (tree snapshots,
/// endpoints, metrics), so that `sys.render(err)` prints Atoll errors and
/// servers can be inspected from other CAF nodes. Call it once per
/// `actor_system_config`, before constructing the actor system.
void register_types(caf::actor_system_config& cfg);

} // namespace atl
