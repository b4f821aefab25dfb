// Socket addresses: endpoints (an IP address and port, or a Unix socket
// path) and the bind addresses a server listens on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <netinet/in.h>

#include <sys/socket.h>

#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>

namespace atl {

/// The address of one end of a socket.
struct endpoint {
  /// Address family.
  enum class family_type : uint8_t { ipv4, ipv6, local };

  /// The family.
  family_type family = family_type::ipv4;
  /// The IP address in text form ("127.0.0.1", "::1"), or the Unix socket path.
  std::string address;
  /// The port (0 for Unix sockets).
  uint16_t port = 0;

  /// True for IPv4 and IPv6 endpoints.
  bool is_ip() const noexcept {
    return family != family_type::local;
  }
};

/// Renders "127.0.0.1:4000", "[::1]:4000" or "/run/app.sock".
std::string to_string(const endpoint& ep);

/// Compares family, address and port.
bool operator==(const endpoint& a, const endpoint& b);

/// Serializes an endpoint (so listener info can cross nodes).
template <class Inspector> typename Inspector::result_type inspect(Inspector& f, endpoint& x) {
  return f(caf::meta::type_name("endpoint"), x.family, x.address, x.port);
}

/// Converts a socket address returned by the kernel (`len`: the length it
/// reported; a Unix socket path is read up to its NUL, `len` or the end of
/// sun_path, whichever comes first). Errors: `errc::invalid_address` for
/// unsupported families.
[[nodiscard]] caf::expected<endpoint> make_endpoint(const sockaddr_storage& addr, socklen_t len);

/// A connection's peer as the kernel reported it, kept in binary form for
/// IPv4 and IPv6 (no text is made until someone asks: a connection nobody
/// asks about never formats its address) and as an `endpoint` otherwise (a
/// Unix socket's path, an address known only as text). Move-only; no larger
/// than an `endpoint`. Not thread-safe: its owner (a socket) uses it.
class peer_address {
public:
  /// No address (`to_endpoint` gives an empty IPv4 endpoint).
  peer_address() = default;

  /// An address known as text (a PROXY header's source, a getpeername
  /// result).
  explicit peer_address(endpoint ep);

  /// Takes `other`'s address (`other` keeps a copy of a binary one or is
  /// left empty).
  peer_address(peer_address&& other) noexcept = default;

  /// Takes `other`'s address (as the move constructor).
  peer_address& operator=(peer_address&& other) noexcept = default;

  /// Keeps what accept(2) reported: IPv4 and IPv6 addresses as they are,
  /// anything else (another family, an IPv4 or IPv6 length shorter than its
  /// `sockaddr_in`/`sockaddr_in6`) converted now by `make_endpoint`.
  /// Errors: `errc::invalid_address` for unsupported families.
  [[nodiscard]] static caf::expected<peer_address> from(const sockaddr_storage& addr,
                                                        socklen_t len);

  /// The address as text and port (made at each call for a binary address).
  endpoint to_endpoint() const;

private:
  union raw_address {
    sockaddr_in v4;
    sockaddr_in6 v6;
  };
  raw_address raw_{};
  socklen_t raw_len_ = 0;         // 0: no binary address
  std::unique_ptr<endpoint> text_; // set for a non-binary address
};

/// The local address of an fd (getsockname). Errors: `errc::system_error`.
[[nodiscard]] caf::expected<endpoint> local_endpoint(int fd);

/// The remote address of an fd (getpeername). Errors: `errc::system_error`
/// (ENOTCONN when the peer is already gone).
[[nodiscard]] caf::expected<endpoint> remote_endpoint(int fd);

/// Where a server listens: a wildcard, loopback, a given IP address, or a Unix
/// socket path. Construct with the named factories or `parse`.
class bind_address {
public:
  /// What kind of address.
  enum class kind : uint8_t { any, any6, loopback, loopback6, ip, local };

  /// All IPv4 interfaces (0.0.0.0), the default.
  static bind_address any() {
    return bind_address{kind::any, {}};
  }

  /// All IPv6 interfaces (::), dual-stack unless `ipv6_v6only` is set.
  static bind_address any6() {
    return bind_address{kind::any6, {}};
  }

  /// IPv4 loopback (127.0.0.1).
  static bind_address loopback() {
    return bind_address{kind::loopback, {}};
  }

  /// IPv6 loopback (::1).
  static bind_address loopback6() {
    return bind_address{kind::loopback6, {}};
  }

  /// A given IPv4 or IPv6 address (checked by `validate`/`resolve`).
  static bind_address ip(std::string address) {
    return bind_address{kind::ip, std::move(address)};
  }

  /// A Unix domain socket path (the port must be 0).
  static bind_address local(std::string path) {
    return bind_address{kind::local, std::move(path)};
  }

  /// Parses "any", "any6", "loopback", "loopback6", "localhost", an IPv4 or
  /// IPv6 literal, or "unix:PATH". What it accepts resolves for any port.
  /// Errors: `errc::invalid_address` (not an IP literal; a path that is empty,
  /// longer than 107 bytes or holds a NUL byte).
  [[nodiscard]] static caf::expected<bind_address> parse(const std::string& text);

  bind_address() = default;

  /// The kind.
  kind which() const noexcept {
    return kind_;
  }

  /// The IP literal or path (empty for the named kinds).
  const std::string& text() const noexcept {
    return text_;
  }

  /// Resolves to a socket address with `port`. Errors:
  /// `errc::invalid_address` (not an IP literal, path too long or empty, a
  /// NUL byte in the literal or path).
  [[nodiscard]] caf::error resolve(uint16_t port, sockaddr_storage& out, socklen_t& len) const;

private:
  bind_address(kind k, std::string text) : kind_(k), text_(std::move(text)) {}

  kind kind_ = kind::any;
  std::string text_;
};

/// Renders a bind address as `parse` accepts it.
std::string to_string(const bind_address& x);

} // namespace atl
