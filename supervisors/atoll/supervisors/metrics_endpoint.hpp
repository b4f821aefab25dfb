// Reading a server_metrics from outside: an actor that answers requests, and
// a Prometheus endpoint served by an Atoll server of its own.
#pragma once

#include <cstdint>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "atoll/supervisors/server.hpp"
#include "atoll/supervisors/server_metrics.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl {

/// Answers `get_atom` with the current `metrics_snapshot`.
using metrics_actor = caf::typed_actor<caf::replies_to<caf::get_atom>::with<metrics_snapshot>>;

/// Spawns an actor that answers `get_atom` with `metrics->snapshot()` (for
/// code in actors, and for other CAF nodes once `register_types` ran).
/// It keeps `metrics` alive until it ends.
[[nodiscard]] metrics_actor spawn_metrics_actor(caf::actor_system& sys,
                                                std::shared_ptr<const server_metrics> metrics);

/// Where the Prometheus endpoint listens.
struct metrics_endpoint_options {
  /// TCP port (0: pick a free one; `listener_info` tells which).
  uint32_t port = 9464;
  /// Bind address.
  bind_address address = bind_address::any();
  /// Acceptors of the endpoint's server (scrapes are rare).
  uint32_t num_acceptors = 2;
};

/// Starts an HTTP/1.1 server (an Atoll server with the library's metrics
/// handler, on its own telemetry bus, so that scrapes are not counted) that
/// answers `GET /metrics` and `HEAD /metrics` (`Content-Type: text/plain;
/// version=0.0.4`) with `metrics->prometheus_text()` and the `atoll_scheduler_*`
/// metrics of `sys` (`to_prometheus_text(reactor::stats())`; left out while
/// the system shuts down), other paths with 404, other
/// methods with 405, and requests that are not HTTP/1.x or whose head
/// exceeds 8 KiB with 400; every answer closes the connection (read timeout
/// 10 s, drain at stop 1 s). Blocks until
/// it listens, like `start_server`, with the same errors. Stop it like any
/// server.
[[nodiscard]] caf::expected<server> start_metrics_endpoint(
  caf::actor_system& sys, std::shared_ptr<const server_metrics> metrics,
  metrics_endpoint_options opts = {});

} // namespace atl
