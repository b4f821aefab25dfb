#include "atoll/supervisors/udp_server_options.hpp"

#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/option_checks.hpp"
#include "atoll/transports/tcp_options.hpp"

namespace atl {

namespace {

caf::error invalid(const char* option, const std::string& why) {
  return detail::invalid_option(option, why);
}

} // namespace

caf::error validate(const udp_server_options& opts) {
  using std::chrono::milliseconds;
  if (!opts.handler)
    return caf::make_error(errc::missing_option, "handler: a handler factory is required");
  if (opts.address.which() == bind_address::kind::local)
    return invalid("address", "must be an IP address for a UDP server");
  if (auto err = detail::check_port_and_address(opts.port, opts.address))
    return err;
  if (auto err = validate(opts.transport))
    return err;
  if (opts.num_listeners == 0)
    return invalid("num_listeners", "must be at least 1");
  if (opts.num_listeners > udp_server_options::max_num_listeners)
    return invalid("num_listeners", "must be at most " +
                                        std::to_string(udp_server_options::max_num_listeners) +
                                        ", got " + std::to_string(opts.num_listeners));
  if (opts.num_connections && *opts.num_connections == 0)
    return invalid("num_connections", "must be at least 1 (or unlimited)");
  if (opts.max_connections_retry_wait.count() < 0)
    return invalid("max_connections_retry_wait", "must not be negative");
  if (opts.read_timeout != infinite && opts.read_timeout.count() <= 0)
    return invalid("read_timeout", "must be positive or infinite");
  if (opts.shutdown_timeout.which() == shutdown_policy::kind::timeout &&
      opts.shutdown_timeout.time().count() < 0)
    return invalid("shutdown_timeout", "must not be negative");
  if (opts.rate_limit_max_packets == 0 || opts.rate_limit_max_packets > 10000000)
    return invalid("rate_limit_max_packets", "must be within 1..10000000, got " +
                                                 std::to_string(opts.rate_limit_max_packets));
  if (opts.rate_limit_window < milliseconds{1} || opts.rate_limit_window > milliseconds{86400000})
    return invalid("rate_limit_window_ms", "must be within 1..86400000, got " +
                                               std::to_string(opts.rate_limit_window.count()));
  if (opts.rate_limit_max_sources == 0)
    return invalid("rate_limit_max_sources", "must be at least 1");
  if (opts.max_packet_size == 0 || opts.max_packet_size > 65535)
    return invalid("max_packet_size",
                   "must be within 1..65535, got " + std::to_string(opts.max_packet_size));
  if (opts.name.empty())
    return invalid("name", "must not be empty");
  if (opts.detached_connections && opts.lifetime == udp_lifetime::in_listener)
    return invalid("detached_connections",
                   "needs handler actors (per_datagram or per_peer); in_listener runs the "
                   "handler inside its listener");
  return caf::none;
}

} // namespace atl
