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

namespace {

caf::error set_int(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0)
    return make_system_error(what, errno);
  return caf::none;
}

caf::error set_linger(int fd, int seconds) {
  linger lg{};
  lg.l_onoff = seconds >= 0 ? 1 : 0;
  lg.l_linger = seconds >= 0 ? seconds : 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
    return make_system_error("setsockopt(SO_LINGER)", errno);
  return caf::none;
}

} // namespace

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
    if (auto err = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, *opts.keepalive ? 1 : 0,
                           "setsockopt(SO_KEEPALIVE)"))
      return err;
  if (opts.recbuf)
    if (auto err = set_int(fd, SOL_SOCKET, SO_RCVBUF, *opts.recbuf, "setsockopt(SO_RCVBUF)"))
      return err;
  if (opts.sndbuf)
    if (auto err = set_int(fd, SOL_SOCKET, SO_SNDBUF, *opts.sndbuf, "setsockopt(SO_SNDBUF)"))
      return err;
  if (opts.linger)
    if (auto err = set_linger(fd, *opts.linger))
      return err;
  return caf::none;
}

std::string to_string(socket_option opt) {
  switch (opt) {
    case socket_option::nodelay: return "nodelay";
    case socket_option::keepalive: return "keepalive";
    case socket_option::recbuf: return "recbuf";
    case socket_option::sndbuf: return "sndbuf";
    case socket_option::linger: return "linger";
    case socket_option::tos: return "tos";
  }
  return "?";
}

caf::expected<int> get_socket_option(int fd, socket_option opt) {
  int value = 0;
  socklen_t len = sizeof(value);
  auto get = [&](int level, int name) -> caf::expected<int> {
    if (::getsockopt(fd, level, name, &value, &len) != 0)
      return make_system_error(("getsockopt(" + to_string(opt) + ")").c_str(), errno);
    return value;
  };
  switch (opt) {
    case socket_option::nodelay: return get(IPPROTO_TCP, TCP_NODELAY);
    case socket_option::keepalive: return get(SOL_SOCKET, SO_KEEPALIVE);
    case socket_option::recbuf: return get(SOL_SOCKET, SO_RCVBUF);
    case socket_option::sndbuf: return get(SOL_SOCKET, SO_SNDBUF);
    case socket_option::tos: return get(IPPROTO_IP, IP_TOS);
    case socket_option::linger: {
      linger lg{};
      socklen_t lg_len = sizeof(lg);
      if (::getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &lg_len) != 0)
        return make_system_error("getsockopt(linger)", errno);
      return lg.l_onoff ? lg.l_linger : -1;
    }
  }
  return caf::make_error(errc::invalid_option, "unknown socket option");
}

caf::error set_socket_option(int fd, socket_option opt, int value) {
  switch (opt) {
    case socket_option::nodelay:
    case socket_option::keepalive:
      if (value != 0 && value != 1)
        return caf::make_error(errc::invalid_option, to_string(opt) + " must be 0 or 1");
      return set_int(fd, opt == socket_option::nodelay ? IPPROTO_TCP : SOL_SOCKET,
                     opt == socket_option::nodelay ? TCP_NODELAY : SO_KEEPALIVE, value,
                     ("setsockopt(" + to_string(opt) + ")").c_str());
    case socket_option::recbuf:
    case socket_option::sndbuf:
      if (value <= 0)
        return caf::make_error(errc::invalid_option, to_string(opt) + " must be positive");
      return set_int(fd, SOL_SOCKET, opt == socket_option::recbuf ? SO_RCVBUF : SO_SNDBUF,
                     value, ("setsockopt(" + to_string(opt) + ")").c_str());
    case socket_option::tos:
      if (value < 0 || value > 255)
        return caf::make_error(errc::invalid_option, "tos must be within 0..255");
      return set_int(fd, IPPROTO_IP, IP_TOS, value, "setsockopt(tos)");
    case socket_option::linger:
      if (value < -1)
        return caf::make_error(errc::invalid_option, "linger must be -1 (off) or >= 0");
      return set_linger(fd, value);
  }
  return caf::make_error(errc::invalid_option, "unknown socket option");
}

} // namespace atl
