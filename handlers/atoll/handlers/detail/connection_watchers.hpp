// Internal: the actors subscribed to one server's connection starts and
// stops. Not part of the public API (subscribe through the server's
// `subscribe_atom`).
#pragma once

#include <atomic>
#include <mutex>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>

#include "atoll/handlers/connection_record.hpp"

namespace atl::detail {

/// Subscribers of one server, shared by its connection actors. Holds weak
/// references: an actor that ended is forgotten at the next event.
/// Thread-safe.
class connection_watchers {
public:
  /// True if any actor is subscribed (cheap: a relaxed load).
  bool any() const noexcept {
    return count_.load(std::memory_order_relaxed) != 0;
  }

  /// Subscribes `who`. False if it already was.
  bool add(const caf::actor& who);

  /// Unsubscribes `who`. False if it was not subscribed.
  bool remove(const caf::actor& who);

  /// Sends `ev` to every subscriber that is still alive.
  void notify(const connection_event& ev);

private:
  std::mutex mtx_;
  std::vector<caf::actor_addr> list_;
  std::atomic<size_t> count_{0};
};

} // namespace atl::detail
