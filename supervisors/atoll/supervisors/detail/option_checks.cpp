#include "atoll/supervisors/detail/option_checks.hpp"

#include <sys/socket.h>

#include "atoll/runtime/error.hpp"

namespace atl::detail {

caf::error invalid_option(const char* option, const std::string& why) {
  return caf::make_error(errc::invalid_option, std::string{option} + " " + why);
}

caf::error check_port_and_address(uint32_t port, const bind_address& address) {
  if (port > 65535)
    return invalid_option("port", "must be within 0..65535, got " + std::to_string(port));
  sockaddr_storage ss{};
  socklen_t len = 0;
  return address.resolve(static_cast<uint16_t>(port), ss, len);
}

} // namespace atl::detail
