#include "atoll/transports/tcp_options.hpp"

#include <cerrno>

#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "atoll/runtime/error.hpp"

namespace atl {

caf::error validate(const tcp_options& opts) {
  if (opts.backlog <= 0)
    return caf::make_error(errc::invalid_option, "transport.backlog must be positive",
                           std::to_string(opts.backlog));
  if (opts.send_timeout.count() <= 0)
    return caf::make_error(errc::invalid_option,
                           "transport.send_timeout must be positive or infinite");
  if (opts.recbuf && *opts.recbuf <= 0)
    return caf::make_error(errc::invalid_option, "transport.recbuf must be positive");
  if (opts.sndbuf && *opts.sndbuf <= 0)
    return caf::make_error(errc::invalid_option, "transport.sndbuf must be positive");
  if (opts.linger && *opts.linger < 0)
    return caf::make_error(errc::invalid_option, "transport.linger must not be negative");
  return caf::none;
}

caf::error configure_connection(int fd, const tcp_options& opts) {
  // TCP_NODELAY fails on Unix sockets (EOPNOTSUPP); it does not apply there.
  if (opts.nodelay) {
    int one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0
        && errno != EOPNOTSUPP && errno != EINVAL)
      return make_system_error("setsockopt(TCP_NODELAY)", errno);
  }
  return configure_accepted(fd, opts);
}

caf::error configure_accepted(int fd, const tcp_options& opts) {
  if (opts.keepalive)
    if (auto err = set_socket_option(fd, socket_option::keepalive, *opts.keepalive ? 1 : 0))
      return err;
  if (opts.recbuf)
    if (auto err = set_socket_option(fd, socket_option::recbuf, *opts.recbuf))
      return err;
  if (opts.sndbuf)
    if (auto err = set_socket_option(fd, socket_option::sndbuf, *opts.sndbuf))
      return err;
  if (opts.linger)
    if (auto err = set_socket_option(fd, socket_option::linger, *opts.linger))
      return err;
  return caf::none;
}

} // namespace atl
