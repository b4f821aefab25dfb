// hello_world: greets each client and closes the connection (Thousand
// Island's HelloWorld example).
//
// Usage: hello_world [--port=N] [--host=ADDR] ...
//   nc 127.0.0.1 PORT   # prints "Hello, World" and the connection closes
#include "example_common.hpp"

namespace {

class hello_handler : public atl::handler {
public:
  atl::verdict handle_connection(socket& sock) override {
    sock.send("Hello, World\n");
    return atl::verdict::close();
  }
};

} // namespace

int main(int argc, char** argv) {
  return example::main_of<example::server_config>(
    argc, argv, [](caf::actor_system&, const example::server_config&, atl::server_options& opts) {
      opts.set_handler<hello_handler>();
      opts.name = "hello_world";
      return true;
    });
}
