#include "atoll/transports/proxy_protocol.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "atoll/runtime/error.hpp"
#include "atoll/transports/tcp_options.hpp"

namespace atl {

// -- trusted networks ---------------------------------------------------------

namespace {

caf::error bad_network(std::string_view text, const char* what) {
  return caf::make_error(errc::invalid_address, std::string{text} + ": " + what);
}

// True if the bits of `bytes` past the first `prefix` are all zero.
bool host_bits_zero(const uint8_t* bytes, size_t size, unsigned prefix) {
  for (size_t i = 0; i < size; ++i) {
    unsigned first_bit = static_cast<unsigned>(i) * 8;
    if (first_bit + 8 <= prefix)
      continue;
    unsigned keep = prefix > first_bit ? prefix - first_bit : 0; // leading bits of byte i kept
    auto mask = static_cast<uint8_t>(0xFFu >> keep);
    if ((bytes[i] & mask) != 0)
      return false;
  }
  return true;
}

// True if the first `prefix` bits of `a` and `b` are equal.
bool prefix_equal(const uint8_t* a, const uint8_t* b, unsigned prefix) {
  size_t whole = prefix / 8;
  if (std::memcmp(a, b, whole) != 0)
    return false;
  unsigned rest = prefix % 8;
  if (rest == 0)
    return true;
  auto mask = static_cast<uint8_t>(0xFFu << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

bool is_v4_mapped(const in6_addr& addr) {
  static constexpr uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  return std::memcmp(addr.s6_addr, mapped_prefix, sizeof(mapped_prefix)) == 0;
}

} // namespace

caf::expected<ip_network> ip_network::parse(std::string_view text) {
  if (text.empty())
    return caf::make_error(errc::invalid_address, "empty network");
  if (text.find('\0') != std::string_view::npos)
    return bad_network(text, "NUL byte in network");
  auto slash = text.find('/');
  std::string address{text.substr(0, slash)};
  ip_network result;
  result.v6_ = address.find(':') != std::string::npos;
  if (result.v6_) {
    if (::inet_pton(AF_INET6, address.c_str(), result.bytes_.data()) != 1)
      return bad_network(text, "not an IPv6 address");
  } else if (::inet_pton(AF_INET, address.c_str(), result.bytes_.data()) != 1) {
    return bad_network(text, "not an IPv4 address");
  }
  unsigned max_prefix = result.v6_ ? 128 : 32;
  unsigned prefix = max_prefix;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    if (digits.empty())
      return bad_network(text, "empty prefix length after '/'");
    prefix = 0;
    for (char c : digits) {
      if (c < '0' || c > '9')
        return bad_network(text, "the prefix length is not a decimal number");
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
      if (prefix > max_prefix)
        return bad_network(text, result.v6_ ? "prefix length out of range (0..128)"
                                            : "prefix length out of range (0..32)");
    }
  }
  if (!host_bits_zero(result.bytes_.data(), result.v6_ ? 16 : 4, prefix))
    return bad_network(text, ("bits set past the prefix /" + std::to_string(prefix)).c_str());
  result.prefix_ = static_cast<uint8_t>(prefix);
  return result;
}

bool ip_network::contains(const sockaddr_storage& addr) const noexcept {
  if (addr.ss_family == AF_INET) {
    if (v6_)
      return false;
    auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    return prefix_equal(reinterpret_cast<const uint8_t*>(&in.sin_addr), bytes_.data(), prefix_);
  }
  if (addr.ss_family == AF_INET6) {
    auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    if (v6_)
      return prefix_equal(in6.sin6_addr.s6_addr, bytes_.data(), prefix_);
    // ::ffff:a.b.c.d is the IPv4 client a.b.c.d on a dual-stack socket.
    return is_v4_mapped(in6.sin6_addr) &&
           prefix_equal(in6.sin6_addr.s6_addr + 12, bytes_.data(), prefix_);
  }
  return false;
}

bool ip_network::contains(const endpoint& ep) const noexcept {
  if (!ep.is_ip() || ep.address.find('\0') != std::string::npos)
    return false;
  sockaddr_storage addr{};
  if (ep.family == endpoint::family_type::ipv4) {
    auto& in = reinterpret_cast<sockaddr_in&>(addr);
    if (::inet_pton(AF_INET, ep.address.c_str(), &in.sin_addr) != 1)
      return false;
    in.sin_family = AF_INET;
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(addr);
    if (::inet_pton(AF_INET6, ep.address.c_str(), &in6.sin6_addr) != 1)
      return false;
    in6.sin6_family = AF_INET6;
  }
  return contains(addr);
}

std::string ip_network::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6_ ? AF_INET6 : AF_INET, bytes_.data(), buf, sizeof(buf));
  return std::string{buf} + "/" + std::to_string(prefix_);
}

