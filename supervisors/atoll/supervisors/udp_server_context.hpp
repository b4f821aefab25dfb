// State shared by one UDP server's actors: options, the handler actors'
// configuration, the open sockets, the connection supervisor, the rate
// limiter and the drop counters.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>

#include "atoll/handlers/detail/udp_session.hpp"
#include "atoll/runtime/logger.hpp"
#include "atoll/runtime/reactor.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/supervisors/detail/server_context_base.hpp"
#include "atoll/supervisors/rate_limiter.hpp"
#include "atoll/supervisors/udp_server_options.hpp"
#include "atoll/transports/datagram_socket.hpp"

namespace atl::detail {

/// One open UDP socket with its reactor registration, shared by the
/// listeners receiving on it. Thread-safe.
class udp_endpoint {
public:
  /// Registers `sock` with `io` as a shared registration.
  [[nodiscard]] static caf::expected<std::shared_ptr<udp_endpoint>>
  make(std::shared_ptr<datagram_socket> sock, std::shared_ptr<reactor> io);

  udp_endpoint(std::shared_ptr<datagram_socket> sock, std::shared_ptr<reactor> io,
               fd_registration reg)
    : sock_(std::move(sock)), io_(std::move(io)), reg_(reg) {}

  ~udp_endpoint();

  /// Stops receiving: removes the registration, so the listeners get no
  /// more events; the socket stays open for the handlers' sends (a stop's
  /// goodbyes). Idempotent.
  void stop_receiving();

  /// Stops receiving and closes the socket (the port is free again;
  /// handlers' sends then fail with `errc::closed`). Idempotent.
  void close();

  /// True once `stop_receiving` or `close` ran.
  bool stopped() const noexcept {
    return stopped_.load();
  }

  /// The socket.
  const std::shared_ptr<datagram_socket>& socket() const noexcept {
    return sock_;
  }

  /// The registration the listeners join.
  const fd_registration& registration() const noexcept {
    return reg_;
  }

  /// The reactor.
  reactor& io() const noexcept {
    return *io_;
  }

private:
  std::shared_ptr<datagram_socket> sock_;
  std::shared_ptr<reactor> io_;
  fd_registration reg_;
  std::atomic<bool> stopped_{false};
  std::mutex mtx_;
};

/// Datagrams a server dropped, by cause.
struct udp_drop_counters {
  /// Larger than `max_packet_size`.
  std::atomic<uint64_t> too_large{0};
  /// Over the rate limit.
  std::atomic<uint64_t> rate_limited{0};
  /// No handler actor could be started (at the limit after the retries).
  std::atomic<uint64_t> spawn_failed{0};
  /// Received (all, before any drop).
  std::atomic<uint64_t> received{0};
};

/// Shared by the actors of one UDP server. Thread-safe.
class udp_server_context : public server_context_base {
public:
  /// Builds the context of a validated configuration.
  udp_server_context(udp_server_options opts, std::shared_ptr<reactor> io,
                     std::shared_ptr<telemetry::bus> events);

  /// The options.
  const udp_server_options& options() const noexcept {
    return opts_;
  }

  /// The configuration every handler actor gets.
  const std::shared_ptr<const udp_session_config>& sessions() const noexcept {
    return sessions_;
  }

  /// Sets `stopping`; a stop that begins also counts in the handler
  /// actors' configuration (they may outlive the context), before
  /// `stopping` shows it.
  void set_stopping(bool value) noexcept {
    if (value)
      sessions_->stops->fetch_add(1, std::memory_order_acq_rel);
    stopping = value;
  }

  /// The listener's frequent events, built only for their subscribers.
  const telemetry::interest& receiving_event() const noexcept {
    return *receiving_;
  }

  /// See above.
  const telemetry::interest& waiting_event() const noexcept {
    return *waiting_;
  }

  /// `atoll.udp.listener.handled`: an `in_listener` listener's summary of
  /// the datagrams it handled in one receive batch, emitted in place of a
  /// connection span per datagram when every subscriber of those spans
  /// accepts summaries (`telemetry::delivery::summaries`).
  const telemetry::interest& handled_event() const noexcept {
    return *handled_;
  }

  /// The rate limiter (null when rate limiting is off).
  const std::shared_ptr<rate_limiter>& limiter() const noexcept {
    return limiter_;
  }

  /// Drop counters.
  udp_drop_counters& drops() noexcept {
    return drops_;
  }

  // -- sockets ----------------------------------------------------------------------

  /// Makes `sockets` the open sockets.
  void publish_sockets(std::vector<std::shared_ptr<udp_endpoint>> sockets);

  /// Closes and forgets the open sockets.
  void close_sockets();

  /// Stops receiving on the open sockets (they stay open for sends).
  void stop_receiving();

  /// The open sockets (empty while suspended).
  std::vector<std::shared_ptr<udp_endpoint>> sockets() const;

  // -- connection supervisor --------------------------------------------------------

  /// Records the connection supervisor.
  void set_connection_supervisor(const caf::actor& sup);

  /// The connection supervisor, if it runs.
  caf::actor connection_supervisor() const;

private:
  udp_server_options opts_;
  std::shared_ptr<const udp_session_config> sessions_;
  std::unique_ptr<telemetry::interest> receiving_;
  std::unique_ptr<telemetry::interest> waiting_;
  std::unique_ptr<telemetry::interest> handled_;
  std::shared_ptr<rate_limiter> limiter_;
  udp_drop_counters drops_;
  mutable std::mutex mtx_;
  std::vector<std::shared_ptr<udp_endpoint>> sockets_;
  caf::actor_addr conn_sup_;
};

/// The UDP events and their log levels (registered once by the first
/// context).
const log_level_table& udp_log_levels();

} // namespace atl::detail
