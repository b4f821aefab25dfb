// A user's program built against an installed Atoll: starts an echo server on
// a free loopback port, echoes one message over a plain socket, stops, and
// exits 0 only if every step worked.
#include <cstdio>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "atoll/all.hpp"

namespace {

class echo_handler : public atl::handler {
public:
  atl::verdict handle_data(std::string_view data, socket& sock) override {
    static_cast<void>(sock.send(data));
    return atl::verdict::proceed();
  }
};

bool echo_once(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0
            && ::write(fd, "installed", 9) == 9;
  char buf[16] = {};
  size_t got = 0;
  while (ok && got < 9) {
    auto n = ::read(fd, buf + got, sizeof(buf) - got);
    ok = n > 0;
    got += ok ? static_cast<size_t>(n) : 0;
  }
  ::close(fd);
  return ok && std::string{buf, got} == "installed";
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  atl::register_types(cfg);
  caf::actor_system sys{cfg};
  atl::server_options opts;
  opts.set_handler<echo_handler>();
  opts.port = 0;
  opts.address = atl::bind_address::loopback();
  opts.num_acceptors = 2;
  auto srv = atl::start_server(sys, opts);
  if (!srv) {
    std::fprintf(stderr, "start_server: %s\n", atl::describe(srv.error()).c_str());
    return 1;
  }
  auto ep = srv->listener_info();
  bool ok = ep && echo_once(ep->port);
  auto err = srv->stop();
  std::printf("consumer: echo %s, stop %s\n", ok ? "ok" : "FAILED", err ? "FAILED" : "ok");
  return ok && !err ? 0 : 1;
}
