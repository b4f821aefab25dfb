// libFuzzer target for the UDP server's per-source rate limiter
// (supervisors/atoll/supervisors/rate_limiter.{hpp,cpp}): the decision every
// datagram goes through before it reaches a handler.
//
// Input: a program. The first bytes give the limit (max_packets, window) and
// the size of a second, tiny table; then each step is an operation: a
// datagram from one of 8 sources (some IPv4 sources given as IPv4-mapped IPv6
// addresses or as socket addresses, which must key the same bucket), a
// clock step (small, around the window, huge, backwards), a new limit
// (`set_config`) or `expire`. Checked:
//
// - Against an independent statement of the documented arithmetic (`model`
//   below: a token is `window_ns` units, a bucket holds up to `max_packets *
//   window_ns` and gains `max_packets` units per nanosecond, no gain for time
//   before its last timestamp; a new limit keeps the fill fraction rounded
//   down; `expire` forgets the full buckets), with a table that never fills:
//   every decision, every `expire` count and every statistic agree exactly.
//   The model multiplies and divides in 256 bits, schoolbook style, where
//   the limiter uses 128-bit shift-and-add.
// - Keys: an IPv4 source given by value, as an IPv4-mapped IPv6 address or
//   as a socket address has the same 16 bytes (ports and scope ids
//   ignored), and a non-IP socket address the all-zero key.
// - A limiter with a table of 1 to 8 sources on the same program: it never
//   tracks more than its size, a datagram refused for want of room is
//   dropped (fails closed), and its counters add up to the calls.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>

#include <netinet/in.h>

#include "atoll/supervisors/rate_limiter.hpp"

#include "fuzz_check.hpp"

namespace {

__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

constexpr int64_t ns_per_ms = 1'000'000;
constexpr int64_t int64_max = std::numeric_limits<int64_t>::max();

/// Reads the program's bytes; zeros once it is used up.
class program {
public:
  program(const uint8_t* data, size_t size) : data_(data), size_(size) {
  }

  bool done() const {
    return pos_ >= size_;
  }

  uint8_t byte() {
    return pos_ < size_ ? data_[pos_++] : 0;
  }

  uint64_t u64(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v = (v << 8) | byte();
    return v;
  }

private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

/// A limit as the fuzzer picks it: small, typical and extreme values.
atl::rate_limit_config pick_config(program& in) {
  atl::rate_limit_config cfg;
  switch (in.byte() % 4) {
    case 0: cfg.max_packets = in.byte() % 8; break;
    case 1: cfg.max_packets = static_cast<uint32_t>(in.u64(2)); break;
    case 2: cfg.max_packets = 1000; break;
    default: cfg.max_packets = static_cast<uint32_t>(in.u64(4)); break;
  }
  switch (in.byte() % 4) {
    case 0: cfg.window = std::chrono::milliseconds{static_cast<int64_t>(in.byte() % 4) - 1}; break;
    case 1: cfg.window = std::chrono::milliseconds{static_cast<int64_t>(in.u64(2))}; break;
    case 2: cfg.window = std::chrono::milliseconds{1000}; break;
    default:
      cfg.window = std::chrono::milliseconds{static_cast<int64_t>(in.u64(8) >> (in.byte() % 64))};
      break;
  }
  return cfg;
}

// -- the model ------------------------------------------------------------------

/// 256-bit unsigned arithmetic, just enough for floor(a * b / d).
struct u256 {
  std::array<uint64_t, 4> limb{}; // little-endian

  static u256 product(u128 a, u128 b) {
    std::array<uint64_t, 2> x{static_cast<uint64_t>(a), static_cast<uint64_t>(a >> 64)};
    std::array<uint64_t, 2> y{static_cast<uint64_t>(b), static_cast<uint64_t>(b >> 64)};
    u256 r;
    for (size_t i = 0; i < 2; ++i) {
      u128 carry = 0;
      for (size_t j = 0; j < 2; ++j) {
        u128 cur = static_cast<u128>(x[i]) * y[j] + r.limb[i + j] + carry;
        r.limb[i + j] = static_cast<uint64_t>(cur);
        carry = cur >> 64;
      }
      r.limb[i + 2] = static_cast<uint64_t>(carry);
    }
    return r;
  }

  bool bit(int i) const {
    return ((limb[static_cast<size_t>(i / 64)] >> (i % 64)) & 1) != 0;
  }

