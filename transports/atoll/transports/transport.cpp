#include "atoll/transports/transport.hpp"

#include <cerrno>
#include <utility>

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "atoll/runtime/detail/direct_syscall.hpp"
#include "atoll/runtime/error.hpp"

namespace atl {

std::string to_string(shutdown_way way) {
  switch (way) {
    case shutdown_way::read: return "read";
    case shutdown_way::write: return "write";
    case shutdown_way::read_write: return "read_write";
  }
  return "?";
}

transport::~transport() = default;

bool transport::has_buffered_input() const noexcept {
  return false;
}

bool transport::handshake_begun() const noexcept {
  return true;
}

caf::expected<std::string> transport::negotiated_protocol() const {
  return caf::make_error(errc::protocol_not_negotiated);
}

caf::expected<connection_info> transport::connection_information() const {
  return caf::make_error(errc::not_secure);
}

caf::expected<std::string> transport::peercert() const {
  return caf::make_error(errc::not_secure);
}

int transport::release() noexcept {
  return -1;
}

namespace {

/// Maps errno of a failed read or write; EAGAIN means waiting for `wait`.
io_result failure(const char* what, int err, io_status wait) {
  io_result res;
  switch (err) {
    case EAGAIN:
      res.status = wait;
      return res;
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
      res.status = io_status::closed;
      return res;
    default:
      res.status = io_status::failed;
      res.error = make_system_error(what, err);
      return res;
  }
}

} // namespace

tcp_transport::~tcp_transport() {
  close();
}

io_result tcp_transport::handshake() {
  return {};
}

io_result tcp_transport::read(char* buf, size_t len) {
  for (;;) {
    auto n = detail::sys_recv(fd_, buf, len, 0);
    if (n > 0)
      return {static_cast<size_t>(n), io_status::done, {}};
    if (n == 0)
      return {0, io_status::closed, {}};
    if (errno != EINTR)
      return failure("read", errno, io_status::want_read);
  }
}

io_result tcp_transport::write(const iovec* iov, size_t count) {
  if (count == 1) {
    for (;;) {
      auto n = detail::sys_send(fd_, iov->iov_base, iov->iov_len, MSG_NOSIGNAL);
      if (n >= 0)
        return {static_cast<size_t>(n), io_status::done, {}};
      if (errno != EINTR)
        return failure("write", errno, io_status::want_write);
    }
  }
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  for (;;) {
    auto n = detail::sys_sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n >= 0)
      return {static_cast<size_t>(n), io_status::done, {}};
    if (errno != EINTR)
      return failure("write", errno, io_status::want_write);
  }
}

io_result tcp_transport::sendfile(int file_fd, uint64_t offset, size_t count) {
  auto off = static_cast<off_t>(offset);
  for (;;) {
    auto n = ::sendfile(fd_, file_fd, &off, count);
    if (n >= 0)
      return {static_cast<size_t>(n), io_status::done, {}};
    if (errno != EINTR)
      return failure("sendfile", errno, io_status::want_write);
  }
}

caf::error tcp_transport::shutdown(shutdown_way way) {
  int how = way == shutdown_way::read ? SHUT_RD
                                      : (way == shutdown_way::write ? SHUT_WR : SHUT_RDWR);
  if (::shutdown(fd_, how) != 0)
    return make_system_error("shutdown", errno);
  return caf::none;
}

void tcp_transport::close() noexcept {
  if (fd_ >= 0) {
    detail::sys_close(fd_);
    fd_ = -1;
  }
}

int tcp_transport::release() noexcept {
  return std::exchange(fd_, -1);
}

} // namespace atl
