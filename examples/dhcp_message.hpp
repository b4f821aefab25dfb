// The DHCP decoding of the dhcp_dump example, free of sockets and actors (so
// that test/fuzz/fuzz_dhcp_message.cpp can drive it). Header-only; uses the
// standard library and inet_ntop only.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include <arpa/inet.h>

namespace example {

/// The dotted-quad text of the 4 bytes at `p` (network order).
inline std::string dhcp_ipv4(const uint8_t* p) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, p, text, sizeof(text));
  return text;
}

/// The name of DHCP message type `t` (option 53), "?" if unknown.
inline const char* dhcp_message_type(uint8_t t) {
  static constexpr std::array<const char*, 9> names{
      "?", "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM"};
  return t < names.size() ? names[t] : "?";
}

/// Decodes a BOOTP/DHCP message (RFC 2131/2132) from `who` into one line of
/// printable ASCII (if `who` is), or explains why it is not one ("dhcp
/// malformed from WHO (N bytes): WHY"). Reads only `data`'s bytes. Decoded:
/// op, the magic cookie, xid, chaddr (hlen bytes, at most 16), ciaddr,
/// yiaddr, and the options message type (53), requested address (50),
/// server id (54) and host name (12, bytes outside printable ASCII as '?');
/// pads are skipped, the end option or the end of the data stops the walk,
/// and an option that runs past the end makes the message malformed.
inline std::string describe_dhcp(std::string_view data, const std::string& who) {
  auto bad = [&](const std::string& why) {
    return "dhcp malformed from " + who + " (" + std::to_string(data.size()) + " bytes): " + why;
  };
  constexpr size_t fixed = 236; // op .. file
  if (data.size() < fixed + 4)
    return bad("shorter than a DHCP message");
  auto p = reinterpret_cast<const uint8_t*>(data.data());
  if (p[0] != 1 && p[0] != 2)
    return bad("op is neither BOOTREQUEST nor BOOTREPLY");
  if (p[236] != 99 || p[237] != 130 || p[238] != 83 || p[239] != 99)
    return bad("no DHCP magic cookie (plain BOOTP?)");
  char xid[16];
  std::snprintf(xid, sizeof(xid), "0x%02x%02x%02x%02x", p[4], p[5], p[6], p[7]);
  std::string mac;
  auto hlen = std::min<size_t>(p[2], 16);
  for (size_t i = 0; i < hlen; ++i) {
    char byte[4];
    std::snprintf(byte, sizeof(byte), "%s%02x", i == 0 ? "" : ":", p[28 + i]);
    mac += byte;
  }
  std::string type = "?";
  std::string extra;
  for (size_t i = fixed + 4; i < data.size();) {
    auto code = p[i];
    if (code == 0) { // pad
      ++i;
      continue;
    }
    if (code == 255) // end
      break;
    if (i + 1 >= data.size() || i + 2 + p[i + 1] > data.size())
      return bad("option " + std::to_string(code) + " runs past the end");
    auto len = p[i + 1];
    auto* v = p + i + 2;
    switch (code) {
      case 53:
        if (len == 1)
          type = dhcp_message_type(v[0]);
        break;
      case 50:
        if (len == 4)
          extra += " requested=" + dhcp_ipv4(v);
        break;
      case 54:
        if (len == 4)
          extra += " server=" + dhcp_ipv4(v);
        break;
      case 12: {
        std::string name;
        for (size_t k = 0; k < len; ++k)
          name += (v[k] >= 0x20 && v[k] < 0x7f) ? static_cast<char>(v[k]) : '?';
        extra += " hostname=" + name;
        break;
      }
      default: break;
    }
    i += 2 + static_cast<size_t>(len);
  }
  return "dhcp " + type + " from " + who + " xid=" + xid + " mac=" + mac +
         " ciaddr=" + dhcp_ipv4(p + 12) + " yiaddr=" + dhcp_ipv4(p + 16) + extra;
}

} // namespace example
