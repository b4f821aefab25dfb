#include "atoll/handlers/detail/connection_deadlines.hpp"

#include <caf/actor_cast.hpp>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "atoll/handlers/detail/connection_common.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/transports/tcp_options.hpp"

namespace atl::detail {

namespace {

/// The earliest of `deadlines` that are set (0: none). Deadlines are
/// monotonic times, positive: as unsigned, `t - 1` maps an unset 0 to the
/// largest value, so a plain minimum (no branches) skips it, and the `+ 1`
/// maps "none set" back to 0. (Runs at every event of every connection.)
int64_t earliest(std::initializer_list<int64_t> deadlines) noexcept {
  uint64_t next = UINT64_MAX;
  for (auto t : deadlines)
    next = std::min(next, static_cast<uint64_t>(t) - 1);
  return static_cast<int64_t>(next + 1);
}

} // namespace

int64_t connection_deadlines::from_now(std::chrono::milliseconds t) noexcept {
  return t == infinite ? 0 : telemetry::monotonic_time() + to_ns(t);
}

int64_t connection_deadlines::next(deadline_phase phase,
                                   std::chrono::milliseconds send_timeout) const noexcept {
  // The common case at every event of an open connection: only the read
  // deadline counts (no set-up, no queued output, no half-close, no
  // traffic reports).
  if (!phase.setting_up && !phase.sending && !phase.half_closed && report == 0)
    return phase.reading ? read : 0;
  auto send_due = phase.sending && send_timeout != infinite ? send_progress + to_ns(send_timeout)
                                                            : 0;
  return earliest({phase.setting_up ? setup : 0, phase.reading ? read : 0, send_due,
                   phase.half_closed ? half_close_quiet_until : 0,
                   phase.half_closed ? half_close_until : 0, report});
}

expired_deadline connection_deadlines::check(deadline_phase phase,
                                              std::chrono::milliseconds send_timeout,
                                              bool send_ends, int64_t now) noexcept {
  auto passed = [now](int64_t deadline) { return deadline != 0 && now >= deadline; };
  if (phase.half_closed && (passed(half_close_quiet_until) || passed(half_close_until)))
    return expired_deadline::half_close;
  if (phase.setting_up && passed(setup))
    return expired_deadline::setup;
  if (phase.reading && passed(read))
    return expired_deadline::read;
  if (phase.sending && send_timeout != infinite && now - send_progress >= to_ns(send_timeout)) {
    if (send_ends)
      return expired_deadline::send;
    send_progress = now;
  }
  return expired_deadline::none;
}

void connection_deadlines::update_timer(reactor& io, caf::abstract_actor* owner,
                                        deadline_phase phase,
                                        std::chrono::milliseconds send_timeout) {
  auto due = next(phase, send_timeout);
  if (due == 0 || (timer_.armed() && timer_.due() <= due))
    return;
  io.schedule(timer_, caf::actor_cast<caf::strong_actor_ptr>(owner), due, 0);
}

void connection_deadlines::cancel_timer() {
  reactor::cancel(timer_);
}

} // namespace atl::detail
