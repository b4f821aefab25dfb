// tls_echo: an echo server over TLS.
//
// Usage: tls_echo --certfile=CERT.pem --keyfile=KEY.pem [--port=N] [--handshake-timeout=MS]
//                 [--cafile=CA.pem --verify=required] [--alpn=[...]] ...
//   ./build/examples/tls_echo --port=4443 --certfile=build/certs/server-chain.pem
//       --keyfile=build/certs/server.key
//   openssl s_client -connect 127.0.0.1:4443 -quiet   # type lines, get them back
#include "example_common.hpp"

namespace {

class echo_handler : public atl::handler {
public:
  atl::verdict handle_data(std::string_view data, socket& sock) override {
    return example::after_send(sock.send(data));
  }
};

} // namespace

int main(int argc, char** argv) {
  return example::main_of<example::tls_server_config>(
    argc, argv,
    [](caf::actor_system&, const example::tls_server_config& cfg, atl::server_options& opts) {
      auto tls = cfg.tls_options_or_report();
      if (!tls)
        return false;
      opts.tls = std::move(*tls);
      opts.handshake_timeout = cfg.handshake_limit();
      opts.set_handler<echo_handler>();
      opts.name = "tls_echo";
      return true;
    });
}
