// The live observer page: a node's servers drawn in a browser (trees,
// connections with their rates, restarts), refreshed by server-sent events,
// served by an Atoll HTTP server of its own.
#pragma once

#include <chrono>
#include <cstdint>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "atoll/supervisors/inspector.hpp"
#include "atoll/supervisors/server.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl {

/// Where and how the observer page is served.
struct observer_page_options {
  /// TCP port (0: pick a free one; `listener_info` tells which).
  uint32_t port = 0;
  /// Bind address (loopback by default: the page shows every peer address).
  bind_address address = bind_address::loopback();
  /// How often an open page gets a new snapshot (at least 100 ms).
  std::chrono::milliseconds interval{1000};
  /// How long a snapshot waits for the inspector and the servers.
  std::chrono::milliseconds timeout{5000};
  /// Acceptors of the page's server.
  uint32_t num_acceptors = 2;
};

/// Starts an HTTP/1.1 server (an Atoll server with the library's page
/// handler, on its own telemetry bus) showing the servers `inspector`
/// knows: `GET /` the page (HTML with its script and style inline: nothing
/// is downloaded), `GET /snapshot` one snapshot as JSON (`{"time_ms",
/// "scheduler", "servers": [{"name", "status", "local", "connections",
/// "tree"}]}`, the scheduler of the inspector's node as `scheduler_atom`
/// answers it, with the fields of `scheduler_stats` by their names (null if
/// it did not answer), each tree as `tree_to_json`
/// writes it), `GET /events` the same snapshots as
/// server-sent events, one per `interval`, until the client leaves; other
/// paths 404, other methods 405, bad requests 400. Errors: those of
/// `start_server`, `errc::invalid_option` for an invalid inspector or an
/// interval under 100 ms. Blocks until it listens (call it outside actors).
/// Stop it like any server.
[[nodiscard]] caf::expected<server> start_observer_page(caf::actor_system& sys,
                                                        inspector_actor inspector,
                                                        observer_page_options opts = {});

} // namespace atl
