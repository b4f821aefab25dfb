// Internal: the server options that are not part of the public API (a test
// seam for fault injection in the acceptors).
#pragma once

#include <utility>

#include "atoll/supervisors/server_options.hpp"

namespace atl::detail {

/// Reads and sets the internal fields of `server_options`.
struct server_options_access {
  /// Replaces accept4(2) in the server's acceptors (tests inject errors).
  static void set_accept_hook(server_options& opts, accept_function fn) {
    opts.accept_hook_ = std::move(fn);
  }

  /// The acceptors' accept function (empty: accept4).
  static const accept_function& accept_hook(const server_options& opts) noexcept {
    return opts.accept_hook_;
  }
};

} // namespace atl::detail
