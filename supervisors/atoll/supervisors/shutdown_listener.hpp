// The shutdown listener role: the first child a stopping server stops; it
// closes the port and drains all connections concurrently.
#pragma once

#include <memory>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/server_context.hpp"

namespace atl::detail {

/// The shutdown listener's child spec (worker, permanent, shutdown
/// infinity). When the server stops (`ctx->stopping`), its exit handler stops
/// listening (new connects are refused at once), then drains every
/// connection supervisor at the same time (each connection gets
/// `handle_shutdown`, then the shutdown policy applies), and exits once all
/// are drained: one `shutdown_timeout` bounds the whole drain. When it is
/// stopped for a restart of its siblings, it just exits.
child_spec shutdown_listener_spec(std::shared_ptr<server_context> ctx);

} // namespace atl::detail
