// The PROXY protocol (versions 1 and 2, as HAProxy specifies it): the header
// a load balancer sends before the client's bytes, naming the original
// client and destination. A parser, a reader that takes the header off a
// socket without reading past it, and the trusted-source networks.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "atoll/transports/endpoint.hpp"
#include "atoll/transports/transport.hpp"

namespace atl {

/// An IP network ("10.0.0.0/8", "::1/128", or one address): a trusted source
/// of PROXY headers. IPv4-mapped IPv6 addresses (0:0:0:0:0:ffff:a.b.c.d) match the
/// IPv4 networks they map to.
class ip_network {
public:
  /// Parses "ADDRESS" or "ADDRESS/PREFIX" (IPv4 prefix 0..32, IPv6 0..128;
  /// the bits past the prefix must be zero). Errors: `errc::invalid_address`
  /// naming the text and what is wrong.
  [[nodiscard]] static caf::expected<ip_network> parse(std::string_view text);

  /// True if the address of `addr` (AF_INET or AF_INET6) lies in this
  /// network. Thread-safe (const).
  bool contains(const sockaddr_storage& addr) const noexcept;

  /// True if `ep` (an IP endpoint) lies in this network.
  bool contains(const endpoint& ep) const noexcept;

  /// Renders the network as `parse` accepts it ("10.0.0.0/8").
  std::string to_string() const;

private:
  ip_network() = default; // only `parse` makes networks: none trusts by accident

  bool v6_ = false;
  uint8_t prefix_ = 0;
  std::array<uint8_t, 16> bytes_{};
};

/// Which PROXY protocol versions a listener accepts.
enum class proxy_protocol_version : uint8_t {
  /// The text header ("PROXY TCP4 ...\r\n").
  v1,
  /// The binary header (12-byte signature, addresses, TLVs).
  v2,
  /// Either, told apart by the first byte.
  any,
};

/// Renders "v1", "v2" or "any".
std::string to_string(proxy_protocol_version v);

/// Parses "v1", "v2" or "any". Errors: `errc::invalid_option`.
[[nodiscard]] caf::expected<proxy_protocol_version>
parse_proxy_protocol_version(std::string_view text);

/// A listener's PROXY protocol settings: every connection must start with a
/// PROXY header, sent by one of the trusted sources.
struct proxy_protocol_options {
  /// The versions accepted.
  proxy_protocol_version version = proxy_protocol_version::any;
  /// The load balancers allowed to send headers. Required (at least one):
  /// a connection from any other address is refused before a byte is read
  /// (use 0.0.0.0/0 and ::/0 to trust every source, on purpose).
  std::vector<ip_network> trusted;
  /// How long a connection may take to deliver its header.
  std::chrono::milliseconds timeout{5000};
};

/// Checks the options. Errors: `errc::invalid_option` naming the option
/// (`proxy_protocol.trusted` empty, `proxy_protocol.timeout` not positive or
/// infinite).
[[nodiscard]] caf::error validate(const proxy_protocol_options& opts);

/// One type-length-value field of a version 2 header.
struct proxy_tlv {
  /// The type, e.g. `proxy_header::tlv_authority`.
  uint8_t type = 0;
  /// The raw value.
  std::string value;
};

/// A parsed PROXY header.
struct proxy_header {
  /// TLV type: the ALPN protocol the client asked for.
  static constexpr uint8_t tlv_alpn = 0x01;
  /// TLV type: the host name the client asked for (SNI).
  static constexpr uint8_t tlv_authority = 0x02;
  /// TLV type: CRC32C of the header (checked when present).
  static constexpr uint8_t tlv_crc32c = 0x03;
  /// TLV type: padding, to be ignored.
  static constexpr uint8_t tlv_noop = 0x04;
  /// TLV type: the balancer's id of the connection.
  static constexpr uint8_t tlv_unique_id = 0x05;
  /// TLV type: TLS information of the client's connection to the balancer.
  static constexpr uint8_t tlv_ssl = 0x20;
  /// TLV type: the network namespace.
  static constexpr uint8_t tlv_netns = 0x30;

  /// What the header says about the transport of the proxied connection.
  enum class protocol_type : uint8_t { unspecified, stream, datagram };

  /// 1 or 2.
  uint8_t version = 1;
  /// False for a version 2 LOCAL command (the proxy's own connection, e.g. a
  /// health check) and for version 1 "UNKNOWN": no addresses; the
  /// connection's own are the ones to use.
  bool proxied = false;
  /// The transport the header names (TCP4/TCP6: stream).
  protocol_type protocol = protocol_type::unspecified;
  /// The original client (when `proxied` and the family is known).
  std::optional<endpoint> source;
  /// The address the client connected to, on the proxy.
  std::optional<endpoint> destination;
  /// Version 2 TLVs, in order (CRC32C checked when present).
  std::vector<proxy_tlv> tlvs;
  /// The header's length on the wire.
  size_t length = 0;

  /// The value of the first TLV of `type`, if any.
  std::optional<std::string> tlv(uint8_t type) const;
};

/// The outcome of parsing the start of a connection's input.
struct proxy_parse_result {
  /// How far the parse got.
  enum class status_type : uint8_t {
    /// `header` holds a complete, valid header of `header.length` bytes.
    complete,
    /// What is there is a valid beginning; more bytes are needed.
    incomplete,
    /// Not a valid header (`error` says why).
    invalid,
  };
  /// How far the parse got.
  status_type status = status_type::incomplete;
  /// The header, when complete.
  proxy_header header;
  /// `errc::proxy_header` with a reason, when invalid.
  caf::error error;
};

/// Parses a PROXY header at the start of `data` (bytes after the header are
/// ignored). Never reads past `data`; accepts only `accepted` versions. A
/// version 1 header is at most 107 bytes; a version 2 header 16 + 65535.
/// Thread-safe.
proxy_parse_result parse_proxy_header(std::string_view data, proxy_protocol_version accepted);

/// Takes a PROXY header off a non-blocking stream socket without consuming
/// a byte past it (what follows belongs to the TLS handshake or the
/// handler). Call `read` whenever the socket is readable until it returns
/// anything but `want_read`. One reader per connection; not thread-safe.
class proxy_header_reader {
public:
  /// A reader accepting the `accepted` versions.
  explicit proxy_header_reader(proxy_protocol_version accepted) : accepted_(accepted) {}

  /// Reads what is available. `done`: `header()` is complete. `want_read`:
  /// wait for readability. `closed`: the peer closed before the header
  /// ended. `failed`: `errc::proxy_header` (malformed) or
  /// `errc::system_error`.
  io_result read(int fd);

  /// The header, after `read` returned `done`.
  const proxy_header& header() const noexcept {
    return header_;
  }

private:
  proxy_protocol_version accepted_;
  std::string buf_; // header bytes taken so far
  proxy_header header_;
};

} // namespace atl
