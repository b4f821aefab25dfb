#include "atoll/supervisors/shutdown_listener.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/supervisors/detail/shutdown_common.hpp"

namespace atl::detail {

namespace {

caf::behavior shutdown_listener(caf::event_based_actor* self,
                                std::shared_ptr<server_context> ctx) {
  self->set_exit_handler([self, ctx](caf::exit_msg& msg) {
    if (!msg.reason || msg.reason == caf::exit_reason::normal)
      return;
    auto reason = msg.reason;
    if (!ctx->stopping.load()) {
      self->quit(reason); // a restart of the tree, not a stop
      return;
    }
    ctx->stop_listening();
    // Blocking socket calls of the connections give up when the drain does.
    const auto& policy = ctx->options().shutdown_timeout;
    if (policy.which() != shutdown_policy::kind::infinity) {
      auto grace = policy.which() == shutdown_policy::kind::timeout ? policy.time().count() : 0;
      // Clamped to a century: a larger grace would overflow in nanoseconds.
      constexpr int64_t century_ms = int64_t{100} * 365 * 24 * 3600 * 1000;
      ctx->connections()->give_up_at->store(telemetry::monotonic_time()
                                            + std::min(grace, century_ms) * 1000000);
    }
    drain_then_quit(self, ctx->connection_supervisors(), reason);
  });
  return {
    [](int) {}, // no messages of its own
  };
}

} // namespace

child_spec shutdown_listener_spec(std::shared_ptr<server_context> ctx) {
  return shutdown_listener_child(shutdown_listener, std::move(ctx));
}

} // namespace atl::detail
