// Internal: what TCP and UDP handlers need from the actor running them.
#pragma once

#include <caf/fwd.hpp>

#include "atoll/handlers/verdict.hpp"

namespace atl::detail {

/// The actor that runs a handler (`atl::handler` or `atl::udp_handler`):
/// the connection actor, a UDP handler actor or a UDP listener.
class handler_host {
public:
  virtual ~handler_host();

  /// Applies a verdict from outside a network callback.
  virtual void apply_verdict(verdict v) = 0;

  /// The actor.
  virtual caf::event_based_actor* actor() noexcept = 0;
};

} // namespace atl::detail
