// Tests of the PROXY protocol (transports/atoll/transports/proxy_protocol.hpp):
// parsing version 1 and 2 headers (complete, incomplete, malformed, filtered
// by version), CRC32C, trusted networks, options, and the reader taking a
// header off a non-blocking socket without touching what follows it.
#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "atoll/runtime/error.hpp"
#include "atoll/transports/proxy_protocol.hpp"
#include "atoll/transports/tcp_options.hpp"
#include "support/fd_leak_check.hpp"

using namespace atl;
using namespace std::string_literals;

namespace {

using status_type = proxy_parse_result::status_type;
constexpr auto v1 = proxy_protocol_version::v1;
constexpr auto v2 = proxy_protocol_version::v2;
constexpr auto any = proxy_protocol_version::any;

std::string name(status_type x) {
  switch (x) {
    case status_type::complete: return "complete";
    case status_type::incomplete: return "incomplete";
    case status_type::invalid: return "invalid";
  }
  return "?";
}

std::string name(io_status x) {
  switch (x) {
    case io_status::done: return "done";
    case io_status::want_read: return "want_read";
    case io_status::want_write: return "want_write";
    case io_status::closed: return "closed";
    case io_status::failed: return "failed";
  }
  return "?";
}

std::string name(endpoint::family_type x) {
  switch (x) {
    case endpoint::family_type::ipv4: return "ipv4";
    case endpoint::family_type::ipv6: return "ipv6";
    case endpoint::family_type::local: return "local";
  }
  return "?";
}

std::string name(proxy_header::protocol_type x) {
  switch (x) {
    case proxy_header::protocol_type::unspecified: return "unspecified";
    case proxy_header::protocol_type::stream: return "stream";
    case proxy_header::protocol_type::datagram: return "datagram";
  }
  return "?";
}

/// Parses `data` and requires a complete header of exactly `data.size()`
/// bytes (also with bytes after it, which must be ignored).
proxy_header parse_complete(const std::string& data, proxy_protocol_version accepted = any) {
  auto r = parse_proxy_header(data, accepted);
  BOOST_REQUIRE_MESSAGE(r.status == status_type::complete, name(r.status)
                                                               << ": " << describe(r.error));
  BOOST_CHECK(!r.error);
  BOOST_CHECK_EQUAL(r.header.length, data.size());
  auto more = parse_proxy_header(data + "GET / HTTP/1.1\r\n\r\n", accepted);
  BOOST_CHECK_EQUAL(name(more.status), "complete");
  BOOST_CHECK_EQUAL(more.header.length, data.size());
  return r.header;
}

/// Requires `data` to be invalid under `accepted`, with `reason` in the
/// error's text.
void check_invalid(const std::string& data, proxy_protocol_version accepted,
                   const std::string& reason) {
  auto r = parse_proxy_header(data, accepted);
  BOOST_TEST_CONTEXT("input " << std::quoted(data) << " (" << to_string(accepted) << ")") {
    BOOST_CHECK_EQUAL(name(r.status), "invalid");
    BOOST_CHECK(r.error == errc::proxy_header);
    auto text = describe(r.error);
    BOOST_CHECK_MESSAGE(text.find("PROXY header: ") != std::string::npos, text);
    BOOST_CHECK_MESSAGE(text.find(reason) != std::string::npos,
                        text << " does not mention " << reason);
  }
}

void check_invalid(const std::string& data, const std::string& reason) {
  check_invalid(data, any, reason);
}

void check_incomplete(const std::string& data, proxy_protocol_version accepted = any) {
  auto r = parse_proxy_header(data, accepted);
  BOOST_CHECK_MESSAGE(r.status == status_type::incomplete,
                      "prefix of " << data.size() << " bytes: " << name(r.status) << " "
                                   << describe(r.error));
  BOOST_CHECK(!r.error);
}

void check_endpoint(const std::optional<endpoint>& ep, endpoint::family_type family,
                    const std::string& address, uint16_t port) {
  BOOST_REQUIRE(ep.has_value());
  BOOST_CHECK_EQUAL(name(ep->family), name(family));
  BOOST_CHECK_EQUAL(ep->address, address);
  BOOST_CHECK_EQUAL(ep->port, port);
}

// -- building version 2 headers --

const std::string signature = "\r\n\r\n\0\r\nQUIT\n"s;

std::string be16(size_t x) {
  return std::string{static_cast<char>((x >> 8) & 0xFF), static_cast<char>(x & 0xFF)};
}

std::string ipv4(const char* text) {
  in_addr a{};
  BOOST_REQUIRE(::inet_pton(AF_INET, text, &a) == 1);
  return std::string(reinterpret_cast<const char*>(&a), 4);
}

std::string ipv6(const char* text) {
  in6_addr a{};
  BOOST_REQUIRE(::inet_pton(AF_INET6, text, &a) == 1);
  return std::string(reinterpret_cast<const char*>(&a), 16);
}

std::string tlv(uint8_t type, const std::string& value) {
  return std::string(1, static_cast<char>(type)) + be16(value.size()) + value;
}

/// A version 2 header: signature, version/command, family/protocol, length
/// (of `body`) and `body`.
std::string v2_header(uint8_t ver_cmd, uint8_t fam_proto, const std::string& body) {
  return signature + static_cast<char>(ver_cmd) + static_cast<char>(fam_proto) + be16(body.size()) +
         body;
}

/// CRC32c computed bit by bit (independent of the implementation's table).
uint32_t crc32c_bitwise(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (char c : bytes) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit) {
      bool low = (crc & 1u) != 0;
      crc >>= 1;
      if (low)
        crc ^= 0x82F63B78u;
    }
  }
  return ~crc;
}

/// A version 2 header with a CRC32C TLV at the end of `body`.
std::string v2_header_with_crc(uint8_t ver_cmd, uint8_t fam_proto, const std::string& body) {
  auto h = v2_header(ver_cmd, fam_proto, body + tlv(proxy_header::tlv_crc32c, "\0\0\0\0"s));
  auto crc = crc32c_bitwise(h);
  for (size_t i = 0; i < 4; ++i)
    h[h.size() - 4 + i] = static_cast<char>((crc >> (24 - 8 * i)) & 0xFF);
  return h;
}

/// 192.0.2.1:40000 -> 198.51.100.7:443 over TCP, followed by `tlvs`.
std::string inet_header(const std::string& tlvs = {}) {
  return v2_header(0x21, 0x11,
                   ipv4("192.0.2.1") + ipv4("198.51.100.7") + be16(40000) + be16(443) + tlvs);
}

