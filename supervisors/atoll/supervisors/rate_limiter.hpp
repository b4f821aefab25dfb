// Per-source-IP rate limiting for the UDP server: a token bucket per source
// address, in a sharded table of bounded size. No CAF dependency: the server
// calls `allow` for every datagram from its listener threads.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include <sys/socket.h>

namespace atl {

/// The rate limit: at most `max_packets` datagrams per `window` from one
/// source IP, as a token bucket of capacity `max_packets` refilled
/// continuously at `max_packets / window`. `max_packets == 0` drops every
/// datagram. A `window` under 1 ms counts as 1 ms, one over about 292 years
/// (what fits in int64 nanoseconds) as that. A plain value, not synchronized.
struct rate_limit_config {
  /// Bucket capacity: the burst a new or idle source may send at once.
  uint32_t max_packets = 1000;
  /// The time in which an empty bucket refills completely.
  std::chrono::milliseconds window{1000};
};

/// What a limiter has done since it was created. A plain value, not
/// synchronized; `rate_limiter::stats` reads its counters one by one, so a
/// snapshot taken while datagrams arrive need not be consistent across
/// fields (each field is exact once the limiter is quiet).
struct rate_limit_stats {
  /// Datagrams `allow` passed.
  uint64_t allowed = 0;
  /// Datagrams `allow` dropped, for any reason (includes `table_full`), so
  /// `allowed + dropped` is the number of `allow` calls.
  uint64_t dropped = 0;
  /// Sources forgotten because their bucket was full again: by `expire` or
  /// to make room for a new source in a full table.
  uint64_t expired = 0;
  /// Datagrams from a new source dropped because its shard of the table was
  /// full (a subset of `dropped`).
  uint64_t table_full = 0;
  /// Sources tracked now.
  size_t sources = 0;
};

/// A source IP as the limiter keys it: the 16 bytes of an IPv6 address, an
/// IPv4 address stored as its IPv4-mapped IPv6 form (0:0:0:0:0:ffff:a.b.c.d), so
/// 192.0.2.1 and 0:0:0:0:0:ffff:192.0.2.1 are the same key. Ports, flow labels and
/// IPv6 scope ids are ignored. An immutable value: safe to share and copy
/// between threads.
class rate_limit_key {
public:
  /// The all-zero key (the unspecified IPv6 address ::).
  rate_limit_key() = default;

  /// The key of a socket address's IP: AF_INET and AF_INET6 as above; any
  /// other family (including AF_UNSPEC) maps to the one all-zero key, so all
  /// such datagrams share one bucket. Reads only the `sockaddr_in` or
  /// `sockaddr_in6` part of `addr`.
  static rate_limit_key of(const sockaddr_storage& addr) noexcept;

  /// The key of an IPv4 address given in host byte order (0xC0000201 is
  /// 192.0.2.1).
  static rate_limit_key v4(uint32_t host_order) noexcept;

  /// The key of an IPv6 address given as its 16 bytes in network order (an
  /// IPv4-mapped address is thus the IPv4 key).
  static rate_limit_key v6(const std::array<uint8_t, 16>& bytes) noexcept;

  /// The 16 bytes in network order (IPv4: 0:0:0:0:0:ffff:a.b.c.d).
  const std::array<uint8_t, 16>& bytes() const noexcept {
    return bytes_;
  }

  /// Whether this is an IPv4 address (stored IPv4-mapped).
  bool is_v4() const noexcept;

  /// A fixed (unseeded) hash of the address, for `std::hash`. The limiter
  /// itself uses a per-instance seeded hash, so that spoofed sources cannot
  /// be chosen to collide.
  size_t hash() const noexcept;

  /// Equal iff the same address.
  friend bool operator==(const rate_limit_key& a, const rate_limit_key& b) noexcept {
    return a.bytes_ == b.bytes_;
  }

  /// Not equal iff different addresses.
  friend bool operator!=(const rate_limit_key& a, const rate_limit_key& b) noexcept {
    return !(a == b);
  }

