// Internal: what TCP and UDP handlers need from the actor running them.
#pragma once

#include <caf/fwd.hpp>

#include "atoll/handlers/basic_handler.hpp"
#include "atoll/handlers/verdict.hpp"

namespace atl::detail {

/// The actor that runs a handler (`atl::handler` or `atl::udp_handler`):
/// the connection actor, a UDP handler actor or a UDP listener.
class handler_host {
public:
  virtual ~handler_host();

  /// Applies a verdict from outside a network callback.
  virtual void apply_verdict(verdict v) = 0;

  /// The actor. Throws `std::logic_error` if the host is not an
  /// `event_based_actor` (a lightweight connection).
  virtual caf::event_based_actor* actor() = 0;
};

/// Binds a handler to the actor that runs it (before its first callback).
struct handler_binding {
  /// Makes `host` the actor behind `h`'s `apply` and `self`.
  template <class Socket>
  static void bind(basic_handler<Socket>& h, handler_host* host) noexcept {
    h.host_ = host;
  }
};

} // namespace atl::detail