  /// floor(*this / d) for a quotient that fits in 128 bits, d > 0.
  u128 divide(u128 d) const {
    u128 q = 0;
    // The remainder stays below d < 2^128, but doubling it may not fit:
    // track the bit that falls out.
    u128 r = 0;
    for (int i = 255; i >= 0; --i) {
      bool top = (r >> 127) != 0;
      r = (r << 1) | (bit(i) ? 1 : 0);
      bool subtract = top || r >= d;
      if (subtract)
        r -= d;
      FUZZ_CHECK(i < 128 || !subtract); // the quotient must fit in 128 bits
      if (subtract)
        q |= static_cast<u128>(1) << i;
    }
    return q;
  }
};

/// The documented limiter, one map entry per source, unbounded.
class model {
public:
  explicit model(atl::rate_limit_config cfg) {
    set_limit(cfg);
  }

  bool allow(const std::array<uint8_t, 16>& key, int64_t now) {
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
      if (per_ns_ == 0) {
        ++dropped;
        return false;
      }
      buckets_[key] = {capacity_ - token_, now};
      ++allowed;
      return true;
    }
    auto& b = it->second;
    refill(b, now);
    if (b.tokens >= token_) {
      b.tokens -= token_;
      ++allowed;
      return true;
    }
    ++dropped;
    return false;
  }

  void set_config(atl::rate_limit_config cfg, int64_t now) {
    auto old_capacity = capacity_;
    for (auto& [key, b] : buckets_)
      refill(b, now);
    set_limit(cfg);
    for (auto& [key, b] : buckets_)
      b.tokens = old_capacity == 0 ? capacity_
                                   : u256::product(b.tokens, capacity_).divide(old_capacity);
  }

