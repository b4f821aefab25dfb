// Internal: a hash map split into shards, each behind its own mutex, for
// tables that many actors update at once (per-source connection counts,
// per-peer UDP routing). Not part of the public API.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace atl::detail {

/// An `std::unordered_map<Key, Value, Hash>` in `Shards` parts: a key's
/// shard is chosen by its hash, and each shard has its own mutex. Every
/// member is thread-safe.
template <class Key, class Value, class Hash = std::hash<Key>, size_t Shards = 16>
class sharded_map {
public:
  /// The map of one shard.
  using map_type = std::unordered_map<Key, Value, Hash>;

  /// Runs `fn(map)` on the shard of `key` with its mutex held and returns
  /// its result. `fn` must not call back into this table.
  template <class F>
  decltype(auto) with_shard(const Key& key, F&& fn) {
    auto& sh = shards_[Hash{}(key) % Shards];
    std::lock_guard<std::mutex> guard{sh.mtx};
    return std::forward<F>(fn)(sh.map);
  }

  /// The number of entries of all shards (each shard counted under its
  /// mutex: a snapshot while others update).
  size_t size() const {
    size_t n = 0;
    for (auto& sh : shards_) {
      std::lock_guard<std::mutex> guard{sh.mtx};
      n += sh.map.size();
    }
    return n;
  }

private:
  struct shard {
    mutable std::mutex mtx;
    map_type map;
  };

  std::array<shard, Shards> shards_;
};

} // namespace atl::detail
