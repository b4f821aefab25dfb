// The options of a connected TCP socket that handlers read and change
// (Thousand Island's getopts/setopts), one at a time or as lists, by enum or
// by name, plus raw access to any integer option.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace atl {

/// A socket option of a connected TCP socket. Values are ints; the ranges
/// are checked before anything is set.
enum class socket_option : uint8_t {
  nodelay,      ///< TCP_NODELAY (0 or 1)
  keepalive,    ///< SO_KEEPALIVE (0 or 1)
  recbuf,       ///< SO_RCVBUF (bytes, >= 1; Linux reports twice the value set)
  sndbuf,       ///< SO_SNDBUF (bytes, >= 1; Linux reports twice the value set)
  linger,       ///< SO_LINGER seconds, -1 when off
  tos,          ///< IP_TOS (0..255; IPv4 and IPv4-mapped connections)
  tclass,       ///< IPV6_TCLASS (0..255; IPv6 connections)
  ttl,          ///< IP_TTL (1..255)
  priority,     ///< SO_PRIORITY (0..6 without CAP_NET_ADMIN)
  dontroute,    ///< SO_DONTROUTE (0 or 1)
  reuseaddr,    ///< SO_REUSEADDR (0 or 1)
  reuseport,    ///< SO_REUSEPORT (0 or 1)
  ipv6_v6only,  ///< IPV6_V6ONLY (0 or 1; IPv6 sockets)
  keepidle,     ///< TCP_KEEPIDLE: idle seconds before keepalive probes (1..32767)
  keepintvl,    ///< TCP_KEEPINTVL: seconds between probes (1..32767)
  keepcnt,      ///< TCP_KEEPCNT: probes before the connection is dropped (1..127)
  user_timeout, ///< TCP_USER_TIMEOUT: ms unacknowledged data may wait (0: the kernel's)
  cork,         ///< TCP_CORK (0 or 1)
  quickack,     ///< TCP_QUICKACK (0 or 1)
  rcvlowat,     ///< SO_RCVLOWAT (bytes, >= 1)
};

/// An option with its value (getopts results, setopts arguments).
using socket_option_value = std::pair<socket_option, int>;

/// Every option, in declaration order.
const std::vector<socket_option>& all_socket_options();

/// Returns "nodelay", "keepalive", ... (the names `parse_socket_option`
/// accepts). Thread-safe.
std::string to_string(socket_option opt);

/// The option named `name` (as `to_string` spells it). Errors:
/// `errc::invalid_option` "unknown socket option 'x' (known: ...)".
[[nodiscard]] caf::expected<socket_option> parse_socket_option(std::string_view name);

/// Checks a value against the option's range. Errors: `errc::invalid_option`
/// naming the option and its range.
[[nodiscard]] caf::error check_socket_option(socket_option opt, int value);

/// Reads an option of a connected socket. Errors: `errc::system_error`
/// naming the option (e.g. `tclass` on an IPv4 socket).
[[nodiscard]] caf::expected<int> get_socket_option(int fd, socket_option opt);

/// Sets an option of a connected socket. Errors: `errc::invalid_option` for
/// a value out of range (nothing set), `errc::system_error` from setsockopt.
[[nodiscard]] caf::error set_socket_option(int fd, socket_option opt, int value);

/// Reads several options, in order. Errors: the first failure (nothing is
/// returned then), naming its option.
[[nodiscard]] caf::expected<std::vector<socket_option_value>>
get_socket_options(int fd, const std::vector<socket_option>& opts);

/// Sets several options, in order. Every value is checked first: one out of
/// range fails the call with `errc::invalid_option` and nothing is set. A
/// setsockopt failure stops there (`errc::system_error` naming the option;
/// the options before it stay set).
[[nodiscard]] caf::error set_socket_options(int fd, const std::vector<socket_option_value>& opts);

/// Reads any integer option (`level`, `name` as for getsockopt(2)), for
/// options not listed above. Errors: `errc::system_error`.
[[nodiscard]] caf::expected<int> get_raw_socket_option(int fd, int level, int name);

/// Sets any integer option. Errors: `errc::system_error` (EINVAL,
/// ENOPROTOOPT, EPERM, ... from setsockopt(2)).
[[nodiscard]] caf::error set_raw_socket_option(int fd, int level, int name, int value);

} // namespace atl
