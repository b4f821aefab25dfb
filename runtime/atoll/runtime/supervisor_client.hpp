// Blocking client helpers of the generic supervisor: the supervisor
// operations (which_children, start_child, terminate_child, drain, tree
// snapshots, stop, ...) as calls that wait for the reply. Included by
// supervisor.hpp.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>

#include "atoll/runtime/supervisor.hpp"
#include "atoll/runtime/types.hpp"

namespace atl {

// -- blocking client helpers (call from outside actors) -------------------------
//
// Each helper but `stop_supervisor` sends one request to the supervisor `sup`
// from a `caf::scoped_actor` and blocks the calling thread until the reply or
// `timeout`; call them from outside actors (inside an actor they would block
// a scheduler thread). The request's errors, common to them: `errc::not_found`
// if `sup` is an invalid handle, `caf::sec::request_timeout` after `timeout`,
// and `caf::sec::request_receiver_down` if the supervisor is gone.

/// Default timeout of the blocking helpers below.
inline constexpr std::chrono::milliseconds default_call_timeout{5000};

/// Lists the children of `sup` (OTP's which_children): temporary dynamic
/// children first, then the others in start order. Temporary children that
/// the supervisor is stopping (a server's draining connections) are listed
/// until they exit, after the others. Errors: the request's. Blocks the
/// calling thread.
[[nodiscard]] caf::expected<std::vector<child_info>>
which_children(caf::actor_system& sys, const caf::actor& sup,
               std::chrono::milliseconds timeout = default_call_timeout);

/// Counts the children of `sup` (OTP's count_children), temporary children
/// being stopped among the active ones until they exit. Errors: the
/// request's. Blocks the calling thread.
[[nodiscard]] caf::expected<child_counts>
count_children(caf::actor_system& sys, const caf::actor& sup,
               std::chrono::milliseconds timeout = default_call_timeout);

/// Adds and starts a child of a static supervisor. Errors: `already_present`,
/// `already_started`, `invalid_spec`, `unsupported_operation` (dynamic
/// supervisor), `shutting_down`, or the start function's error. Blocks the
/// calling thread.
[[nodiscard]] caf::expected<caf::actor>
start_child(caf::actor_system& sys, const caf::actor& sup, child_spec spec,
            std::chrono::milliseconds timeout = default_call_timeout);

/// Starts a child of a `simple_one_for_one` supervisor from its template,
/// with `args` visible to the start function. Errors: `max_children`,
/// `unsupported_operation` (static supervisor), `shutting_down`, or the start
/// function's error. Blocks the calling thread.
[[nodiscard]] caf::expected<caf::actor>
start_child(caf::actor_system& sys, const caf::actor& sup, caf::message args,
            std::chrono::milliseconds timeout = default_call_timeout);

/// Hands running actors that the caller spawned itself to a
/// `simple_one_for_one` supervisor of temporary workers, which lists,
/// counts and stops them as children started from its template (no start
/// function runs; each leaves the list by itself when it ends, one already
/// dead at once). The supervisor's
/// `max_children` is not checked: an adopter keeps its own limit. The
/// asynchronous form is the request `(adopt_children_atom,
/// std::vector<caf::actor>)`, one message for many actors (the UDP
/// listeners' way), or `(adopt_children_atom, adoption_batch)`, which
/// stops the actors if no supervisor takes them (the acceptors' way). Errors: `unsupported_operation` (another kind of
/// supervisor; the actors are left alone), `shutting_down` (draining or
/// stopping; the supervisor stops them with the template's shutdown policy,
/// and its drain or stop waits for them). Blocks the calling thread.
[[nodiscard]] caf::error adopt_children(caf::actor_system& sys, const caf::actor& sup,
                                        std::vector<caf::actor> children,
                                        std::chrono::milliseconds timeout = default_call_timeout);

/// Stops the child `id` with its shutdown policy; its spec stays (static
/// supervisors). Errors: `not_found`, `unsupported_operation` (dynamic
/// supervisor), `shutting_down`. Blocks the calling thread.
[[nodiscard]] caf::error terminate_child(caf::actor_system& sys, const caf::actor& sup,
                                         const std::string& id,
                                         std::chrono::milliseconds timeout = default_call_timeout);

/// Stops a dynamic child given by handle (`simple_one_for_one`).
/// Errors: `not_found`, `shutting_down`. Blocks the calling thread.
[[nodiscard]] caf::error terminate_child(caf::actor_system& sys, const caf::actor& sup,
                                         const caf::actor& child,
                                         std::chrono::milliseconds timeout = default_call_timeout);

/// Restarts a terminated child whose spec is still present.
/// Errors: `not_found`, `running`, `unsupported_operation` (dynamic
/// supervisor), `shutting_down`, or the start function's error. Blocks the
/// calling thread.
[[nodiscard]] caf::expected<caf::actor>
restart_child(caf::actor_system& sys, const caf::actor& sup, const std::string& id,
              std::chrono::milliseconds timeout = default_call_timeout);

/// Deletes the spec of a terminated child. Errors: `not_found`, `running`,
/// `unsupported_operation` (dynamic supervisor), `shutting_down`. Blocks the
/// calling thread.
[[nodiscard]] caf::error delete_child(caf::actor_system& sys, const caf::actor& sup,
                                      const std::string& id,
                                      std::chrono::milliseconds timeout = default_call_timeout);

/// Stops all children of `sup` (a dynamic supervisor stops them concurrently)
/// with their shutdown policies, and from then on refuses `start_child` with
/// `errc::shutting_down`; the supervisor itself keeps running. Returns once
/// the children are gone, including actors handed to it meanwhile
/// (`adopt_children`), or `timeout` passed. Until each has exited, the
/// children being stopped are still listed, counted and in the tree. Errors: the request's, or
/// `shutting_down` if the supervisor is stopping. Blocks the calling thread.
[[nodiscard]] caf::error drain(caf::actor_system& sys, const caf::actor& sup,
                               std::chrono::milliseconds timeout = std::chrono::milliseconds{
                                   60000});

/// Returns a recursive snapshot of the tree rooted at `sup`. Errors: the
/// request's. Blocks the calling thread.
[[nodiscard]] caf::expected<tree_node>
snapshot_tree(caf::actor_system& sys, const caf::actor& sup,
              std::chrono::milliseconds timeout = default_call_timeout);

/// Stops `sup` (children in reverse order, each with its shutdown policy) and
/// waits up to `timeout` until it is gone. Returns `errc::timeout` if it is
/// still running then (it keeps stopping), `errc::not_found` for an invalid
/// handle. Blocks the calling thread.
[[nodiscard]] caf::error
stop_supervisor(caf::actor_system& sys, const caf::actor& sup,
                std::chrono::milliseconds timeout = std::chrono::milliseconds{60000});

} // namespace atl
