// The actor clock of atl::io_scheduler (internal).
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <unordered_set>

#include <caf/abstract_actor.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>

namespace atl::detail {

/// CAF's thread-safe clock (a dispatch thread for timeouts and delayed
/// messages), minus one cost: CAF asks the clock to cancel the timeouts of
/// every actor that terminates, which wakes the dispatch thread each time,
/// also for the many actors (e.g. connections) that never set one. This
/// clock remembers which actors set a timeout and forwards only theirs.
/// Thread-safe; the bookkeeping is split over independently locked shards.
class io_clock final : public caf::detail::thread_safe_actor_clock {
public:
  using super = caf::detail::thread_safe_actor_clock;

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                            uint64_t id) override;

  void set_request_timeout(time_point t, caf::abstract_actor* self, caf::message_id id) override;

  void set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                         uint64_t id) override;

  void cancel_timeouts(caf::abstract_actor* self) override;

private:
  static constexpr size_t num_shards = 64;

  struct alignas(64) shard {
    std::mutex mtx;
    std::unordered_set<caf::actor_id> ids;
    std::atomic<size_t> count{0}; // ids.size(), readable without the lock
  };

  shard& shard_of(caf::actor_id id) noexcept {
    return shards_[id % num_shards];
  }

  void note(caf::abstract_actor* self);

  std::array<shard, num_shards> shards_;
};

} // namespace atl::detail
