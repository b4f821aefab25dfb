// Internal: checks the TCP and UDP servers' option validation shares.
#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>

#include "atoll/transports/endpoint.hpp"

namespace atl::detail {

/// `errc::invalid_option` with the text "OPTION WHY".
caf::error invalid_option(const char* option, const std::string& why);

/// Checks that `port` is 0..65535 and that `address` resolves with it.
/// Errors: `errc::invalid_option` naming `port`, the resolver's error.
caf::error check_port_and_address(uint32_t port, const bind_address& address);

} // namespace atl::detail
