// libFuzzer target for the PROXY protocol parser (transports/atoll/transports/
// proxy_protocol.hpp): `parse_proxy_header` under each accepted version, and
// `ip_network::parse` / `to_string` / `contains` on the same bytes as text.
//
// The whole input is the start of a connection's stream (no mode byte), so
// the seeds are plain headers. For each of v1, v2 and any:
// - invalid: the error is errc::proxy_header and its text starts with
//   "PROXY header: "; incomplete: no error;
// - complete: 0 < length <= size; the version is the one the first byte
//   names; v1: length <= 107, the header ends with its first CR, followed by
//   LF; v2: length is 16 plus the big-endian length field; parsing exactly
//   `length` bytes (copied to a heap block of that size, so ASan sees a read
//   past it) gives the same header; shorter prefixes are incomplete (a few
//   checked: 0, 1, half, length - 1, and some in between);
// - the result of a prefix decides the result of the whole: a complete
//   prefix gives the same header, an invalid one an invalid whole;
// - proxied headers have both endpoints, of one family: IP addresses that
//   inet_pton parses and inet_ntop renders as given (canonical), Unix paths
//   without NUL of at most 108 bytes and port 0; other headers have none;
//   only v2 headers have TLVs, and `tlv(type)` is the first of its type;
// - any agrees with v1 on inputs starting with 'P' and with v2 on inputs
//   starting with '\r'; no input is complete for both v1 and v2.
// ip_network::parse(text): fails only with errc::invalid_address; what it
// accepts renders as text that parses to a network rendering the same, and
// that contains its own first address.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "atoll/runtime/error.hpp"
#include "atoll/transports/proxy_protocol.hpp"

#include "fuzz_check.hpp"

