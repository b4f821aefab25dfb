// The server: options and their validation, listening, status, suspend and
// resume, stop and drain, connection limits, acceptor robustness, tree
// robustness, listener and acceptor telemetry.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <sys/un.h>

#include "atoll/supervisors/detail/server_options_access.hpp" // accept fault injection
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {



/// Sends a line and expects it back.
void expect_echo(test_client& client, const std::string& text) {
  client.send(text);
  BOOST_CHECK_EQUAL(client.recv_exact(text.size()), text);
}

/// Listening sockets on `port` (from /proc/net/tcp and tcp6).
size_t listen_sockets_on(uint16_t port) {
  size_t n = 0;
  for (auto file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in{file};
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream fields{line};
      std::string sl, local, remote, state;
      fields >> sl >> local >> remote >> state;
      auto colon = local.rfind(':');
      if (state == "0A" && std::stoul(local.substr(colon + 1), nullptr, 16) == port)
        ++n;
    }
  }
  return n;
}

/// An accept(2) replacement that fails with queued errno values first.
struct accept_injector {
  std::mutex mtx;
  std::deque<int> errors;

  accept_function hook() {
    return [this](int fd, sockaddr* addr, socklen_t* len, int flags) {
      {
        std::lock_guard<std::mutex> guard{mtx};
        if (!errors.empty()) {
          errno = errors.front();
          errors.pop_front();
          return -1;
        }
      }
      return ::accept4(fd, addr, len, flags);
    };
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(server, server_fixture)

// -- options ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(invalid_options_are_rejected_with_clear_errors) {
  struct bad_case {
    std::function<void(server_options&)> mutate;
    errc code;
    std::string mentions;
  };
  std::vector<bad_case> cases{
    {[](server_options& o) { o.handler = nullptr; }, errc::missing_option, "handler"},
    {[](server_options& o) { o.port = 70000; }, errc::invalid_option, "port"},
    {[](server_options& o) { o.num_acceptors = 0; }, errc::invalid_option, "num_acceptors"},
    {[](server_options& o) { o.num_listen_sockets = 0; }, errc::invalid_option,
     "num_listen_sockets"},
    {[](server_options& o) { o.num_listen_sockets = 2; }, errc::invalid_option, "reuseport"},
    {[](server_options& o) {
       o.num_listen_sockets = 8;
       o.transport.reuseport = true;
     },
     errc::invalid_option, "num_acceptors"},
    {[](server_options& o) { o.num_acceptors = server_options::max_num_acceptors + 1; },
     errc::invalid_option, "num_acceptors must be at most 10000"},
    {[](server_options& o) {
       o.num_acceptors = 2000;
       o.num_listen_sockets = server_options::max_num_listen_sockets + 1;
       o.transport.reuseport = true;
     },
     errc::invalid_option, "num_listen_sockets must be at most 1024"},
    {[](server_options& o) { o.num_connections = 0; }, errc::invalid_option,
     "num_connections"},
    {[](server_options& o) { o.read_timeout = 0ms; }, errc::invalid_option, "read_timeout"},
    {[](server_options& o) { o.handshake_timeout = -5ms; }, errc::invalid_option,
     "handshake_timeout"},
    {[](server_options& o) { o.max_connections_retry_wait = -1ms; }, errc::invalid_option,
     "max_connections_retry_wait"},
    {[](server_options& o) { o.shutdown_timeout = shutdown_policy::timeout(-1ms); },
     errc::invalid_option, "shutdown_timeout"},
    {[](server_options& o) { o.transport.backlog = 0; }, errc::invalid_option, "backlog"},
    {[](server_options& o) { o.transport.send_timeout = 0ms; }, errc::invalid_option,
     "send_timeout"},
    {[](server_options& o) { o.transport.sndbuf = -1; }, errc::invalid_option, "sndbuf"},
    {[](server_options& o) { o.address = bind_address::ip("300.1.2.3"); },
     errc::invalid_address, "300.1.2.3"},
    {[](server_options& o) {
       o.address = bind_address::local("/tmp/x.sock");
       o.port = 4000;
     },
     errc::invalid_option, "Unix"},
    {[](server_options& o) { o.name.clear(); }, errc::invalid_option, "name"},
  };
  auto before = sys.registry().running();
  for (auto& c : cases) {
    auto opts = probe_options(echo_script());
    c.mutate(opts);
    auto srv = start_server(sys, opts);
    BOOST_REQUIRE(!srv);
    BOOST_CHECK_MESSAGE(srv.error() == c.code, describe(srv.error()));
    BOOST_CHECK_MESSAGE(describe(srv.error()).find(c.mentions) != std::string::npos,
                        describe(srv.error()) << " should mention " << c.mentions);
  }
  BOOST_CHECK_EQUAL(sys.registry().running(), before);
}

BOOST_AUTO_TEST_CASE(bind_addresses_parse_and_reject_garbage) {
  BOOST_CHECK(bind_address::parse("any")->which() == bind_address::kind::any);
  BOOST_CHECK(bind_address::parse("::1")->which() == bind_address::kind::loopback6);
  BOOST_CHECK(bind_address::parse("10.1.2.3")->which() == bind_address::kind::ip);
  BOOST_CHECK(bind_address::parse("fe80::1")->which() == bind_address::kind::ip);
  BOOST_CHECK_EQUAL(bind_address::parse("unix:/run/x.sock")->text(), "/run/x.sock");
  BOOST_CHECK(bind_address::parse("not-an-address").error() == errc::invalid_address);
  BOOST_CHECK(bind_address::parse("unix:").error() == errc::invalid_address);
}

// Found by test/fuzz/fuzz_endpoint: parse accepted what could not be bound
// (a path longer than sun_path), or bound another address than it showed (a
// NUL byte ended the text early; a leading one made an abstract socket).
BOOST_AUTO_TEST_CASE(bind_addresses_parse_only_what_resolves) {
  BOOST_CHECK(bind_address::parse("unix:" + std::string(107, 'x')));
  BOOST_CHECK(bind_address::parse("unix:" + std::string(108, 'x')).error()
              == errc::invalid_address);
  BOOST_CHECK(bind_address::parse(std::string("127.0.0.1\0junk", 14)).error()
              == errc::invalid_address);
  BOOST_CHECK(bind_address::parse(std::string("unix:\0name", 10)).error()
              == errc::invalid_address);
  sockaddr_storage ss{};
  socklen_t len = 0;
  BOOST_CHECK(bind_address::local(std::string("a\0b", 3)).resolve(0, ss, len)
              == errc::invalid_address);
  BOOST_CHECK(bind_address::ip(std::string("::1\0", 4)).resolve(0, ss, len)
              == errc::invalid_address);
}

// make_endpoint writes IPv4 addresses itself (inet_ntop is slow): every
// octet value in every position, as inet_ntop writes it.
BOOST_AUTO_TEST_CASE(ipv4_endpoints_read_as_inet_ntop_writes_them) {
  sockaddr_storage ss{};
  auto& in = reinterpret_cast<sockaddr_in&>(ss);
  in.sin_family = AF_INET;
  in.sin_port = htons(4000);
  auto* octets = reinterpret_cast<unsigned char*>(&in.sin_addr.s_addr);
  size_t checked = 0;
  for (unsigned position = 0; position < 4; ++position)
    for (unsigned value = 0; value < 256; ++value) {
      for (unsigned i = 0; i < 4; ++i) // the others: 0, 9, 10, 255 in turn
        octets[i] = i == position ? static_cast<unsigned char>(value)
                                  : std::array<unsigned char, 4>{0, 9, 10, 255}[(i + value) % 4];
      char want[INET_ADDRSTRLEN] = {};
      BOOST_REQUIRE(inet_ntop(AF_INET, &in.sin_addr, want, sizeof(want)));
      auto ep = make_endpoint(ss, sizeof(sockaddr_in));
      BOOST_REQUIRE(ep);
      BOOST_REQUIRE_EQUAL(ep->address, std::string{want});
      BOOST_REQUIRE_EQUAL(ep->port, 4000u);
      ++checked;
    }
  BOOST_CHECK_EQUAL(checked, 1024u);
}

// Found by test/fuzz/fuzz_endpoint: a Unix socket path without a NUL was read
// up to `len`, past sun_path (and past the sockaddr_storage for a larger len).
BOOST_AUTO_TEST_CASE(unix_endpoints_end_with_sun_path) {
  auto storage = std::make_unique<sockaddr_storage>();
  std::memset(storage.get(), 'a', sizeof(sockaddr_storage));
  storage->ss_family = AF_UNIX;
  for (auto len : {socklen_t{sizeof(sockaddr_storage)}, socklen_t{1000}}) {
    auto ep = make_endpoint(*storage, len);
    BOOST_REQUIRE(ep);
    BOOST_CHECK_EQUAL(ep->address, std::string(sizeof(sockaddr_un::sun_path), 'a'));
  }
}

// A connection keeps its peer in binary form and makes the text when asked:
// the same text as make_endpoint, for IPv4, IPv6 and Unix peers.
BOOST_AUTO_TEST_CASE(peer_addresses_give_the_endpoints_accept_reported) {
  sockaddr_storage ss{};
  auto& in = reinterpret_cast<sockaddr_in&>(ss);
  in.sin_family = AF_INET;
  in.sin_port = htons(4000);
  BOOST_REQUIRE(inet_pton(AF_INET, "10.9.8.7", &in.sin_addr) == 1);
  auto v4 = peer_address::from(ss, sizeof(sockaddr_in));
  BOOST_REQUIRE(v4);
  auto ep = v4->to_endpoint();
  BOOST_CHECK(ep.family == endpoint::family_type::ipv4);
  BOOST_CHECK_EQUAL(ep.address, "10.9.8.7");
  BOOST_CHECK_EQUAL(ep.port, 4000u);
  ss = {};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(443);
  BOOST_REQUIRE(inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr) == 1);
  auto v6 = peer_address::from(ss, sizeof(sockaddr_in6));
  BOOST_REQUIRE(v6);
  BOOST_CHECK_EQUAL(to_string(v6->to_endpoint()), "[2001:db8::1]:443");
  // Moved, it keeps the address.
  auto moved = std::move(*v6);
  BOOST_CHECK_EQUAL(to_string(moved.to_endpoint()), "[2001:db8::1]:443");
  ss = {};
  auto& un = reinterpret_cast<sockaddr_un&>(ss);
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "/run/peer.sock");
  auto local = peer_address::from(ss, sizeof(sockaddr_un));
  BOOST_REQUIRE(local);
  BOOST_CHECK(local->to_endpoint().family == endpoint::family_type::local);
  BOOST_CHECK_EQUAL(local->to_endpoint().address, "/run/peer.sock");
  // A text address (a PROXY header's source) as it is; an unknown family is
  // refused, as make_endpoint refuses it.
  BOOST_CHECK_EQUAL(to_string(peer_address{endpoint{endpoint::family_type::ipv4, "1.2.3.4", 5}}
                                .to_endpoint()),
                    "1.2.3.4:5");
  ss = {};
  ss.ss_family = AF_APPLETALK;
  auto bad = peer_address::from(ss, sizeof(ss));
  BOOST_REQUIRE(!bad);
  BOOST_CHECK(bad.error() == errc::invalid_address);
  BOOST_CHECK_EQUAL(peer_address{}.to_endpoint().address, "");
}

