// The children of a supervisor (internal): their records in start order,
// looked up by sequence number, child id or actor id, the handles of
// temporary dynamic children, and what `which_children`, `count_children`
// and tree snapshots report of them. No actor logic.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/message.hpp>

#include "atoll/runtime/detail/temporary_registry.hpp"
#include "atoll/runtime/supervisor.hpp"
#include "atoll/runtime/types.hpp"

namespace atl::detail {

/// One child with a record: a static child (running or not), or a dynamic
/// child that may be restarted.
struct child_record {
  /// The child's spec (dynamic children share the template).
  std::shared_ptr<const child_spec> spec;
  /// The arguments of a dynamic child's `start_child`, kept for restarts.
  caf::message args;
  /// The running actor, or an invalid handle.
  caf::actor handle;
  /// How often the supervisor restarted the child.
  uint32_t restarts = 0;
  /// Counts as a restart once its new handle is set.
  bool restarting = false;
};

/// What `which_children` reports of a child of `spec` (running if `handle` is
/// valid) that was restarted `restarts` times.
child_info make_child_info(const child_spec& spec, const caf::actor& handle, uint32_t restarts);

/// The node of the same child in a tree snapshot, without subtree or details.
tree_node make_tree_node(const child_spec& spec, const caf::actor& handle, uint32_t restarts);

/// The children of one supervisor. Records are keyed by a sequence number
/// that grows with each insertion, so iterating them follows start order.
/// Temporary workers of a dynamic supervisor (e.g. connections) are never
/// restarted and have no record: only their handles are kept (a few words
/// each), in a `temporary_registry` that each of them leaves by itself when
/// it ends. Not thread-safe but for that registry: the supervisor actor
/// owns it.
class child_table {
public:
  /// Records by sequence number.
  using record_map = std::map<uint64_t, child_record>;
  /// Iterates the records in start order (value: sequence number, record).
  using iterator = record_map::iterator;
  /// Iterates the records in reverse start order.
  using reverse_iterator = record_map::reverse_iterator;

  // -- the template of a dynamic supervisor -------------------------------------

  /// Sets the template spec of a `simple_one_for_one` supervisor.
  void set_template(std::shared_ptr<const child_spec> spec);

  /// The template spec (null for static supervisors).
  const std::shared_ptr<const child_spec>& template_spec() const noexcept {
    return template_;
  }

  // -- records ------------------------------------------------------------------

  /// Adds `rec` after all others; returns its sequence number.
  uint64_t insert(child_record rec);

  /// The record `seq`, which must exist.
  child_record& at(uint64_t seq);

  /// The record `seq`, or `end()`.
  iterator find(uint64_t seq);

  /// The first record whose spec has the id `id`, or `end()`.
  iterator find_id(const std::string& id);

  /// Whether the record `seq` exists.
  bool contains(uint64_t seq) const;

  /// Removes the record `seq`, if any.
  void erase(uint64_t seq);

  /// Removes the record at `pos`.
  void erase(iterator pos);

  /// The number of records.
  size_t size() const noexcept {
    return records_.size();
  }

  /// The records in start order.
  iterator begin() noexcept;

  /// The end of the records.
  iterator end() noexcept;

  /// The records in reverse start order.
  reverse_iterator rbegin() noexcept;

  /// The end of the reverse order.
  reverse_iterator rend() noexcept;

  /// The sequence numbers of the running records, in reverse start order
  /// (the order to stop them).
  std::vector<uint64_t> running_in_reverse() const;

  // -- running children by actor id ---------------------------------------------

  /// Notes that the actor `id` runs the record `seq`.
  void bind(caf::actor_id id, uint64_t seq);

  /// Forgets which record the actor `id` runs, if any.
  void unbind(caf::actor_id id);

  /// The record the actor `id` runs, if any.
  std::optional<uint64_t> seq_of(caf::actor_id id) const;

  // -- temporary children -------------------------------------------------------

  /// Adds a running temporary child, which leaves the table by itself when
  /// it ends (at once if it has ended already).
  void add_temporary(caf::actor handle);

  /// Removes the temporary child `id`; false if there is none.
  bool remove_temporary(caf::actor_id id);

  /// Removes and returns the temporary child `id` (an invalid handle if none).
  caf::actor take_temporary(caf::actor_id id);

  /// Removes and returns all temporary children.
  std::vector<caf::actor> take_temporaries();

  /// The temporary children now.
  std::vector<caf::actor> temporaries() const {
    return temps_->snapshot();
  }

  // -- all children -------------------------------------------------------------

  /// Whether the actor `id` is a running child (with a record, or temporary).
  bool has_actor(caf::actor_id id) const;

  /// The number of children: records and temporary ones.
  size_t num_children() const {
    return records_.size() + temps_->size();
  }

  /// All children as `which_children` reports them: temporary ones first, then
  /// the records in start order.
  std::vector<child_info> which() const;

  /// The children as `count_children` reports them.
  child_counts counts() const;

  /// Drops all records, handles and the template.
  void clear();

private:
  std::shared_ptr<const child_spec> template_; // simple_one_for_one
  record_map records_;                          // in start order
  std::unordered_map<caf::actor_id, uint64_t> by_actor_;
  std::shared_ptr<temporary_registry> temps_ = std::make_shared<temporary_registry>();
  uint64_t next_seq_ = 1;
};

} // namespace atl::detail
