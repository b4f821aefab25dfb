// echo: sends back every byte it receives (Thousand Island's Echo example).
//
// Usage: echo [--port=N] [--host=ADDR] [--num-acceptors=N] [--read-timeout=MS] ...
//   echo --port=0        # prints "listening on 0.0.0.0:PORT"
//   nc 127.0.0.1 PORT    # type lines, get them back
#include "example_common.hpp"

namespace {

class echo_handler : public atl::handler {
public:
  atl::verdict handle_data(std::string_view data, atl::socket& sock) override {
    return example::after_send(sock.send(data));
  }
};

} // namespace

int main(int argc, char** argv) {
  return example::main_of<example::server_config>(
    argc, argv, [](caf::actor_system&, const example::server_config&, atl::server_options& opts) {
      opts.set_handler<echo_handler>();
      opts.name = "echo";
      return true;
    });
}
