// mdns_dump: joins the mDNS multicast group (224.0.0.251, port 5353) and
// prints every mDNS message it sees, decoded with libldns, one line each
// (Abyss's mDNS listener example).
//
// Usage: mdns_dump [--port=5353] [--host=any] [--interface=ADDR] ...
//   mdns_dump --interface=192.168.1.10    # listen on that interface's group
//   avahi-browse -a                       # (elsewhere) makes some traffic
// Shares the port with other mDNS programs (SO_REUSEADDR and SO_REUSEPORT).
#include "ldns_cxx.hpp"

#include <mutex>

#include "udp_example_common.hpp"

namespace {

class mdns_config : public example::udp_server_config {
public:
  std::string interface_address;
  std::string group = "224.0.0.251";

  mdns_config() : udp_server_config(defaults()) {
    opt_group{custom_options_, "global"}
        .add(interface_address, "interface",
             "IPv4 address of the interface to join the group on (default: the kernel's choice)")
        .add(group, "group", "the multicast group to join (default 224.0.0.251)");
  }

  /// One listener on 5353, sharing the port with the system's mDNS responder.
  static example::udp_defaults defaults() {
    auto d = example::udp_defaults::single_listener(5353);
    d.reuseport = true;
    return d;
  }

protected:
  std::optional<std::string> check_options() const override {
    if (auto problem = example::udp_server_config::check_options())
      return problem;
    // The kernel hands a multicast datagram to every socket that joined the
    // group: with a socket per listener (--reuseport), each message would
    // print once per listener. Without it the listeners share one socket.
    if (reuseport && num_listeners != 1)
      return std::string{"--num-listeners must be 1 with --reuseport: each listener's socket "
                         "would receive (and print) every multicast message"};
    atl::udp_options probe;
    probe.membership = {group};
    if (!interface_address.empty())
      probe.multicast_if = interface_address;
    if (auto err = atl::validate(probe))
      return (interface_address.empty() ? "--group: " : "--group/--interface: ") +
             atl::describe(err);
    return std::nullopt;
  }
};

/// Renders the records of one section as "name TYPE data; ...".
std::string render(const ldns_rr_list* list) {
  std::string out;
  for (size_t i = 0; list != nullptr && i < ldns_rr_list_rr_count(list); ++i) {
    char* text = ldns_rr2str(ldns_rr_list_rr(list, i));
    if (text == nullptr)
      continue;
    std::string line{text};
    std::free(text);
    for (auto& c : line)
      if (c == '\t' || c == '\n')
        c = ' ';
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += (out.empty() ? "" : "; ") + line;
  }
  return out;
}

/// Prints each datagram as one decoded line on stdout.
class mdns_printer : public atl::udp_handler {
public:
  atl::verdict handle_data(std::string_view data, socket& sock) override {
    auto from = sock.peername();
    auto who = from ? atl::to_string(*from) : std::string{"?"};
    ldns_pkt* pkt = nullptr;
    auto status = ldns_wire2pkt(&pkt, reinterpret_cast<const uint8_t*>(data.data()), data.size());
    std::string line;
    if (status != LDNS_STATUS_OK) {
      line = "mdns malformed from " + who + " (" + std::to_string(data.size()) +
             " bytes): " + ldns_get_errorstr_by_id(status);
    } else {
      line = std::string{"mdns "} + (ldns_pkt_qr(pkt) ? "response" : "query") + " from " + who +
             " id=" + std::to_string(ldns_pkt_id(pkt));
      if (auto q = render(ldns_pkt_question(pkt)); !q.empty())
        line += " questions: " + q;
      if (auto a = render(ldns_pkt_answer(pkt)); !a.empty())
        line += " answers: " + a;
      if (auto a = render(ldns_pkt_authority(pkt)); !a.empty())
        line += " authority: " + a; // a probe's proposed records (RFC 6762 8.2)
      if (auto a = render(ldns_pkt_additional(pkt)); !a.empty())
        line += " additional: " + a;
      ldns_pkt_free(pkt);
    }
    static std::mutex out_mtx; // several listeners may print at once
    std::lock_guard<std::mutex> guard{out_mtx};
    std::cout << line << std::endl;
    return atl::verdict::proceed();
  }
};

} // namespace

int main(int argc, char** argv) {
  return example::udp_main_of<mdns_config>(
      argc, argv, [](caf::actor_system&, const mdns_config& cfg, atl::udp_server_options& opts) {
        opts.set_handler<mdns_printer>();
        opts.transport.membership = {cfg.group};
        if (!cfg.interface_address.empty())
          opts.transport.multicast_if = cfg.interface_address;
        opts.transport.reuseaddr = true; // other mDNS responders use the port too
        opts.name = "mdns_dump";
        return true;
      });
}
