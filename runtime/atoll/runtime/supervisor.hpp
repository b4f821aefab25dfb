// A generic OTP-style supervisor for CAF 0.17: child specs, restart
// strategies, restart intensity, ordered start and shutdown, and the
// supervisor operations as messages with typed replies (and as blocking
// calls: supervisor_client.hpp, included at the end).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/duration.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/message_handler.hpp>

#include "atoll/runtime/durations.hpp"
#include "atoll/runtime/types.hpp"

namespace atl {

/// How a supervisor reacts when a child terminates and must be restarted
/// (OTP's strategies).
enum class strategy : uint8_t {
  /// Restart only the terminated child.
  one_for_one,
  /// Terminate the children started after it (reverse order), then restart the
  /// terminated child and those after it (in order).
  rest_for_one,
  /// Terminate all other children (reverse order), then restart all (in order).
  one_for_all,
  /// A dynamic supervisor: children are added at run time from one template
  /// spec by `start_child` with arguments; restarts are one_for_one.
  simple_one_for_one,
};

/// Returns the strategy's OTP name, e.g. "rest_for_one".
std::string to_string(strategy x);

/// How a supervisor stops a child (OTP's shutdown values).
class shutdown_policy {
public:
  /// The three policies.
  enum class kind : uint8_t { brutal_kill, timeout, infinity };

  /// Kill the child at once (`exit_reason::kill`, not trappable).
  static shutdown_policy brutal_kill() noexcept {
    return shutdown_policy{kind::brutal_kill, std::chrono::milliseconds{0}};
  }

  /// Send `exit_reason::user_shutdown`, wait up to `ms` for the child to exit,
  /// then kill it.
  static shutdown_policy timeout(std::chrono::milliseconds ms) noexcept {
    return shutdown_policy{kind::timeout, ms};
  }

  /// Send `exit_reason::user_shutdown` and wait for the child as long as it
  /// takes (the default for supervisor children).
  static shutdown_policy infinity() noexcept {
    return shutdown_policy{kind::infinity, std::chrono::milliseconds{0}};
  }

  /// The policy's kind.
  kind which() const noexcept {
    return kind_;
  }

  /// The timeout of a `timeout` policy (0 for the others).
  std::chrono::milliseconds time() const noexcept {
    return time_;
  }

  /// How long a caller waits for a child stopped with this policy: its
  /// time plus `grace` (negative values count as 0), or `infinite` for
  /// `infinity` (and when the sum would overflow).
  std::chrono::milliseconds wait_bound(std::chrono::milliseconds grace) const noexcept {
    constexpr std::chrono::milliseconds zero{0};
    auto time = std::max(time_, zero);
    grace = std::max(grace, zero);
    if (kind_ == kind::infinity || time > infinite - grace)
      return infinite;
    return time + grace;
  }

private:
  shutdown_policy(kind k, std::chrono::milliseconds t) noexcept : kind_(k), time_(t) {}

  kind kind_;
  std::chrono::milliseconds time_;
};

/// What a start function sees. It runs inside the supervisor actor, on the
/// supervisor's scheduler thread, and must not block.
class start_context {
public:
  /// Creates a context (used by the supervisor).
  start_context(caf::event_based_actor* self, const caf::message* args) noexcept
    : self_(self), args_(args) {}

  /// The supervisor actor itself; start functions may spawn through it.
  caf::event_based_actor* self() const noexcept {
    return self_;
  }

  /// The actor system of the supervisor.
  caf::actor_system& system() const noexcept;

  /// The supervisor's handle (e.g. to give a child a way to reach its parent).
  caf::actor supervisor() const;