BOOST_AUTO_TEST_CASE(a_port_in_use_fails_the_start_and_leaves_nothing) {
  auto& first = start(probe_options(echo_script()));
  auto port = address_of(first).port;
  auto before = sys.registry().running();
  auto opts = probe_options(echo_script());
  opts.port = port;
  opts.transport.reuseaddr = false;
  auto second = start_server(sys, opts);
  BOOST_REQUIRE(!second);
  BOOST_CHECK_MESSAGE(second.error() == errc::address_in_use, describe(second.error()));
  BOOST_CHECK(wait_until([&] { return sys.registry().running() == before; }));
  // The first server is untouched.
  auto client = connect(first);
  expect_echo(client, "still serving");
}

// -- listening ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(port_zero_binds_a_free_port_and_several_servers_coexist) {
  auto& a = start(probe_options(echo_script()));
  auto& b = start(probe_options(echo_script()));
  auto ea = address_of(a);
  auto eb = address_of(b);
  BOOST_CHECK_NE(ea.port, 0);
  BOOST_CHECK_NE(ea.port, eb.port);
  BOOST_CHECK_EQUAL(ea.address, "127.0.0.1");
  auto ca = connect(a);
  auto cb = connect(b);
  expect_echo(ca, "to a");
  expect_echo(cb, "to b");
}

