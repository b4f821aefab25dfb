// Internal: the handlers of `atl::server_actor` and of `atl::udp_server_actor`
// that a server's root supervisor adds to its own (through
// `supervisor_flags::extension`).
#pragma once

#include <memory>

#include <caf/fwd.hpp>
#include <caf/message_handler.hpp>

namespace atl::detail {

class server_context;
class udp_server_context;

/// The TCP/TLS server's own requests (`listening_atom`, `status_atom`, ...),
/// run inside the root supervisor `self` of the server `ctx`. Asynchronous:
/// each handler only sends requests and answers through a response promise.
caf::message_handler server_protocol(caf::event_based_actor* self,
                                     std::shared_ptr<server_context> ctx);

/// The UDP server's own requests, run inside the root supervisor `self` of
/// the server `ctx`. Asynchronous, as `server_protocol`.
caf::message_handler udp_server_protocol(caf::event_based_actor* self,
                                         std::shared_ptr<udp_server_context> ctx);

} // namespace atl::detail