  size_t expire(int64_t now) {
    size_t n = 0;
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      auto b = it->second;
      refill(b, now);
      if (b.tokens >= capacity_) {
        it = buckets_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    expired += n;
    return n;
  }

  size_t sources() const {
    return buckets_.size();
  }

  uint64_t allowed = 0;
  uint64_t dropped = 0;
  uint64_t expired = 0;

private:
  struct bucket {
    u128 tokens;
    int64_t last;
  };

  void set_limit(atl::rate_limit_config cfg) {
    int64_t ms = cfg.window.count();
    ms = ms < 1 ? 1 : (ms > int64_max / ns_per_ms ? int64_max / ns_per_ms : ms);
    per_ns_ = cfg.max_packets;
    token_ = static_cast<u128>(ms) * ns_per_ms;
    capacity_ = per_ns_ * token_;
  }

  void refill(bucket& b, int64_t now) const {
    if (now <= b.last)
      return;
    // now - last in 128 bits: no overflow for any int64 pair.
    u128 elapsed = static_cast<u128>(static_cast<i128>(now) - b.last);
    u128 full = b.tokens + elapsed * per_ns_; // < 2^97
    b.tokens = full < capacity_ ? full : capacity_;
    b.last = now;
  }

  u128 per_ns_ = 0;
  u128 token_ = 1;
  u128 capacity_ = 0;
  std::map<std::array<uint8_t, 16>, bucket> buckets_;
};

// -- sources ----------------------------------------------------------------------

/// The 16 key bytes of IPv4 address `a.b.c.d` (host order `v4`), mapped.
std::array<uint8_t, 16> mapped(uint32_t v4) {
  std::array<uint8_t, 16> b{};
  b[10] = b[11] = 0xff;
  for (size_t i = 0; i < 4; ++i)
    b[12 + i] = static_cast<uint8_t>(v4 >> (24 - 8 * i));
  return b;
}

/// Source `i` of 8 and how it is given to the limiter (`form`): IPv4 by
/// value, as a mapped IPv6 address, or as a socket address of either family.
/// Sources 0-3 are IPv4, 4-6 IPv6, 7 a non-IP socket address (the one zero key).
struct source {
  std::array<uint8_t, 16> bytes;
  atl::rate_limit_key key;
};

source pick_source(uint8_t choice) {
  auto i = choice % 8u;
  auto form = (choice / 8u) % 3u;
  source s{};
  if (i < 4) {
    uint32_t v4 = 0xC0000200u + i; // 192.0.2.i
    s.bytes = mapped(v4);
    if (form == 0) {
      s.key = atl::rate_limit_key::v4(v4);
    } else if (form == 1) {
      s.key = atl::rate_limit_key::v6(s.bytes);
    } else {
      sockaddr_storage ss{};
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_port = htons(static_cast<uint16_t>(choice));
      sin.sin_addr.s_addr = htonl(v4);
      std::memcpy(&ss, &sin, sizeof sin);
      s.key = atl::rate_limit_key::of(ss);
    }
  } else if (i < 7) {
    s.bytes = {0x20, 0x01, 0x0d, 0xb8};
    s.bytes[15] = static_cast<uint8_t>(i);
    if (form == 2) {
      sockaddr_storage ss{};
      sockaddr_in6 sin6{};
      sin6.sin6_family = AF_INET6;
      sin6.sin6_port = htons(static_cast<uint16_t>(choice));
      sin6.sin6_scope_id = choice;
      std::memcpy(&sin6.sin6_addr, s.bytes.data(), 16);
      std::memcpy(&ss, &sin6, sizeof sin6);
      s.key = atl::rate_limit_key::of(ss);
    } else {
      s.key = atl::rate_limit_key::v6(s.bytes);
    }
  } else {
    s.bytes = {};
    sockaddr_storage ss{};
    ss.ss_family = AF_UNIX;
    s.key = atl::rate_limit_key::of(ss);
  }
  FUZZ_CHECK(s.key.bytes() == s.bytes);
  FUZZ_CHECK(s.key.is_v4() == (i < 4));
  return s;
}

/// The next time: steps of the program's choosing, saturating at the int64
/// range (a clock may go back: the limiter must not gain from it).
int64_t step(program& in, int64_t now, int64_t window_ns) {
  i128 next = now;
  switch (in.byte() % 6) {
    case 0: next += in.byte(); break;
    case 1: next += window_ns / (1 + in.byte()); break;
    case 2: next += static_cast<i128>(window_ns) * (in.byte() % 4); break;
    case 3: next -= in.u64(2); break;
    case 4: next += static_cast<i128>(in.u64(8) >> (in.byte() % 64)); break;
    default: next = static_cast<int64_t>(in.u64(8)); break;
  }
  if (next > int64_max)
    next = int64_max;
  if (next < std::numeric_limits<int64_t>::min())
    next = std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(next);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  program in{data, size};
  auto cfg = pick_config(in);
  size_t tiny_size = 1 + in.byte() % 8;
  atl::rate_limiter limiter{cfg};
  atl::rate_limiter tiny{cfg, tiny_size};
  model ref{cfg};
  FUZZ_CHECK(tiny.shard_count() >= 1 && tiny.shard_count() <= tiny_size);
  int64_t now = static_cast<int64_t>(in.u64(8));
  uint64_t calls = 0;
  for (int steps = 0; !in.done() && steps < 4096; ++steps) {
    auto window_ns = limiter.config().window.count() * ns_per_ms;
    switch (in.byte() % 8) {
      case 0:
      case 1:
      case 2:
      case 3: { // a datagram
        auto src = pick_source(in.byte());
        ++calls;
        auto table_full_before = tiny.stats().table_full;
        bool passed = limiter.allow(src.key, now);
        FUZZ_CHECK(passed == ref.allow(src.bytes, now));
        bool tiny_passed = tiny.allow(src.key, now);
        bool refused_for_room = tiny.stats().table_full != table_full_before;
        FUZZ_CHECK(!refused_for_room || !tiny_passed);
        break;
      }
      case 4:
      case 5: now = step(in, now, window_ns); break;
      case 6: { // a new limit
        auto next = pick_config(in);
        limiter.set_config(next, now);
        tiny.set_config(next, now);
        ref.set_config(next, now);
        auto got = limiter.config();
        FUZZ_CHECK(got.max_packets == next.max_packets);
        FUZZ_CHECK(got.window.count() >= 1 && got.window.count() <= int64_max / ns_per_ms);
        break;
      }
      default: { // expire
        auto n = limiter.expire(now);
        FUZZ_CHECK(n == ref.expire(now));
        tiny.expire(now);
        break;
      }
    }
    auto st = limiter.stats();
    FUZZ_CHECK(st.allowed == ref.allowed);
    FUZZ_CHECK(st.dropped == ref.dropped);
    FUZZ_CHECK(st.expired == ref.expired);
    FUZZ_CHECK(st.table_full == 0);
    FUZZ_CHECK(st.sources == ref.sources());
    auto ts = tiny.stats();
    FUZZ_CHECK(ts.allowed + ts.dropped == calls);
    FUZZ_CHECK(ts.table_full <= ts.dropped);
    FUZZ_CHECK(ts.sources <= tiny_size);
  }
  return 0;
}
