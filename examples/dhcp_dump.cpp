// dhcp_dump: listens on the DHCP server port (67) in broadcast mode and
// prints every DHCP message it sees, decoded, one line each (Abyss's DHCP
// listener example). It never answers.
//
// Usage: dhcp_dump [--port=67] [--host=any] ...   (port 67 needs root or
// CAP_NET_BIND_SERVICE; try --port=6767 to play)
#include <array>
#include <cstdio>
#include <mutex>

#include <arpa/inet.h>

#include "udp_example_common.hpp"

namespace {

class dhcp_config : public example::udp_server_config {
public:
  dhcp_config() {
    port = 67;
    num_listeners = 1;
    lifetime = "in-listener";
    broadcast = true;
  }
};

std::string ipv4(const uint8_t* p) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, p, text, sizeof(text));
  return text;
}

const char* message_type(uint8_t t) {
  static constexpr std::array<const char*, 9> names{
      "?", "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM"};
  return t < names.size() ? names[t] : "?";
}

/// Decodes a BOOTP/DHCP message (RFC 2131/2132) into one line, or explains
/// why it is not one.
std::string decode(std::string_view data, const std::string& who) {
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
          type = message_type(v[0]);
        break;
      case 50:
        if (len == 4)
          extra += " requested=" + ipv4(v);
        break;
      case 54:
        if (len == 4)
          extra += " server=" + ipv4(v);
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
         " ciaddr=" + ipv4(p + 12) + " yiaddr=" + ipv4(p + 16) + extra;
}

class dhcp_printer : public atl::udp_handler {
public:
  atl::verdict handle_data(std::string_view data, socket& sock) override {
    auto from = sock.peername();
    auto line = decode(data, from ? atl::to_string(*from) : std::string{"?"});
    static std::mutex out_mtx; // several listeners may print at once
    std::lock_guard<std::mutex> guard{out_mtx};
    std::cout << line << std::endl;
    return atl::verdict::proceed();
  }
};

} // namespace

int main(int argc, char** argv) {
  return example::udp_main_of<dhcp_config>(
      argc, argv, [](caf::actor_system&, const dhcp_config&, atl::udp_server_options& opts) {
        opts.set_handler<dhcp_printer>();
        opts.name = "dhcp_dump";
        return true;
      });
}
