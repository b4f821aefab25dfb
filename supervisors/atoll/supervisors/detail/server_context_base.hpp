// What the shared state of a TCP server and of a UDP server have in common.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include <caf/actor.hpp>

#include "atoll/runtime/reactor.hpp"
#include "atoll/runtime/telemetry.hpp"

namespace atl::detail {

/// The part of a server's shared context that TCP (`server_context`) and
/// UDP (`udp_server_context`) servers share: the reactor, the telemetry
/// bus, the span prefixes of the listener and acceptor roles, the stop
/// flag and the server supervisor. Thread-safe; used by every actor of
/// one server.
class server_context_base {
public:
  server_context_base(const server_context_base&) = delete;
  server_context_base& operator=(const server_context_base&) = delete;

  /// The reactor.
  const std::shared_ptr<reactor>& io() const noexcept {
    return io_;
  }

  /// The telemetry bus.
  const std::shared_ptr<telemetry::bus>& events() const noexcept {
    return events_;
  }

  /// The listener span's prefix (e.g. {"atoll", "listener"}).
  const std::shared_ptr<const telemetry::event_name>& listener_prefix() const noexcept {
    return listener_prefix_;
  }

  /// The acceptor span's prefix (e.g. {"atoll", "acceptor"}).
  const std::shared_ptr<const telemetry::event_name>& acceptor_prefix() const noexcept {
    return acceptor_prefix_;
  }

  /// True once the server began to stop (set by its supervisor's on_stop).
  std::atomic<bool> stopping{false};

  /// Records the server supervisor. The context holds it strongly: a running
  /// server does not need a handle to stay alive (CAF would otherwise end an
  /// unreferenced supervisor as unreachable).
  void set_server(const caf::actor& sup);

  /// The server supervisor, if started.
  caf::actor server() const;

protected:
  /// `listener` and `acceptor`: the span prefixes of those roles.
  server_context_base(std::shared_ptr<reactor> io, std::shared_ptr<telemetry::bus> events,
                      telemetry::event_name listener, telemetry::event_name acceptor);

  ~server_context_base();

  std::shared_ptr<reactor> io_;
  std::shared_ptr<telemetry::bus> events_;
  std::shared_ptr<const telemetry::event_name> listener_prefix_;
  std::shared_ptr<const telemetry::event_name> acceptor_prefix_;

private:
  mutable std::mutex server_mtx_;
  caf::actor server_;
};

} // namespace atl::detail
