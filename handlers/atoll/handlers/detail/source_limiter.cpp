#include "atoll/handlers/detail/source_limiter.hpp"

#include <string_view>

namespace atl::detail {

std::string source_limiter::key_of(const endpoint& client) {
  if (!client.is_ip())
    return "unix";
  constexpr std::string_view mapped = "::ffff:";
  if (client.family == endpoint::family_type::ipv6 && client.address.size() > mapped.size() &&
      client.address.compare(0, mapped.size(), mapped) == 0 &&
      client.address.find('.') != std::string::npos)
    return client.address.substr(mapped.size());
  return client.address;
}

bool source_limiter::acquire(const std::string& key) {
  return counts_.with_shard(key, [&](auto& counts) {
    auto& n = counts[key];
    if (n >= max_) {
      if (n == 0)
        counts.erase(key);
      return false;
    }
    ++n;
    return true;
  });
}

void source_limiter::release(const std::string& key) {
  counts_.with_shard(key, [&](auto& counts) {
    auto i = counts.find(key);
    if (i != counts.end() && --i->second == 0)
      counts.erase(i);
  });
}

size_t source_limiter::sources() const {
  return counts_.size();
}

} // namespace atl::detail
