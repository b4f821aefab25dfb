// Servers and the lifetime of their actor system: systems created and
// destroyed one after another while their servers are under load, two
// systems serving at once, and a system without Atoll's scheduler.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

class echo_handler : public handler {
public:
  verdict handle_data(std::string_view data, socket& sock) override {
    return echo(data, sock);
  }
};

/// The number of open file descriptors of this process.
size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] auto& entry : std::filesystem::directory_iterator{"/proc/self/fd"})
    ++n;
  return n;
}

/// Clients on their own threads (no Boost.Test calls there): each keeps one
/// connection doing 64-byte ping-pong until stopped or until the server
/// closes it, and counts echoes and wrong bytes.
class load {
public:
  load(const endpoint& ep, int connections) {
    for (int i = 0; i < connections; ++i)
      threads_.emplace_back([this, ep, i] { run(ep, i); });
  }

  load(const load&) = delete;
  load& operator=(const load&) = delete;

  ~load() {
    stop();
  }

  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }

  uint64_t echoes() const {
    return echoes_.load();
  }

  uint64_t mismatches() const {
    return mismatches_.load();
  }

  uint64_t failed_connects() const {
    return failed_connects_.load();
  }

  /// Clients that connected and got at least one echo.
  uint64_t serving() const {
    return serving_.load();
  }

private:
  void run(const endpoint& ep, int id) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(ep.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ++failed_connects_;
      ::close(fd);
      return;
    }
    char out[64];
    char in[64];
    for (uint64_t round = 0; !stop_; ++round) {
      for (size_t k = 0; k < sizeof(out); ++k)
        out[k] = static_cast<char>('a' + (round + k + static_cast<uint64_t>(id)) % 26);
      if (::send(fd, out, sizeof(out), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(out)))
        break; // the server went away
      size_t got = 0;
      while (got < sizeof(in)) {
        auto n = ::recv(fd, in + got, sizeof(in) - got, 0);
        if (n <= 0)
          break;
        got += static_cast<size_t>(n);
      }
      if (got < sizeof(in))
        break;
      if (std::memcmp(in, out, sizeof(in)) != 0)
        ++mismatches_;
      if (round == 0)
        ++serving_;
      ++echoes_;
    }
    ::close(fd);
  }

  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> echoes_{0};
  std::atomic<uint64_t> mismatches_{0};
  std::atomic<uint64_t> failed_connects_{0};
  std::atomic<uint64_t> serving_{0};
  std::vector<std::thread> threads_;
};

server_options echo_options() {
  server_options opts;
  opts.set_handler<echo_handler>();
  opts.port = 0;
  opts.address = bind_address::loopback();
  opts.num_acceptors = 4;
  opts.shutdown_timeout = shutdown_policy::timeout(2000ms);
  return apply_connection_actor_mode(opts);
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(system_lifecycle, atl::test::fd_leak_check)

BOOST_AUTO_TEST_CASE(twenty_systems_one_after_another_each_serving_under_load) {
  auto fds_before = open_fds();
  for (int round = 0; round < 20; ++round) {
    BOOST_TEST_CONTEXT("round " << round) {
      caf::actor_system_config cfg;
      auto sys = system_fixture::make_system(cfg);
      auto srv = start_server(*sys, echo_options());
      BOOST_REQUIRE_MESSAGE(srv, (srv ? "" : describe(srv.error())));
      auto ep = srv->listener_info();
      BOOST_REQUIRE(ep);
      load clients{*ep, 8};
      BOOST_REQUIRE(
        wait_until([&] { return clients.serving() == 8 && clients.echoes() >= 200; }));
      BOOST_CHECK_EQUAL(clients.failed_connects(), 0u);
      // Stop the server and end the system while the clients keep sending.
      BOOST_CHECK(!srv->stop());
      clients.stop();
      BOOST_CHECK_EQUAL(clients.mismatches(), 0u);
      srv = caf::make_error(errc::not_found); // drop the handle first
      sys.reset(); // must return: no actor left, workers joined
    }
  }
  // Every socket, epoll instance and eventfd of the 20 systems is closed.
  BOOST_CHECK(wait_until([&] { return open_fds() == fds_before; }));
  BOOST_CHECK_EQUAL(open_fds(), fds_before);
}

BOOST_AUTO_TEST_CASE(two_systems_at_once_serve_independently) {
  auto fds_before = open_fds();
  caf::actor_system_config cfg_a;
  caf::actor_system_config cfg_b;
  auto sys_a = system_fixture::make_system(cfg_a);
  auto sys_b = system_fixture::make_system(cfg_b);
  auto srv_a = start_server(*sys_a, echo_options());
  auto srv_b = start_server(*sys_b, echo_options());
  BOOST_REQUIRE(srv_a && srv_b);
  auto ep_a = srv_a->listener_info();
  auto ep_b = srv_b->listener_info();
  BOOST_REQUIRE(ep_a && ep_b);
  BOOST_CHECK_NE(ep_a->port, ep_b->port);
  load clients_a{*ep_a, 4};
  load clients_b{*ep_b, 4};
  BOOST_REQUIRE(wait_until([&] {
    return clients_a.serving() == 4 && clients_b.serving() == 4 && clients_a.echoes() >= 100
           && clients_b.echoes() >= 100;
  }));
  // System A goes away under load; B keeps serving.
  BOOST_CHECK(!srv_a->stop());
  clients_a.stop();
  srv_a = caf::make_error(errc::not_found);
  sys_a.reset();
  auto b_before = clients_b.echoes();
  BOOST_CHECK(wait_until([&] { return clients_b.echoes() >= b_before + 100; }));
  // New clients of B are served too.
  load late{*ep_b, 2};
  BOOST_CHECK(wait_until([&] { return late.serving() == 2 && late.echoes() >= 50; }));
  BOOST_CHECK(!srv_b->stop());
  clients_b.stop();
  late.stop();
  BOOST_CHECK_EQUAL(clients_a.mismatches() + clients_b.mismatches() + late.mismatches(), 0u);
  srv_b = caf::make_error(errc::not_found);
  sys_b.reset();
  BOOST_CHECK(wait_until([&] { return open_fds() == fds_before; }));
}

BOOST_AUTO_TEST_CASE(a_system_without_atolls_scheduler_refuses_servers_clearly) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  auto srv = start_server(sys, echo_options());
  BOOST_REQUIRE(!srv);
  BOOST_CHECK(srv.error() == errc::reactor_unavailable);
  BOOST_CHECK_MESSAGE(describe(srv.error()).find("register_types") != std::string::npos,
                      describe(srv.error()));
}

BOOST_AUTO_TEST_SUITE_END()
