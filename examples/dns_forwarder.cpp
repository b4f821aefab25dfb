// dns_forwarder: relays each DNS query to an upstream server and its answer
// back to the client (Abyss's DNS forwarder example).
//
// Each query gets its own handler actor on its own thread (the relay waits
// for the upstream with `atl::send_recv`, a blocking call), so a slow
// upstream never stalls the scheduler; `--num-connections` bounds the
// threads. Queries the upstream does not answer within `--upstream-timeout`
// go unanswered (the client retries, as DNS clients do).
//
// Usage: dns_forwarder --upstream=ADDR:PORT [--upstream-timeout=MS] [--port=N] ...
//   dns_forwarder --upstream=127.0.0.1:5300 --port=5301 --host=loopback
//   dig @127.0.0.1 -p 5301 www.example.test
#include <charconv>
#include <cstring>
#include <variant>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include "udp_example_common.hpp"

namespace {

class forwarder_config : public example::udp_server_config {
public:
  std::string upstream;
  int upstream_timeout = 2000;

  forwarder_config() : udp_server_config(defaults()) {
    opt_group{custom_options_, "global"}
        .add(upstream, "upstream", "the DNS server to ask, IPv4:PORT or [IPv6]:PORT (required)")
        .add(upstream_timeout, "upstream-timeout",
             "how long to wait for the upstream's answer, 1..60000 ms (default 2000)");
  }

  /// The upstream endpoint, or an error message.
  std::variant<atl::endpoint, std::string> upstream_endpoint() const {
    auto colon = upstream.rfind(':');
    auto closing = upstream.rfind(']');
    if (upstream.empty() || colon == std::string::npos ||
        (closing != std::string::npos && closing > colon))
      return std::string{"--upstream must be ADDRESS:PORT (an IPv6 address in brackets: "
                         "[::1]:53), got \"" + upstream + "\""};
    auto address = upstream.substr(0, colon);
    if (address.find(':') != std::string::npos && address.front() != '[')
      return std::string{"--upstream: an IPv6 address goes in brackets, as in [::1]:53, got \"" +
                         upstream + "\""};
    auto port_text = upstream.substr(colon + 1);
    unsigned number = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), number);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || number == 0 ||
        number > 65535)
      return std::string{"--upstream: the port must be within 1..65535, got \"" + port_text + "\""};
    atl::endpoint ep;
    if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
      ep.family = atl::endpoint::family_type::ipv6;
      address = address.substr(1, address.size() - 2);
    }
    ep.address = address;
    ep.port = static_cast<uint16_t>(number);
    if (!atl::udp_peer::from(ep))
      return std::string{"--upstream: not an IP address: \"" + address + "\""};
    if (!is_unicast(ep))
      return std::string{"--upstream must be one DNS server's unicast address, got " + address +
                         " (unspecified, multicast or broadcast)"};
    if (reaches_itself(ep))
      return std::string{"--upstream " + upstream + " is this forwarder's own address and port: "
                         "every query would be relayed to itself"};
    return ep;
  }