// -- options ------------------------------------------------------------------

std::string to_string(proxy_protocol_version v) {
  switch (v) {
    case proxy_protocol_version::v1: return "v1";
    case proxy_protocol_version::v2: return "v2";
    case proxy_protocol_version::any: return "any";
  }
  return "?";
}

caf::expected<proxy_protocol_version> parse_proxy_protocol_version(std::string_view text) {
  if (text == "v1")
    return proxy_protocol_version::v1;
  if (text == "v2")
    return proxy_protocol_version::v2;
  if (text == "any")
    return proxy_protocol_version::any;
  return caf::make_error(errc::invalid_option,
                         "proxy_protocol: expected v1, v2 or any, got '" + std::string{text} + "'");
}

caf::error validate(const proxy_protocol_options& opts) {
  if (opts.trusted.empty())
    return caf::make_error(errc::invalid_option,
                           "proxy_protocol.trusted: list at least one trusted source "
                           "(0.0.0.0/0 and ::/0 trust every source)");
  if (opts.timeout <= std::chrono::milliseconds::zero() || opts.timeout == infinite)
    return caf::make_error(errc::invalid_option,
                           "proxy_protocol.timeout must be positive and finite");
  return caf::none;
}

// -- parsing ------------------------------------------------------------------

std::optional<std::string> proxy_header::tlv(uint8_t type) const {
  for (auto& x : tlvs)
    if (x.type == type)
      return x.value;
  return std::nullopt;
}

namespace {

using status = proxy_parse_result::status_type;

constexpr size_t v1_max_length = 107;
constexpr std::string_view v1_prefix = "PROXY ";
constexpr std::string_view v2_signature{"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12};
constexpr size_t v2_fixed_length = 16;

proxy_parse_result incomplete() {
  return proxy_parse_result{};
}

proxy_parse_result invalid(std::string reason) {
  proxy_parse_result result;
  result.status = status::invalid;
  result.error = caf::make_error(errc::proxy_header, "PROXY header: " + reason);
  return result;
}

// True if `data` and `expected` agree on their common length.
bool consistent(std::string_view data, std::string_view expected) {
  auto n = std::min(data.size(), expected.size());
  return data.substr(0, n) == expected.substr(0, n);
}

// Renders a byte for an error message: printable as is, otherwise as hex.
std::string show(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7F)
    return std::string{"'"} + c + "'";
  static constexpr char hex[] = "0123456789abcdef";
  return std::string{"0x"} + hex[u >> 4] + hex[u & 0xF];
}

// -- version 1 --

// What may follow "PROXY TCP4 " / "PROXY TCP6 ": address characters, port
// digits and the spaces between them.
bool v1_field_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
         c == ':' || c == ' ';
}

// Checks the start of a version 1 line (`line`: the bytes before the CR, or
// all there is so far when `whole` is false). Returns the error, if any.
std::optional<proxy_parse_result> check_v1_start(std::string_view line, bool whole) {
  if (!consistent(line, v1_prefix) || (whole && line.size() < v1_prefix.size()))
    return invalid("not a PROXY protocol header (expected \"PROXY \")");
  auto rest = line.size() > v1_prefix.size() ? line.substr(v1_prefix.size()) : std::string_view{};
  if (consistent(rest, "UNKNOWN")) {
    if (whole && rest.size() < 7)
      return invalid("expected TCP4, TCP6 or UNKNOWN");
    return std::nullopt;
  }
  if (!consistent(rest, "TCP4 ") && !consistent(rest, "TCP6 "))
    return invalid("expected TCP4, TCP6 or UNKNOWN");
  if (whole && rest.size() <= 5)
    return invalid("missing addresses and ports after " + std::string{rest.substr(0, 4)});
  for (size_t i = 5; i < rest.size(); ++i)
    if (!v1_field_char(rest[i]))
      return invalid("unexpected character " + show(rest[i]) + " in the addresses and ports");
  return std::nullopt;
}

// Parses a decimal port: no sign, no leading zero (except "0"), 0..65535.
std::optional<uint16_t> parse_v1_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0'))
    return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535)
    return std::nullopt;
  return static_cast<uint16_t>(value);
}

