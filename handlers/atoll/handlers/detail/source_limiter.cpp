#include "atoll/handlers/detail/source_limiter.hpp"

#include <functional>

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

source_limiter::shard& source_limiter::shard_of(const std::string& key) {
  return shards_[std::hash<std::string>{}(key) % num_shards];
}

bool source_limiter::acquire(const std::string& key) {
  auto& s = shard_of(key);
  std::lock_guard<std::mutex> guard{s.mtx};
  auto& n = s.counts[key];
  if (n >= max_) {
    if (n == 0)
      s.counts.erase(key);
    return false;
  }
  ++n;
  return true;
}

void source_limiter::release(const std::string& key) {
  auto& s = shard_of(key);
  std::lock_guard<std::mutex> guard{s.mtx};
  auto i = s.counts.find(key);
  if (i == s.counts.end())
    return;
  if (--i->second == 0)
    s.counts.erase(i);
}

size_t source_limiter::sources() const {
  size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> guard{s.mtx};
    n += s.counts.size();
  }
  return n;
}

} // namespace atl::detail