BOOST_AUTO_TEST_CASE(ipv6_loopback_and_unix_sockets_serve_too) {
  auto v6 = probe_options(echo_script());
  v6.address = bind_address::loopback6();
  auto& srv6 = start(v6);
  BOOST_CHECK(address_of(srv6).family == endpoint::family_type::ipv6);
  auto c6 = connect(srv6);
  expect_echo(c6, "over v6");

  char dir[] = "/tmp/atoll-unix-XXXXXX";
  BOOST_REQUIRE(::mkdtemp(dir) != nullptr);
  auto path = std::string{dir} + "/echo.sock";
  auto local = probe_options(echo_script());
  local.address = bind_address::local(path);
  auto& srvu = start(local);
  BOOST_CHECK_EQUAL(to_string(address_of(srvu)), path);
  auto cu = connect(srvu);
  expect_echo(cu, "over a unix socket");
  cu.close();
  BOOST_REQUIRE(!srvu.stop());
  BOOST_CHECK(::access(path.c_str(), F_OK) != 0); // the socket file is removed
  ::rmdir(dir);
}

BOOST_AUTO_TEST_CASE(several_listen_sockets_share_the_port_chosen_for_port_zero) {
  auto opts = probe_options(echo_script());
  opts.num_listen_sockets = 3;
  opts.num_acceptors = 6;
  opts.transport.reuseport = true;
  auto& srv = start(opts);
  auto port = address_of(srv).port;
  BOOST_CHECK_EQUAL(listen_sockets_on(port), 3u);
  // The kernel spreads connections over the sockets; all are served.
  std::vector<test_client> clients;
  for (int i = 0; i < 30; ++i) {
    clients.push_back(connect(srv));
    expect_echo(clients.back(), "n" + std::to_string(i));
  }
}

BOOST_AUTO_TEST_CASE(status_info_and_connections_report_the_running_server) {
  auto& srv = start(probe_options(echo_script()));
  BOOST_CHECK(srv.status() == server_status::running);
  auto info = srv.info();
  BOOST_REQUIRE(info);
  BOOST_CHECK(info->status == server_status::running);
  BOOST_REQUIRE(info->local);
  BOOST_CHECK(*info->local == address_of(srv));
  BOOST_CHECK_EQUAL(info->active_connections, 0u);
  std::vector<test_client> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connect(srv));
    expect_echo(clients.back(), "x");
  }
  BOOST_CHECK_EQUAL(srv.info()->active_connections, 3u);
  auto conns = srv.connections();
  BOOST_REQUIRE(conns);
  BOOST_CHECK_EQUAL(conns->size(), 3u);
  std::set<caf::actor_id> ids;
  for (auto& c : *conns)
    ids.insert(c.handle.id());
  BOOST_CHECK_EQUAL(ids.size(), 3u);
  clients.clear();
  BOOST_CHECK(wait_until([&] { return srv.info()->active_connections == 0; }));
}