// Parses an address of `family` and renders it canonically.
std::optional<std::string> parse_v1_address(std::string_view text, int family) {
  if (text.size() >= INET6_ADDRSTRLEN)
    return std::nullopt;
  std::string copy{text};
  unsigned char bytes[sizeof(in6_addr)] = {};
  if (::inet_pton(family, copy.c_str(), bytes) != 1)
    return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(family, bytes, buf, sizeof(buf)) == nullptr)
    return std::nullopt;
  return std::string{buf};
}

proxy_parse_result parse_v1(std::string_view data) {
  auto window = data.substr(0, std::min(data.size(), v1_max_length));
  // Find the end of the line: the first CR, which must be followed by LF.
  size_t cr = std::string_view::npos;
  for (size_t i = 0; i < window.size(); ++i) {
    if (window[i] == '\n') {
      if (auto err = check_v1_start(window.substr(0, i), false))
        return std::move(*err);
      return invalid("LF without CR");
    }
    if (window[i] == '\r') {
      cr = i;
      break;
    }
  }
  if (cr == std::string_view::npos) {
    if (auto err = check_v1_start(window, false))
      return std::move(*err);
    if (window.size() == v1_max_length)
      return invalid("no CRLF within the first 107 bytes");
    return incomplete();
  }
  auto line = window.substr(0, cr);
  if (auto err = check_v1_start(line, false))
    return std::move(*err);
  if (cr + 1 >= v1_max_length)
    return invalid("no CRLF within the first 107 bytes");
  if (cr + 1 >= data.size())
    return incomplete();
  if (data[cr + 1] != '\n')
    return invalid("CR not followed by LF");
  if (auto err = check_v1_start(line, true))
    return std::move(*err);
  proxy_parse_result result;
  result.status = status::complete;
  result.header.version = 1;
  result.header.length = cr + 2;
  auto rest = line.substr(v1_prefix.size());
  if (rest.substr(0, 7) == "UNKNOWN")
    return result; // not proxied: the connection's own addresses apply
  bool v6 = rest[3] == '6';
  auto proto = std::string{rest.substr(0, 4)};
  // Exactly four fields separated by single spaces.
  std::string_view fields[4];
  auto remaining = rest.substr(5);
  for (size_t i = 0; i < 4; ++i) {
    auto space = remaining.find(' ');
    if (i < 3 && space == std::string_view::npos)
      return invalid("expected source and destination addresses and ports after " + proto);
    if (i == 3 && space != std::string_view::npos)
      return invalid("unexpected text after the destination port");
    fields[i] = remaining.substr(0, space);
    if (fields[i].empty())
      return invalid("fields must be separated by single spaces");
    if (i < 3)
      remaining = remaining.substr(space + 1);
  }
  int family = v6 ? AF_INET6 : AF_INET;
  auto src = parse_v1_address(fields[0], family);
  if (!src)
    return invalid("bad source address '" + std::string{fields[0]} + "' for " + proto);
  auto dst = parse_v1_address(fields[1], family);
  if (!dst)
    return invalid("bad destination address '" + std::string{fields[1]} + "' for " + proto);
  auto sport = parse_v1_port(fields[2]);
  if (!sport)
    return invalid("bad source port '" + std::string{fields[2]} + "'");
  auto dport = parse_v1_port(fields[3]);
  if (!dport)
    return invalid("bad destination port '" + std::string{fields[3]} + "'");
  auto ep_family = v6 ? endpoint::family_type::ipv6 : endpoint::family_type::ipv4;
  result.header.proxied = true;
  result.header.protocol = proxy_header::protocol_type::stream;
  result.header.source = endpoint{ep_family, std::move(*src), *sport};
  result.header.destination = endpoint{ep_family, std::move(*dst), *dport};
  return result;
}

// -- version 2 --

// CRC32c (Castagnoli): reflected polynomial 0x82F63B78.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> crc32c_table = make_crc32c_table();

// Continues a CRC32c (`crc`: the running value before the final xor).
uint32_t crc32c_update(uint32_t crc, std::string_view bytes) {
  for (char c : bytes)
    crc = crc32c_table[(crc ^ static_cast<unsigned char>(c)) & 0xFF] ^ (crc >> 8);
  return crc;
}

uint16_t read_be16(std::string_view data, size_t offset) {
  return static_cast<uint16_t>((static_cast<unsigned char>(data[offset]) << 8) |
                               static_cast<unsigned char>(data[offset + 1]));
}

