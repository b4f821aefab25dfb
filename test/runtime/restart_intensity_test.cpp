// Tests of the supervisor's restart intensity as a pure class (no actors,
// no clock): at most max_restarts within period, the exact window boundary,
// max_restarts = 0, refused restarts that still count, and quiet gaps.
// Time points are synthetic.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>

#include "atoll/runtime/detail/restart_intensity.hpp"
#include "support/fd_leak_check.hpp"

using namespace std::chrono_literals;

namespace {

using intensity = atl::detail::restart_intensity;
using time_point = intensity::clock_type::time_point;

// An arbitrary start, far from the clock's epoch.
const time_point t0{std::chrono::hours{1}};

// Notes `n` restarts at `now`; returns how many were within the intensity.
uint32_t note(intensity& ri, time_point now, uint32_t n) {
  uint32_t passed = 0;
  for (uint32_t i = 0; i < n; ++i)
    passed += ri.note_restart(now) ? 1 : 0;
  return passed;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(restart_intensity, atl::test::fd_leak_check)

BOOST_AUTO_TEST_CASE(max_restarts_within_the_period_pass_and_the_next_is_refused) {
  for (uint32_t n : {1u, 3u, 10u}) {
    intensity ri{n, 5000ms};
    for (uint32_t i = 0; i < n; ++i)
      BOOST_TEST(ri.note_restart(t0 + i * 100ms));
    BOOST_TEST(ri.recent_restarts(t0 + n * 100ms) == n);
    BOOST_TEST(!ri.note_restart(t0 + n * 100ms));
    BOOST_TEST(ri.recent_restarts(t0 + n * 100ms) == n + 1);
  }
}

BOOST_AUTO_TEST_CASE(all_at_the_same_instant) {
  intensity ri{3, 5000ms};
  BOOST_TEST(note(ri, t0, 3) == 3u);
  BOOST_TEST(!ri.note_restart(t0));
}

BOOST_AUTO_TEST_CASE(max_restarts_zero_refuses_the_first_restart) {
  intensity ri{0, 5000ms};
  BOOST_TEST(ri.recent_restarts(t0) == 0u);
  BOOST_TEST(!ri.note_restart(t0));
  BOOST_TEST(ri.recent_restarts(t0) == 1u);
}

BOOST_AUTO_TEST_CASE(a_restart_exactly_period_old_still_counts) {
  intensity ri{3, 5000ms};
  BOOST_TEST(note(ri, t0, 3) == 3u);
  BOOST_TEST(ri.recent_restarts(t0 + 5000ms) == 3u);
  // Exactly `period` later the three still count: this is the fourth.
  BOOST_TEST(!ri.note_restart(t0 + 5000ms));
  BOOST_TEST(ri.recent_restarts(t0 + 5000ms) == 4u);
}

BOOST_AUTO_TEST_CASE(a_restart_older_than_period_no_longer_counts) {
  intensity ri{3, 5000ms};
  BOOST_TEST(note(ri, t0, 3) == 3u);
  // One nanosecond more and the three are forgotten.
  BOOST_TEST(ri.recent_restarts(t0 + 5000ms + 1ns) == 0u);
  BOOST_TEST(ri.note_restart(t0 + 5000ms + 1ns));
  BOOST_TEST(ri.recent_restarts(t0 + 5000ms + 1ns) == 1u);
  BOOST_TEST(note(ri, t0 + 5000ms + 1ns, 2) == 2u);
  BOOST_TEST(!ri.note_restart(t0 + 5000ms + 1ns));
}

BOOST_AUTO_TEST_CASE(the_window_slides_with_each_restart) {
  intensity ri{2, 1000ms};
  BOOST_TEST(ri.note_restart(t0));
  BOOST_TEST(ri.note_restart(t0 + 600ms));
  // t0 is 1000 ms old: still counted, so this is the third within the period.
  BOOST_TEST(!ri.note_restart(t0 + 1000ms));
  // t0 is forgotten; t0 + 600ms, t0 + 1000ms and this one remain.
  BOOST_TEST(!ri.note_restart(t0 + 1001ms));
  BOOST_TEST(ri.recent_restarts(t0 + 1001ms) == 3u);
  // At t0 + 2001ms only t0 + 1001ms is within the period; with this one, two.
  BOOST_TEST(ri.recent_restarts(t0 + 2001ms) == 1u);
  BOOST_TEST(ri.note_restart(t0 + 2001ms));
  BOOST_TEST(ri.recent_restarts(t0 + 2001ms) == 2u);
}

BOOST_AUTO_TEST_CASE(a_refused_restart_is_recorded_all_the_same) {
  intensity ri{1, 1000ms};
  BOOST_TEST(ri.note_restart(t0));
  BOOST_TEST(!ri.note_restart(t0 + 600ms));
  // t0 is forgotten, but the refused restart at t0 + 600ms still counts.
  BOOST_TEST(!ri.note_restart(t0 + 1200ms));
  BOOST_TEST(ri.recent_restarts(t0 + 1200ms) == 2u);
}

BOOST_AUTO_TEST_CASE(a_long_quiet_gap_resets_the_count) {
  intensity ri{2, 5000ms};
  BOOST_TEST(note(ri, t0, 3) == 2u);
  BOOST_TEST(ri.recent_restarts(t0) == 3u);
  auto later = t0 + std::chrono::hours{24};
  BOOST_TEST(ri.recent_restarts(later) == 0u);
  BOOST_TEST(note(ri, later, 3) == 2u);
  BOOST_TEST(ri.recent_restarts(later) == 3u);
}

BOOST_AUTO_TEST_CASE(recent_restarts_neither_records_nor_forgets) {
  intensity ri{1, 1000ms};
  BOOST_TEST(ri.note_restart(t0));
  BOOST_TEST(ri.recent_restarts(t0 + 5000ms) == 0u);
  BOOST_TEST(ri.recent_restarts(t0 + 5000ms) == 0u);
  // Asking at a later time did not drop t0: it counts again at t0.
  BOOST_TEST(ri.recent_restarts(t0) == 1u);
  BOOST_TEST(!ri.note_restart(t0 + 1000ms));
}

BOOST_AUTO_TEST_SUITE_END()
