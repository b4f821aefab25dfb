// Internal: the count of connection (or UDP handler) actors running at once
// against `num_connections`, shared by the actors that spawn them.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

namespace atl::detail {

/// The handler actors running at once under one connection supervisor,
/// against its `num_connections` (UDP: the server's; TCP/TLS: one
/// acceptor's): a listener or acceptor takes a slot before it spawns an
/// actor, and the actor gives it back when it ends. Thread-safe.
class session_slots {
public:
  /// At most `limit` slots at once (empty: unlimited, only counted).
  explicit session_slots(std::optional<uint32_t> limit) noexcept : limit_(limit) {}

  /// Takes a slot. False at the limit (nothing taken).
  bool try_take() noexcept {
    auto before = used_.fetch_add(1, std::memory_order_relaxed);
    if (limit_ && before >= *limit_) {
      used_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  /// Gives back a slot taken by `try_take`.
  void give_back() noexcept {
    used_.fetch_sub(1, std::memory_order_relaxed);
  }

  /// Slots taken now.
  uint64_t in_use() const noexcept {
    return used_.load(std::memory_order_relaxed);
  }

private:
  std::optional<uint32_t> limit_;
  std::atomic<uint64_t> used_{0};
};

} // namespace atl::detail