uint32_t read_be32(std::string_view data, size_t offset) {
  return (uint32_t{read_be16(data, offset)} << 16) | read_be16(data, offset + 2);
}

// The checksum of `header` with the 4 bytes at `value_offset` taken as zero.
uint32_t header_crc32c(std::string_view header, size_t value_offset) {
  uint32_t crc = 0xFFFFFFFFu;
  crc = crc32c_update(crc, header.substr(0, value_offset));
  crc = crc32c_update(crc, std::string_view{"\0\0\0\0", 4});
  crc = crc32c_update(crc, header.substr(value_offset + 4));
  return crc ^ 0xFFFFFFFFu;
}

endpoint ip_endpoint(std::string_view header, size_t addr_offset, size_t port_offset, bool v6) {
  char buf[INET6_ADDRSTRLEN] = {};
  unsigned char bytes[sizeof(in6_addr)] = {};
  std::memcpy(bytes, header.data() + addr_offset, v6 ? 16 : 4);
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, buf, sizeof(buf));
  return endpoint{v6 ? endpoint::family_type::ipv6 : endpoint::family_type::ipv4, std::string{buf},
                  read_be16(header, port_offset)};
}

endpoint unix_endpoint(std::string_view header, size_t offset) {
  auto path = header.substr(offset, 108);
  return endpoint{endpoint::family_type::local, std::string{path.substr(0, path.find('\0'))}, 0};
}

proxy_parse_result parse_v2(std::string_view data) {
  if (!consistent(data, v2_signature))
    return invalid("bad version 2 signature");
  if (data.size() <= 12)
    return incomplete();
  auto ver_cmd = static_cast<unsigned char>(data[12]);
  if ((ver_cmd >> 4) != 2)
    return invalid("unsupported version " + std::to_string(ver_cmd >> 4) +
                   " in a version 2 header");
  unsigned command = ver_cmd & 0xF;
  if (command > 1)
    return invalid("unsupported command " + std::to_string(command));
  bool proxy = command == 1;
  if (data.size() <= 13)
    return incomplete();
  auto fam_proto = static_cast<unsigned char>(data[13]);
  unsigned family = fam_proto >> 4;
  unsigned protocol = fam_proto & 0xF;
  if (family > 3)
    return invalid("unsupported address family " + std::to_string(family));
  if (protocol > 2)
    return invalid("unsupported transport protocol " + std::to_string(protocol));
  // The specification lets a PROXY command name either UNSPEC over UNSPEC or
  // a known family over a known protocol; LOCAL ignores both.
  if (proxy && (family == 0) != (protocol == 0))
    return invalid("invalid address family and transport protocol combination " +
                   std::to_string(family) + "/" + std::to_string(protocol));
  if (data.size() < v2_fixed_length)
    return incomplete();
  size_t length = read_be16(data, 14);
  static constexpr size_t address_lengths[] = {0, 12, 36, 216};
  size_t address_length = address_lengths[family];
  if (proxy && length < address_length)
    return invalid("length " + std::to_string(length) + " too short for the address family (" +
                   std::to_string(address_length) + " bytes of addresses)");
  size_t total = v2_fixed_length + length;
  if (data.size() < total)
    return incomplete();
  auto header = data.substr(0, total);
  proxy_parse_result result;
  result.status = status::complete;
  result.header.version = 2;
  result.header.length = total;
  if (proxy && family != 0) {
    result.header.proxied = true;
    result.header.protocol =
        protocol == 1 ? proxy_header::protocol_type::stream : proxy_header::protocol_type::datagram;
    switch (family) {
      case 1:
        result.header.source = ip_endpoint(header, 16, 24, false);
        result.header.destination = ip_endpoint(header, 20, 26, false);
        break;
      case 2:
        result.header.source = ip_endpoint(header, 16, 48, true);
        result.header.destination = ip_endpoint(header, 32, 50, true);
        break;
      default:
        result.header.source = unix_endpoint(header, 16);
        result.header.destination = unix_endpoint(header, 124);
        break;
    }
  }
  // TLVs follow the addresses (a LOCAL header too short for its family's
  // addresses has none: its whole block is discarded).
  size_t pos = length >= address_length ? v2_fixed_length + address_length : total;
  while (pos < total) {
    if (total - pos < 3)
      return invalid("TLV runs past the end of the header");
    auto type = static_cast<uint8_t>(header[pos]);
    size_t size = read_be16(header, pos + 1);
    if (size > total - pos - 3)
      return invalid("TLV runs past the end of the header");
    size_t value_offset = pos + 3;
    if (type == proxy_header::tlv_crc32c) {
      if (size != 4)
        return invalid("CRC32C TLV of " + std::to_string(size) + " bytes (expected 4)");
      if (header_crc32c(header, value_offset) != read_be32(header, value_offset))
        return invalid("CRC32C mismatch");
    }
    result.header.tlvs.push_back(proxy_tlv{type, std::string{header.substr(value_offset, size)}});
    pos = value_offset + size;
  }
  return result;
}

} // namespace

