// Internal: the connection supervisor of both servers (TCP/TLS: one per
// acceptor, of its connection actors; UDP: one, of the handler actors).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <caf/actor.hpp>

#include "atoll/runtime/supervisor.hpp"

namespace atl::detail {

/// The child spec of a connection supervisor (id and name
/// "connection_sup"): a `simple_one_for_one` supervisor of at most
/// `max_children` (empty: unlimited) temporary children with id `child_id`,
/// each started by `start` with the arguments of `start_child`, stopped
/// with `shutdown`, and shown in tree snapshots with its connection record
/// (`describe_connection`). Each time the supervisor starts (restarts
/// too), `started` gets it, on the parent's thread, before the parent
/// starts its next child. Its start fails as the nested supervisor's.
child_spec connection_sup_child(std::string child_id, start_function start,
                                shutdown_policy shutdown, std::optional<uint32_t> max_children,
                                std::function<void(const caf::actor&)> started);

} // namespace atl::detail
