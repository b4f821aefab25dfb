#include "atoll/supervisors/shutdown_listener.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/telemetry.hpp"

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
    auto sups = ctx->connection_supervisors();
    if (sups.empty()) {
      self->quit(reason);
      return;
    }
    auto pending = std::make_shared<size_t>(sups.size());
    for (auto& sup : sups) {
      self->request(sup, caf::infinite, drain_atom::value)
        .then(
          [self, pending, reason](caf::ok_atom) {
            if (--*pending == 0)
              self->quit(reason);
          },
          [self, pending, reason](caf::error&) {
            if (--*pending == 0)
              self->quit(reason);
          });
    }
  });
  return {
    [](int) {}, // no messages of its own
  };
}

} // namespace

child_spec shutdown_listener_spec(std::shared_ptr<server_context> ctx) {
  child_spec spec;
  spec.id = "shutdown_listener";
  spec.restart = restart_type::permanent;
  spec.shutdown = shutdown_policy::infinity();
  spec.start = [ctx](start_context& sc) -> caf::expected<caf::actor> {
    return sc.self()->spawn(shutdown_listener, ctx);
  };
  return spec;
}

} // namespace atl::detail