std::string unix_path(const std::string& path) {
  auto out = path;
  out.resize(108, '\0');
  return out;
}

// -- addresses --

sockaddr_storage sockaddr_of(const char* text) {
  sockaddr_storage ss{};
  if (std::strchr(text, ':') != nullptr) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
    in6.sin6_family = AF_INET6;
    BOOST_REQUIRE(::inet_pton(AF_INET6, text, &in6.sin6_addr) == 1);
  } else {
    auto& in = reinterpret_cast<sockaddr_in&>(ss);
    in.sin_family = AF_INET;
    BOOST_REQUIRE(::inet_pton(AF_INET, text, &in.sin_addr) == 1);
  }
  return ss;
}

/// The error's text, or "" when there is none.
template <class T> std::string error_text(const caf::expected<T>& x) {
  return x ? std::string{} : describe(x.error());
}

ip_network network(const char* text) {
  auto net = ip_network::parse(text);
  BOOST_REQUIRE_MESSAGE(net, text << ": " << error_text(net));
  return *net;
}

bool contains(const char* net, const char* address) {
  return network(net).contains(sockaddr_of(address));
}

// -- sockets --

/// A connected pair of Unix stream sockets; the reading end is non-blocking.
struct socket_pair {
  int reader = -1;
  int writer = -1;

