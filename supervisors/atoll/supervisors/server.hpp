// The public server API: start a server (a supervision tree) and operate it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/runtime/types.hpp"
#include "atoll/supervisors/server_actor.hpp"
#include "atoll/supervisors/server_options.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl {

namespace detail {
class server_context;
} // namespace detail

/// A blocking handle to a running server (Thousand Island's server pid),
/// for code outside actors. Cheap to copy. Each member function is a thin
/// client of the server's typed protocol (`atl::server_actor`): one request
/// to the root actor, waiting for its answer on the calling thread. Inside
/// an actor, send those requests yourself (`actor()`, `request(...).then`):
/// a blocking call there holds a scheduler thread, and on the system's
/// only worker thread it fails at once with `errc::would_deadlock` instead
/// of hanging.
class server {
public:
  server() = default;

  /// The server's supervisor actor (root of its supervision tree).
  caf::actor handle() const;

  /// The same actor, typed: the requests of `atl::server_actor`.
  server_actor actor() const;

  /// The bound address (the real port when started with port 0). Errors:
  /// `errc::suspended`.
  [[nodiscard]] caf::expected<endpoint> listener_info() const;

  /// The connections alive now, as records (a snapshot: connections come
  /// and go), including those draining during a stop (state `draining`).
  /// `connections_atom` of `atl::server_actor`.
  [[nodiscard]] caf::expected<std::vector<connection_record>> connections() const;

  /// Running, suspended or stopped. Reads the state the server's actors
  /// share, without a request: never blocks, also inside actors.
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
  /// timeout plus `default_stop_grace`, 5 s; forever if that is infinite).
  /// Errors: `errc::timeout` (the tree keeps stopping).
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
  caf::actor_system* sys_ = nullptr;
  std::shared_ptr<detail::server_context> ctx_;
};

/// Owns a running server and stops it when it goes out of scope (a stop
/// with drain, waiting as `server::stop()` does), so that no server
/// outlives the code that started it; an actor system's destructor would
/// otherwise wait for a running server forever. Move-only. Use it outside
/// actors, like `server`.
class scoped_server {
public:
  /// Owns nothing.
  scoped_server() = default;

  /// Owns `srv`.
  explicit scoped_server(server srv) noexcept : srv_(std::move(srv)) {}

  /// Takes `other`'s server (`other` owns nothing then).
  scoped_server(scoped_server&& other) noexcept : srv_(other.release()) {}

  /// Stops the server owned so far, then owns `other`'s.
  scoped_server& operator=(scoped_server&& other) noexcept;

  scoped_server(const scoped_server&) = delete;
  scoped_server& operator=(const scoped_server&) = delete;

  /// Stops the server (errors are logged, never thrown).
  ~scoped_server();

  /// The server.
  server& get() noexcept {
    return srv_;
  }

  /// The server.
  server* operator->() noexcept {
    return &srv_;
  }

  /// Gives up ownership: the server keeps running.
  server release() noexcept {
    return std::exchange(srv_, server{});
  }

private:
  server srv_;
};

/// Starts a server and blocks until it listens. Callable from any thread
/// outside actors (inside one, use `spawn_server`). Errors:
/// `errc::missing_option` / `errc::invalid_option` (validation), bind
/// errors (`errc::address_in_use`, `errc::access_denied`,
/// `errc::invalid_address`), `errc::reactor_unavailable`,
/// `errc::would_deadlock` (called on the only scheduler thread).
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
