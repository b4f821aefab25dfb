#include "atoll/transports/listen_socket.hpp"

#include <cerrno>
#include <utility>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include "atoll/runtime/detail/direct_syscall.hpp"
#include "atoll/runtime/error.hpp"

namespace atl {

namespace {

caf::error set_flag(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0)
    return make_system_error(what, errno);
  return caf::none;
}

} // namespace

caf::expected<listen_socket> listen_socket::open(const bind_address& addr, uint16_t port,
                                                 const tcp_options& opts) {
  if (auto err = validate(opts))
    return err;
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (auto err = addr.resolve(port, ss, len))
    return err;
  listen_socket result;
  result.fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (result.fd_ < 0)
    return make_system_error("socket", errno);
  auto fd = result.fd_;
  bool is_local = ss.ss_family == AF_UNIX;
  if (!is_local) {
    if (opts.reuseaddr)
      if (auto err = set_flag(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)"))
        return err;
    if (opts.reuseport)
      if (auto err = set_flag(fd, SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)"))
        return err;
    if (ss.ss_family == AF_INET6 && opts.ipv6_v6only)
      if (auto err = set_flag(fd, IPPROTO_IPV6, IPV6_V6ONLY, *opts.ipv6_v6only ? 1 : 0,
                              "setsockopt(IPV6_V6ONLY)"))
        return err;
    // Accepted sockets inherit it (see configure_accepted).
    if (opts.nodelay)
      if (auto err = set_flag(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)"))
        return err;
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    auto bind_errno = errno;
    // The address as bound ("127.0.0.1:4000", "[::]:4000"), not as the user
    // named it ("loopback"); a path as "unix:PATH".
    auto what = "bind " + to_string(addr);
    if (!is_local)
      if (auto shown = make_endpoint(ss, len))
        what = "bind " + to_string(*shown);
    return make_system_error(what.c_str(), bind_errno);
  }
  if (is_local)
    result.unlink_path_ = addr.text();
  if (::listen(fd, opts.backlog) != 0)
    return make_system_error("listen", errno);
  auto local = local_endpoint(fd);
  if (!local)
    return local.error();
  result.local_ = std::move(*local);
  return result;
}

listen_socket::listen_socket(listen_socket&& other) noexcept
  : fd_(std::exchange(other.fd_, -1)),
    local_(std::move(other.local_)),
    unlink_path_(std::move(other.unlink_path_)) {
  other.unlink_path_.clear();
}

listen_socket& listen_socket::operator=(listen_socket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    local_ = std::move(other.local_);
    unlink_path_ = std::move(other.unlink_path_);
    other.unlink_path_.clear();
  }
  return *this;
}

listen_socket::~listen_socket() {
  close();
}

void listen_socket::close() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  unlink_path();
}

void listen_socket::unlink_path() noexcept {
  if (!unlink_path_.empty()) {
    ::unlink(unlink_path_.c_str());
    unlink_path_.clear();
  }
}

std::string to_string(accept_outcome x) {
  switch (x) {
    case accept_outcome::accepted: return "accepted";
    case accept_outcome::would_block: return "would_block";
    case accept_outcome::aborted: return "econnaborted";
    case accept_outcome::invalid: return "einval";
    case accept_outcome::transient: return "transient";
    case accept_outcome::fd_limit: return "emfile";
    case accept_outcome::closed: return "closed";
    case accept_outcome::fatal: return "fatal";
  }
  return "?";
}

accept_result accept_connection(int listen_fd, const accept_function& fn) {
  for (;;) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    auto flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    auto fd = fn ? fn(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len, flags)
                 : detail::sys_accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len, flags);
    if (fd >= 0)
      return {accept_outcome::accepted, fd, 0, addr, len};
    auto err = errno;
    switch (err) {
      case EINTR:
        continue;
      case EAGAIN:
        return {accept_outcome::would_block, -1, err};
      case ECONNABORTED:
        return {accept_outcome::aborted, -1, err};
      case EINVAL:
        return {accept_outcome::invalid, -1, err};
      case ENETDOWN:
      case ENETUNREACH:
      case EHOSTDOWN:
      case EHOSTUNREACH:
      case ENONET:
      case EPROTO:
      case ENOPROTOOPT:
      case EOPNOTSUPP:
      case ETIMEDOUT:
        return {accept_outcome::transient, -1, err};
      case EMFILE:
      case ENFILE:
        return {accept_outcome::fd_limit, -1, err};
      case EBADF:
      case ENOTSOCK:
        return {accept_outcome::closed, -1, err};
      default:
        return {accept_outcome::fatal, -1, err};
    }
  }
}

} // namespace atl
