// starttls: a line protocol that greets in clear, offers STARTTLS (in the
// manner of SMTP, so `openssl s_client -starttls smtp` can drive it),
// upgrades the connection to TLS in place, then echoes lines over TLS.
//
// Usage: starttls --certfile=CERT.pem --keyfile=KEY.pem [--port=N] [--handshake-timeout=MS] ...
//   openssl s_client -connect 127.0.0.1:PORT -starttls smtp -quiet
//
// Commands (one per line, at most 8192 bytes with the line end; pipelining
// allowed): EHLO/HELO NAME, STARTTLS, QUIT; any other line is echoed once the
// connection is secure ("530" before).
#include "example_common.hpp"

namespace {

/// The longest line a client may send, its line end included.
constexpr size_t max_line = 8192;

class starttls_handler : public atl::handler {
public:
  explicit starttls_handler(std::shared_ptr<atl::tls_context> tls) : tls_(std::move(tls)) {
  }

  atl::verdict handle_connection(socket& sock) override {
    sock.send("220 atoll STARTTLS example ready\r\n");
    return atl::verdict::proceed();
  }

  atl::verdict handle_data(std::string_view data, socket& sock) override {
    buffer_.append(data);
    // Every complete line first (pipelined commands arrive together), then
    // the limit on the incomplete rest.
    size_t start = 0;
    for (auto nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n', start)) {
      if (nl + 1 - start > max_line)
        return reply_and_close(sock, "500 line too long\r\n");
      auto line = buffer_.substr(start, nl + 1 - start);
      start = nl + 1;
      auto command = line.substr(0, line.find_last_not_of("\r\n") + 1);
      auto verb = upper(command.substr(0, command.find(' ')));
      if (verb == "STARTTLS") {
        if (sock.secure()) {
          sock.send("503 already secure\r\n");
          continue;
        }
        if (start < buffer_.size()) // nothing may follow STARTTLS before the handshake
          return reply_and_close(sock, "501 pipelining after STARTTLS\r\n");
        buffer_.clear();
        sock.send("220 go ahead\r\n");
        return atl::verdict::switch_transport(atl::tls_upgrade(tls_));
      }
      if (verb == "EHLO") {
        sock.send("250-atoll greets " + command.substr(std::min(command.size(), size_t{5}))
                  + "\r\n250 STARTTLS\r\n");
      } else if (verb == "HELO") {
        sock.send("250 atoll\r\n");
      } else if (verb == "QUIT") {
        return reply_and_close(sock, "221 bye\r\n");
      } else if (sock.secure()) {
        sock.send(line); // the echo, over TLS
      } else {
        sock.send("530 issue STARTTLS first\r\n");
      }
    }
    buffer_.erase(0, start);
    if (buffer_.size() >= max_line) // its line end would exceed the limit
      return reply_and_close(sock, "500 line too long\r\n");
    return atl::verdict::proceed();
  }

private:
  static std::string upper(std::string s) {
    for (auto& c : s)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  }

  static atl::verdict reply_and_close(socket& sock, std::string_view reply) {
    sock.send(reply);
    return atl::verdict::close();
  }

  std::shared_ptr<atl::tls_context> tls_;
  std::string buffer_;
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
