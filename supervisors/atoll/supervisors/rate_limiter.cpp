#include "atoll/supervisors/rate_limiter.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <unordered_map>
#include <vector>

#include <netinet/in.h>

namespace atl {

namespace {

__extension__ typedef unsigned __int128 u128;

constexpr int64_t int64_min = std::numeric_limits<int64_t>::min();
constexpr int64_t int64_max = std::numeric_limits<int64_t>::max();
constexpr int64_t ns_per_ms = 1'000'000;
constexpr int64_t max_window_ms = int64_max / ns_per_ms;
constexpr size_t max_shards = 32;

// -- hashing ------------------------------------------------------------------

uint64_t load64(const uint8_t* p) noexcept {
  uint64_t x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

// Multiplies in 128 bits and folds the halves (as wyhash does).
uint64_t mum(uint64_t a, uint64_t b) noexcept {
  u128 m = static_cast<u128>(a) * b;
  return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
}

constexpr uint64_t k0 = 0xa0761d6478bd642full;
constexpr uint64_t k1 = 0xe7037ed1a0b428dbull;
constexpr uint64_t k2 = 0x8ebc6af09c88c6e3ull;
constexpr uint64_t k3 = 0x589965cc75374cc3ull;

uint64_t hash_key(const rate_limit_key& key, uint64_t s0, uint64_t s1) noexcept {
  const uint8_t* p = key.bytes().data();
  uint64_t h = mum(load64(p) ^ s0 ^ k0, load64(p + 8) ^ s1 ^ k1);
  return mum(h ^ k2, s0 ^ s1 ^ k3);
}

// The map's hasher: the limiter's seeded hash.
struct seeded_hash {
  uint64_t s0 = 0;
  uint64_t s1 = 0;
  size_t operator()(const rate_limit_key& key) const noexcept {
    return static_cast<size_t>(hash_key(key, s0, s1));
  }
};

// -- 128-bit arithmetic -------------------------------------------------------

int bit_width(u128 x) noexcept {
  auto hi = static_cast<uint64_t>(x >> 64);
  auto lo = static_cast<uint64_t>(x);
  if (hi != 0)
    return 128 - __builtin_clzll(hi);
  if (lo != 0)
    return 64 - __builtin_clzll(lo);
  return 0;
}

// floor(a * b / d) exactly, for 0 < d < 2^126 and a <= d (so the result is
// at most b). Multiplies directly when a * b fits in 128 bits, else by
// shift-and-add keeping the running product as q * d + r with r < d.
u128 mul_div(u128 a, u128 b, u128 d) noexcept {
  if (a == 0 || b == 0)
    return 0;
  if (bit_width(a) + bit_width(b) <= 128)
    return a * b / d;
  u128 q = 0;
  u128 r = 0;
  for (int i = bit_width(b) - 1; i >= 0; --i) {
    q <<= 1;
    r <<= 1;
    if (r >= d) {
      r -= d;
      q += 1;
    }
    if (((b >> i) & 1) != 0) {
      r += a;
      if (r >= d) {
        r -= d;
        q += 1;
      }
    }
  }
  return q;
}

// -- buckets ------------------------------------------------------------------

// The limit in the units buckets use: a token is `window_ns` units, a
// bucket holds up to `capacity = max_packets * window_ns` (< 2^95) and gains
// `max_packets` units per nanosecond.
struct limit {
  uint64_t per_ns = 0; // max_packets
  uint64_t token = 1;  // window in ns, 1e6 .. ~2^63
  u128 capacity = 0;   // per_ns * token
};

rate_limit_config normalize(rate_limit_config cfg) noexcept {
  auto ms = static_cast<int64_t>(cfg.window.count());
  cfg.window = std::chrono::milliseconds{std::clamp<int64_t>(ms, 1, max_window_ms)};
  return cfg;
}

limit limit_of(const rate_limit_config& normalized) noexcept {
  limit l;
  l.per_ns = normalized.max_packets;
  l.token = static_cast<uint64_t>(static_cast<int64_t>(normalized.window.count()) * ns_per_ms);
  l.capacity = static_cast<u128>(l.per_ns) * l.token;
  return l;
}

// One source's bucket: scaled tokens (two halves, so the node needs no
// 16-byte alignment) and the latest timestamp seen.
struct bucket {
  uint64_t lo;
  uint64_t hi;
  int64_t last;

  u128 tokens() const noexcept {
    return (static_cast<u128>(hi) << 64) | lo;
  }
  void set_tokens(u128 t) noexcept {
    lo = static_cast<uint64_t>(t);
    hi = static_cast<uint64_t>(t >> 64);
  }
};

// The bucket's tokens at `now_ns` (capped at the capacity); no tokens for
// time before its last timestamp.
u128 tokens_at(const bucket& b, const limit& l, int64_t now_ns) noexcept {
  u128 t = b.tokens();
  if (now_ns > b.last) {
    // The true difference, < 2^64, by unsigned wrap-around.
    uint64_t elapsed = static_cast<uint64_t>(now_ns) - static_cast<uint64_t>(b.last);
    u128 gain = static_cast<u128>(elapsed) * l.per_ns; // < 2^96
    t = gain >= l.capacity - t ? l.capacity : t + gain;
  }
  return t;
}

// Refills `b` to `now_ns`.
void refill(bucket& b, const limit& l, int64_t now_ns) noexcept {
  b.set_tokens(tokens_at(b, l, now_ns));
  b.last = std::max(b.last, now_ns);
}

// When a bucket holding `t` (< capacity) tokens at `from_ns` is full,
// saturating at int64 max.
int64_t full_at(u128 t, const limit& l, int64_t from_ns) noexcept {
  u128 wait = (l.capacity - t + l.per_ns - 1) / l.per_ns; // <= token < 2^63
  uint64_t room = static_cast<uint64_t>(int64_max) - static_cast<uint64_t>(from_ns);
  if (wait >= room)
    return int64_max;
  return from_ns + static_cast<int64_t>(wait);
}

// Relaxed counter written only under its shard's lock.
void bump(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

} // namespace

// -- rate_limit_key -------------------------------------------------------------

rate_limit_key rate_limit_key::of(const sockaddr_storage& addr) noexcept {
  if (addr.ss_family == AF_INET) {
    sockaddr_in sin;
    std::memcpy(&sin, &addr, sizeof sin);
    rate_limit_key k;
    k.bytes_[10] = 0xff;
    k.bytes_[11] = 0xff;
    std::memcpy(k.bytes_.data() + 12, &sin.sin_addr, 4);
    return k;
  }
  if (addr.ss_family == AF_INET6) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, &addr, sizeof sin6);
    rate_limit_key k;
    std::memcpy(k.bytes_.data(), &sin6.sin6_addr, 16);
    return k;
  }
  return rate_limit_key{};
}

rate_limit_key rate_limit_key::v4(uint32_t host_order) noexcept {
  rate_limit_key k;
  k.bytes_[10] = 0xff;
  k.bytes_[11] = 0xff;
  for (int i = 0; i < 4; ++i)
    k.bytes_[static_cast<size_t>(12 + i)] = static_cast<uint8_t>(host_order >> (24 - 8 * i));
  return k;
}

rate_limit_key rate_limit_key::v6(const std::array<uint8_t, 16>& bytes) noexcept {
  rate_limit_key k;
  k.bytes_ = bytes;
  return k;
}

bool rate_limit_key::is_v4() const noexcept {
  for (size_t i = 0; i < 10; ++i)
    if (bytes_[i] != 0)
      return false;
  return bytes_[10] == 0xff && bytes_[11] == 0xff;
}

size_t rate_limit_key::hash() const noexcept {
  return static_cast<size_t>(hash_key(*this, k1, k2));
}

// -- rate_limiter ---------------------------------------------------------------

struct alignas(64) rate_limiter::shard {
  std::mutex mu;
  std::unordered_map<rate_limit_key, bucket, seeded_hash> map;
  limit lim;
  size_t capacity = 0;
  // A new source at a full shard triggers a scan only from this time on.
  int64_t next_scan_ns = int64_min;
  std::atomic<uint64_t> allowed{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> expired{0};
  std::atomic<uint64_t> table_full{0};
  std::atomic<uint64_t> sources{0};

  // Forgets the buckets full at `now_ns` and sets `next_scan_ns` to when at
  // least 1/16 of the capacity can be full again. Needs `mu`.
  size_t scan(int64_t now_ns) {
    std::vector<int64_t> times;
    try {
      times.reserve(map.size());
    } catch (const std::bad_alloc&) {
      // Fall back to the earliest time below.
    }
    int64_t earliest = int64_max;
    size_t freed = 0;
    for (auto i = map.begin(); i != map.end();) {
      u128 t = tokens_at(i->second, lim, now_ns);
      if (t >= lim.capacity) {
        i = map.erase(i);
        ++freed;
        continue;
      }
      int64_t at = full_at(t, lim, std::max(now_ns, i->second.last));
      earliest = std::min(earliest, at);
      if (times.size() < times.capacity())
        times.push_back(at);
      ++i;
    }
    size_t quorum = std::max<size_t>(1, capacity / 16);
    if (times.size() == map.size() && times.size() >= quorum) {
      auto nth = times.begin() + static_cast<std::ptrdiff_t>(quorum - 1);
      std::nth_element(times.begin(), nth, times.end());
      next_scan_ns = *nth;
    } else if (times.size() == map.size()) {
      // Fewer sources than a quorum: the shard is far from full.
      next_scan_ns = int64_min;
    } else {
      next_scan_ns = earliest;
    }
    if (freed > 0) {
      bump(expired, freed);
      sources.store(map.size(), std::memory_order_relaxed);
    }
    return freed;
  }
};

rate_limiter::rate_limiter(rate_limit_config cfg, size_t max_sources) : cfg_(normalize(cfg)) {
  max_sources = std::max<size_t>(max_sources, 1);
  shard_count_ = max_shards;
  while (shard_count_ > max_sources)
    shard_count_ /= 2;
  try {
    std::random_device rd;
    seed_[0] = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    seed_[1] = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    auto t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    seed_[0] = mum(t ^ k0, reinterpret_cast<uintptr_t>(this) ^ k1);
    seed_[1] = mum(t ^ k2, seed_[0] ^ k3);
  }
  shards_ = std::make_unique<shard[]>(shard_count_);
  limit lim = limit_of(cfg_);
  for (size_t i = 0; i < shard_count_; ++i) {
    shard& s = shards_[i];
    s.map = decltype(s.map)(0, seeded_hash{seed_[0], seed_[1]});
    s.lim = lim;
    s.capacity = max_sources / shard_count_ + (i < max_sources % shard_count_ ? 1 : 0);
  }
}

rate_limiter::~rate_limiter() = default;

rate_limiter::shard& rate_limiter::shard_of(const rate_limit_key& source) const noexcept {
  uint64_t h = hash_key(source, seed_[0], seed_[1]);
  return shards_[static_cast<size_t>(h >> 32) & (shard_count_ - 1)];
}

bool rate_limiter::allow(const rate_limit_key& source, int64_t now_ns) {
  shard& s = shard_of(source);
  std::lock_guard<std::mutex> guard{s.mu};
  const limit& lim = s.lim;
  auto i = s.map.find(source);
  if (i != s.map.end()) {
    bucket& b = i->second;
    refill(b, lim, now_ns);
    u128 t = b.tokens();
    if (t >= lim.token) {
      b.set_tokens(t - lim.token);
      bump(s.allowed);
      return true;
    }
    bump(s.dropped);
    return false;
  }
  if (lim.per_ns == 0) {
    // Nothing ever passes; a bucket would be full, so track nothing.
    bump(s.dropped);
    return false;
  }
  if (s.map.size() >= s.capacity && now_ns >= s.next_scan_ns)
    s.scan(now_ns);
  if (s.map.size() < s.capacity) {
    bucket b{0, 0, now_ns};
    b.set_tokens(lim.capacity - lim.token);
    try {
      s.map.emplace(source, b);
    } catch (const std::bad_alloc&) {
      bump(s.dropped);
      bump(s.table_full);
      return false;
    }
    bump(s.sources);
    bump(s.allowed);
    return true;
  }
  bump(s.dropped);
  bump(s.table_full);
  return false;
}

void rate_limiter::set_config(rate_limit_config cfg, int64_t now_ns) {
  std::lock_guard<std::mutex> cfg_guard{cfg_mu_};
  cfg_ = normalize(cfg);
  limit next = limit_of(cfg_);
  for (size_t i = 0; i < shard_count_; ++i) {
    shard& s = shards_[i];
    std::lock_guard<std::mutex> guard{s.mu};
    const limit prev = s.lim;
    for (auto& entry : s.map) {
      bucket& b = entry.second;
      refill(b, prev, now_ns);
      // A zero-capacity bucket is full: it stays full.
      b.set_tokens(prev.capacity == 0 ? next.capacity
                                      : mul_div(b.tokens(), next.capacity, prev.capacity));
    }
    s.lim = next;
    s.next_scan_ns = int64_min;
  }
}

rate_limit_config rate_limiter::config() const {
  std::lock_guard<std::mutex> guard{cfg_mu_};
  return cfg_;
}

size_t rate_limiter::expire(int64_t now_ns) {
  size_t freed = 0;
  for (size_t i = 0; i < shard_count_; ++i) {
    shard& s = shards_[i];
    std::lock_guard<std::mutex> guard{s.mu};
    freed += s.scan(now_ns);
  }
  return freed;
}

rate_limit_stats rate_limiter::stats() const {
  rate_limit_stats st;
  for (size_t i = 0; i < shard_count_; ++i) {
    const shard& s = shards_[i];
    st.allowed += s.allowed.load(std::memory_order_relaxed);
    st.dropped += s.dropped.load(std::memory_order_relaxed);
    st.expired += s.expired.load(std::memory_order_relaxed);
    st.table_full += s.table_full.load(std::memory_order_relaxed);
    st.sources += static_cast<size_t>(s.sources.load(std::memory_order_relaxed));
  }
  return st;
}

} // namespace atl