// -- suspend and resume -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(suspend_closes_the_port_and_resume_binds_a_new_one) {
  auto& srv = start(probe_options(echo_script()));
  auto before = address_of(srv);
  auto kept = connect(srv);
  expect_echo(kept, "before");
  BOOST_REQUIRE(!srv.suspend());
  BOOST_CHECK(srv.status() == server_status::suspended);
  BOOST_CHECK(srv.listener_info().error() == errc::suspended);
  BOOST_CHECK(!srv.info()->local);
  test_client refused;
  BOOST_CHECK(!refused.try_connect(before)); // ECONNREFUSED at once
  expect_echo(kept, "during");               // existing connections go on
  BOOST_CHECK_EQUAL(srv.info()->active_connections, 1u);
  BOOST_REQUIRE(!srv.resume());
  BOOST_CHECK(srv.status() == server_status::running);
  auto after = address_of(srv);
  BOOST_CHECK_NE(after.port, before.port); // port 0: a new port
  auto fresh = test_client::connect(after);
  expect_echo(fresh, "after");
  expect_echo(kept, "still");
  // Suspend and resume again: acceptors come back every time.
  BOOST_REQUIRE(!srv.suspend());
  BOOST_REQUIRE(!srv.resume());
  auto again = connect(srv);
  expect_echo(again, "again");
}

BOOST_AUTO_TEST_CASE(resume_on_a_fixed_port_binds_the_same_port) {
  auto& probe = start(probe_options(echo_script()));
  auto port = address_of(probe).port;
  BOOST_REQUIRE(!probe.stop());
  auto opts = probe_options(echo_script());
  opts.port = port;
  auto& srv = start(opts);
  BOOST_REQUIRE(!srv.suspend());
  BOOST_REQUIRE(!srv.resume());
  BOOST_CHECK_EQUAL(address_of(srv).port, port);
  auto client = connect(srv);
  expect_echo(client, "same port");
}

// -- stop and drain -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(stop_drains_all_acceptor_groups_concurrently_within_one_timeout) {
  // Each handler blocks in a synchronous recv, so it cannot process the
  // shutdown until the drain gives up on it (after the shutdown timeout, the
  // blocking call returns errc::closed). Thousand Island drains acceptor
  // groups one after another (4 groups x 500 ms); Atoll drains them at the
  // same time (about 500 ms in all).
  auto script = std::make_shared<probe_script>();
  // When each blocked recv gave up: a drain of one group after another
  // spreads them over 1500 ms or more, a concurrent one over about none.
  struct gave_up_times {
    std::mutex mtx;
    std::vector<std::chrono::steady_clock::time_point> at;
  };
  auto gave_up = std::make_shared<gave_up_times>();
  script->on_data = [log{script->log}, gave_up](std::string_view, atl::socket& sock) {
    auto res = sock.recv(1, 10000ms);
    {
      std::lock_guard<std::mutex> guard{gave_up->mtx};
      gave_up->at.push_back(std::chrono::steady_clock::now());
    }
    log->add(res ? "recv:ok" : "recv:" + describe(res.error()));
    return verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.num_acceptors = 4;
  opts.shutdown_timeout = shutdown_policy::timeout(500ms);
  opts.detached_connections = true; // blocking handlers need their own threads
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  std::vector<test_client> clients;
  for (size_t i = 1; i <= 8; ++i) {
    // One at a time: each connection is its own event, and events rotate
    // over the acceptors.
    clients.push_back(connect(srv));
    clients.back().send("block");
    BOOST_REQUIRE(script->log->wait_for("data:block", i));
  }
  std::set<uint64_t> acceptors;
  for (auto& ev : rec.named("atoll.connection.start"))
    acceptors.insert(ev.metadata.get_or<uint64_t>("parent_telemetry_span_context", 0));
  BOOST_CHECK_EQUAL(acceptors.size(), 4u);
  auto started = std::chrono::steady_clock::now();
  BOOST_REQUIRE(!srv.stop());
  auto elapsed = std::chrono::steady_clock::now() - started;
  BOOST_TEST_MESSAGE("stop took "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                     << " ms");
  BOOST_CHECK(elapsed >= 500ms);
  // One group after another would take 2000 ms or more.
  BOOST_CHECK(elapsed < 1900ms);
  for (auto& c : clients)
    BOOST_CHECK(c.closed_within(2000ms));
  BOOST_CHECK_EQUAL(script->log->count("recv:atoll error closed: the server is stopping"), 8u);
  {
    std::lock_guard<std::mutex> guard{gave_up->mtx};
    BOOST_REQUIRE_EQUAL(gave_up->at.size(), 8u);
    auto [first, last] = std::minmax_element(gave_up->at.begin(), gave_up->at.end());
    BOOST_CHECK(*last - *first < 1000ms);
  }
  BOOST_CHECK_EQUAL(script->log->count("shutdown"), 8u);
  BOOST_CHECK(rec.wait_for("atoll.connection.stop", 8));
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.stop"), 8u);
}

BOOST_AUTO_TEST_CASE(a_callback_busy_past_the_shutdown_timeout_delays_only_its_own_end) {
  // CAF cannot preempt an actor inside a callback: a handler that computes
  // (no socket call to interrupt) past the shutdown timeout is ended when the
  // callback returns; it still gets its handle_shutdown and one stop event.
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view, atl::socket&) {
    std::this_thread::sleep_for(800ms);
    return verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.shutdown_timeout = shutdown_policy::timeout(200ms);
  opts.detached_connections = true;
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  client.send("busy");
  BOOST_REQUIRE(script->log->wait_for("data:busy"));
  auto started = std::chrono::steady_clock::now();
  BOOST_REQUIRE(!srv.stop());
  BOOST_CHECK(std::chrono::steady_clock::now() - started < 3000ms);
  BOOST_CHECK(client.closed_within(3000ms));
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.stop"), 1u);
  BOOST_CHECK_EQUAL(script->log->count("shutdown"), 1u);
}

