// State shared by one server's actors: options, the connection config, the
// listen sockets currently open and the connection supervisors.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>

#include "atoll/handlers/detail/connection_actor.hpp"
#include "atoll/runtime/reactor.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/supervisors/detail/server_context_base.hpp"
#include "atoll/supervisors/server_options.hpp"
#include "atoll/transports/listen_socket.hpp"

namespace atl::detail {

/// One listen socket, shared by the listener that opened it and the
/// acceptors accepting on it (the fd stays valid while any of them holds
/// it). Thread-safe.
class listen_endpoint {
public:
  /// Registers `sock` with `io` as a shared registration.
  [[nodiscard]] static caf::expected<std::shared_ptr<listen_endpoint>>
  make(listen_socket sock, std::shared_ptr<reactor> io);

  ~listen_endpoint();

  /// Stops listening now: removes the registration and shuts the socket down,
  /// so new connects are refused at once. Idempotent.
  void stop_listening();

  /// True once `stop_listening` ran.
  bool closed() const noexcept {
    return closed_.load();
  }

  /// The fd (valid while this object lives).
  int fd() const noexcept {
    return sock_.fd();
  }

  /// The bound address.
  const endpoint& local() const noexcept {
    return sock_.local();
  }

  /// The shared reactor registration the acceptors join.
  const fd_registration& registration() const noexcept {
    return reg_;
  }

  /// The reactor.
  reactor& io() const noexcept {
    return *io_;
  }

  listen_endpoint(listen_socket sock, std::shared_ptr<reactor> io, fd_registration reg)
    : sock_(std::move(sock)), io_(std::move(io)), reg_(reg) {}

private:
  listen_socket sock_;
  std::shared_ptr<reactor> io_;
  fd_registration reg_;
  std::atomic<bool> closed_{false};
  std::mutex mtx_;
};

/// What the running listener published.
struct listener_state {
  /// The listener actor (acceptors monitor it).
  caf::actor actor;
  /// Its listen sockets.
  std::vector<std::shared_ptr<listen_endpoint>> sockets;
  /// The advertised address (of the first socket).
  endpoint local;
  /// The listener span's context (the acceptors' parent).
  uint64_t span_context = 0;
};

/// Shared by the actors of one server. Thread-safe.
class server_context : public server_context_base {
public:
  /// Builds the context of a validated configuration.
  explicit server_context(server_options opts, std::shared_ptr<reactor> io,
                          std::shared_ptr<telemetry::bus> events);

  /// The options.
  const server_options& options() const noexcept {
    return opts_;
  }

  /// The configuration every connection actor gets.
  const std::shared_ptr<const connection_config>& connections() const noexcept {
    return conn_;
  }

  /// The actors subscribed to connection starts and stops.
  detail::connection_watchers& watchers() const noexcept {
    return *conn_->watchers;
  }

  // -- listener -------------------------------------------------------------------

  /// Makes `state` the current listener.
  void publish_listener(listener_state state);

  /// Forgets the listener `listener` (if it is the current one).
  void unpublish_listener(caf::actor_id listener);

  /// The current listener, if one runs.
  std::optional<listener_state> listener() const;

  /// Stops listening on every current socket (the first step of a stop).
  void stop_listening();

  // -- connection supervisors ------------------------------------------------------

  /// Records a connection supervisor (for draining and listing connections).
  void add_connection_supervisor(const caf::actor& sup);

  /// The connection supervisors that still exist.
  std::vector<caf::actor> connection_supervisors();

private:
  server_options opts_;
  std::shared_ptr<const connection_config> conn_;
  mutable std::mutex mtx_;
  std::optional<listener_state> listener_;
  std::vector<caf::actor_addr> connection_sups_;
};

} // namespace atl::detail
