// The acceptor role: accepts connections on one listen socket and hands
// them to its connection supervisor.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include <caf/actor.hpp>

#include "atoll/handlers/detail/session_slots.hpp"
#include "atoll/runtime/supervisor.hpp"
#include "atoll/supervisors/server_context.hpp"

namespace atl::detail {

/// What an acceptor and its sibling connection supervisor share inside one
/// acceptor supervisor. Thread-safe.
class acceptor_group {
public:
  /// A group of at most `num_connections` connections at once (empty:
  /// unlimited).
  explicit acceptor_group(std::optional<uint32_t> num_connections)
    : slots_(std::make_shared<session_slots>(num_connections)) {
  }

  /// The group's connections running at once: the acceptor takes a slot
  /// before it spawns a built-in connection actor, the actor gives it back
  /// when it ends (custom connection processes are counted by the
  /// connection supervisor's `max_children` instead).
  const std::shared_ptr<session_slots>& slots() const noexcept {
    return slots_;
  }

  /// Records the (re)started connection supervisor.
  void set_connection_supervisor(caf::actor sup) {
    std::lock_guard<std::mutex> guard{mtx_};
    conn_sup_ = std::move(sup);
  }

  /// The current connection supervisor.
  caf::actor connection_supervisor() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return conn_sup_;
  }

private:
  std::shared_ptr<session_slots> slots_;
  mutable std::mutex mtx_;
  caf::actor conn_sup_;
};

/// The acceptor's child spec (worker, transient). Acceptor `id` (from 1)
/// accepts on listen socket ((id - 1) mod num_listen_sockets). It survives
/// every per-connection failure (aborted, einval, transient errors, EMFILE
/// and ENFILE with a 100 ms back-off, a handler that fails to start) and ends
/// normally when the listener goes away; anything unexpected crashes it, so
/// that its supervisor restarts it. Emits the acceptor span and its events.
child_spec acceptor_spec(std::shared_ptr<server_context> ctx, uint32_t id,
                         std::shared_ptr<acceptor_group> group);

} // namespace atl::detail
