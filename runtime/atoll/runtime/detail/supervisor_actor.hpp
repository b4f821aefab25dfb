// The generic supervisor's actor (internal): spawns the actor behind
// `spawn_supervisor` and `supervisor_child`. Not part of the public API.
#pragma once

#include <chrono>
#include <vector>

#include <caf/actor.hpp>
#include <caf/duration.hpp>
#include <caf/fwd.hpp>

#include "atoll/runtime/supervisor.hpp"

namespace atl::detail {

/// Spawns a supervisor actor in `sys` that starts `specs` in order. Returns
/// at once; the children start asynchronously. `flags` and `specs` must pass
/// `validate` (not checked here). Callable from any thread.
caf::actor spawn_supervisor_actor(caf::actor_system& sys, supervisor_flags flags,
                                  std::vector<child_spec> specs);

/// The same, spawned by `parent` (e.g. a nested supervisor spawned by its
/// parent's start function). Call it on `parent`'s thread.
caf::actor spawn_supervisor_actor(caf::event_based_actor* parent, supervisor_flags flags,
                                  std::vector<child_spec> specs);

/// `timeout` as CAF takes it. CAF adds a timeout to the current time, so a
/// value near `milliseconds::max()` (how callers spell "no limit") would
/// overflow: anything above a century means no timeout. Thread-safe.
caf::duration caf_timeout(std::chrono::milliseconds timeout);

} // namespace atl::detail