BOOST_AUTO_TEST_CASE(new_connects_are_refused_at_once_while_stopping) {
  auto script = std::make_shared<probe_script>();
  script->on_shutdown = [](atl::socket& sock) {
    // Slow goodbye: the drain takes a while.
    std::this_thread::sleep_for(300ms);
    sock.send("bye");
  };
  auto& srv = start(probe_options(script));
  auto ep = address_of(srv);
  auto client = connect(srv);
  BOOST_REQUIRE(script->log->wait_for("connection"));
  auto stopping = std::async(std::launch::async, [&] { return srv.stop(); });
  BOOST_REQUIRE(script->log->wait_for("shutdown"));
  test_client late;
  BOOST_CHECK(!late.try_connect(ep));
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "bye");
  BOOST_CHECK(!stopping.get());
}

BOOST_AUTO_TEST_CASE(a_stop_answers_input_that_arrived_before_it_then_closes_with_a_fin) {
  // Regression: a stop closed connections with unread input, which makes the
  // kernel reset them: requests already sent were never answered. Here the
  // handler holds its (detached) connection on "A" until the stop is on its
  // way, so that "B", sent before the stop, sits unread in the socket when
  // the stop reaches the connection. (B goes out before the stop starts: sent
  // after it, it could arrive after the connection took the stop up, which a
  // slow machine showed once in a sanitizer run.)
  std::promise<void> release;
  auto released = release.get_future().share();
  auto script = std::make_shared<probe_script>();
  script->on_data = [released](std::string_view data, atl::socket& sock) {
    if (data == "A")
      released.wait_for(5000ms);
    sock.send(data);
    return verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.detached_connections = true;
  auto& srv = start(opts);
  auto ep = address_of(srv);
  auto client = connect(srv);
  client.send("A");
  BOOST_REQUIRE(script->log->wait_for("data:A"));
  client.send("B");
  auto stopping = std::async(std::launch::async, [&] { return srv.stop(); });
  // The listener closes first, and the connections' stop follows in the same
  // turn of the shutdown listener: once connects are refused, the stop is on
  // its way to the connection, and its handler may go on.
  auto deadline = std::chrono::steady_clock::now() + 3000ms;
  for (;;) {
    test_client probe;
    if (!probe.try_connect(ep))
      break;
    BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(2ms);
  }
  release.set_value();
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "AB");
  BOOST_CHECK(!client.was_reset());
  if (!tls_mode()) {
    // Input after the FIN is read and dropped: no reset either.
    BOOST_CHECK(client.try_send("C"));
  }
  BOOST_CHECK(!stopping.get());
  BOOST_CHECK(client.closed_within(1000ms));
  BOOST_CHECK(!client.was_reset());
  // Probing connections that got in before the listener closed end too,
  // with handle_close or handle_shutdown.
  BOOST_CHECK_EQUAL(script->log->count("data:B"), 1u);
  BOOST_CHECK_GE(script->log->count("shutdown"), 1u);
  BOOST_CHECK_EQUAL(script->log->count("shutdown") + script->log->count("close"),
                    script->log->count("connection"));
}

BOOST_AUTO_TEST_CASE(a_stop_under_ping_pong_load_answers_every_request_and_resets_nothing) {
  // Regression: a stop under load reset every connection that had a request
  // in flight. Now each client gets every answer of the requests the server
  // read, then an orderly close; at most the one request a client sent
  // while the server's FIN was on its way goes unanswered.
  auto& srv = start(probe_options(echo_script()));
  pingpong_load load{address_of(srv), 20};
  BOOST_REQUIRE(load.wait_answered(20));
  BOOST_CHECK(!srv.stop());
  BOOST_REQUIRE(wait_until([&] {
    return std::all_of(load.results().begin(), load.results().end(),
                       [](auto& r) { return r.closed || r.timed_out || r.bad_answer; });
  }));
  load.stop();
  for (auto& r : load.results()) {
    BOOST_CHECK(!r.connect_failed);
    BOOST_CHECK(r.closed);
    BOOST_CHECK(!r.timed_out);
    BOOST_CHECK(!r.bad_answer);
    BOOST_CHECK(!r.reset);
    BOOST_CHECK_LE(r.sent.load() - r.answered.load(), 1u);
  }
  BOOST_TEST_MESSAGE("answered " << load.total_answered() << " requests over 20 connections");
}

BOOST_AUTO_TEST_CASE(brutal_kill_shutdown_ends_connections_without_callbacks) {
  auto script = echo_script();
  auto opts = probe_options(script);
  opts.shutdown_timeout = shutdown_policy::brutal_kill();
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  expect_echo(client, "k");
  BOOST_REQUIRE(!srv.stop());
  BOOST_CHECK(client.closed_within(2000ms));
  BOOST_CHECK_EQUAL(script->log->count("shutdown"), 0u);
  BOOST_CHECK(rec.wait_for("atoll.connection.stop"));
}