  socket_pair() {
    int fds[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    reader = fds[0];
    writer = fds[1];
    BOOST_REQUIRE(::fcntl(reader, F_SETFL, ::fcntl(reader, F_GETFL) | O_NONBLOCK) == 0);
  }

  ~socket_pair() {
    if (reader >= 0)
      ::close(reader);
    if (writer >= 0)
      ::close(writer);
  }

  socket_pair(const socket_pair&) = delete;
  socket_pair& operator=(const socket_pair&) = delete;

  void write(std::string_view data) const {
    while (!data.empty()) {
      auto n = ::send(writer, data.data(), data.size(), MSG_NOSIGNAL);
      BOOST_REQUIRE_MESSAGE(n > 0, "send: " << std::strerror(errno));
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  void close_writer() {
    ::close(writer);
    writer = -1;
  }

  /// Everything readable now (the reader is non-blocking).
  std::string drain() const {
    std::string out;
    char buf[4096];
    for (;;) {
      auto n = ::recv(reader, buf, sizeof(buf), 0);
      if (n <= 0) {
        BOOST_CHECK(n == 0 || errno == EAGAIN || errno == EWOULDBLOCK);
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
  }
};

const std::string payload = "\x16\x03\x01 client hello, then PROXY TCP4 1.2.3.4\r\n"s;

} // namespace

BOOST_FIXTURE_TEST_SUITE(proxy_protocol, atl::test::fd_leak_check)

// -- version 1 ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(v1_tcp4) {
  std::string data = "PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n";
  for (auto accepted : {v1, any}) {
    auto h = parse_complete(data, accepted);
    BOOST_CHECK_EQUAL(h.version, 1);
    BOOST_CHECK(h.proxied);
    BOOST_CHECK_EQUAL(name(h.protocol), "stream");
    check_endpoint(h.source, endpoint::family_type::ipv4, "192.168.0.1", 56324);
    check_endpoint(h.destination, endpoint::family_type::ipv4, "10.0.0.2", 443);
    BOOST_CHECK(h.tlvs.empty());
    BOOST_CHECK_EQUAL(h.length, 43u);
  }
}

BOOST_AUTO_TEST_CASE(v1_tcp6_addresses_are_canonical) {
  auto h = parse_complete("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::ffff:192.0.2.1 65535 0\r\n");
  BOOST_CHECK_EQUAL(h.version, 1);
  BOOST_CHECK(h.proxied);
  BOOST_CHECK_EQUAL(name(h.protocol), "stream");
  check_endpoint(h.source, endpoint::family_type::ipv6, "2001:db8::1", 65535);
  check_endpoint(h.destination, endpoint::family_type::ipv6, "::ffff:192.0.2.1", 0);
}

BOOST_AUTO_TEST_CASE(v1_unknown) {
  for (auto data : {"PROXY UNKNOWN\r\n"s, "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"s,
                    "PROXY UNKNOWN\x01 whatever \x7f\r\n"s}) {
    auto h = parse_complete(data, v1);
    BOOST_CHECK_EQUAL(h.version, 1);
    BOOST_CHECK(!h.proxied);
    BOOST_CHECK_EQUAL(name(h.protocol), "unspecified");
    BOOST_CHECK(!h.source);
    BOOST_CHECK(!h.destination);
  }
  BOOST_CHECK_EQUAL(parse_complete("PROXY UNKNOWN\r\n").length, 15u);
}

BOOST_AUTO_TEST_CASE(v1_at_most_107_bytes) {
  // 45 + 36 characters of addresses make the longest header exactly 107 bytes.
  std::string src = "0000:0000:0000:0000:0000:ffff:255.255.255.255";
  std::string dst = "0000:0000:0000:0000:0000:0000:0:0001";
  std::string longest = "PROXY TCP6 " + src + " " + dst + " 65535 65535\r\n";
  BOOST_REQUIRE_EQUAL(longest.size(), 107u);
  auto h = parse_complete(longest);
  check_endpoint(h.source, endpoint::family_type::ipv6, "::ffff:255.255.255.255", 65535);
  check_endpoint(h.destination, endpoint::family_type::ipv6, "::1", 65535);
  // One byte more: the CRLF is not within the first 107 bytes.
  check_invalid("PROXY TCP6 " + src + " " + dst + "1 65535 65535\r\n", "no CRLF");
  check_invalid("PROXY TCP6 " + src + " " + src + " 65535 65535\r\n", "no CRLF");
  // 107 bytes without CRLF is invalid at once; 106 may still end.
  check_invalid("PROXY UNKNOWN" + std::string(94, 'x'), "no CRLF within the first 107 bytes");
  check_incomplete("PROXY UNKNOWN" + std::string(93, 'x'));
  // A CR as the 107th byte leaves no room for the LF.
  check_invalid("PROXY UNKNOWN" + std::string(93, 'x') + "\r", "no CRLF");
  check_incomplete("PROXY UNKNOWN" + std::string(92, 'x') + "\r");
  BOOST_CHECK_EQUAL(parse_complete("PROXY UNKNOWN" + std::string(92, 'x') + "\r\n").length, 107u);
}

BOOST_AUTO_TEST_CASE(v1_malformed) {
  // Not "PROXY ": invalid from the first differing byte.
  check_invalid("GET / HTTP/1.1\r\n", v1, "not a PROXY protocol header");
  check_invalid("G", v1, "not a PROXY protocol header");
  check_invalid("PROXZ", v1, "not a PROXY protocol header");
  check_invalid("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", v1, "not a PROXY protocol header");
  check_invalid("PROXY\r\n", "not a PROXY protocol header");
  // The protocol.
  check_invalid("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "expected TCP4, TCP6 or UNKNOWN");
  check_invalid("PROXY UDP4", "expected TCP4, TCP6 or UNKNOWN");
  check_invalid("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "expected TCP4, TCP6 or UNKNOWN");
  check_invalid("PROXY \r\n", "expected TCP4, TCP6 or UNKNOWN");
  check_invalid("PROXY UNKNOW\r\n", "expected TCP4, TCP6 or UNKNOWN");
  check_invalid("PROXY TCP4\r\n", "missing addresses and ports after TCP4");
  check_invalid("PROXY TCP4 \r\n", "missing addresses and ports after TCP4");
  // Spaces: exactly one between fields, none at the end.
  check_invalid("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "single spaces");
  check_invalid("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "single spaces");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
                "unexpected text after the destination port");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                "unexpected text after the destination port");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "expected source and destination");
  check_invalid("PROXY TCP4 1.2.3.4\r\n", "expected source and destination");
  // Addresses, for their family.
  check_invalid("PROXY TCP4 ::1 ::1 1 2\r\n", "bad source address '::1' for TCP4");
  check_invalid("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "bad source address '1.2.3.4' for TCP6");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n", "bad destination address '5.6.7' for TCP4");
  check_invalid("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "bad source address");
  check_invalid("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "bad source address");
  check_invalid("PROXY TCP6 ::1 ::g 1 2\r\n", "unexpected character 'g'");
  check_invalid("PROXY TCP4 1.2.3.4/8 5.6.7.8 1 2\r\n", "unexpected character '/'");
  // Ports: decimal, 0..65535, no sign, no leading zero.
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "unexpected character '+'");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "unexpected character '-'");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "bad source port '01'");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "bad destination port '65536'");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n", "bad destination port '100000'");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 8a 2\r\n", "bad source port '8a'");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", "bad destination port '00'");
  // Line ends.
  check_invalid("PROXY UNKNOWN\n", "LF without CR");
  check_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR");
  check_invalid("PROXY UNKNOWN\rX\n", "CR not followed by LF");
  check_invalid("PROXY UNKNOWN\r\r\n", "CR not followed by LF");
  // Invalid before the line ends: a character no address or port has.
  check_invalid("PROXY TCP4 1.2.3.4 x", "unexpected character 'x'");
  check_invalid("PROXY TCP4 1.2.3.4\t", "unexpected character 0x09");
  // The edge values are fine.
  auto h = parse_complete("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
  check_endpoint(h.source, endpoint::family_type::ipv4, "0.0.0.0", 0);
  check_endpoint(h.destination, endpoint::family_type::ipv4, "255.255.255.255", 65535);
}

// -- version 2 ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(v2_proxy_inet) {
  auto data = inet_header();
  BOOST_REQUIRE_EQUAL(data.size(), 28u);
  for (auto accepted : {v2, any}) {
    auto h = parse_complete(data, accepted);
    BOOST_CHECK_EQUAL(h.version, 2);
    BOOST_CHECK(h.proxied);
    BOOST_CHECK_EQUAL(name(h.protocol), "stream");
    check_endpoint(h.source, endpoint::family_type::ipv4, "192.0.2.1", 40000);
    check_endpoint(h.destination, endpoint::family_type::ipv4, "198.51.100.7", 443);
    BOOST_CHECK(h.tlvs.empty());
    BOOST_CHECK_EQUAL(h.length, 28u);
  }
  // UDP over IPv4.
  auto h = parse_complete(
      v2_header(0x21, 0x12, ipv4("10.0.0.1") + ipv4("10.0.0.2") + be16(53) + be16(5353)));
  BOOST_CHECK_EQUAL(name(h.protocol), "datagram");
  check_endpoint(h.source, endpoint::family_type::ipv4, "10.0.0.1", 53);
  check_endpoint(h.destination, endpoint::family_type::ipv4, "10.0.0.2", 5353);
}

BOOST_AUTO_TEST_CASE(v2_proxy_inet6) {
  auto data =
      v2_header(0x21, 0x21, ipv6("2001:db8::1") + ipv6("::ffff:192.0.2.1") + be16(1) + be16(65535));
  BOOST_REQUIRE_EQUAL(data.size(), 52u);
  auto h = parse_complete(data);
  BOOST_CHECK_EQUAL(h.version, 2);
  BOOST_CHECK(h.proxied);
  BOOST_CHECK_EQUAL(name(h.protocol), "stream");
  check_endpoint(h.source, endpoint::family_type::ipv6, "2001:db8::1", 1);
  check_endpoint(h.destination, endpoint::family_type::ipv6, "::ffff:192.0.2.1", 65535);
  auto udp = parse_complete(v2_header(0x21, 0x22, ipv6("::1") + ipv6("::2") + be16(7) + be16(8)));
  BOOST_CHECK_EQUAL(name(udp.protocol), "datagram");
}

BOOST_AUTO_TEST_CASE(v2_proxy_unix) {
  auto data = v2_header(0x21, 0x31, unix_path("/run/client.sock") + unix_path("/run/lb.sock"));
  BOOST_REQUIRE_EQUAL(data.size(), 232u);
  auto h = parse_complete(data);
  BOOST_CHECK(h.proxied);
  BOOST_CHECK_EQUAL(name(h.protocol), "stream");
  check_endpoint(h.source, endpoint::family_type::local, "/run/client.sock", 0);
  check_endpoint(h.destination, endpoint::family_type::local, "/run/lb.sock", 0);
  // A path of all 108 bytes has no NUL; an empty one is all NULs.
  std::string full(108, 'p');
  auto dgram = parse_complete(v2_header(0x21, 0x32, full + unix_path("")));
  BOOST_CHECK_EQUAL(name(dgram.protocol), "datagram");
  check_endpoint(dgram.source, endpoint::family_type::local, full, 0);
  check_endpoint(dgram.destination, endpoint::family_type::local, "", 0);
}

BOOST_AUTO_TEST_CASE(v2_local_and_unspec_are_not_proxied) {
  // LOCAL (a health check): no addresses, whatever the family says.
  for (auto data :
       {v2_header(0x20, 0x00, ""),
        v2_header(0x20, 0x11, ipv4("1.2.3.4") + ipv4("5.6.7.8") + be16(1) + be16(2)),
        v2_header(0x20, 0x10, ""), v2_header(0x20, 0x02, ""), v2_header(0x20, 0x21, "short")}) {
    auto h = parse_complete(data);
    BOOST_CHECK_EQUAL(h.version, 2);
    BOOST_CHECK(!h.proxied);
    BOOST_CHECK(!h.source);
    BOOST_CHECK(!h.destination);
    BOOST_CHECK_EQUAL(name(h.protocol), "unspecified");
  }
  BOOST_CHECK_EQUAL(parse_complete(v2_header(0x20, 0x00, "")).length, 16u);
  // LOCAL keeps its TLVs.
  auto local = parse_complete(v2_header(0x20, 0x00, tlv(proxy_header::tlv_unique_id, "id")));
  BOOST_CHECK_EQUAL(local.tlv(proxy_header::tlv_unique_id).value_or("-"), "id");
  // PROXY over UNSPEC: not proxied either; TLVs follow at once.
  auto unspec = parse_complete(v2_header(0x21, 0x00, tlv(proxy_header::tlv_authority, "a.b")));
  BOOST_CHECK(!unspec.proxied);
  BOOST_CHECK(!unspec.source);
  BOOST_CHECK(!unspec.destination);
  BOOST_CHECK_EQUAL(name(unspec.protocol), "unspecified");
  BOOST_CHECK_EQUAL(unspec.tlv(proxy_header::tlv_authority).value_or("-"), "a.b");
  BOOST_CHECK_EQUAL(unspec.length, 22u);
}

BOOST_AUTO_TEST_CASE(v2_tlvs) {
  std::string unique_id = "\x00\x01\xff\xfe unique"s;
  auto data = inet_header(
      tlv(proxy_header::tlv_alpn, "h2") + tlv(proxy_header::tlv_authority, "example.com") +
      tlv(proxy_header::tlv_noop, "") + tlv(proxy_header::tlv_unique_id, unique_id) +
      tlv(proxy_header::tlv_noop, "\0\0\0"s) + tlv(0xE0, "custom") +
      tlv(proxy_header::tlv_alpn, "http/1.1"));
  auto h = parse_complete(data);
  check_endpoint(h.source, endpoint::family_type::ipv4, "192.0.2.1", 40000);
  BOOST_REQUIRE_EQUAL(h.tlvs.size(), 7u);
  BOOST_CHECK_EQUAL(h.tlvs[0].type, proxy_header::tlv_alpn);
  BOOST_CHECK_EQUAL(h.tlvs[2].type, proxy_header::tlv_noop);
  BOOST_CHECK_EQUAL(h.tlvs[2].value, "");
  BOOST_CHECK_EQUAL(h.tlvs[4].value, "\0\0\0"s);
  BOOST_CHECK_EQUAL(h.tlvs[5].type, 0xE0);
  BOOST_CHECK_EQUAL(h.tlvs[6].value, "http/1.1");
  // tlv() gives the first of a type.
  BOOST_CHECK_EQUAL(h.tlv(proxy_header::tlv_alpn).value_or("-"), "h2");
  BOOST_CHECK_EQUAL(h.tlv(proxy_header::tlv_authority).value_or("-"), "example.com");
  BOOST_CHECK_EQUAL(h.tlv(proxy_header::tlv_unique_id).value_or("-"), unique_id);
  BOOST_REQUIRE(h.tlv(proxy_header::tlv_noop));
  BOOST_CHECK_EQUAL(*h.tlv(proxy_header::tlv_noop), "");
  BOOST_CHECK_EQUAL(h.tlv(0xE0).value_or("-"), "custom");
  BOOST_CHECK(!h.tlv(proxy_header::tlv_ssl));
  BOOST_CHECK(!h.tlv(proxy_header::tlv_crc32c));
  BOOST_CHECK_EQUAL(h.length, data.size());
  // TLVs after IPv6 and Unix addresses too.
  auto h6 = parse_complete(
      v2_header(0x21, 0x21,
                ipv6("::1") + ipv6("::2") + be16(1) + be16(2) + tlv(proxy_header::tlv_alpn, "x")));
  BOOST_CHECK_EQUAL(h6.tlv(proxy_header::tlv_alpn).value_or("-"), "x");
  auto hu = parse_complete(v2_header(
      0x21, 0x31, unix_path("/a") + unix_path("/b") + tlv(proxy_header::tlv_authority, "u")));
  BOOST_CHECK_EQUAL(hu.tlv(proxy_header::tlv_authority).value_or("-"), "u");
}

BOOST_AUTO_TEST_CASE(v2_crc32c) {
  // The test's own CRC32c against the standard check value.
  BOOST_REQUIRE_EQUAL(crc32c_bitwise("123456789"), 0xE3069283u);
  auto body = ipv4("192.0.2.1") + ipv4("198.51.100.7") + be16(40000) + be16(443) +
              tlv(proxy_header::tlv_authority, "example.com");
  auto good = v2_header_with_crc(0x21, 0x11, body);
  auto h = parse_complete(good);
  BOOST_CHECK_EQUAL(h.tlv(proxy_header::tlv_authority).value_or("-"), "example.com");
  BOOST_CHECK_EQUAL(h.tlv(proxy_header::tlv_crc32c).value_or("-"), good.substr(good.size() - 4));
  // A CRC TLV before other TLVs, and in a LOCAL header.
  auto first = v2_header_with_crc(0x20, 0x00, "");
  parse_complete(first);
  // Any flipped bit is caught: in the addresses, a TLV, the CRC itself.
  for (size_t pos : {size_t{16}, size_t{27}, size_t{32}, good.size() - 4, good.size() - 1}) {
    for (int bit : {0, 7}) {
      auto bad = good;
      bad[pos] = static_cast<char>(bad[pos] ^ (1 << bit));
      check_invalid(bad, "CRC32C mismatch");
    }
  }
  // The value must be 4 bytes.
  check_invalid(inet_header(tlv(proxy_header::tlv_crc32c, "abc")), "CRC32C TLV of 3 bytes");
  check_invalid(inet_header(tlv(proxy_header::tlv_crc32c, "abcde")), "CRC32C TLV of 5 bytes");
}

BOOST_AUTO_TEST_CASE(v2_tlv_overrun) {
  // The value runs past the header's end.
  auto bad = inet_header(tlv(proxy_header::tlv_alpn, "h2"));
  bad[bad.size() - 3] = 3; // length 3, 2 bytes left
  check_invalid(bad, "TLV runs past the end of the header");
  // Fewer than 3 bytes for a TLV's type and length.
  check_invalid(inet_header("\x01\x00"s), "TLV runs past the end of the header");
  check_invalid(inet_header("\x01"s), "TLV runs past the end of the header");
  check_invalid(v2_header(0x20, 0x00, "\x04\xff\xff"s), "TLV runs past the end of the header");
}

BOOST_AUTO_TEST_CASE(v2_length_too_short_for_the_family) {
  auto four = ipv4("1.2.3.4");
  check_invalid(v2_header(0x21, 0x11, four + four + be16(1) + "\x01"), "too short");
  check_invalid(v2_header(0x21, 0x21, std::string(35, 'x')), "too short");
  check_invalid(v2_header(0x21, 0x31, std::string(215, 'x')), "too short");
  // Known from the fixed part alone.
  check_invalid(signature + "\x21\x11" + be16(11), "length 11 too short");
  check_invalid(signature + "\x21\x21" + be16(0), "too short");
}

BOOST_AUTO_TEST_CASE(v2_bad_nibbles) {
  auto addrs = ipv4("1.2.3.4") + ipv4("5.6.7.8") + be16(1) + be16(2);
  check_invalid(v2_header(0x11, 0x11, addrs), "unsupported version 1");
  check_invalid(v2_header(0x31, 0x11, addrs), "unsupported version 3");
  check_invalid(v2_header(0x01, 0x11, addrs), "unsupported version 0");
  check_invalid(v2_header(0x22, 0x11, addrs), "unsupported command 2");
  check_invalid(v2_header(0x2F, 0x11, addrs), "unsupported command 15");
  check_invalid(v2_header(0x21, 0x41, addrs), "unsupported address family 4");
  check_invalid(v2_header(0x20, 0xF0, addrs), "unsupported address family 15");
  check_invalid(v2_header(0x21, 0x13, addrs), "unsupported transport protocol 3");
  check_invalid(v2_header(0x20, 0x0F, addrs), "unsupported transport protocol 15");
  // A PROXY command names UNSPEC over UNSPEC, or a family over a protocol.
  check_invalid(v2_header(0x21, 0x10, addrs), "combination");
  check_invalid(v2_header(0x21, 0x01, addrs), "combination");
  // Known as soon as the byte is there.
  check_invalid(signature + "\x11", "unsupported version");
  check_invalid(signature + "\x21\x51", "unsupported address family");
  // The signature.
  check_invalid("\r\n\r\n\0\r\nQUIX"s, "bad version 2 signature");
  check_invalid("\r\n\r\n\x01"s, "bad version 2 signature");
  check_invalid("\rX"s, "bad version 2 signature");
}

// -- incomplete input ---------------------------------------------------------

BOOST_AUTO_TEST_CASE(every_prefix_of_a_header_is_incomplete) {
  std::vector<std::pair<std::string, proxy_protocol_version>> headers = {
      {"PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n", v1},
      {"PROXY TCP6 2001:db8::1 ::1 1 2\r\n", v1},
      {"PROXY UNKNOWN\r\n", v1},
      {inet_header(tlv(proxy_header::tlv_alpn, "h2")), v2},
      {v2_header_with_crc(0x21, 0x31, unix_path("/x") + unix_path("/y")), v2},
      {v2_header(0x20, 0x00, ""), v2},
  };
  for (auto& [data, version] : headers) {
    for (auto accepted : {version, any}) {
      BOOST_TEST_CONTEXT(std::quoted(data) << " (" << to_string(accepted) << ")") {
        for (size_t n = 0; n < data.size(); ++n)
          check_incomplete(data.substr(0, n), accepted);
        auto h = parse_complete(data, accepted);
        BOOST_CHECK_EQUAL(h.length, data.size());
        // Bytes after the header, even another header, are ignored.
        auto twice = parse_proxy_header(data + data, accepted);
        BOOST_CHECK_EQUAL(name(twice.status), "complete");
        BOOST_CHECK_EQUAL(twice.header.length, data.size());
      }
    }
  }
  for (auto accepted : {v1, v2, any})
    check_incomplete("", accepted);
  // A v2 header with a large TLV: incomplete until its last byte.
  auto big = inet_header(tlv(proxy_header::tlv_noop, std::string(65535 - 12 - 3, 'n')));
  BOOST_REQUIRE_EQUAL(big.size(), 16u + 65535u);
  check_incomplete(big.substr(0, 16));
  check_incomplete(big.substr(0, big.size() - 1));
  BOOST_CHECK_EQUAL(parse_complete(big).length, 65551u);
}

// -- versions -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(listeners_accept_their_versions) {
  auto text = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"s;
  auto binary = inet_header();
  BOOST_CHECK_EQUAL(parse_complete(text, any).version, 1);
  BOOST_CHECK_EQUAL(parse_complete(binary, any).version, 2);
  parse_complete(text, v1);
  parse_complete(binary, v2);
  check_invalid(binary, v1, "version 2 header on a v1 listener");
  check_invalid(binary.substr(0, 1), v1, "version 2 header on a v1 listener");
  check_invalid(text, v2, "version 1 header on a v2 listener");
  check_invalid(text.substr(0, 1), v2, "version 1 header on a v2 listener");
  for (auto accepted : {v1, v2, any}) {
    check_invalid("GET / HTTP/1.1\r\n\r\n", accepted, "not a PROXY protocol header");
    check_invalid("G", accepted, "not a PROXY protocol header");
    check_invalid("\x16\x03\x01"s, accepted, "not a PROXY protocol header");
    check_invalid("\0"s, accepted, "not a PROXY protocol header");
  }
  check_invalid("PUT / HTTP/1.1\r\n", v2, "not a PROXY protocol header");
  check_invalid("\r\n\r\n\r\n", v1, "not a PROXY protocol header");
}

