// TCP socket options for listen and accepted sockets (Thousand Island's
// transport_options), and the get/set option subset handlers may use.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "atoll/runtime/durations.hpp"
#include "atoll/transports/socket_option.hpp"

namespace atl {

/// The default read timeout of servers (Thousand Island's 60 s): a client
/// silent this long is closed.
inline constexpr std::chrono::milliseconds default_read_timeout{60000};

/// The default bound of a transport handshake (TLS), 5 s.
inline constexpr std::chrono::milliseconds default_handshake_timeout{5000};

/// Options of listen sockets and of the connections they accept. The defaults
/// are Thousand Island's. Every socket is non-blocking whatever is set here.
struct tcp_options {
  /// listen(2) backlog.
  int backlog = 1024;
  /// TCP_NODELAY on accepted sockets.
  bool nodelay = true;
  /// How long queued output may stay unsent before the send fails
  /// (`atl::infinite` to wait forever).
  std::chrono::milliseconds send_timeout{30000};
  /// Close the connection when a send times out.
  bool send_timeout_close = true;
  /// Most bytes of send output a connection may hold queued in memory
  /// (output the kernel has not taken yet; file ranges queued by `sendfile`
  /// are not counted). A send that finds output queued and would go past it
  /// fails with `errc::output_limit` and sends nothing; the connection goes
  /// on (its handler decides). A send on an empty queue is always taken, so
  /// one send may exceed it. 0: no limit.
  uint64_t max_queued_output = uint64_t{4} << 20;
  /// SO_REUSEADDR on listen sockets.
  bool reuseaddr = true;
  /// SO_REUSEPORT on listen sockets (required for several listen sockets).
  bool reuseport = false;
  /// SO_KEEPALIVE on accepted sockets (unset: the kernel's default).
  std::optional<bool> keepalive;
  /// SO_RCVBUF in bytes (unset: the kernel's default).
  std::optional<int> recbuf;
  /// SO_SNDBUF in bytes (unset: the kernel's default).
  std::optional<int> sndbuf;
  /// SO_LINGER: close blocks up to this long (seconds) to send queued data;
  /// 0 resets the connection on close (unset: no linger, the default).
  std::optional<int> linger;
  /// IPV6_V6ONLY on IPv6 listen sockets (unset: the kernel's default).
  std::optional<bool> ipv6_v6only;
};

/// Checks the options. Errors: `errc::invalid_option` naming the option.
[[nodiscard]] caf::error validate(const tcp_options& opts);

/// Applies the per-connection options (nodelay, keepalive, buffers, linger)
/// to an accepted socket. Errors: `errc::system_error` naming the option.
[[nodiscard]] caf::error configure_connection(int fd, const tcp_options& opts);

/// Applies the per-connection options that a socket accepted from a
/// `listen_socket` does not inherit: all but nodelay, which the listen
/// socket carries (Linux copies TCP_NODELAY to the sockets it accepts), so
/// that the common case costs no system call. Errors as
/// `configure_connection`.
[[nodiscard]] caf::error configure_accepted(int fd, const tcp_options& opts);

} // namespace atl
