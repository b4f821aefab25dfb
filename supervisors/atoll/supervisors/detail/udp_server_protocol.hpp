// Internal: the handlers of `atl::udp_server_actor` that a UDP server's root
// supervisor adds to its own (through `supervisor_flags::extension`).
#pragma once

#include <memory>

#include <caf/fwd.hpp>
#include <caf/message_handler.hpp>

namespace atl::detail {

class udp_server_context;

/// The UDP server's own requests, run inside its root supervisor `self`.
/// Asynchronous: each handler only sends requests and answers through a
/// response promise.
caf::message_handler udp_server_protocol(caf::event_based_actor* self,
                                         std::shared_ptr<udp_server_context> ctx);

} // namespace atl::detail
