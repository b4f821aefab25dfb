// The UDP server's per-source rate limiter: exact token-bucket arithmetic
// (bursts, refills, fractions, uneven windows, clock jumps, extreme
// configs), address keys, run-time reconfiguration, expiry, the bounded
// table under a spoofed-source flood, and concurrent use. Time is synthetic
// nanoseconds: nothing sleeps.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "atoll/supervisors/rate_limiter.hpp"
#include "support/fd_leak_check.hpp"

using atl::rate_limit_config;
using atl::rate_limit_key;
using atl::rate_limit_stats;
using limiter = atl::rate_limiter;

namespace {

constexpr int64_t ms = 1'000'000;
constexpr int64_t sec = 1000 * ms;
constexpr int64_t day = 86'400 * sec;
constexpr int64_t t_min = std::numeric_limits<int64_t>::min();
constexpr int64_t t_max = std::numeric_limits<int64_t>::max();
// The longest window a config can express in int64 nanoseconds.
constexpr int64_t max_window_ms = t_max / ms;

rate_limit_config limit(uint32_t max_packets, int64_t window_ms) {
  rate_limit_config cfg;
  cfg.max_packets = max_packets;
  cfg.window = std::chrono::milliseconds{window_ms};
  return cfg;
}

rate_limit_key ip(uint32_t i) {
  return rate_limit_key::v4(0x0A000000u + i);
}

// Calls `allow` `n` times at `now`; returns how many passed.
uint64_t burst(limiter& rl, const rate_limit_key& k, int64_t now, uint64_t n) {
  uint64_t passed = 0;
  for (uint64_t i = 0; i < n; ++i)
    passed += rl.allow(k, now) ? 1 : 0;
  return passed;
}

// Calls `allow` at `now` until it drops; returns how many passed.
uint64_t drain(limiter& rl, const rate_limit_key& k, int64_t now) {
  uint64_t passed = 0;
  while (rl.allow(k, now))
    ++passed;
  return passed;
}

sockaddr_storage v4_addr(const char* text, uint16_t port) {
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  sockaddr_in sin;
  std::memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  BOOST_REQUIRE_EQUAL(inet_pton(AF_INET, text, &sin.sin_addr), 1);
  std::memcpy(&ss, &sin, sizeof sin);
  return ss;
}

sockaddr_storage v6_addr(const char* text, uint16_t port, uint32_t scope = 0) {
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  sockaddr_in6 sin6;
  std::memset(&sin6, 0, sizeof sin6);
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  sin6.sin6_scope_id = scope;
  BOOST_REQUIRE_EQUAL(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
  std::memcpy(&ss, &sin6, sizeof sin6);
  return ss;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(rate_limiter, atl::test::fd_leak_check)

BOOST_AUTO_TEST_CASE(exactly_n_pass_then_drop) {
  for (uint32_t n : {1u, 2u, 5u, 1000u}) {
    limiter rl{limit(n, 1000)};
    auto k = ip(1);
    BOOST_TEST(burst(rl, k, 0, n) == n);
    BOOST_TEST(!rl.allow(k, 0));
    BOOST_TEST(!rl.allow(k, 0));
    auto st = rl.stats();
    BOOST_TEST(st.allowed == n);
    BOOST_TEST(st.dropped == 2u);
    BOOST_TEST(st.table_full == 0u);
    BOOST_TEST(st.sources == 1u);
  }
}

BOOST_AUTO_TEST_CASE(refills_exactly_one_token_after_window_over_n) {
  limiter rl{limit(10, 1000)}; // One token per 100 ms.
  auto k = ip(1);
  const int64_t t0 = 5 * sec;
  BOOST_TEST(burst(rl, k, t0, 10) == 10u);
  BOOST_TEST(!rl.allow(k, t0 + 100 * ms - 1));
  BOOST_TEST(rl.allow(k, t0 + 100 * ms));
  BOOST_TEST(!rl.allow(k, t0 + 100 * ms));
  BOOST_TEST(!rl.allow(k, t0 + 200 * ms - 1));
  BOOST_TEST(rl.allow(k, t0 + 200 * ms));
  BOOST_TEST(!rl.allow(k, t0 + 200 * ms));
  // Three tokens' worth of time gives exactly three.
  BOOST_TEST(burst(rl, k, t0 + 500 * ms, 10) == 3u);
}

BOOST_AUTO_TEST_CASE(fractions_of_a_token_carry_over) {
  limiter rl{limit(10, 1000)}; // One token per 100 ms.
  auto k = ip(1);
  int64_t t = 0;
  BOOST_TEST(burst(rl, k, t, 10) == 10u);
  // 0.4 then 0.6 of a token: one token.
  t += 40 * ms;
  BOOST_TEST(!rl.allow(k, t));
  t += 60 * ms;
  BOOST_TEST(rl.allow(k, t));
  BOOST_TEST(!rl.allow(k, t));
  // Steps of 0.3 tokens: passes after 1.2 (0.2 left), then after 2.1.
  std::vector<bool> got;
  for (int i = 0; i < 7; ++i) {
    t += 30 * ms;
    got.push_back(rl.allow(k, t));
  }
  std::vector<bool> want{false, false, false, true, false, false, true};
  BOOST_TEST(got == want, boost::test_tools::per_element());
  // 0.1 token left; many 1 ns steps add up exactly: 90 ms - 1 ns is short.
  t += 90 * ms - 1;
  BOOST_TEST(!rl.allow(k, t));
  for (int i = 0; i < 1000; ++i)
    BOOST_TEST(!rl.allow(k, t)); // Dropping takes nothing and adds nothing.
  t += 1;
  BOOST_TEST(rl.allow(k, t));
  BOOST_TEST(!rl.allow(k, t));
}

BOOST_AUTO_TEST_CASE(windows_that_do_not_divide_evenly) {
  {
    limiter rl{limit(3, 1000)}; // One token per 333,333,333.3 ns.
    auto k = ip(1);
    BOOST_TEST(burst(rl, k, 0, 3) == 3u);
    BOOST_TEST(!rl.allow(k, 333'333'333));
    BOOST_TEST(rl.allow(k, 333'333'334));
    BOOST_TEST(!rl.allow(k, 666'666'666));
    BOOST_TEST(rl.allow(k, 666'666'667));
    BOOST_TEST(!rl.allow(k, 999'999'999));
    BOOST_TEST(rl.allow(k, 1'000'000'000));
    BOOST_TEST(!rl.allow(k, 1'000'000'000));
  }
  // Drained at uneven times, a source has passed exactly N + floor(t * N / W)
  // by time t (the bucket never overflows: with N >= 2 and steps of at most
  // half a window, under one token plus N / 2 never reaches N).
  struct param {
    uint32_t n;
    int64_t window_ms;
  };
  std::mt19937_64 rng{42};
  for (auto p : {param{3, 1000}, param{7, 1000}, param{1000, 1000}, param{13, 997}, param{2, 1},
                 param{999'983, 7}, param{1'000'000, 86'400'000}}) {
    BOOST_TEST_CONTEXT("n=" << p.n << " window_ms=" << p.window_ms) {
      limiter rl{limit(p.n, p.window_ms)};
      auto k = ip(1);
      const auto w = static_cast<uint64_t>(p.window_ms * ms);
      const uint64_t max_step = std::min<uint64_t>(w / 2, 3 * (w / p.n) + 2);
      uint64_t passed = drain(rl, k, 0);
      BOOST_TEST(passed == p.n);
      uint64_t t = 0;
      bool exact = true;
      for (int i = 0; i < 2000 && exact; ++i) {
        t += 1 + rng() % max_step;
        passed += drain(rl, k, static_cast<int64_t>(t));
        __extension__ typedef unsigned __int128 u128;
        auto want = p.n + static_cast<uint64_t>(static_cast<u128>(t) * p.n / w);
        exact = passed == want;
        BOOST_TEST(passed == want);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(long_idle_gives_at_most_n) {
  limiter rl{limit(5, 1000)};
  auto k = ip(1);
  BOOST_TEST(burst(rl, k, 0, 5) == 5u);
  BOOST_TEST(burst(rl, k, day, 10) == 5u);
  BOOST_TEST(burst(rl, k, 365 * day, 10) == 5u);
  // Half a window after the last burst: 2.5 tokens, so 2.
  BOOST_TEST(burst(rl, k, 365 * day + 500 * ms, 10) == 2u);
  // From the earliest to the latest representable time: still only 5.
  limiter wide{limit(5, 1000)};
  BOOST_TEST(burst(wide, k, t_min, 10) == 5u);
  BOOST_TEST(burst(wide, k, t_max, 10) == 5u);
}

BOOST_AUTO_TEST_CASE(clock_going_backwards_adds_nothing) {
  limiter rl{limit(10, 1000)}; // One token per 100 ms.
  auto k = ip(1);
  const int64_t t0 = 10 * sec;
  BOOST_TEST(burst(rl, k, t0, 10) == 10u);
  BOOST_TEST(!rl.allow(k, 0));
  BOOST_TEST(!rl.allow(k, t0 - 5 * sec));
  BOOST_TEST(!rl.allow(k, t_min));
  // The bucket kept its latest timestamp: refill counts from t0.
  BOOST_TEST(!rl.allow(k, t0 + 100 * ms - 1));
  BOOST_TEST(rl.allow(k, t0 + 100 * ms));
  // A late (earlier-stamped) call from another thread neither adds nor
  // breaks anything.
  BOOST_TEST(!rl.allow(k, t0 + 50 * ms));
  BOOST_TEST(rl.allow(k, t0 + 200 * ms));
  // A new source first seen at an earlier time than another is fine.
  BOOST_TEST(burst(rl, ip(2), t_min, 20) == 10u);
  // Backwards with a partly full bucket: it keeps what it had.
  limiter partial{limit(10, 1000)};
  BOOST_TEST(burst(partial, k, t0, 4) == 4u);
  BOOST_TEST(burst(partial, k, t0 - day, 20) == 6u);
  BOOST_TEST(!partial.allow(k, t0));
}

BOOST_AUTO_TEST_CASE(sources_are_independent) {
  limiter rl{limit(3, 1000)};
  for (uint32_t i = 0; i < 100; ++i)
    BOOST_TEST(burst(rl, ip(i), 0, 5) == 3u);
  BOOST_TEST(rl.stats().sources == 100u);
  // Draining one does not touch another.
  limiter two{limit(3, 1000)};
  BOOST_TEST(burst(two, ip(1), 0, 10) == 3u);
  BOOST_TEST(burst(two, ip(2), 0, 10) == 3u);
  BOOST_TEST(two.allow(ip(1), 334 * ms));
  BOOST_TEST(!two.allow(ip(1), 334 * ms));
  BOOST_TEST(two.allow(ip(2), 334 * ms));
  auto st = two.stats();
  BOOST_TEST(st.allowed == 8u);
  BOOST_TEST(st.dropped == 15u);
  BOOST_TEST(st.sources == 2u);
}

BOOST_AUTO_TEST_CASE(ipv4_and_ipv4_mapped_ipv6_are_one_key) {
  auto a = rate_limit_key::of(v4_addr("192.0.2.1", 1000));
  auto b = rate_limit_key::of(v6_addr("::ffff:192.0.2.1", 2000));
  auto c = rate_limit_key::v4(0xC0000201u);
  BOOST_TEST((a == b));
  BOOST_TEST((a == c));
  BOOST_TEST(!(a != b));
  BOOST_TEST(a.is_v4());
  BOOST_TEST(b.is_v4());
  BOOST_TEST(a.hash() == b.hash());
  BOOST_TEST(std::hash<rate_limit_key>{}(a) == std::hash<rate_limit_key>{}(b));
  const std::array<uint8_t, 16> mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
  BOOST_TEST((a.bytes() == mapped));
  BOOST_TEST((rate_limit_key::v6(mapped) == a));
  // The port does not matter; another address does.
  BOOST_TEST((rate_limit_key::of(v4_addr("192.0.2.1", 9)) == a));
  BOOST_TEST((rate_limit_key::of(v4_addr("192.0.2.2", 1000)) != a));
  // The deprecated IPv4-compatible form ::192.0.2.1 is an IPv6 address.
  auto compat = rate_limit_key::of(v6_addr("::c000:201", 1000));
  BOOST_TEST((compat != a));
  BOOST_TEST(!compat.is_v4());
  // One bucket for both forms.
  limiter rl{limit(4, 1000)};
  BOOST_TEST(burst(rl, a, 0, 2) == 2u);
  BOOST_TEST(burst(rl, b, 0, 5) == 2u);
  BOOST_TEST(!rl.allow(c, 0));
  BOOST_TEST(rl.stats().sources == 1u);
}

BOOST_AUTO_TEST_CASE(ipv6_keys) {
  auto a = rate_limit_key::of(v6_addr("2001:db8::1", 1));
  auto b = rate_limit_key::of(v6_addr("2001:db8::2", 1));
  auto a_other_port = rate_limit_key::of(v6_addr("2001:db8::1", 65535));
  BOOST_TEST((a != b));
  BOOST_TEST((a == a_other_port));
  BOOST_TEST(!a.is_v4());
  BOOST_TEST(((a < b) != (b < a)));
  // Scope ids are ignored: fe80::1 on two interfaces is one source.
  auto l1 = rate_limit_key::of(v6_addr("fe80::1", 1, 1));
  auto l2 = rate_limit_key::of(v6_addr("fe80::1", 1, 2));
  BOOST_TEST((l1 == l2));
  // Keys that differ in any byte are distinct sources.
  limiter rl{limit(2, 1000)};
  std::array<uint8_t, 16> bytes{0x20, 0x01, 0x0d, 0xb8};
  for (size_t i = 0; i < 16; ++i) {
    auto x = bytes;
    x[i] ^= 0x80;
    BOOST_TEST(burst(rl, rate_limit_key::v6(x), 0, 3) == 2u);
  }
  BOOST_TEST(burst(rl, rate_limit_key::v6(bytes), 0, 3) == 2u);
  BOOST_TEST(rl.stats().sources == 17u);
  // Other families share the all-zero key (::).
  sockaddr_storage unix_addr;
  std::memset(&unix_addr, 0, sizeof unix_addr);
  unix_addr.ss_family = AF_UNIX;
  BOOST_TEST((rate_limit_key::of(unix_addr) == rate_limit_key{}));
  BOOST_TEST((rate_limit_key::of(v6_addr("::", 1)) == rate_limit_key{}));
}

BOOST_AUTO_TEST_CASE(set_config_keeps_the_fill_fraction) {
  auto k = ip(1);
  {
    // Up: 4 of 10 tokens left (40%) become 40 of 100.
    limiter rl{limit(10, 1000)};
    BOOST_TEST(burst(rl, k, 0, 6) == 6u);
    rl.set_config(limit(100, 1000), 0);
    BOOST_TEST(rl.config().max_packets == 100u);
    BOOST_TEST(burst(rl, k, 0, 100) == 40u);
    // Refills at the new rate: one per 10 ms.
    BOOST_TEST(!rl.allow(k, 10 * ms - 1));
    BOOST_TEST(rl.allow(k, 10 * ms));
    // A new source gets the new capacity.
    BOOST_TEST(burst(rl, ip(2), 10 * ms, 200) == 100u);
  }
  {
    // Down: 25 of 100 (25%) become 2.5 of 10; the half token carries over.
    limiter rl{limit(100, 1000)};
    BOOST_TEST(burst(rl, k, 0, 75) == 75u);
    rl.set_config(limit(10, 1000), 0);
    BOOST_TEST(burst(rl, k, 0, 10) == 2u);
    BOOST_TEST(!rl.allow(k, 50 * ms - 1));
    BOOST_TEST(rl.allow(k, 50 * ms));
    BOOST_TEST(!rl.allow(k, 50 * ms));
  }
  {
    // The bucket is refilled to `now` at the old rate first: 0 left, 300 ms
    // at 100/s is 30 tokens (30%), which become 3 of 10 at 10/s.
    limiter rl{limit(100, 1000)};
    BOOST_TEST(burst(rl, k, 0, 100) == 100u);
    rl.set_config(limit(10, 1000), 300 * ms);
    BOOST_TEST(burst(rl, k, 300 * ms, 10) == 3u);
  }
  {
    // A longer window: same tokens, slower refill. A full bucket stays full.
    limiter rl{limit(10, 1000)};
    BOOST_TEST(burst(rl, k, 0, 6) == 6u);
    BOOST_TEST(burst(rl, ip(2), 0, 1) == 1u);
    rl.set_config(limit(10, 2000), 0);
    BOOST_TEST(rl.config().window.count() == 2000);
    BOOST_TEST(burst(rl, k, 0, 10) == 4u);
    BOOST_TEST(!rl.allow(k, 200 * ms - 1));
    BOOST_TEST(rl.allow(k, 200 * ms));
    BOOST_TEST(burst(rl, ip(3), 0, 20) == 10u);
    // ip(2) had 9 of 10: full again one token later at the new rate.
    BOOST_TEST(burst(rl, ip(2), 200 * ms, 20) == 10u);
  }
  {
    // max_packets 0 drops everything; full (idle) buckets stay full.
    limiter rl{limit(10, 1000)};
    BOOST_TEST(burst(rl, k, 0, 3) == 3u);
    rl.set_config(limit(0, 1000), 0);
    BOOST_TEST(!rl.allow(k, 0));
    BOOST_TEST(!rl.allow(ip(2), day));
    BOOST_TEST(rl.stats().sources == 1u);
    BOOST_TEST(rl.expire(day) == 1u); // A 0-token bucket is full.
    BOOST_TEST(rl.stats().sources == 0u);
    BOOST_TEST(burst(rl, k, 0, 3) == 0u);
    BOOST_TEST(burst(rl, ip(3), day, 1) == 0u);
    rl.set_config(limit(10, 1000), day);
    BOOST_TEST(burst(rl, k, day, 20) == 10u);
  }
  {
    // Windows under 1 ms count as 1 ms.
    limiter rl{limit(10, 0)};
    BOOST_TEST(rl.config().window.count() == 1);
    rl.set_config(limit(10, -5), 0);
    BOOST_TEST(rl.config().window.count() == 1);
    BOOST_TEST(burst(rl, k, 0, 20) == 10u);
    BOOST_TEST(!rl.allow(k, 100'000 - 1));
    BOOST_TEST(rl.allow(k, 100'000));
  }
}

BOOST_AUTO_TEST_CASE(expire_removes_only_full_buckets) {
  limiter rl{limit(10, 1000)};                // One token per 100 ms.
  BOOST_TEST(burst(rl, ip(1), 0, 1) == 1u);   // Full again at 100 ms.
  BOOST_TEST(burst(rl, ip(2), 0, 10) == 10u); // Full again at 1 s.
  BOOST_TEST(burst(rl, ip(3), 0, 5) == 5u);   // Full again at 500 ms.
  BOOST_TEST(rl.expire(0) == 0u);
  BOOST_TEST(rl.expire(100 * ms - 1) == 0u);
  BOOST_TEST(rl.expire(100 * ms) == 1u);
  auto st = rl.stats();
  BOOST_TEST(st.expired == 1u);
  BOOST_TEST(st.sources == 2u);
  // Going backwards expires nothing.
  BOOST_TEST(rl.expire(t_min) == 0u);
  BOOST_TEST(rl.expire(500 * ms) == 1u);
  BOOST_TEST(rl.expire(999 * ms) == 0u);
  BOOST_TEST(rl.expire(sec) == 1u);
  st = rl.stats();
  BOOST_TEST(st.expired == 3u);
  BOOST_TEST(st.sources == 0u);
  BOOST_TEST(st.allowed == 16u);
  BOOST_TEST(st.dropped == 0u);
  // An expired source is a new one: a full bucket.
  BOOST_TEST(burst(rl, ip(2), sec, 20) == 10u);
  BOOST_TEST(rl.stats().sources == 1u);
  BOOST_TEST(rl.expire(sec) == 0u);
  BOOST_TEST(rl.expire(t_max) == 1u);
  BOOST_TEST(rl.expire(t_max) == 0u);
}

BOOST_AUTO_TEST_CASE(one_slot_table_fails_closed_then_makes_room) {
  limiter rl{limit(10, 1000), 1};
  BOOST_TEST(rl.shard_count() == 1u);
  BOOST_TEST(rl.allow(ip(1), 0));
  // A new source while the only slot holds a bucket that is not full.
  BOOST_TEST(!rl.allow(ip(2), 0));
  BOOST_TEST(!rl.allow(ip(2), 100 * ms - 1));
  auto st = rl.stats();
  BOOST_TEST(st.table_full == 2u);
  BOOST_TEST(st.dropped == 2u);
  BOOST_TEST(st.sources == 1u);
  // The known source keeps working while the table is full.
  BOOST_TEST(burst(rl, ip(1), 0, 20) == 9u);
  // Once ip(1)'s bucket is full again, it is forgotten to make room.
  BOOST_TEST(!rl.allow(ip(2), sec - 1));
  BOOST_TEST(rl.allow(ip(2), sec));
  st = rl.stats();
  BOOST_TEST(st.expired == 1u);
  BOOST_TEST(st.table_full == 3u);
  BOOST_TEST(st.sources == 1u);
  // ip(1) is now the new source.
  BOOST_TEST(!rl.allow(ip(1), sec));
  BOOST_TEST(rl.stats().table_full == 4u);
}

BOOST_AUTO_TEST_CASE(spoofed_flood_stays_bounded) {
  const size_t max_sources = 64;
  limiter rl{limit(10, 1000), max_sources}; // One token per 100 ms.
  BOOST_TEST(rl.shard_count() == 32u);
  const uint32_t flood = 20'000;
  uint64_t passed = 0;
  for (uint32_t i = 0; i < flood; ++i)
    passed += rl.allow(ip(i), 0) ? 1 : 0;
  auto st = rl.stats();
  // 32 shards of 2: every shard fills, and each tracked source passed once.
  BOOST_TEST(st.sources == max_sources);
  BOOST_TEST(passed == max_sources);
  BOOST_TEST(st.allowed == max_sources);
  BOOST_TEST(st.table_full == flood - max_sources);
  BOOST_TEST(st.dropped == flood - max_sources);
  BOOST_TEST(st.expired == 0u);
  // 100 ms later the flood's buckets are full again: new sources replace
  // them, and the table stays bounded.
  uint64_t passed2 = 0;
  for (uint32_t i = flood; i < 2 * flood; ++i)
    passed2 += rl.allow(ip(i), 100 * ms) ? 1 : 0;
  st = rl.stats();
  BOOST_TEST(st.sources == max_sources);
  BOOST_TEST(passed2 == max_sources);
  BOOST_TEST(st.expired == max_sources);
  BOOST_TEST(st.allowed + st.dropped == 2u * flood);
  BOOST_TEST(st.table_full == 2u * flood - 2 * max_sources);
  BOOST_TEST(rl.expire(200 * ms) == max_sources);
  BOOST_TEST(rl.stats().sources == 0u);
  // Small tables have fewer shards, never an empty one.
  for (size_t m : {1u, 2u, 3u, 31u, 32u, 33u, 1000u}) {
    limiter small{limit(10, 1000), m};
    BOOST_TEST(small.shard_count() <= m);
    for (uint32_t i = 0; i < 5000; ++i)
      (void)small.allow(ip(i), 0);
    BOOST_TEST(small.stats().sources == m);
  }
  BOOST_TEST(limiter(limit(10, 1000), 0).shard_count() == 1u);
}

BOOST_AUTO_TEST_CASE(concurrent_use_counts_exactly) {
  const int threads = 4;
  const uint32_t n = 1000;
  limiter rl{limit(n, 1000)}; // One token per ms.
  auto run = [&](auto fn) {
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i)
      ts.emplace_back(fn, i);
    for (auto& t : ts)
      t.join();
  };
  std::atomic<uint64_t> passed{0};
  // One source, all threads at once: exactly n pass, then n more a window
  // later.
  for (int64_t t : {int64_t{0}, sec}) {
    run([&](int) { passed += burst(rl, ip(0), t, 3 * n); });
    BOOST_TEST(passed.load() == (t == 0 ? n : 2 * n));
  }
  // Different sources per thread, interleaved with a shared one: each
  // source gets exactly its arithmetic.
  passed = 0;
  const uint32_t per_thread = 50;
  run([&](int id) {
    uint64_t mine = 0;
    for (uint32_t round = 0; round < n + 10; ++round) {
      for (uint32_t j = 0; j < per_thread; ++j)
        mine += rl.allow(ip(1000 + static_cast<uint32_t>(id) * per_thread + j), 0) ? 1 : 0;
      mine += rl.allow(ip(1), 0) ? 1 : 0;
    }
    passed += mine;
  });
  BOOST_TEST(passed.load() == uint64_t{n} * (threads * per_thread + 1));
  // Own sources, each thread's clock advancing unevenly and draining:
  // N + floor(t * N / W) each.
  passed = 0;
  std::atomic<int> wrong{0};
  run([&](int id) {
    std::mt19937_64 rng{static_cast<uint64_t>(id)};
    auto k = ip(5000 + static_cast<uint32_t>(id));
    uint64_t mine = drain(rl, k, 0);
    int64_t t = 0;
    for (int i = 0; i < 20'000; ++i) {
      t += static_cast<int64_t>(1 + rng() % (3 * ms));
      mine += drain(rl, k, t);
      if (mine != n + static_cast<uint64_t>(t / ms))
        ++wrong;
    }
    passed += mine;
  });
  BOOST_TEST(wrong.load() == 0);
  // Flood of distinct sources from all threads into a small table.
  limiter small{limit(n, 1000), 256};
  passed = 0;
  run([&](int id) {
    uint64_t mine = 0;
    for (uint32_t i = 0; i < 10'000; ++i)
      mine += small.allow(ip(static_cast<uint32_t>(id) * 10'000 + i), 0) ? 1 : 0;
    passed += mine;
  });
  auto st = small.stats();
  BOOST_TEST(st.sources == 256u);
  BOOST_TEST(passed.load() == 256u);
  BOOST_TEST(st.allowed == 256u);
  BOOST_TEST(st.table_full == 40'000u - 256u);
  // stats, expire and set_config concurrently with allow.
  std::atomic<bool> stop{false};
  std::thread admin{[&] {
    int64_t t = 0;
    uint32_t m = 1;
    while (!stop.load()) {
      (void)rl.stats();
      rl.expire(t);
      rl.set_config(limit(m, 1000), t);
      (void)rl.config();
      m = m % 2000 + 1;
      t += ms;
    }
  }};
  run([&](int id) {
    for (uint32_t i = 0; i < 20'000; ++i)
      (void)rl.allow(ip(i % 500 + static_cast<uint32_t>(id)), static_cast<int64_t>(i) * 1000);
  });
  stop = true;
  admin.join();
  st = rl.stats();
  BOOST_TEST(st.allowed + st.dropped > 0u);
}

BOOST_AUTO_TEST_CASE(extreme_configs_do_not_overflow) {
  auto k = ip(1);
  {
    // 1 per day.
    limiter rl{limit(1, 86'400'000)};
    BOOST_TEST(rl.allow(k, 0));
    BOOST_TEST(!rl.allow(k, day - 1));
    BOOST_TEST(rl.allow(k, day));
    BOOST_TEST(burst(rl, k, t_max, 5) == 1u);
  }
  {
    // 10,000,000 per day: the whole burst, then one per 8.64 ms.
    limiter rl{limit(10'000'000, 86'400'000)};
    BOOST_TEST(burst(rl, k, 0, 10'000'001) == 10'000'000u);
    BOOST_TEST(!rl.allow(k, 8'640'000 - 1));
    BOOST_TEST(rl.allow(k, 8'640'000));
    BOOST_TEST(burst(rl, k, day, 20) == 20u);
    BOOST_TEST(burst(rl, ip(2), t_min, 3) == 3u);
    BOOST_TEST(burst(rl, ip(2), t_max, 3) == 3u);
  }
  {
    // 10,000,000 per ms: one per 0.1 ns, ten per ns. (Emptied quickly: an
    // empty 1-token bucket stays empty at the new size.)
    limiter rl{limit(1, 1)};
    BOOST_TEST(rl.allow(k, 0));
    rl.set_config(limit(10'000'000, 1), 0);
    BOOST_TEST(!rl.allow(k, 0));
    BOOST_TEST(burst(rl, k, 1, 20) == 10u);
    BOOST_TEST(burst(rl, k, 3, 30) == 20u);
    BOOST_TEST(burst(rl, k, t_max, 20) == 20u);
  }
  {
    // The largest config: ~4e9 per ~292 years, clock across its full range.
    limiter rl{limit(std::numeric_limits<uint32_t>::max(), max_window_ms)};
    BOOST_TEST(burst(rl, k, t_min, 3) == 3u);
    BOOST_TEST(burst(rl, k, t_max, 3) == 3u);
    BOOST_TEST(rl.expire(t_max) == 0u);
    // Windows beyond int64 nanoseconds are clamped.
    rl.set_config(limit(1, std::numeric_limits<int64_t>::max()), t_max);
    BOOST_TEST(rl.config().window.count() == max_window_ms);
    BOOST_TEST(burst(rl, k, t_max, 3) == 0u); // Not even one token left.
    BOOST_TEST(rl.expire(t_max) == 0u);
  }
  {
    // set_config between huge capacities, where (tokens * new capacity)
    // needs more than 128 bits: 10 of 10,000,000 used (1e-6), then 7 per
    // ~292 years (W ns): 7 * W * (1 - 1e-6) = 7 * W - 64,563,604,257,978
    // units, so 6 pass and the 7th comes after 64,563,604,257,978 / 7 ns.
    limiter rl{limit(10'000'000, 86'400'000)};
    BOOST_TEST(burst(rl, k, 0, 10) == 10u);
    rl.set_config(limit(7, max_window_ms), 0);
    BOOST_TEST(burst(rl, k, 0, 10) == 6u);
    BOOST_TEST(!rl.allow(k, 9'223'372'036'853));
    BOOST_TEST(rl.allow(k, 9'223'372'036'854));
    BOOST_TEST(!rl.allow(k, 9'223'372'036'854));
  }
  {
    // Rounding down there: 3 of 4e9 used, then 2 per ~292 years (W ns):
    // 2 * W * (1 - 3 / 4e9) = 2 * W - 13,835,058,055.28 scaled units, rounded
    // down to 2 * W - 13,835,058,056: one token passes, and the rest of the
    // second comes at 2 units a ns.
    limiter rl{limit(4'000'000'000u, max_window_ms)};
    BOOST_TEST(burst(rl, k, 0, 3) == 3u);
    rl.set_config(limit(2, max_window_ms), 0);
    BOOST_TEST(burst(rl, k, 0, 3) == 1u);
    BOOST_TEST(!rl.allow(k, 6'917'529'027));
    BOOST_TEST(rl.allow(k, 6'917'529'028));
    // And back up: the fraction is kept (empty stays empty).
    rl.set_config(limit(4'000'000'000u, max_window_ms), 6'917'529'028);
    BOOST_TEST(!rl.allow(k, 6'917'529'028));
    BOOST_TEST(rl.allow(ip(2), 6'917'529'028));
  }
}

BOOST_AUTO_TEST_SUITE_END()
