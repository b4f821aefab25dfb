// Value types of the supervision protocol: restart/child types, child
// information, counts and the recursive tree snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

namespace atl {

/// When a terminated child is restarted (OTP's restart types).
enum class restart_type : uint8_t {
  /// Always restarted.
  permanent,
  /// Restarted only after an abnormal exit.
  transient,
  /// Never restarted; its spec is dropped when it terminates.
  temporary,
};

/// Whether a child is a worker or itself a supervisor. Supervisor children
/// answer the supervisor protocol (tree snapshots, start acknowledgement).
enum class child_type : uint8_t { worker, supervisor };

/// Returns "permanent", "transient" or "temporary".
std::string to_string(restart_type x);

/// Returns "worker" or "supervisor".
std::string to_string(child_type x);

/// One child as reported by `which_children`.
struct child_info {
  /// The child spec's id (dynamic children: the template's id).
  std::string id;
  /// The running actor, or an invalid handle if the child is not running.
  caf::actor handle;
  /// Worker or supervisor.
  child_type type = child_type::worker;
  /// The child's restart type.
  restart_type restart = restart_type::permanent;
  /// How often the supervisor restarted this child.
  uint32_t restart_count = 0;
};

/// Serializes a `child_info` (CAF inspection; also gives `deep_to_string`).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_info& x) {
  return f(caf::meta::type_name("child_info"), x.id, x.handle, x.type, x.restart,
           x.restart_count);
}

/// Child counts as reported by `count_children` (OTP's count_children).
struct child_counts {
  /// Number of child specs (dynamic supervisors: number of children).
  uint32_t specs = 0;
  /// Number of running children.
  uint32_t active = 0;
  /// Number of children of type supervisor.
  uint32_t supervisors = 0;
  /// Number of children of type worker.
  uint32_t workers = 0;
};

/// Serializes a `child_counts`.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_counts& x) {
  return f(caf::meta::type_name("child_counts"), x.specs, x.active, x.supervisors,
           x.workers);
}

/// One fact about a child in a tree snapshot, given by the layer that runs
/// it (e.g. a connection's peer or byte count).
struct tree_detail {
  /// What it is, e.g. "peer".
  std::string key;
  /// Its value as text, e.g. "127.0.0.1:40000".
  std::string value;
};

/// Serializes a `tree_detail`.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tree_detail& x) {
  return f(caf::meta::type_name("tree_detail"), x.key, x.value);
}

/// A recursive snapshot of a supervision tree, produced by any Atoll
/// supervisor on a `tree_atom` request. Plain data: it can be printed,
/// exported as JSON and sent across CAF nodes.
struct tree_node {
  /// Role name: the child id in the parent (root: the supervisor's name).
  std::string role;
  /// The actor's id, 0 when the child is not running.
  caf::actor_id id = 0;
  /// Worker or supervisor.
  child_type type = child_type::worker;
  /// Restart type in the parent (root: permanent).
  restart_type restart = restart_type::permanent;
  /// How often the parent restarted this child.
  uint32_t restart_count = 0;
  /// Whether the child is running.
  bool running = false;
  /// Supervisors only: the restart strategy ("one_for_one", ...).
  std::string strategy;
  /// Supervisors only: the restart intensity, at most `max_restarts`...
  uint32_t max_restarts = 0;
  /// ... within `period`.
  std::chrono::milliseconds period{0};
  /// Supervisors only: the restarts counted against the intensity now (those
  /// within the last `period`).
  uint32_t recent_restarts = 0;
  /// Facts about a running child from the layer that runs it (connections:
  /// peer, local, transport, handler, state, bytes and calls each way, age),
  /// in order; empty for most children.
  std::vector<tree_detail> details;
  /// Children, in the supervisor's order (supervisors only).
  std::vector<tree_node> children;
};

/// Serializes a `tree_node` recursively.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tree_node& x) {
  return f(caf::meta::type_name("tree_node"), x.role, x.id, x.type, x.restart,
           x.restart_count, x.running, x.strategy, x.max_restarts, x.period,
           x.recent_restarts, x.details, x.children);
}

/// Renders a snapshot as an indented, human-readable tree, one node per line:
/// `role  <type, restart>  #actor-id  restarts=N`. Thread-safe.
std::string format_tree(const tree_node& root);

/// Renders a snapshot as a JSON document (nested objects with the fields of
/// `tree_node`). Thread-safe.
std::string tree_to_json(const tree_node& root, int indent = 2);

/// Renders a snapshot as a Graphviz DOT digraph (`dot -Tsvg`): supervisors
/// as boxes with their strategy and intensity, workers as ellipses with
/// their details, children not running dashed, restarted ones in red.
/// Thread-safe.
std::string tree_to_dot(const tree_node& root);

/// Counts the nodes of a snapshot (the root included). Thread-safe.
size_t tree_size(const tree_node& root);

namespace detail {

/// Adds the runtime's message types (tree snapshots, scheduler stats) to
/// `cfg` (part of `atl::register_runtime_types`).
void add_runtime_message_types(caf::actor_system_config& cfg);

} // namespace detail

} // namespace atl