  /// Arguments passed to `start_child` of a `simple_one_for_one` supervisor;
  /// empty for static children.
  const caf::message& args() const noexcept;

private:
  caf::event_based_actor* self_;
  const caf::message* args_;
};

/// Starts one child and returns its handle. The supervisor links itself to
/// the returned actor. An error (or an exception) means "failed to start".
using start_function = std::function<caf::expected<caf::actor>(start_context&)>;

/// Describes a running child in tree snapshots: asks it (e.g. a request
/// from `self`, the supervisor, with a timeout) and calls `done` exactly
/// once, on the supervisor's thread, with its details (none if it cannot
/// tell). Must not block.
using describe_function =
  std::function<void(caf::event_based_actor* self, const caf::actor& child,
                     std::function<void(std::vector<tree_detail>)> done)>;

/// Describes one child (OTP's child specification).
struct child_spec {
  /// Unique id among the supervisor's children; also the role name in trees.
  std::string id;
  /// Spawns the child. Required.
  start_function start;
  /// When to restart the child.
  restart_type restart = restart_type::permanent;
  /// How to stop the child.
  shutdown_policy shutdown = shutdown_policy::timeout(default_worker_shutdown);
  /// Worker, or supervisor. A supervisor child must speak the supervisor
  /// protocol: the parent waits for its `await_started_atom` reply before it
  /// starts the next child, and asks it for its subtree in tree snapshots.
  child_type type = child_type::worker;
  /// Optional: the details of a running child in tree snapshots
  /// (`tree_node::details`).
  describe_function describe;
};

/// A supervisor's configuration (OTP's supervisor flags).
struct supervisor_flags {
  /// The restart strategy.
  atl::strategy strategy = strategy::one_for_one;
  /// Restart intensity: at most this many restarts...
  uint32_t max_restarts = 3;
  /// ...within this period (OTP's max_seconds). Beyond it the supervisor stops
  /// all children and exits with `errc::restart_intensity_reached`.
  std::chrono::milliseconds period = default_restart_period;
  /// `simple_one_for_one` only: the most children at once; `start_child`
  /// beyond it fails with `errc::max_children`. Empty: unlimited.
  std::optional<uint32_t> max_children;
  /// The name of the supervisor, used as the root role in tree snapshots.
  std::string name = "supervisor";
  /// Called on the supervisor's thread when it begins to stop (asked to stop,
  /// or giving up on restart intensity), before any child is stopped; never
  /// for the restarts of its children. Must not block.
  std::function<void()> on_stop;
  /// More message handlers for the supervisor actor itself, tried after
  /// the supervisor protocol (e.g. a server's own requests, see
  /// `atl::server_actor`). Called once, inside the supervisor as it starts
  /// (restarts of a nested supervisor call it again), with the supervisor
  /// actor. The handlers run on the supervisor's thread and must not block.
  std::function<caf::message_handler(caf::event_based_actor* self)> extension;
};

/// Checks flags and specs: unique non-empty ids, a start function for every
/// spec, exactly one template spec for `simple_one_for_one`, and a positive
/// period. Returns `errc::invalid_spec` naming the problem.
[[nodiscard]] caf::error validate(const supervisor_flags& flags,
                                  const std::vector<child_spec>& specs);

/// Spawns a supervisor that starts `specs` in order. Returns at once; the
/// children start asynchronously (send `await_started_atom` to wait). If a
/// child fails to start, the supervisor stops the children it started (reverse
/// order) and exits with that child's error. Callable from any thread.
/// Errors: `errc::invalid_spec` if `validate` fails.
[[nodiscard]] caf::expected<caf::actor>
spawn_supervisor(caf::actor_system& sys, supervisor_flags flags, std::vector<child_spec> specs);

/// Spawns a supervisor and blocks the calling thread until all its children
/// started. Returns the supervisor, or the error of the first child that
/// failed to start (the supervisor has then exited, leaving nothing behind).
/// Call it from outside actors (it uses a `caf::scoped_actor`).
[[nodiscard]] caf::expected<caf::actor>
start_supervisor(caf::actor_system& sys, supervisor_flags flags, std::vector<child_spec> specs);

/// A child spec that starts a nested supervisor (type supervisor, shutdown
/// infinity). Its start fails if the nested supervisor fails to start.
child_spec supervisor_child(std::string id, supervisor_flags flags, std::vector<child_spec> specs,
                            restart_type restart = restart_type::permanent);

} // namespace atl

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(atl::child_spec)

// The blocking client helpers (which_children, start_child, stop_supervisor,
// ...) belong to this header's API; they live in their own file.
#include "atoll/runtime/supervisor_client.hpp"
