// libFuzzer target for the DHCP decoding of the dhcp_dump example
// (examples/dhcp_message.hpp): `describe_dhcp` on any datagram.
//
// Input: one datagram, copied to a heap block of its exact size (ASan sees
// any read past it). Checked, against a walk of the options written here:
//
// - The line is printable ASCII (no line break: an operator's terminal or
//   log sees exactly one line per datagram, whatever a client sends) and
//   starts with "dhcp ".
// - Malformed exactly when the walk says so, with the documented reason in
//   order of the checks: fewer than 240 bytes, op neither 1 nor 2, no magic
//   cookie, the first option that runs past the end (pads skipped, the end
//   option or the end of the data stop the walk).
// - Otherwise: "dhcp TYPE from WHO xid=0x........ mac=.. ciaddr=A yiaddr=B",
//   TYPE the name of the last 1-byte option 53 (or "?"), the xid and the
//   chaddr (hlen bytes, at most 16) in lower-case hex, the addresses
//   dotted, then requested=/server=/hostname= for each 4-byte option 50,
//   4-byte option 54 and option 12, in the order of the options.
// - The same datagram gives the same line twice.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "dhcp_message.hpp"

#include "fuzz_check.hpp"

namespace {

const std::string who = "192.0.2.7:68";

std::string hex(const uint8_t* p, size_t n, const char* sep) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0)
      out += sep;
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::string dotted(const uint8_t* p) {
  return std::to_string(p[0]) + "." + std::to_string(p[1]) + "." + std::to_string(p[2]) + "."
         + std::to_string(p[3]);
}

/// What the line must be, from a walk of our own.
std::string expected(const uint8_t* p, size_t n) {
  auto malformed = [&](const std::string& why) {
    return "dhcp malformed from " + who + " (" + std::to_string(n) + " bytes): " + why;
  };
  if (n < 240)
    return malformed("shorter than a DHCP message");
  if (p[0] != 1 && p[0] != 2)
    return malformed("op is neither BOOTREQUEST nor BOOTREPLY");
  if (std::memcmp(p + 236, "\x63\x82\x53\x63", 4) != 0)
    return malformed("no DHCP magic cookie (plain BOOTP?)");
  static const char* const names[] = {"?",   "DISCOVER", "OFFER",   "REQUEST", "DECLINE",
                                      "ACK", "NAK",      "RELEASE", "INFORM"};
  std::string type = "?";
  std::string extra;
  size_t at = 240;
  while (at < n && p[at] != 255) {
    if (p[at] == 0) {
      ++at;
      continue;
    }
    // A code, a length and that many bytes must all be there.
    if (n - at < 2 || n - at - 2 < p[at + 1])
      return malformed("option " + std::to_string(p[at]) + " runs past the end");
    uint8_t code = p[at];
    uint8_t len = p[at + 1];
    const uint8_t* v = p + at + 2;
    if (code == 53 && len == 1)
      type = v[0] <= 8 ? names[v[0]] : "?";
    else if (code == 50 && len == 4)
      extra += " requested=" + dotted(v);
    else if (code == 54 && len == 4)
      extra += " server=" + dotted(v);
    else if (code == 12) {
      extra += " hostname=";
      for (size_t k = 0; k < len; ++k)
        extra += (v[k] >= 0x20 && v[k] <= 0x7e) ? static_cast<char>(v[k]) : '?';
    }
    at += 2u + len;
  }
  size_t hlen = p[2] < 16 ? p[2] : 16;
  return "dhcp " + type + " from " + who + " xid=0x" + hex(p + 4, 4, "")
         + " mac=" + hex(p + 28, hlen, ":") + " ciaddr=" + dotted(p + 12)
         + " yiaddr=" + dotted(p + 16) + extra;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto block = std::make_unique<char[]>(size == 0 ? 1 : size);
  if (size > 0)
    std::memcpy(block.get(), data, size);
  std::string_view datagram{block.get(), size};
  auto line = example::describe_dhcp(datagram, who);
  FUZZ_CHECK(line.compare(0, 5, "dhcp ") == 0);
  for (char c : line)
    FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) <= 0x7e);
  FUZZ_CHECK(line == expected(data, size));
  FUZZ_CHECK(line == example::describe_dhcp(datagram, who));
  return 0;
}