BOOST_AUTO_TEST_CASE(an_infinite_shutdown_timeout_stops_once_the_drain_ends) {
  // Regression: an infinite drain limit reached CAF as milliseconds::max(),
  // which overflowed, and stop() failed at once with "supervisor still
  // stopping".
  for (auto policy : {shutdown_policy::infinity(),
                      shutdown_policy::timeout(std::chrono::milliseconds::max())}) {
    auto script = std::make_shared<probe_script>();
    script->on_shutdown = [](atl::socket& sock) { sock.send("bye"); };
    auto opts = probe_options(script);
    opts.shutdown_timeout = policy;
    auto& srv = start(opts);
    auto client = connect(srv);
    BOOST_REQUIRE(script->log->wait_for("connection"));
    BOOST_CHECK(!srv.stop());
    BOOST_CHECK_EQUAL(client.recv_until_closed(), "bye");
    BOOST_CHECK(srv.status() == server_status::stopped);
  }
  auto& srv = start(probe_options(echo_script()));
  BOOST_CHECK(!srv.stop(std::chrono::milliseconds::max()));
  BOOST_CHECK(srv.status() == server_status::stopped);
}

BOOST_AUTO_TEST_CASE(a_server_can_run_under_the_users_own_supervisor) {
  auto opts = probe_options(echo_script());
  auto child = make_server_child(sys, "my_server", opts);
  BOOST_REQUIRE(child);
  supervisor_flags flags;
  flags.name = "app";
  auto app = start_supervisor(sys, flags, {child->spec});
  BOOST_REQUIRE(app);
  auto client = test_client::connect(*child->handle.listener_info());
  expect_echo(client, "embedded");
  auto tree = snapshot_tree(sys, *app);
  BOOST_REQUIRE(tree);
  BOOST_CHECK(find_node(*tree, "my_server/acceptor_pool/acceptor-1/connection_sup"));
  BOOST_REQUIRE(!stop_supervisor(sys, *app));
  BOOST_CHECK(client.closed_within(2000ms));
}

// -- connection limits ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(at_the_limit_a_connection_is_held_retried_then_closed_with_spawn_error) {
  auto opts = probe_options(echo_script());
  opts.num_acceptors = 1;
  opts.num_connections = 1;
  opts.max_connections_retry_count = 2;
  opts.max_connections_retry_wait = 150ms;
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto first = connect(srv);
  expect_echo(first, "1");
  auto started = std::chrono::steady_clock::now();
  // Accepted by the kernel, held by the acceptor (over TLS too: no
  // handshake before a connection actor takes it).
  auto second = connect_tcp(srv);
  second.send("2");
  BOOST_CHECK(second.closed_within(3000ms)); // closed after 2 retries
  auto elapsed = std::chrono::steady_clock::now() - started;
  BOOST_CHECK(elapsed >= 300ms);
  BOOST_REQUIRE(rec.wait_for("atoll.acceptor.spawn_error"));
  BOOST_CHECK(!rec.named("atoll.acceptor.spawn_error").front().measurements.contains("error"));
  expect_echo(first, "first is fine");
}

BOOST_AUTO_TEST_CASE(a_held_connection_is_served_once_a_slot_frees_up) {
  auto script = echo_script();
  auto opts = probe_options(script);
  opts.num_acceptors = 1;
  opts.num_connections = 1;
  opts.max_connections_retry_count = 100;
  opts.max_connections_retry_wait = 50ms;
  auto& srv = start(opts);
  auto first = connect(srv);
  expect_echo(first, "1");
  auto second = connect_tcp(srv);
  auto connected = finish_connect_async(second); // over TLS: the handshake waits too
  if (!tls_mode()) {
    second.send("waiting");
    BOOST_CHECK(second.silent_for(200ms)); // held: its bytes sit unread
  } else {
    BOOST_CHECK(connected.wait_for(200ms) == std::future_status::timeout);
  }
  BOOST_CHECK_EQUAL(srv.info()->active_connections, 1u); // the first only
  first.close();
  BOOST_REQUIRE_MESSAGE(connected.get(), second.tls_error());
  if (tls_mode())
    second.send("waiting");
  BOOST_CHECK_EQUAL(second.recv_exact(7), "waiting");
}

BOOST_AUTO_TEST_CASE(connections_are_counted_from_their_first_reply_and_free_their_slots) {
  // The acceptor spawns connection actors itself and hands each accept
  // batch to the connection supervisor: a connection that has answered is
  // already listed, and every ended one gives its slot back.
  constexpr size_t limit = 20;
  auto opts = probe_options(echo_script());
  opts.num_acceptors = 1;
  opts.num_connections = uint32_t{limit};
  opts.max_connections_retry_count = 250;
  opts.max_connections_retry_wait = 20ms;
  auto& srv = start(opts);
  for (int round = 0; round < 3; ++round) {
    std::vector<test_client> clients;
    for (size_t i = 0; i < limit; ++i)
      clients.push_back(connect(srv)); // all queued before the first is served
    for (auto& client : clients)
      expect_echo(client, "r" + std::to_string(round));
    BOOST_CHECK_EQUAL(srv.info()->active_connections, limit);
    auto conns = srv.connections();
    BOOST_REQUIRE(conns);
    BOOST_CHECK_EQUAL(conns->size(), limit);
    auto extra = connect_tcp(srv); // over the limit: held
    auto connected = finish_connect_async(extra); // over TLS: the handshake waits too
    if (!tls_mode()) {
      extra.send("held");
      BOOST_CHECK(extra.silent_for(100ms));
    } else {
      BOOST_CHECK(connected.wait_for(100ms) == std::future_status::timeout);
    }
    BOOST_CHECK_EQUAL(srv.info()->active_connections, limit); // not the extra one
    clients.front().close();
    BOOST_REQUIRE_MESSAGE(connected.get(), extra.tls_error());
    if (tls_mode())
      extra.send("held");
    BOOST_CHECK_EQUAL(extra.recv_exact(4), "held"); // served in the freed slot
    extra.close();
    clients.clear();
    BOOST_REQUIRE(wait_until([&] { return srv.info()->active_connections == 0; }));
  }
}

