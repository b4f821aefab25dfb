// starttls: a line protocol that greets in clear, offers STARTTLS (in the
// manner of SMTP, so `openssl s_client -starttls smtp` can drive it),
// upgrades the connection to TLS in place, then echoes lines over TLS.
//
// Usage: starttls --certfile=CERT.pem --keyfile=KEY.pem [--port=N] [--handshake-timeout=MS] ...
//   openssl s_client -connect 127.0.0.1:PORT -starttls smtp -quiet
//
// Commands (one per line, at most 8192 bytes with the line end; pipelining
// allowed): EHLO/HELO NAME, STARTTLS, QUIT; any other line is echoed once the
// connection is secure ("530" before). The protocol itself, without sockets,
// is in starttls_protocol.hpp (fuzzed by test/fuzz/fuzz_starttls_lines.cpp).
#include "example_common.hpp"
#include "starttls_protocol.hpp"

namespace {

/// Runs the line protocol (starttls_protocol.hpp) on a connection.
class starttls_handler : public atl::handler {
public:
  explicit starttls_handler(std::shared_ptr<atl::tls_context> tls) : tls_(std::move(tls)) {
  }

  atl::verdict handle_connection(socket& sock) override {
    sock.send(example::starttls_session::greeting);
    return atl::verdict::proceed();
  }

  atl::verdict handle_data(std::string_view data, socket& sock) override {
    auto res = session_.feed(data, sock.secure());
    if (!res.replies.empty())
      sock.send(res.replies);
    switch (res.action) {
      case example::line_action::close:
        return atl::verdict::close();
      case example::line_action::upgrade:
        return atl::verdict::switch_transport(atl::tls_upgrade(tls_));
      case example::line_action::proceed:
        break;
    }
    return atl::verdict::proceed();
  }

private:
  std::shared_ptr<atl::tls_context> tls_;
  example::starttls_session session_;
};

} // namespace

int main(int argc, char** argv) {
  return example::main_of<example::tls_server_config>(
    argc, argv,
    [](caf::actor_system&, const example::tls_server_config& cfg, atl::server_options& opts) {
      auto tls = cfg.tls_options_or_report();
      if (!tls)
        return false;
      auto ctx = atl::tls_context::make(std::move(*tls));
      if (!ctx) {
        example::say(std::string{"cannot start the server: "} + atl::describe(ctx.error()) + "\n");
        return false;
      }
      // The server itself is clear TCP; each connection upgrades on demand.
      opts.handshake_timeout = cfg.handshake_limit();
      opts.set_handler<starttls_handler>(*ctx);
      opts.name = "starttls";
      return true;
    });
}
