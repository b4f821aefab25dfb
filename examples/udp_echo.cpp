// udp_echo: sends every datagram back to its sender (Abyss's echo example).
//
// Usage: udp_echo [--port=N] [--host=ADDR] [--num-listeners=N] [--max-packet-size=N]
//                 [--rate-limit-enabled] [--rate-limit-max-packets=N] ...
//   udp_echo --port=0 --host=loopback    # prints "listening on 127.0.0.1:PORT"
//   echo hello | nc -u -w1 127.0.0.1 PORT
#include "udp_example_common.hpp"

namespace {

class udp_echo_handler : public atl::udp_handler {
public:
  atl::verdict handle_data(std::string_view data, socket& sock) override {
    // A full send buffer drops the datagram (UDP); the actor goes on.
    if (auto err = sock.send(data); err && err != atl::errc::timeout)
      return atl::verdict::error(err);
    return atl::verdict::proceed();
  }
};

} // namespace

int main(int argc, char** argv) {
  return example::udp_main_of<example::udp_server_config>(
      argc, argv,
      [](caf::actor_system&, const example::udp_server_config&, atl::udp_server_options& opts) {
        opts.set_handler<udp_echo_handler>();
        opts.name = "udp_echo";
        return true;
      });
}