// -- acceptor robustness --------------------------------------------------------------

BOOST_AUTO_TEST_CASE(acceptors_survive_per_connection_accept_errors) {
  auto injector = std::make_shared<accept_injector>();
  injector->errors = {ECONNABORTED, EINVAL, ETIMEDOUT, EPROTO, EMFILE, ENFILE};
  auto opts = probe_options(echo_script());
  opts.num_acceptors = 1;
  detail::server_options_access::set_accept_hook(opts, injector->hook());
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto before = srv.tree();
  BOOST_REQUIRE(before);
  auto acceptor_id = find_node(*before, "acceptor_pool/acceptor-1/acceptor")->id;
  auto started = std::chrono::steady_clock::now();
  auto client = connect(srv);
  expect_echo(client, "served after six accept errors");
  // EMFILE and ENFILE each pause accepting for 100 ms.
  BOOST_CHECK(std::chrono::steady_clock::now() - started >= 200ms);
  BOOST_CHECK_EQUAL(rec.count("atoll.acceptor.econnaborted"), 1u);
  BOOST_CHECK_EQUAL(rec.count("atoll.acceptor.einval"), 1u);
  BOOST_CHECK_EQUAL(rec.count("atoll.acceptor.accept_error"), 2u);
  BOOST_CHECK_EQUAL(rec.count("atoll.acceptor.emfile"), 2u);
  for (auto& ev : rec.named("atoll.acceptor.emfile"))
    BOOST_CHECK(ev.measurements.contains("error"));
  // Same acceptor, never restarted.
  auto after = srv.tree();
  BOOST_REQUIRE(after);
  auto node = find_node(*after, "acceptor_pool/acceptor-1/acceptor");
  BOOST_REQUIRE(node);
  BOOST_CHECK_EQUAL(node->id, acceptor_id);
  BOOST_CHECK_EQUAL(node->restart_count, 0u);
}

BOOST_AUTO_TEST_CASE(an_unexpected_accept_error_crashes_the_acceptor_which_restarts) {
  auto injector = std::make_shared<accept_injector>();
  injector->errors = {ENOMEM};
  auto opts = probe_options(echo_script());
  opts.num_acceptors = 1;
  detail::server_options_access::set_accept_hook(opts, injector->hook());
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  expect_echo(client, "served by the restarted acceptor");
  auto tree = srv.tree();
  BOOST_REQUIRE(tree);
  BOOST_CHECK_EQUAL(find_node(*tree, "acceptor_pool/acceptor-1/acceptor")->restart_count, 1u);
  BOOST_REQUIRE(rec.wait_for("atoll.acceptor.stop"));
  BOOST_CHECK(rec.named("atoll.acceptor.stop").front().metadata.contains("error"));
}

BOOST_AUTO_TEST_CASE(a_failing_handler_factory_closes_the_client_and_harms_nothing) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto opts = probe_options(echo_script());
  auto script = echo_script();
  opts.handler = [calls, script]() -> std::unique_ptr<atl::handler> {
    if (++*calls == 1)
      throw std::runtime_error("cannot build handler");
    return std::make_unique<probe_handler>(script);
  };
  auto& srv = start(opts);
  auto victim = connect_tcp(srv); // over TLS: closed before its handshake
  BOOST_CHECK(victim.closed_within(3000ms));
  auto fine = connect(srv);
  expect_echo(fine, "second works");
}

// -- tree robustness ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(killing_the_acceptor_pool_restarts_it_and_keeps_the_port) {
  auto& srv = start(probe_options(echo_script()));
  auto port = address_of(srv).port;
  auto before = srv.tree();
  BOOST_REQUIRE(before);
  auto listener_id = find_node(*before, "listener")->id;
  auto pool_id = find_node(*before, "acceptor_pool")->id;
  auto children = which_children(sys, srv.handle());
  BOOST_REQUIRE(children);
  for (auto& c : *children)
    if (c.id == "acceptor_pool")
      caf::anon_send_exit(c.handle, caf::exit_reason::kill);
  BOOST_REQUIRE(wait_until([&] {
    auto t = srv.tree();
    auto pool = t ? find_node(*t, "acceptor_pool") : nullptr;
    return pool && pool->running && pool->id != pool_id
           && find_node(*t, "acceptor_pool/acceptor-4/acceptor")
           && find_node(*t, "acceptor_pool/acceptor-4/acceptor")->running;
  }));
  auto after = srv.tree();
  BOOST_CHECK_EQUAL(find_node(*after, "listener")->id, listener_id);
  BOOST_CHECK_EQUAL(address_of(srv).port, port);
  BOOST_CHECK(srv.status() == server_status::running);
  auto client = connect(srv);
  expect_echo(client, "after the pool died");
}

