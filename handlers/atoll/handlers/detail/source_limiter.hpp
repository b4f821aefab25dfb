// Internal: per-source connection limits: how many connections each client address
// has, and refusing those past the maximum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "atoll/handlers/detail/sharded_map.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl::detail {

/// Counts the open connections of each client address and refuses a new
/// one past `max_per_source`. Only addresses with open connections take
/// memory, so the table never holds more entries than the server has
/// connections (spoofed sources cannot grow it beyond that). Shared by all
/// of a server's connection actors; every member is thread-safe.
class source_limiter {
public:
  /// A limiter admitting at most `max_per_source` (at least 1) connections
  /// per address.
  explicit source_limiter(uint32_t max_per_source) : max_(max_per_source) {}

  source_limiter(const source_limiter&) = delete;
  source_limiter& operator=(const source_limiter&) = delete;

  /// The key of a client: its IP address (IPv4-mapped IPv6 addresses as the
  /// IPv4 address they map); every Unix-socket client shares one key.
  static std::string key_of(const endpoint& client);

  /// Counts a connection from `key`; false (nothing counted) if `key`
  /// already has the maximum.
  bool acquire(const std::string& key);

  /// Uncounts a connection `acquire` admitted.
  void release(const std::string& key);

  /// The number of addresses with open connections.
  size_t sources() const;

  /// The maximum per address.
  uint32_t limit() const noexcept {
    return max_;
  }

private:
  sharded_map<std::string, uint32_t> counts_;
  uint32_t max_;
};

} // namespace atl::detail
