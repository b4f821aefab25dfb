// Listen sockets: opening with options, and non-blocking accept with every
// accept(2) outcome classified.
#pragma once

#include <functional>
#include <string>

#include <sys/socket.h>

#include <caf/expected.hpp>

#include "atoll/transports/endpoint.hpp"
#include "atoll/transports/tcp_options.hpp"

namespace atl {

/// An owned, non-blocking listen socket. Closing it (or destroying it) also
/// removes the socket file of a Unix domain listener. Move-only; not
/// thread-safe (one owner).
class listen_socket {
public:
  /// Binds and listens on `addr`:`port` with `opts` (SO_REUSEADDR,
  /// SO_REUSEPORT, IPV6_V6ONLY, backlog). Errors: `errc::address_in_use`,
  /// `errc::access_denied`, `errc::invalid_address`, `errc::system_error`.
  [[nodiscard]] static caf::expected<listen_socket> open(const bind_address& addr, uint16_t port,
                                                         const tcp_options& opts);

  listen_socket() = default;
  /// Takes `other`'s socket (`other` is left closed).
  listen_socket(listen_socket&& other) noexcept;
  /// Takes `other`'s socket, closing the one this held.
  listen_socket& operator=(listen_socket&& other) noexcept;
  listen_socket(const listen_socket&) = delete;
  listen_socket& operator=(const listen_socket&) = delete;
  ~listen_socket();

  /// The fd, -1 if closed.
  int fd() const noexcept {
    return fd_;
  }

  /// The bound address (with the real port when bound to port 0).
  const endpoint& local() const noexcept {
    return local_;
  }

  /// Closes the socket (idempotent).
  void close() noexcept;

  /// Removes the socket file of a Unix domain listener now (idempotent; the
  /// fd stays open). No-op for IP listeners.
  void unlink_path() noexcept;

private:
  int fd_ = -1;
  endpoint local_;
  std::string unlink_path_;
};

/// What one accept attempt produced.
enum class accept_outcome : uint8_t {
  /// A connection (in `fd`).
  accepted,
  /// Nothing pending (EAGAIN).
  would_block,
  /// The peer left before we accepted (ECONNABORTED).
  aborted,
  /// EINVAL (e.g. the socket stopped listening).
  invalid,
  /// A transient network error worth retrying (ENETDOWN, EPROTO, ETIMEDOUT...).
  transient,
  /// Out of file descriptors (EMFILE, ENFILE): back off and retry.
  fd_limit,
  /// The listen socket is closed (EBADF, ENOTSOCK).
  closed,
  /// Anything else (e.g. ENOMEM, EPERM): unexpected.
  fatal,
};

/// Returns "accepted", "would_block", ...
std::string to_string(accept_outcome x);

/// The result of `accept_connection`.
struct accept_result {
  /// What happened.
  accept_outcome outcome = accept_outcome::would_block;
  /// The accepted non-blocking, close-on-exec socket (only when accepted).
  int fd = -1;
  /// The errno of a failed attempt (0 otherwise).
  int error_number = 0;
  /// The peer's address as accept(2) reported it (when accepted).
  sockaddr_storage peer{};
  /// The length of `peer` (0: unknown).
  socklen_t peer_len = 0;
};

/// The accept(2) call used by `accept_connection`: a seam so tests can inject
/// errors. Same contract as accept4(2).
using accept_function = std::function<int(int, sockaddr*, socklen_t*, int)>;

/// Accepts one connection without blocking and classifies the outcome; EINTR
/// is retried. Uses `fn` (default: accept4) with SOCK_NONBLOCK|SOCK_CLOEXEC.
accept_result accept_connection(int listen_fd, const accept_function& fn = {});

} // namespace atl
