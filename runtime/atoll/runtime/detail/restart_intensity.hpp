// A supervisor's restart intensity (internal): at most `max_restarts`
// restarts within `period`, as OTP counts them. Pure: no CAF, no clock read.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

namespace atl::detail {

/// The restart log of one supervisor and its limit (OTP's intensity and
/// period). The caller passes the time of each restart, so the class reads
/// no clock and can be tested with synthetic times. Not thread-safe: a
/// supervisor actor owns one and uses it on its own thread.
class restart_intensity {
public:
  /// The clock whose time points the log holds.
  using clock_type = std::chrono::steady_clock;

  /// An empty log that allows at most `max_restarts` restarts within any
  /// `period` (the supervisor's flags; `validate` ensures `period` > 0).
  restart_intensity(uint32_t max_restarts, std::chrono::milliseconds period);

  /// Records a restart at `now` and forgets the restarts more than `period`
  /// before `now` (one exactly `period` old still counts). Returns true if
  /// at most `max_restarts` restarts remain in the log, false if this one
  /// exceeds the intensity (it is recorded all the same). `now` must not go
  /// back in time between calls.
  [[nodiscard]] bool note_restart(clock_type::time_point now);

  /// The restarts counted against the intensity at `now`: those at most
  /// `period` before it (tree snapshots' `recent_restarts`).
  [[nodiscard]] uint32_t recent_restarts(clock_type::time_point now) const;

private:
  uint32_t max_restarts_;
  std::chrono::milliseconds period_;
  std::deque<clock_type::time_point> log_; // oldest first
};

} // namespace atl::detail