private:
  /// The address of `ep` in binary (IPv4: 4 bytes, IPv6: 16), or empty.
  /// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is its IPv4 address: a
  /// dual-stack socket sends to it over IPv4.
  static std::string binary_address(const atl::endpoint& ep) {
    if (ep.family == atl::endpoint::family_type::ipv6) {
      in6_addr a{};
      if (::inet_pton(AF_INET6, ep.address.c_str(), &a) != 1)
        return {};
      std::string bin(reinterpret_cast<const char*>(&a), sizeof(a));
      if (IN6_IS_ADDR_V4MAPPED(&a))
        return bin.substr(12);
      return bin;
    }
    in_addr a{};
    if (::inet_pton(AF_INET, ep.address.c_str(), &a) != 1)
      return {};
    return std::string(reinterpret_cast<const char*>(&a), sizeof(a));
  }

  /// Neither unspecified (0.0.0.0/8, ::), multicast (224.0.0.0/4, ff00::/8)
  /// nor broadcast or reserved (240.0.0.0/4).
  static bool is_unicast(const atl::endpoint& ep) {
    auto bin = binary_address(ep);
    if (bin.size() == 4) {
      auto first = static_cast<unsigned char>(bin[0]);
      return first != 0 && first < 224;
    }
    if (bin.size() == 16)
      return static_cast<unsigned char>(bin[0]) != 0xff && bin != std::string(16, '\0');
    return false;
  }

  /// Whether a datagram to `ep` reaches one of this host's interfaces
  /// (127.0.0.0/8, ::1 or an interface's address).
  static bool is_local(const atl::endpoint& ep) {
    auto bin = binary_address(ep);
    if (bin.size() == 4 && static_cast<unsigned char>(bin[0]) == 127)
      return true;
    if (bin.size() == 16 && bin == std::string(15, '\0') + '\1')
      return true;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0)
      return false;
    bool found = false;
    for (auto* i = list; i != nullptr && !found; i = i->ifa_next) {
      if (i->ifa_addr == nullptr)
        continue;
      if (i->ifa_addr->sa_family == AF_INET && bin.size() == 4)
        found = std::memcmp(&reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, bin.data(),
                            4) == 0;
      else if (i->ifa_addr->sa_family == AF_INET6 && bin.size() == 16)
        found = std::memcmp(&reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, bin.data(),
                            16) == 0;
    }
    ::freeifaddrs(list);
    return found;
  }

  /// Whether `ep` is where this forwarder listens (`--host`, `--port`):
  /// each query would come back to it as a new one, until every handler
  /// thread waits for itself.
  bool reaches_itself(const atl::endpoint& ep) const {
    if (port <= 0 || ep.port != port)
      return false;
    auto where = atl::bind_address::parse(host);
    if (!where)
      return false; // the option check names --host
    auto bin = binary_address(ep);
    bool v6 = bin.size() == 16;
    switch (where->which()) {
      case atl::bind_address::kind::any: return !v6 && is_local(ep);
      case atl::bind_address::kind::any6: return is_local(ep); // dual-stack
      case atl::bind_address::kind::loopback: return !v6 && bin == std::string("\x7f\0\0\1", 4);
      case atl::bind_address::kind::loopback6: return v6 && bin == std::string(15, '\0') + '\1';
      case atl::bind_address::kind::ip: {
        atl::endpoint own;
        own.address = where->text();
        own.family = own.address.find(':') != std::string::npos
                         ? atl::endpoint::family_type::ipv6
                         : atl::endpoint::family_type::ipv4;
        return binary_address(own) == bin;
      }
      case atl::bind_address::kind::local: return false;
    }
    return false;
  }

protected:
  /// The relay blocks in `send_recv`: its handlers run as detached actors.
  static example::udp_defaults defaults() {
    example::udp_defaults d;
    d.num_connections = 256;
    d.detached = true;
    return d;
  }

  std::optional<std::string> check_options() const override {
    if (!detached)
      return std::string{"--detached=false: the relay blocks while it waits for the upstream, "
                         "so its handlers must run detached"};
    if (lifetime == "in-listener")
      return std::string{"--lifetime=in-listener: the relay blocks while it waits for the "
                         "upstream, so it needs handler actors (per-datagram or per-peer)"};
    if (auto problem = example::udp_server_config::check_options())
      return problem;
    auto ep = upstream_endpoint();
    if (auto* why = std::get_if<std::string>(&ep))
      return *why;
    if (upstream_timeout < 1 || upstream_timeout > 60000)
      return std::string{"--upstream-timeout must be within 1..60000"};
    return std::nullopt;
  }
};

class forwarding_handler : public atl::udp_handler {
public:
  forwarding_handler(atl::endpoint upstream, std::chrono::milliseconds timeout)
    : upstream_(std::move(upstream)), timeout_(timeout) {}

  atl::verdict handle_data(std::string_view query, socket& sock) override {
    // Not a DNS message, or a response (QR set): nothing to relay, and no
    // thread held for the upstream's timeout on a message it ignores.
    if (query.size() < 12 || (static_cast<unsigned char>(query[2]) & 0x80) != 0)
      return atl::verdict::proceed();
    auto answer = atl::send_recv(upstream_, query, timeout_);
    // The upstream answers the ID it was asked; anything else is dropped.
    if (answer && answer->size() >= 2 && answer->compare(0, 2, query.substr(0, 2)) == 0)
      static_cast<void>(sock.send(*answer));
    return atl::verdict::proceed();
  }

private:
  atl::endpoint upstream_;
  std::chrono::milliseconds timeout_;
};

} // namespace

int main(int argc, char** argv) {
  return example::udp_main_of<forwarder_config>(
      argc, argv,
      [](caf::actor_system&, const forwarder_config& cfg, atl::udp_server_options& opts) {
        auto upstream = std::get<atl::endpoint>(cfg.upstream_endpoint());
        opts.set_handler<forwarding_handler>(upstream,
                                             std::chrono::milliseconds{cfg.upstream_timeout});
        opts.name = "dns_forwarder";
        return true;
      });
}