BOOST_AUTO_TEST_CASE(versions_render_and_parse) {
  for (auto v : {v1, v2, any}) {
    auto parsed = parse_proxy_protocol_version(to_string(v));
    BOOST_REQUIRE(parsed);
    BOOST_CHECK(*parsed == v);
  }
  BOOST_CHECK_EQUAL(to_string(v1), "v1");
  BOOST_CHECK_EQUAL(to_string(v2), "v2");
  BOOST_CHECK_EQUAL(to_string(any), "any");
  for (auto bad : {"", "V1", "1", "v3", "both", "any "}) {
    auto parsed = parse_proxy_protocol_version(bad);
    BOOST_REQUIRE(!parsed);
    BOOST_CHECK(parsed.error() == errc::invalid_option);
    BOOST_CHECK_EQUAL(describe(parsed.error()),
                      "atoll error invalid_option: proxy_protocol: expected v1, v2 or any, got '"s +
                          bad + "'");
  }
}

BOOST_AUTO_TEST_CASE(options_are_validated) {
  proxy_protocol_options opts;
  auto err = validate(opts);
  BOOST_CHECK(err == errc::invalid_option);
  BOOST_CHECK_EQUAL(describe(err),
                    "atoll error invalid_option: proxy_protocol.trusted: list at least one trusted "
                    "source (0.0.0.0/0 and ::/0 trust every source)");
  opts.trusted.push_back(network("10.0.0.0/8"));
  BOOST_CHECK(!validate(opts));
  for (auto timeout : {std::chrono::milliseconds{0}, std::chrono::milliseconds{-1}, infinite}) {
    opts.timeout = timeout;
    auto e = validate(opts);
    BOOST_CHECK(e == errc::invalid_option);
    BOOST_CHECK_MESSAGE(describe(e).find("proxy_protocol.timeout") != std::string::npos,
                        describe(e));
  }
  opts.timeout = std::chrono::milliseconds{1};
  BOOST_CHECK(!validate(opts));
}