namespace {

using atl::proxy_header;
using atl::proxy_parse_result;
using atl::proxy_protocol_version;
using status_type = proxy_parse_result::status_type;

/// Parses the first `n` bytes of `data` from a heap block of exactly `n`
/// bytes (ASan reports any read past it).
proxy_parse_result parse_prefix(std::string_view data, size_t n, proxy_protocol_version v) {
  auto block = std::make_unique<char[]>(n == 0 ? 1 : n);
  if (n > 0)
    std::memcpy(block.get(), data.data(), n);
  return atl::parse_proxy_header(std::string_view{block.get(), n}, v);
}

bool same_endpoint(const std::optional<atl::endpoint>& a, const std::optional<atl::endpoint>& b) {
  if (a.has_value() != b.has_value())
    return false;
  return !a || *a == *b;
}

bool same_header(const proxy_header& a, const proxy_header& b) {
  if (a.version != b.version || a.proxied != b.proxied || a.protocol != b.protocol ||
      a.length != b.length || !same_endpoint(a.source, b.source) ||
      !same_endpoint(a.destination, b.destination) || a.tlvs.size() != b.tlvs.size())
    return false;
  for (size_t i = 0; i < a.tlvs.size(); ++i)
    if (a.tlvs[i].type != b.tlvs[i].type || a.tlvs[i].value != b.tlvs[i].value)
      return false;
  return true;
}

bool same_result(const proxy_parse_result& a, const proxy_parse_result& b) {
  if (a.status != b.status)
    return false;
  return a.status != status_type::complete || same_header(a.header, b.header);
}

void check_endpoint(const atl::endpoint& ep) {
  using family = atl::endpoint::family_type;
  if (ep.family == family::local) {
    FUZZ_CHECK(ep.port == 0);
    FUZZ_CHECK(ep.address.size() <= 108);
    FUZZ_CHECK(ep.address.find('\0') == std::string::npos);
    return;
  }
  int af = ep.family == family::ipv4 ? AF_INET : AF_INET6;
  unsigned char bytes[sizeof(in6_addr)] = {};
  FUZZ_CHECK(ep.address.find('\0') == std::string::npos);
  FUZZ_CHECK(inet_pton(af, ep.address.c_str(), bytes) == 1);
  char canonical[INET6_ADDRSTRLEN] = {};
  FUZZ_CHECK(inet_ntop(af, bytes, canonical, sizeof(canonical)) != nullptr);
  FUZZ_CHECK(ep.address == canonical);
}

void check_header(std::string_view data, const proxy_header& h) {
  FUZZ_CHECK(h.length > 0 && h.length <= data.size());
  if (h.version == 1) {
    FUZZ_CHECK(data[0] == 'P');
    FUZZ_CHECK(h.length <= 107 && h.length >= 15);
    FUZZ_CHECK(data.substr(0, 6) == "PROXY ");
    FUZZ_CHECK(data.substr(h.length - 2, 2) == "\r\n");
    FUZZ_CHECK(data.substr(0, h.length - 2).find_first_of("\r\n") == std::string_view::npos);
    FUZZ_CHECK(h.tlvs.empty());
    FUZZ_CHECK(h.protocol == (h.proxied ? proxy_header::protocol_type::stream
                                        : proxy_header::protocol_type::unspecified));
  } else {
    FUZZ_CHECK(h.version == 2);
    FUZZ_CHECK(data[0] == '\r' && h.length >= 16);
    auto len = (static_cast<size_t>(static_cast<unsigned char>(data[14])) << 8) |
               static_cast<unsigned char>(data[15]);
    FUZZ_CHECK(h.length == 16 + len);
    size_t tlv_bytes = 0;
    for (auto& t : h.tlvs)
      tlv_bytes += 3 + t.value.size();
    FUZZ_CHECK(tlv_bytes <= len);
    for (auto& t : h.tlvs) {
      auto first = h.tlv(t.type);
      FUZZ_CHECK(first.has_value());
      if (t.type == proxy_header::tlv_crc32c)
        FUZZ_CHECK(t.value.size() == 4);
    }
    if (!h.tlvs.empty()) {
      auto first = h.tlv(h.tlvs.front().type);
      FUZZ_CHECK(first && *first == h.tlvs.front().value);
    }
  }
  FUZZ_CHECK(h.source.has_value() == h.proxied);
  FUZZ_CHECK(h.destination.has_value() == h.proxied);
  if (h.proxied) {
    FUZZ_CHECK(h.source->family == h.destination->family);
    FUZZ_CHECK(h.protocol != proxy_header::protocol_type::unspecified);
    check_endpoint(*h.source);
    check_endpoint(*h.destination);
  }
}

proxy_parse_result fuzz_parse(std::string_view data, proxy_protocol_version v) {
  auto r = atl::parse_proxy_header(data, v);
  switch (r.status) {
    case status_type::invalid: {
      FUZZ_CHECK(r.error == atl::errc::proxy_header);
      FUZZ_CHECK(atl::describe(r.error).find("PROXY header: ") != std::string::npos);
      break;
    }
    case status_type::incomplete:
      FUZZ_CHECK(!r.error);
      FUZZ_CHECK(data.size() < 16 + 65535);
      if (!data.empty() && data[0] == 'P')
        FUZZ_CHECK(data.size() < 107);
      break;
    case status_type::complete: {
      FUZZ_CHECK(!r.error);
      check_header(data, r.header);
      auto n = r.header.length;
      // Exactly the header: the same result.
      FUZZ_CHECK(same_result(parse_prefix(data, n, v), r));
      // Shorter: incomplete (a few lengths, not all, for speed).
      const size_t shorter[] = {0, 1, 15, 16, n / 3, n / 2, (2 * n) / 3, n - 1};
      for (size_t k : shorter)
        if (k < n)
          FUZZ_CHECK(parse_prefix(data, k, v).status == status_type::incomplete);
      break;
    }
  }
  // What a prefix says decides the whole.
  for (size_t k : {data.size() / 2, data.size() > 0 ? data.size() - 1 : 0}) {
    if (k >= data.size())
      continue;
    auto p = parse_prefix(data, k, v);
    if (p.status == status_type::invalid)
      FUZZ_CHECK(r.status == status_type::invalid);
    if (p.status == status_type::complete)
      FUZZ_CHECK(same_result(p, r));
  }
  return r;
}

void fuzz_network(const std::string& text) {
  auto net = atl::ip_network::parse(text);
  if (!net) {
    FUZZ_CHECK(net.error() == atl::errc::invalid_address);
    return;
  }
  auto rendered = net->to_string();
  auto again = atl::ip_network::parse(rendered);
  FUZZ_CHECK(again);
  FUZZ_CHECK(again->to_string() == rendered);
  // The network holds its own first address.
  auto slash = rendered.find('/');
  FUZZ_CHECK(slash != std::string::npos);
  auto address = rendered.substr(0, slash);
  sockaddr_storage ss{};
  if (address.find(':') != std::string::npos) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
    in6.sin6_family = AF_INET6;
    FUZZ_CHECK(inet_pton(AF_INET6, address.c_str(), &in6.sin6_addr) == 1);
  } else {
    auto& in = reinterpret_cast<sockaddr_in&>(ss);
    in.sin_family = AF_INET;
    FUZZ_CHECK(inet_pton(AF_INET, address.c_str(), &in.sin_addr) == 1);
  }
  FUZZ_CHECK(net->contains(ss));
  FUZZ_CHECK(again->contains(ss));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  auto r1 = fuzz_parse(input, proxy_protocol_version::v1);
  auto r2 = fuzz_parse(input, proxy_protocol_version::v2);
  auto rany = fuzz_parse(input, proxy_protocol_version::any);
  FUZZ_CHECK(!(r1.status == status_type::complete && r2.status == status_type::complete));
  if (!input.empty() && input[0] == 'P')
    FUZZ_CHECK(same_result(rany, r1));
  else if (!input.empty() && input[0] == '\r')
    FUZZ_CHECK(same_result(rany, r2));
  else if (!input.empty())
    FUZZ_CHECK(rany.status == status_type::invalid && r1.status == status_type::invalid &&
               r2.status == status_type::invalid);
  fuzz_network(std::string{input});
  return 0;
}