proxy_parse_result parse_proxy_header(std::string_view data, proxy_protocol_version accepted) {
  if (data.empty())
    return incomplete();
  switch (data[0]) {
    case 'P':
      if (accepted == proxy_protocol_version::v2)
        return invalid(consistent(data, v1_prefix) ? "version 1 header on a v2 listener"
                                                   : "not a PROXY protocol header");
      return parse_v1(data);
    case '\r':
      if (accepted == proxy_protocol_version::v1)
        return invalid(consistent(data, v2_signature) ? "version 2 header on a v1 listener"
                                                      : "not a PROXY protocol header");
      return parse_v2(data);
    default: return invalid("not a PROXY protocol header");
  }
}

// -- reading from a socket ----------------------------------------------------

io_result proxy_header_reader::read(int fd) {
  for (;;) {
    // What has been taken so far: a header, a bad one, or the start of one.
    if (!buf_.empty()) {
      auto parsed = parse_proxy_header(buf_, accepted_);
      if (parsed.status == status::complete) {
        header_ = std::move(parsed.header);
        return io_result{header_.length, io_status::done, caf::error{}};
      }
      if (parsed.status == status::invalid)
        return io_result{0, io_status::failed, std::move(parsed.error)};
    }
    // How many more bytes may still belong to the header.
    size_t bound;
    if (buf_.empty())
      bound = accepted_ == proxy_protocol_version::v1 ? v1_max_length : v2_fixed_length;
    else if (buf_[0] == 'P')
      bound = v1_max_length - buf_.size();
    else if (buf_.size() < v2_fixed_length)
      bound = v2_fixed_length - buf_.size();
    else
      bound = v2_fixed_length + read_be16(buf_, 14) - buf_.size();
    if (bound == 0) // cannot happen: an incomplete header has room left
      return io_result{0, io_status::failed,
                       caf::make_error(errc::proxy_header, "PROXY header: no room left")};
    // Look at what is there without taking it.
    auto old_size = buf_.size();
    buf_.resize(old_size + bound);
    ssize_t peeked;
    do
      peeked = ::recv(fd, &buf_[old_size], bound, MSG_PEEK | MSG_DONTWAIT);
    while (peeked < 0 && errno == EINTR);
    if (peeked <= 0) {
      int err = errno;
      buf_.resize(old_size);
      if (peeked == 0)
        return io_result{0, io_status::closed, caf::error{}};
      if (err == EAGAIN || err == EWOULDBLOCK)
        return io_result{0, io_status::want_read, caf::error{}};
      return io_result{0, io_status::failed, make_system_error("recv", err)};
    }
    std::string_view view{&buf_[old_size], static_cast<size_t>(peeked)};
    if (old_size == 0) {
      // The first byte tells the version (or that this is no header at all).
      auto first = parse_proxy_header(view.substr(0, 1), accepted_);
      if (first.status == status::invalid) {
        buf_.clear();
        return io_result{0, io_status::failed, std::move(first.error)};
      }
    }
    // A version 1 header ends at its LF; a version 2 header at the length
    // its fixed part gives, which `bound` already respects.
    size_t take = view.size();
    bool v1 = (old_size == 0 ? view[0] : buf_[0]) == 'P';
    if (v1) {
      auto lf = view.find('\n');
      if (lf != std::string_view::npos)
        take = lf + 1;
    }
    ssize_t got;
    do
      got = ::recv(fd, &buf_[old_size], take, MSG_DONTWAIT);
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
      int err = errno;
      buf_.resize(old_size);
      if (got == 0)
        return io_result{0, io_status::closed, caf::error{}};
      if (err == EAGAIN || err == EWOULDBLOCK)
        return io_result{0, io_status::want_read, caf::error{}};
      return io_result{0, io_status::failed, make_system_error("recv", err)};
    }
    buf_.resize(old_size + static_cast<size_t>(got));
  }
}

} // namespace atl