  /// A total order (bytewise, network order; IPv4 keys sort together).
  friend bool operator<(const rate_limit_key& a, const rate_limit_key& b) noexcept {
    return a.bytes_ < b.bytes_;
  }

private:
  std::array<uint8_t, 16> bytes_{};
};

/// Per-source-IP token buckets: decides for every datagram whether it passes.
///
/// Arithmetic is exact: a bucket holds tokens scaled by the window in
/// nanoseconds, and `allow` adds `elapsed_ns * max_packets` (in 128 bits,
/// capped at the capacity), so with N per window a full bucket passes N
/// datagrams and drops the next, one more passes exactly `window / N` later
/// (rounded up to the nanosecond), and fractions of a token carry over.
/// Timestamps are any monotonic nanoseconds (int64, the full range is
/// allowed); if `now_ns` is earlier than a bucket's last timestamp (calls
/// from several threads may arrive out of order) the bucket gets no tokens
/// and keeps its later timestamp, so a clock going back never adds tokens.
///
/// Memory is bounded: the table holds at most `max_sources` sources, split
/// over up to 32 shards (each a mutex and a hash map, ~80 bytes a source).
/// When a new source arrives at a full shard the shard first forgets its
/// full buckets (a full bucket is indistinguishable from a new source); if
/// it is still full the datagram is dropped and counted in `table_full`:
/// the limiter fails closed, so a spoofed-source flood cannot make it pass
/// unlimited traffic nor grow without bound, though it can deny new
/// sources while the table is full (known sources keep their limits). To
/// keep a flood from costing a full scan per datagram, a full shard is
/// scanned again only once at least 1/16 of its capacity (by the last scan's
/// reckoning) can have refilled, so a few full buckets may outlive a scan;
/// `expire` removes them all. A failed allocation for a new source also
/// drops the datagram (counted in `table_full`).
///
/// Thread-safety: all member functions may be called concurrently. `allow`
/// locks only the source's shard; stats are per-shard relaxed atomics.
class rate_limiter {
public:
  /// A limiter with limit `cfg` (normalized as described at
  /// `rate_limit_config`) tracking at most `max_sources` sources (at least
  /// 1). Uses 32 shards, fewer if `max_sources < 32`; a shard holds
  /// `max_sources / shards` sources (the first ones one more), so a shard
  /// can be full while the whole table is not.
  explicit rate_limiter(rate_limit_config cfg, size_t max_sources = 1u << 20);

  /// Frees the table.
  ~rate_limiter();

  /// Not copyable (it owns the table and its mutexes).
  rate_limiter(const rate_limiter&) = delete;
  /// Not copyable.
  rate_limiter& operator=(const rate_limiter&) = delete;

  /// One datagram from `source` at `now_ns` (monotonic nanoseconds): true =
  /// pass, false = drop. A new source starts with a full bucket. O(1)
  /// amortized; locks the source's shard only. Thread-safe.
  [[nodiscard]] bool allow(const rate_limit_key& source, int64_t now_ns);

  /// Changes the limit at run time. Each existing bucket is first refilled
  /// to `now_ns` at the old rate, then keeps its fill fraction in the new
  /// capacity, rounded down to a scaled unit (a full bucket stays full, an
  /// empty one empty; 25 of 100 tokens become 2.5 of 10). With
  /// `max_packets == 0` a bucket holds nothing and counts as full (`expire`
  /// forgets it; a later nonzero limit finds it full). Exact and
  /// overflow-free for every config. Visits every tracked source, one shard
  /// lock at a time: datagrams on other shards meanwhile still see the old
  /// limit. Thread-safe; concurrent calls are serialized.
  void set_config(rate_limit_config cfg, int64_t now_ns);

  /// The current limit, normalized (window clamped as at
  /// `rate_limit_config`). Thread-safe.
  rate_limit_config config() const;

  /// Forgets the sources whose bucket is full again at `now_ns` (they are
  /// indistinguishable from new sources); returns how many. Call
  /// periodically (e.g. every `window`) to return memory. Scans every
  /// source, holding one shard lock at a time. Thread-safe.
  size_t expire(int64_t now_ns);

  /// What the limiter has done so far (see `rate_limit_stats`). Lock-free.
  /// Thread-safe.
  rate_limit_stats stats() const;

  /// How many shards the table is split into (1 to 32).
  size_t shard_count() const noexcept {
    return shard_count_;
  }

private:
  struct shard;

  shard& shard_of(const rate_limit_key& source) const noexcept;

  std::unique_ptr<shard[]> shards_;
  size_t shard_count_;
  uint64_t seed_[2];
  mutable std::mutex cfg_mu_;
  rate_limit_config cfg_;
};

} // namespace atl

namespace std {
/// Hashes a key with `rate_limit_key::hash` (fixed, unseeded).
template <> struct hash<atl::rate_limit_key> {
  /// The key's hash.
  size_t operator()(const atl::rate_limit_key& key) const noexcept {
    return key.hash();
  }
};
} // namespace std
