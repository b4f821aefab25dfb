// The running temporary children of one supervisor (internal), shared with an
// exit hook attached to each child: a temporary child that ends takes itself
// out on its own thread, so its supervisor needs no monitor and gets no down
// message for it. No actor logic beyond the hook.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>

namespace atl::detail {

/// Handles of the running temporary children of one supervisor, by actor
/// id. Thread-safe: the supervisor adds, takes and lists them; each child's
/// exit hook removes it when the child ends (on the child's thread, in CAF's
/// clean-up of the child). A child the supervisor took out (to stop it) is
/// no longer listed; its hook then finds nothing.
class temporary_registry : public std::enable_shared_from_this<temporary_registry> {
public:
  /// Lists `handle` and attaches the exit hook that unlists it. If the actor
  /// has already ended, the hook runs at once (here) and it is not listed.
  void adopt(caf::actor handle);

  /// Unlists the child `id`; false if it was not listed.
  bool remove(caf::actor_id id);

  /// Unlists and returns the child `id` (an invalid handle if not listed).
  caf::actor take(caf::actor_id id);

  /// Unlists and returns all children.
  std::vector<caf::actor> take_all();

  /// The listed children, in no particular order.
  std::vector<caf::actor> snapshot() const;

  /// Whether the child `id` is listed.
  bool contains(caf::actor_id id) const;

  /// The number of listed children.
  size_t size() const;

private:
  mutable std::mutex mtx_;
  std::unordered_map<caf::actor_id, caf::actor> temps_;
};

} // namespace atl::detail