BOOST_AUTO_TEST_CASE(killing_the_listener_restarts_it_and_the_pool_behind_it) {
  auto& srv = start(probe_options(echo_script()));
  auto old_port = address_of(srv).port;
  auto before = srv.tree();
  auto listener_id = find_node(*before, "listener")->id;
  auto children = which_children(sys, srv.handle());
  for (auto& c : *children)
    if (c.id == "listener")
      caf::anon_send_exit(c.handle, caf::exit_reason::kill);
  BOOST_REQUIRE(wait_until([&] {
    auto t = srv.tree();
    auto l = t ? find_node(*t, "listener") : nullptr;
    auto a = t ? find_node(*t, "acceptor_pool/acceptor-1/acceptor") : nullptr;
    return l && l->running && l->id != listener_id && a && a->running
           && static_cast<bool>(srv.listener_info());
  }));
  auto ep = address_of(srv);
  BOOST_CHECK_NE(ep.port, old_port); // port 0: re-bound to a new port
  auto client = test_client::connect(ep);
  expect_echo(client, "after the listener died");
}

BOOST_AUTO_TEST_CASE(the_tree_snapshot_shows_thousand_islands_roles) {
  auto opts = probe_options(echo_script());
  opts.num_acceptors = 2;
  opts.name = "echo";
  auto& srv = start(opts);
  auto tree = srv.tree();
  BOOST_REQUIRE(tree);
  BOOST_TEST_MESSAGE("server tree:\n" << format_tree(*tree));
  BOOST_CHECK_EQUAL(tree->role, "echo");
  BOOST_REQUIRE_EQUAL(tree->children.size(), 3u);
  BOOST_CHECK_EQUAL(tree->children[0].role, "listener");
  BOOST_CHECK(tree->children[0].restart == restart_type::transient);
  BOOST_CHECK_EQUAL(tree->children[1].role, "acceptor_pool");
  BOOST_CHECK_EQUAL(tree->children[2].role, "shutdown_listener");
  BOOST_CHECK_EQUAL(tree->children[1].children.size(), 2u);
  auto group = find_node(*tree, "acceptor_pool/acceptor-2");
  BOOST_REQUIRE(group);
  BOOST_REQUIRE_EQUAL(group->children.size(), 2u);
  BOOST_CHECK_EQUAL(group->children[0].role, "connection_sup");
  BOOST_CHECK_EQUAL(group->children[1].role, "acceptor");
  // Connections show up under their connection supervisor.
  std::vector<test_client> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connect(srv));
    expect_echo(clients.back(), "t");
  }
  auto with_conns = srv.tree();
  size_t conns = 0;
  for (auto g : {"acceptor_pool/acceptor-1/connection_sup",
                 "acceptor_pool/acceptor-2/connection_sup"})
    conns += find_node(*with_conns, g)->children.size();
  BOOST_CHECK_EQUAL(conns, 4u);
}

// -- listener and acceptor telemetry ------------------------------------------------

BOOST_AUTO_TEST_CASE(listener_and_acceptor_spans_carry_their_fields) {
  telemetry_recorder rec{bus};
  auto opts = probe_options(echo_script());
  opts.num_acceptors = 2;
  auto& srv = start(opts);
  auto ep = address_of(srv);
  BOOST_REQUIRE(rec.wait_for("atoll.acceptor.start", 2));
  auto lstart = rec.named("atoll.listener.start");
  BOOST_REQUIRE_EQUAL(lstart.size(), 1u);
  auto& lmeta = lstart[0].metadata;
  BOOST_CHECK_EQUAL(lmeta.get_or<std::string>("local_address", ""), "127.0.0.1");
  BOOST_CHECK_EQUAL(lmeta.get_or<uint64_t>("local_port", 0), ep.port);
  BOOST_CHECK_EQUAL(lmeta.get_or<std::string>("transport_module", ""),
                    tls_mode() ? "tls" : "tcp");
  BOOST_CHECK(lmeta.get_or<std::string>("transport_options", "").find("backlog=1024")
              != std::string::npos);
  auto listener_ctx = lmeta.get_or<uint64_t>("telemetry_span_context", 0);
  BOOST_CHECK_NE(listener_ctx, 0u);
  for (auto& ev : rec.named("atoll.acceptor.start"))
    BOOST_CHECK_EQUAL(ev.metadata.get_or<uint64_t>("parent_telemetry_span_context", 0),
                      listener_ctx);
  std::vector<test_client> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connect(srv));
    expect_echo(clients.back(), "c");
  }
  clients.clear();
  BOOST_REQUIRE(!srv.stop());
  BOOST_REQUIRE(rec.wait_for("atoll.listener.stop"));
  BOOST_REQUIRE(rec.wait_for("atoll.acceptor.stop", 2));
  uint64_t accepted = 0;
  for (auto& ev : rec.named("atoll.acceptor.stop")) {
    accepted += ev.measurements.get_or<uint64_t>("connections", 0);
    BOOST_CHECK(ev.measurements.contains("duration"));
    BOOST_CHECK(!ev.metadata.contains("error"));
  }
  BOOST_CHECK_EQUAL(accepted, 3u);
  auto lstop = rec.named("atoll.listener.stop").front();
  BOOST_CHECK_EQUAL(lstop.metadata.get_or<uint64_t>("local_port", 0), ep.port);
  BOOST_CHECK_GE(lstop.measurements.get_or<int64_t>("duration", -1), 0);
}

BOOST_AUTO_TEST_SUITE_END()