// -- trusted networks ---------------------------------------------------------

BOOST_AUTO_TEST_CASE(networks_parse_and_render) {
  std::vector<std::pair<std::string, std::string>> good = {
      {"1.2.3.4", "1.2.3.4/32"},
      {"1.2.3.0/24", "1.2.3.0/24"},
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"10.0.0.0/008", "10.0.0.0/8"},
      {"10.128.0.0/9", "10.128.0.0/9"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"255.255.255.255/32", "255.255.255.255/32"},
      {"::1", "::1/128"},
      {"::/0", "::/0"},
      {"2001:db8::/32", "2001:db8::/32"},
      {"2001:DB8:0:0::/32", "2001:db8::/32"},
      {"::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"},
      {"fe80::/10", "fe80::/10"},
  };
  for (auto& [text, rendered] : good) {
    auto net = ip_network::parse(text);
    BOOST_REQUIRE_MESSAGE(net, text << ": " << error_text(net));
    BOOST_CHECK_EQUAL(net->to_string(), rendered);
    auto again = ip_network::parse(net->to_string());
    BOOST_REQUIRE(again);
    BOOST_CHECK_EQUAL(again->to_string(), rendered);
  }
  std::vector<std::pair<std::string, std::string>> bad = {
      {"", "empty"},
      {"1.2.3", "1.2.3: not an IPv4 address"},
      {"1.2.3.4.5", "not an IPv4 address"},
      {"localhost", "not an IPv4 address"},
      {"01.2.3.4", "not an IPv4 address"},
      {"::g", "::g: not an IPv6 address"},
      {"/8", "not an IPv4 address"},
      {"1.2.3.4/33", "1.2.3.4/33: prefix length out of range (0..32)"},
      {"::/129", "::/129: prefix length out of range (0..128)"},
      {"1.2.3.4/99999999999999999999", "out of range"},
      {"1.2.3.4/", "empty prefix length"},
      {"1.2.3.4/+8", "not a decimal number"},
      {"1.2.3.4/-1", "not a decimal number"},
      {"1.2.3.4/0x8", "not a decimal number"},
      {"1.2.3.4/ 8", "not a decimal number"},
      {"1.2.3.4/8/8", "not a decimal number"},
      {"10.0.0.1/8", "10.0.0.1/8: bits set past the prefix /8"},
      {"10.1.0.0/15", "bits set past the prefix /15"},
      {"0.0.0.1/0", "bits set past the prefix /0"},
      {"2001:db8::1/32", "2001:db8::1/32: bits set past the prefix /32"},
      {"::1/127", "bits set past the prefix /127"},
      {"1.2.3.4\0"s, "NUL byte"},
  };
  for (auto& [text, reason] : bad) {
    auto net = ip_network::parse(text);
    BOOST_TEST_CONTEXT(std::quoted(text)) {
      BOOST_REQUIRE(!net);
      BOOST_CHECK(net.error() == errc::invalid_address);
      BOOST_CHECK_MESSAGE(describe(net.error()).find(reason) != std::string::npos,
                          describe(net.error()) << " does not mention " << reason);
    }
  }
}

