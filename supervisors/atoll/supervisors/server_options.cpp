#include "atoll/supervisors/server_options.hpp"

#include <algorithm>

#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/option_checks.hpp"

namespace atl {

namespace {

caf::error invalid(const char* option, const std::string& why) {
  return detail::invalid_option(option, why);
}

bool positive_or_infinite(std::chrono::milliseconds t) {
  return t == infinite || t.count() > 0;
}

} // namespace

caf::error validate(const server_options& opts) {
  if (!opts.handler && !opts.connection_process)
    return caf::make_error(errc::missing_option,
                           "handler: a handler factory (or a connection_process) is required");
  if (opts.handler && opts.connection_process)
    return invalid("connection_process", "replaces the handler: set one of them, not both");
  if (opts.connection_process && opts.detached_connections)
    return invalid("detached_connections",
                   "does not apply to a connection_process (it spawns with its own options)");
  if (opts.connection_process && opts.hidden_connections)
    return invalid("hidden_connections",
                   "does not apply to a connection_process (it spawns with its own options)");
  if (opts.connection_process && opts.lightweight_connections)
    return invalid("lightweight_connections",
                   "does not apply to a connection_process (it spawns with its own options)");
  if (opts.detached_connections && opts.lightweight_connections)
    return invalid("lightweight_connections",
                   "a detached connection needs an event_based_actor: set one of them");
  if (opts.address.which() == bind_address::kind::local && opts.port != 0)
    return invalid("port", "must be 0 with a Unix socket address");
  if (auto err = detail::check_port_and_address(opts.port, opts.address))
    return err;
  if (auto err = validate(opts.transport))
    return err;
  if (opts.num_acceptors == 0)
    return invalid("num_acceptors", "must be at least 1");
  if (opts.num_acceptors > server_options::max_num_acceptors)
    return invalid("num_acceptors", "must be at most "
                                      + std::to_string(server_options::max_num_acceptors)
                                      + ", got " + std::to_string(opts.num_acceptors));
  if (opts.num_listen_sockets == 0)
    return invalid("num_listen_sockets", "must be at least 1");
  if (opts.num_listen_sockets > server_options::max_num_listen_sockets)
    return invalid("num_listen_sockets", "must be at most "
                                           + std::to_string(server_options::max_num_listen_sockets)
                                           + ", got " + std::to_string(opts.num_listen_sockets));
  if (opts.num_listen_sockets > opts.num_acceptors)
    return invalid("num_listen_sockets", "must not exceed num_acceptors ("
                                           + std::to_string(opts.num_acceptors) + ")");
  if (opts.num_listen_sockets > 1 && !opts.transport.reuseport)
    return invalid("num_listen_sockets", "above 1 requires transport.reuseport");
  if (opts.num_listen_sockets > 1 && opts.address.which() == bind_address::kind::local)
    return invalid("num_listen_sockets", "must be 1 with a Unix socket address");
  if (opts.num_connections && *opts.num_connections == 0)
    return invalid("num_connections", "must be at least 1 (or unlimited)");
  if (opts.max_connections_retry_wait.count() < 0)
    return invalid("max_connections_retry_wait", "must not be negative");
  if (!positive_or_infinite(opts.read_timeout))
    return invalid("read_timeout", "must be positive or infinite");
  if (!positive_or_infinite(opts.handshake_timeout))
    return invalid("handshake_timeout", "must be positive or infinite");
  if (opts.shutdown_timeout.which() == shutdown_policy::kind::timeout
      && opts.shutdown_timeout.time().count() < 0)
    return invalid("shutdown_timeout", "must not be negative");
  if (opts.name.empty())
    return invalid("name", "must not be empty");
  if (opts.proxy_protocol)
    if (auto err = validate(*opts.proxy_protocol))
      return err;
  if (opts.supervisor.period.count() <= 0 || opts.supervisor.period == infinite)
    return invalid("supervisor.period", "must be positive and finite");
  if (auto& name = opts.supervisor.registered_name; !name.empty()) {
    auto valid_char = [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    };
    if (name.size() > 10 || !std::all_of(name.begin(), name.end(), valid_char))
      return invalid("supervisor.registered_name",
                     "must be 1 to 10 characters of [0-9A-Za-z_] (a CAF atom), got '" + name + "'");
  }
  if (opts.max_connections_per_source && *opts.max_connections_per_source == 0)
    return invalid("max_connections_per_source", "must be at least 1 (or unlimited)");
  return caf::none;
}

} // namespace atl
