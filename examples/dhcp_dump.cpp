// dhcp_dump: listens on the DHCP server port (67) in broadcast mode and
// prints every DHCP message it sees, decoded, one line each (Abyss's DHCP
// listener example). It never answers. The decoding, without sockets, is
// in dhcp_message.hpp (fuzzed by test/fuzz/fuzz_dhcp_message.cpp).
//
// Usage: dhcp_dump [--port=67] [--host=any] ...   (port 67 needs root or
// CAP_NET_BIND_SERVICE; try --port=6767 to play)
#include <mutex>

#include "dhcp_message.hpp"
#include "udp_example_common.hpp"

namespace {

class dhcp_config : public example::udp_server_config {
public:
  dhcp_config() : udp_server_config(defaults()) {}

private:
  static example::udp_defaults defaults() {
    auto d = example::udp_defaults::single_listener(67);
    d.broadcast = true;
    return d;
  }
};

class dhcp_printer : public atl::udp_handler {
public:
  atl::verdict handle_data(std::string_view data, socket& sock) override {
    auto from = sock.peername();
    auto line = example::describe_dhcp(data, from ? atl::to_string(*from) : std::string{"?"});
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
