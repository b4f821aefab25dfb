// A supervisor's restart intensity (see restart_intensity.hpp).
#include "atoll/runtime/detail/restart_intensity.hpp"

namespace atl::detail {

restart_intensity::restart_intensity(uint32_t max_restarts, std::chrono::milliseconds period)
  : max_restarts_(max_restarts), period_(period) {}

bool restart_intensity::note_restart(clock_type::time_point now) {
  log_.push_back(now);
  while (!log_.empty() && now - log_.front() > period_)
    log_.pop_front();
  return log_.size() <= max_restarts_;
}

uint32_t restart_intensity::recent_restarts(clock_type::time_point now) const {
  uint32_t n = 0;
  for (auto t : log_)
    if (now - t <= period_)
      ++n;
  return n;
}

} // namespace atl::detail