BOOST_AUTO_TEST_CASE(networks_contain_addresses) {
  // IPv4, with a prefix not on a byte boundary.
  BOOST_CHECK(contains("10.0.0.0/8", "10.1.2.3"));
  BOOST_CHECK(contains("10.0.0.0/8", "10.255.255.255"));
  BOOST_CHECK(!contains("10.0.0.0/8", "11.0.0.0"));
  BOOST_CHECK(!contains("10.0.0.0/8", "9.255.255.255"));
  BOOST_CHECK(contains("10.0.0.0/9", "10.127.255.255"));
  BOOST_CHECK(!contains("10.0.0.0/9", "10.128.0.0"));
  // /32: one address.
  BOOST_CHECK(contains("192.0.2.1/32", "192.0.2.1"));
  BOOST_CHECK(contains("192.0.2.1", "192.0.2.1"));
  BOOST_CHECK(!contains("192.0.2.1", "192.0.2.2"));
  BOOST_CHECK(!contains("192.0.2.1", "192.0.2.0"));
  // IPv4-mapped IPv6 addresses match IPv4 networks.
  BOOST_CHECK(contains("10.0.0.0/8", "::ffff:10.1.2.3"));
  BOOST_CHECK(!contains("10.0.0.0/8", "::ffff:11.1.2.3"));
  BOOST_CHECK(contains("192.0.2.1", "::ffff:192.0.2.1"));
  BOOST_CHECK(!contains("10.0.0.0/8", "::10.1.2.3")); // IPv4-compatible, not mapped
  BOOST_CHECK(!contains("10.0.0.0/8", "::1"));
  // ... and IPv6 networks that cover them.
  BOOST_CHECK(contains("::ffff:0:0/96", "::ffff:1.2.3.4"));
  BOOST_CHECK(contains("::ffff:10.0.0.0/104", "::ffff:10.9.9.9"));
  BOOST_CHECK(!contains("::ffff:10.0.0.0/104", "::ffff:11.9.9.9"));
  // An IPv4 address is not in an IPv6 network.
  BOOST_CHECK(!contains("::ffff:0:0/96", "1.2.3.4"));
  BOOST_CHECK(!contains("::/0", "1.2.3.4"));
  // IPv6.
  BOOST_CHECK(contains("2001:db8::/32", "2001:db8:ffff::1"));
  BOOST_CHECK(contains("2001:db8::/32", "2001:db8::"));
  BOOST_CHECK(!contains("2001:db8::/32", "2001:db9::"));
  BOOST_CHECK(contains("fe80::/10", "febf::1"));
  BOOST_CHECK(!contains("fe80::/10", "fec0::1"));
  BOOST_CHECK(!contains("2001:db8::/32", "32.1.13.184")); // same first bytes, IPv4
  // /128: one address.
  BOOST_CHECK(contains("::1", "::1"));
  BOOST_CHECK(contains("::1/128", "0:0:0:0:0:0:0:1"));
  BOOST_CHECK(!contains("::1", "::2"));
  BOOST_CHECK(!contains("::1", "::"));
  // /0: every address of the family.
  for (auto a : {"0.0.0.0", "1.2.3.4", "255.255.255.255", "::ffff:1.2.3.4"})
    BOOST_CHECK_MESSAGE(contains("0.0.0.0/0", a), a);
  BOOST_CHECK(!contains("0.0.0.0/0", "::1"));
  BOOST_CHECK(!contains("0.0.0.0/0", "2001:db8::1"));
  for (auto a :
       {"::", "::1", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:1.2.3.4"})
    BOOST_CHECK_MESSAGE(contains("::/0", a), a);
  // Other families.
  sockaddr_storage un{};
  un.ss_family = AF_UNIX;
  BOOST_CHECK(!network("0.0.0.0/0").contains(un));
  BOOST_CHECK(!network("::/0").contains(un));
}

BOOST_AUTO_TEST_CASE(networks_contain_endpoints) {
  auto v4 = network("10.0.0.0/8");
  auto v6 = network("2001:db8::/32");
  using family = endpoint::family_type;
  BOOST_CHECK(v4.contains(endpoint{family::ipv4, "10.1.2.3", 80}));
  BOOST_CHECK(!v4.contains(endpoint{family::ipv4, "11.1.2.3", 80}));
  BOOST_CHECK(v4.contains(endpoint{family::ipv6, "::ffff:10.1.2.3", 80}));
  BOOST_CHECK(!v4.contains(endpoint{family::ipv6, "2001:db8::1", 80}));
  BOOST_CHECK(v6.contains(endpoint{family::ipv6, "2001:db8::1", 0}));
  BOOST_CHECK(!v6.contains(endpoint{family::ipv4, "10.1.2.3", 80}));
  // Not IP, or not an address of its family.
  BOOST_CHECK(!network("0.0.0.0/0").contains(endpoint{family::local, "/run/x.sock", 0}));
  BOOST_CHECK(!network("::/0").contains(endpoint{family::local, "::1", 0}));
  BOOST_CHECK(!v4.contains(endpoint{family::ipv4, "10.1.2", 80}));
  BOOST_CHECK(!v4.contains(endpoint{family::ipv4, "::ffff:10.1.2.3", 80}));
  BOOST_CHECK(!v4.contains(endpoint{family::ipv4, "10.1.2.3\0junk"s, 80}));
  BOOST_CHECK(!v6.contains(endpoint{family::ipv6, "10.1.2.3", 80}));
}

// -- reading from a socket ----------------------------------------------------

BOOST_AUTO_TEST_CASE(reader_takes_the_header_and_leaves_the_payload) {
  std::vector<std::pair<std::string, proxy_protocol_version>> headers = {
      {"PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n", v1},
      {"PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n", any},
      {"PROXY UNKNOWN\r\n", any}, // shorter than the first look (16 bytes)
      {"PROXY UNKNOWN\r\n", v1},
      {inet_header(tlv(proxy_header::tlv_alpn, "h2")), v2},
      {inet_header(tlv(proxy_header::tlv_alpn, "h2")), any},
      {v2_header(0x20, 0x00, ""), any}, // exactly the fixed part
      {v2_header_with_crc(0x21, 0x11,
                          ipv4("1.1.1.1") + ipv4("2.2.2.2") + be16(1) + be16(2) +
                              tlv(proxy_header::tlv_noop, std::string(5000, 'n'))),
       any},
  };
  for (auto& [data, accepted] : headers) {
    BOOST_TEST_CONTEXT(std::quoted(data.substr(0, 40)) << " (" << to_string(accepted) << ")") {
      socket_pair sp;
      // The payload even looks like a header: it must not be taken.
      sp.write(data + payload + data);
      proxy_header_reader reader{accepted};
      auto r = reader.read(sp.reader);
      BOOST_REQUIRE_MESSAGE(r.status == io_status::done, name(r.status)
                                                             << " " << describe(r.error));
      BOOST_CHECK(!r.error);
      BOOST_CHECK_EQUAL(r.bytes, data.size());
      BOOST_CHECK_EQUAL(reader.header().length, data.size());
      auto expected = parse_proxy_header(data, accepted);
      BOOST_CHECK_EQUAL(reader.header().version, expected.header.version);
      BOOST_CHECK_EQUAL(reader.header().proxied, expected.header.proxied);
      BOOST_CHECK_EQUAL(reader.header().tlvs.size(), expected.header.tlvs.size());
      BOOST_CHECK(reader.header().source == expected.header.source);
      BOOST_CHECK_EQUAL(sp.drain(), payload + data);
    }
  }
}

BOOST_AUTO_TEST_CASE(reader_takes_a_header_sent_byte_by_byte) {
  std::string data = "PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n";
  for (auto accepted : {v1, any}) {
    socket_pair sp;
    proxy_header_reader reader{accepted};
    BOOST_CHECK_EQUAL(name(reader.read(sp.reader).status), "want_read");
    for (size_t i = 0; i + 1 < data.size(); ++i) {
      sp.write(data.substr(i, 1));
      auto r = reader.read(sp.reader);
      BOOST_REQUIRE_MESSAGE(r.status == io_status::want_read,
                            "byte " << i << ": " << name(r.status) << " " << describe(r.error));
      BOOST_CHECK_EQUAL(r.bytes, 0u);
    }
    // The last byte (the LF) arrives with the payload.
    sp.write(data.substr(data.size() - 1) + payload);
    auto r = reader.read(sp.reader);
    BOOST_REQUIRE_EQUAL(name(r.status), "done");
    BOOST_CHECK_EQUAL(r.bytes, data.size());
    check_endpoint(reader.header().source, endpoint::family_type::ipv6, "2001:db8::1", 4000);
    check_endpoint(reader.header().destination, endpoint::family_type::ipv6, "2001:db8::2", 443);
    BOOST_CHECK_EQUAL(sp.drain(), payload);
  }
}

BOOST_AUTO_TEST_CASE(reader_takes_a_v2_header_sent_in_pieces) {
  auto data = v2_header_with_crc(0x21, 0x21,
                                 ipv6("2001:db8::7") + ipv6("2001:db8::8") + be16(5000) +
                                     be16(443) + tlv(proxy_header::tlv_authority, "example.com") +
                                     tlv(proxy_header::tlv_noop, std::string(3000, '\0')));
  for (auto accepted : {v2, any}) {
    socket_pair sp;
    proxy_header_reader reader{accepted};
    // Cut inside the signature, the fixed part, the addresses and the TLVs.
    size_t cuts[] = {1, 12, 13, 15, 16, 17, 40, 60, 1000, data.size() - 1};
    size_t pos = 0;
    for (auto cut : cuts) {
      sp.write(std::string_view{data}.substr(pos, cut - pos));
      pos = cut;
      auto r = reader.read(sp.reader);
      BOOST_REQUIRE_MESSAGE(r.status == io_status::want_read,
                            "at " << cut << ": " << name(r.status) << " " << describe(r.error));
    }
    sp.write(data.substr(pos) + payload);
    auto r = reader.read(sp.reader);
    BOOST_REQUIRE_EQUAL(name(r.status), "done");
    BOOST_CHECK_EQUAL(r.bytes, data.size());
    BOOST_CHECK_EQUAL(reader.header().version, 2);
    check_endpoint(reader.header().source, endpoint::family_type::ipv6, "2001:db8::7", 5000);
    check_endpoint(reader.header().destination, endpoint::family_type::ipv6, "2001:db8::8", 443);
    BOOST_CHECK_EQUAL(reader.header().tlv(proxy_header::tlv_authority).value_or("-"),
                      "example.com");
    BOOST_CHECK_EQUAL(sp.drain(), payload);
  }
}

BOOST_AUTO_TEST_CASE(reader_reports_a_peer_that_closes_mid_header) {
  for (auto part : {"PROXY TCP4 1.2.3.4"s, inet_header().substr(0, 20), "P"s, ""s}) {
    socket_pair sp;
    proxy_header_reader reader{any};
    sp.write(part);
    sp.close_writer();
    auto r = reader.read(sp.reader);
    BOOST_CHECK_EQUAL(name(r.status), "closed");
    BOOST_CHECK_EQUAL(r.bytes, 0u);
  }
  // Closed after a first part was read.
  socket_pair sp;
  proxy_header_reader reader{v1};
  sp.write("PROXY ");
  BOOST_CHECK_EQUAL(name(reader.read(sp.reader).status), "want_read");
  sp.close_writer();
  BOOST_CHECK_EQUAL(name(reader.read(sp.reader).status), "closed");
}

BOOST_AUTO_TEST_CASE(reader_rejects_malformed_headers) {
  std::vector<std::pair<std::string, proxy_protocol_version>> cases = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", any},
      {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s, any},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 80 080\r\n", v1},
      {"PROXY UNKNOWN\n", any},
      {"PROXY UNKNOWN" + std::string(200, 'x'), v1},
      {inet_header(), v1},
      {"PROXY UNKNOWN\r\n", v2},
      {v2_header(0x21, 0x11, "short"), any},
      {inet_header("\x01\x00\x09"s), any},
  };
  for (auto& [data, accepted] : cases) {
    BOOST_TEST_CONTEXT(std::quoted(data.substr(0, 40)) << " (" << to_string(accepted) << ")") {
      socket_pair sp;
      sp.write(data);
      proxy_header_reader reader{accepted};
      auto r = reader.read(sp.reader);
      BOOST_CHECK_EQUAL(name(r.status), "failed");
      BOOST_CHECK(r.error == errc::proxy_header);
      BOOST_CHECK_MESSAGE(describe(r.error).find("PROXY header: ") != std::string::npos,
                          describe(r.error));
    }
  }
}

BOOST_AUTO_TEST_CASE(reader_waits_on_an_empty_socket) {
  socket_pair sp;
  proxy_header_reader reader{any};
  for (int i = 0; i < 3; ++i) {
    auto r = reader.read(sp.reader);
    BOOST_CHECK_EQUAL(name(r.status), "want_read");
    BOOST_CHECK_EQUAL(r.bytes, 0u);
    BOOST_CHECK(!r.error);
  }
  sp.write("PROXY UNKNOWN\r\n");
  BOOST_CHECK_EQUAL(name(reader.read(sp.reader).status), "done");
  BOOST_CHECK(!reader.header().proxied);
  BOOST_CHECK_EQUAL(sp.drain(), "");
}

BOOST_AUTO_TEST_CASE(reader_reports_system_errors) {
  int fds[2];
  BOOST_REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
  BOOST_REQUIRE(::write(fds[1], "PROXY", 5) == 5);
  proxy_header_reader reader{any};
  auto r = reader.read(fds[0]); // recv on a pipe: ENOTSOCK
  BOOST_CHECK_EQUAL(name(r.status), "failed");
  BOOST_CHECK(r.error == errc::system_error);
  BOOST_CHECK_MESSAGE(describe(r.error).find("recv") != std::string::npos, describe(r.error));
  ::close(fds[0]);
  ::close(fds[1]);
}

BOOST_AUTO_TEST_SUITE_END()
