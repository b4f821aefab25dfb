// The UDP server (Abyss's role) driven by real UDP clients on loopback:
// echo, lifetimes and callback order, drops (size, rate), suspend/resume,
// stop with a goodbye, telemetry, the tree, and option validation.
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <optional>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "atoll/all.hpp"
#include "atoll/handlers/detail/udp_session.hpp"
#include "support/test_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

/// A blocking UDP client bound to `source` (any free port).
class udp_client {
public:
  explicit udp_client(const char* source = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(fd_ >= 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &sin.sin_addr);
    BOOST_REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0);
    timeval tv{0, 200000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }

  udp_client(const udp_client&) = delete;
  udp_client& operator=(const udp_client&) = delete;

  ~udp_client() {
    ::close(fd_);
  }

  void send(const endpoint& to, const std::string& data) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(to.port);
    ::inet_pton(AF_INET, to.address.c_str(), &sin.sin_addr);
    auto n =
        ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
    BOOST_REQUIRE_EQUAL(n, static_cast<ssize_t>(data.size()));
  }

  /// The next datagram, or nullopt after `timeout` without one.
  std::optional<std::string> recv(std::chrono::milliseconds timeout = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string buf(70000, '\0');
    while (std::chrono::steady_clock::now() < deadline) {
      auto n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n >= 0) {
        buf.resize(static_cast<size_t>(n));
        return buf;
      }
    }
    return std::nullopt;
  }

  uint16_t port() const {
    sockaddr_in sin{};
    socklen_t len = sizeof(sin);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len);
    return ntohs(sin.sin_port);
  }

private:
  int fd_ = -1;
};

class echo_handler : public udp_handler {
public:
  verdict handle_data(std::string_view data, socket& sock) override {
    static_cast<void>(sock.send(data));
    return verdict::proceed();
  }
};

/// Records every callback with the actor's id, and echoes "<n>:<data>"
/// where n counts the datagrams this handler object saw.
class recording_handler : public udp_handler {
public:
  explicit recording_handler(std::shared_ptr<event_log> log) : log_(std::move(log)) {}

  verdict handle_connection(socket&) override {
    log_->add(tag("connection"));
    return verdict::proceed();
  }

  verdict handle_data(std::string_view data, socket& sock) override {
    ++seen_;
    log_->add(tag("data"));
    static_cast<void>(sock.send(std::to_string(seen_) + ":" + std::string{data}));
    if (data == "close")
      return verdict::close();
    if (data == "throw")
      throw std::runtime_error("boom");
    if (data == "hold")
      return verdict::hold(); // TCP only: ends a UDP handler
    return verdict::proceed();
  }

  void handle_close(socket&) override {
    log_->add(tag("close"));
  }

  void handle_timeout(socket& sock) override {
    log_->add(tag("timeout"));
    static_cast<void>(sock.send("timeout"));
  }

  void handle_shutdown(socket& sock) override {
    log_->add(tag("shutdown"));
    static_cast<void>(sock.send("bye"));
  }

  void handle_error(const caf::error& reason, socket&) override {
    log_->add(tag(reason == errc::handler_exception        ? "error:exception"
                  : reason == errc::unsupported_operation ? "error:unsupported"
                                                          : "error"));
  }

  /// "seen": how many datagrams this object handled; "raise": throws.
  caf::message_handler message_handlers(socket&) override {
    return {
        [this](const std::string& what) -> int {
          if (what == "raise")
            throw std::runtime_error("message boom");
          return seen_;
        },
    };
  }

private:
  std::string tag(const char* what) const {
    auto* s = self();
    return std::string{what} + "@" + (s ? std::to_string(s->id()) : std::string{"?"});
  }

  std::shared_ptr<event_log> log_;
  int seen_ = 0;
};

/// The callbacks of `log` without the actor ids.
std::vector<std::string> names(const event_log& log) {
  std::vector<std::string> out;
  for (auto& e : log.entries())
    out.push_back(e.substr(0, e.find('@')));
  return out;
}

/// The actor id of entry `i`.
std::string actor_of(const event_log& log, size_t i) {
  auto e = log.entries().at(i);
  return e.substr(e.find('@') + 1);
}

udp_server_options loopback_options() {
  udp_server_options opts;
  opts.port = 0;
  opts.address = bind_address::loopback();
  opts.num_listeners = 2;
  opts.telemetry = std::make_shared<telemetry::bus>();
  return opts;
}

struct udp_fixture : system_fixture {
  std::optional<udp_server> srv;
  endpoint where;

  void start(udp_server_options opts) {
    auto s = start_udp_server(sys, std::move(opts));
    BOOST_REQUIRE_MESSAGE(s, (s ? std::string{} : describe(s.error())));
    srv = *s;
    auto ep = srv->listener_info();
    BOOST_REQUIRE(ep);
    where = *ep;
  }

  ~udp_fixture() {
    if (srv)
      BOOST_CHECK(!srv->stop(10s));
  }
};

/// Collects telemetry events as "name" strings with selected fields.
struct event_recorder {
  std::shared_ptr<telemetry::bus> bus;
  telemetry::subscription sub;
  std::mutex mtx;
  std::vector<telemetry::event> events;

  explicit event_recorder(std::shared_ptr<telemetry::bus> b,
                          telemetry::event_name prefix = {"atoll", "udp"},
                          telemetry::delivery mode = telemetry::delivery::every_event)
    : bus(std::move(b)) {
    sub = bus->attach(
        std::move(prefix),
        [this](const telemetry::event& ev) {
          std::lock_guard<std::mutex> guard{mtx};
          events.push_back(ev);
        },
        mode);
  }

  ~event_recorder() {
    bus->detach(sub);
  }

  std::vector<telemetry::event> named(const std::string& name) {
    std::lock_guard<std::mutex> guard{mtx};
    std::vector<telemetry::event> out;
    for (auto& ev : events)
      if (telemetry::to_string(ev.name) == name)
        out.push_back(ev);
    return out;
  }
};

/// Answers later, from a mailbox message: the per-datagram actor waits for
/// it because the verdict asks to (`proceed(timeout)`).
class deferred_handler : public udp_handler {
public:
  explicit deferred_handler(std::shared_ptr<event_log> log) : log_(std::move(log)) {}

  verdict handle_data(std::string_view data, socket&) override {
    auto delay = data == "never" ? 500ms : 50ms;
    self()->delayed_send(self(), delay, std::string{data});
    if (data == "never")
      return verdict::proceed(100ms); // the answer comes too late
    return verdict::proceed(2s);
  }

  caf::message_handler message_handlers(socket& sock) override {
    return {
        [this, &sock](std::string& s) {
          static_cast<void>(sock.send("later:" + s));
          apply(verdict::close());
        },
    };
  }

  void handle_close(socket&) override {
    log_->add("close");
  }

  void handle_timeout(socket&) override {
    log_->add("timeout");
  }

private:
  std::shared_ptr<event_log> log_;
};

/// Sends itself a message from `handle_connection` and one from
/// `handle_data` (both before its actor runs), waits for them, and answers
/// with what arrived, in order.
class self_messaging_handler : public udp_handler {
public:
  verdict handle_connection(socket&) override {
    self()->send(self(), std::string{"early"});
    return verdict::proceed();
  }

  verdict handle_data(std::string_view data, socket&) override {
    self()->send(self(), "data:" + std::string{data});
    return verdict::proceed(2s);
  }

  caf::message_handler message_handlers(socket& sock) override {
    return {
        [this, &sock](std::string& s) {
          seen_ += (seen_.empty() ? "" : ",") + s;
          if (s.rfind("data:", 0) == 0) {
            static_cast<void>(sock.send(seen_));
            apply(verdict::close());
          }
        },
    };
  }

private:
  std::string seen_;
};

/// Echoes with a count of its callbacks; never asks for its actor.
class actorless_handler : public udp_handler {
public:
  explicit actorless_handler(std::shared_ptr<event_log> log) : log_(std::move(log)) {}

  verdict handle_connection(socket&) override {
    ++calls_;
    return verdict::proceed();
  }

  verdict handle_data(std::string_view data, socket& sock) override {
    ++calls_;
    static_cast<void>(sock.send(std::to_string(calls_) + ":" + std::string{data}));
    return verdict::proceed();
  }

  void handle_close(socket&) override {
    log_->add("close:" + std::to_string(++calls_));
  }

private:
  std::shared_ptr<event_log> log_;
  int calls_ = 0;
};

/// Answers "<data>-1", "<data>-2", "<data>-3", then tries a reply too large
/// for UDP (65,508 bytes: not batched, so its error comes back at once) and
/// says whether it failed: "<data>-big:error" or "<data>-big:sent".
class three_replies_handler : public udp_handler {
public:
  verdict handle_data(std::string_view data, socket& sock) override {
    std::string d{data};
    for (int i = 1; i <= 3; ++i)
      if (auto err = sock.send(d + "-" + std::to_string(i)))
        return verdict::error(err);
    auto big = sock.send(std::string(65'508, 'x'));
    static_cast<void>(sock.send(d + (big ? "-big:error" : "-big:sent")));
    return verdict::proceed();
  }
};

/// Answers with the address the datagram was sent to and the socket's
/// receive buffer size.
class destination_handler : public udp_handler {
public:
  verdict handle_data(std::string_view, socket& sock) override {
    auto recbuf = sock.getopt(socket_option::recbuf);
    auto bad = sock.getopt(socket_option::nodelay); // a TCP option: an error
    static_cast<void>(sock.send(sock.destination().value_or("none") + " " +
                                std::to_string(recbuf ? *recbuf : -1) + " " +
                                (bad ? "nodelay?" : "no-nodelay")));
    return verdict::proceed();
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(udp_server_suite, atl::test::fd_leak_check)

BOOST_FIXTURE_TEST_CASE(echoes_every_size_from_many_source_ports, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.max_packet_size = 9000;
  start(opts);
  BOOST_CHECK_EQUAL(where.address, "127.0.0.1");
  BOOST_CHECK(where.port != 0);
  for (size_t size : {size_t{0}, size_t{1}, size_t{64}, size_t{1472}, size_t{8999}, size_t{9000}}) {
    udp_client c;
    std::string payload(size, 'x');
    for (size_t i = 0; i < size; ++i)
      payload[i] = static_cast<char>('a' + (i * 7 + size) % 26);
    c.send(where, payload);
    auto got = c.recv();
    BOOST_REQUIRE_MESSAGE(got, "no echo for " << size << " bytes");
    BOOST_CHECK(*got == payload);
  }
  // 20 clients at once, 5 datagrams each: all echoed to the right sender.
  std::vector<std::unique_ptr<udp_client>> clients;
  for (int i = 0; i < 20; ++i)
    clients.push_back(std::make_unique<udp_client>());
  for (int round = 0; round < 5; ++round)
    for (size_t i = 0; i < clients.size(); ++i)
      clients[i]->send(where, std::to_string(i) + "/" + std::to_string(round));
  for (size_t i = 0; i < clients.size(); ++i) {
    std::multiset<std::string> got;
    for (int round = 0; round < 5; ++round) {
      auto d = clients[i]->recv();
      BOOST_REQUIRE(d);
      got.insert(*d);
    }
    for (int round = 0; round < 5; ++round)
      BOOST_CHECK_EQUAL(got.count(std::to_string(i) + "/" + std::to_string(round)), 1u);
  }
  auto s = srv->stats();
  BOOST_CHECK_EQUAL(s.received, 6u + 100u);
  BOOST_CHECK_EQUAL(s.too_large + s.rate_limited + s.spawn_failed, 0u);
}

BOOST_FIXTURE_TEST_CASE(batched_replies_arrive_complete_and_in_order, udp_fixture) {
  for (auto lifetime : {udp_lifetime::per_datagram, udp_lifetime::per_peer}) {
    BOOST_TEST_CONTEXT("lifetime " << to_string(lifetime)) {
      auto opts = loopback_options();
      opts.set_handler<three_replies_handler>();
      opts.lifetime = lifetime;
      event_recorder rec{opts.telemetry};
      start(opts);
      // 30 clients at once, 3 datagrams each: the handlers of many peers
      // run back-to-back on a worker, so their replies share sendmmsg calls.
      std::vector<std::unique_ptr<udp_client>> clients;
      for (int i = 0; i < 30; ++i)
        clients.push_back(std::make_unique<udp_client>());
      for (int round = 0; round < 3; ++round)
        for (size_t i = 0; i < clients.size(); ++i)
          clients[i]->send(where, std::to_string(i) + "." + std::to_string(round));
      for (size_t i = 0; i < clients.size(); ++i) {
        std::vector<std::string> got;
        for (int k = 0; k < 12; ++k)
          got.push_back(clients[i]->recv().value_or("(none)"));
        // Each datagram's four replies in order. With per_peer, one actor
        // answers the client's datagrams one after the other: all twelve
        // in order. With per_datagram, each datagram has its own actor and
        // two of them may run at once on two workers: their replies may
        // interleave, but each actor's stay in order.
        std::map<std::string, std::vector<std::string>> by_datagram;
        for (auto& reply : got)
          by_datagram[reply.substr(0, reply.rfind('-'))].push_back(reply);
        BOOST_CHECK_EQUAL(by_datagram.size(), 3u);
        std::vector<std::string> all_in_order;
        for (int round = 0; round < 3; ++round) {
          auto prefix = std::to_string(i) + "." + std::to_string(round);
          std::vector<std::string> expected{prefix + "-1", prefix + "-2", prefix + "-3",
                                            prefix + "-big:error"};
          auto& seen = by_datagram[prefix];
          BOOST_CHECK_EQUAL_COLLECTIONS(seen.begin(), seen.end(), expected.begin(),
                                        expected.end());
          all_in_order.insert(all_in_order.end(), expected.begin(), expected.end());
        }
        if (lifetime == udp_lifetime::per_peer)
          BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), all_in_order.begin(),
                                        all_in_order.end());
        BOOST_CHECK(!clients[i]->recv(50ms)); // nothing more
      }
      // The oversized reply failed at once: a send_error event, and it is
      // not counted as sent.
      BOOST_CHECK(wait_until([&] {
        return rec.named("atoll.udp.connection.send_error").size() == 90u;
      }));
      BOOST_CHECK_EQUAL(rec.named("atoll.udp.connection.send").size(), 360u);
      BOOST_REQUIRE(!srv->stop(10s));
      srv.reset();
    }
  }
}

BOOST_AUTO_TEST_CASE(flushes_that_never_wait_leave_nothing_queued_and_keep_each_senders_order) {
  // Eight threads queue datagrams on one socket and flush without waiting,
  // as the scheduler workers do: a flush that finds another in progress
  // returns at once and leaves its datagrams to that one. Nothing may stay
  // queued once every thread is done, and each thread's datagrams leave in
  // the order it queued them.
  auto where = bind_address::parse("127.0.0.1");
  BOOST_REQUIRE(where);
  udp_options rx_opts;
  rx_opts.recbuf = 1 << 20;
  auto rx = datagram_socket::open(*where, 0, rx_opts);
  BOOST_REQUIRE(rx);
  auto tx = datagram_socket::open(*where, 0, udp_options{});
  BOOST_REQUIRE(tx);
  auto to = udp_peer::from((*rx)->local());
  BOOST_REQUIRE(to);
  constexpr int threads = 8;
  constexpr int per_thread = 400;
  constexpr uint64_t total = threads * per_thread;
  std::atomic<int> queue_errors{0};
  std::atomic<int> running{threads};
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t)
    senders.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        if ((*tx)->queue_send(*to, std::to_string(t) + ":" + std::to_string(i)))
          ++queue_errors;
        static_cast<void>((*tx)->try_flush_queued());
      }
      --running;
    });
  // Received while they send (the receive buffer need not hold them all);
  // a datagram the kernel drops (a full receive buffer) is only missing,
  // never out of order.
  std::map<int, std::vector<int>> got; // thread -> sequence numbers in arrival order
  datagram_batch batch{64, 64};
  auto drain = [&] {
    for (;;) {
      auto n = (*rx)->receive(batch);
      BOOST_REQUIRE(n);
      if (*n == 0)
        return;
      for (size_t k = 0; k < *n; ++k) {
        auto text = std::string{batch.data(k)};
        auto colon = text.find(':');
        got[std::stoi(text.substr(0, colon))].push_back(std::stoi(text.substr(colon + 1)));
      }
    }
  };
  while (running.load() > 0) {
    drain();
    std::this_thread::yield();
  }
  for (auto& th : senders)
    th.join();
  // Every datagram left, with no flush after the threads ended.
  BOOST_CHECK_EQUAL(queue_errors.load(), 0);
  BOOST_CHECK_EQUAL((*tx)->stats().send_cnt, total);
  BOOST_CHECK_EQUAL((*tx)->flush_queued(), 0u);
  // Takes in what is still in flight (less than all if the kernel dropped
  // some for a full receive buffer).
  static_cast<void>(wait_until(
      [&] {
        drain();
        size_t n = 0;
        for (auto& entry : got)
          n += entry.second.size();
        return n == total;
      },
      1s));
  size_t received = 0;
  for (int t = 0; t < threads; ++t) {
    auto& seq = got[t];
    received += seq.size();
    BOOST_TEST_CONTEXT("thread " << t) {
      BOOST_CHECK(std::is_sorted(seq.begin(), seq.end()));
      BOOST_CHECK(std::adjacent_find(seq.begin(), seq.end()) == seq.end()); // no duplicate
    }
  }
  BOOST_TEST_MESSAGE("received " << received << " of " << total);
  BOOST_CHECK_GT(received, 0u);
}

BOOST_FIXTURE_TEST_CASE(drops_oversized_datagrams_and_reports_their_size, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.max_packet_size = 100;
  event_recorder rec{opts.telemetry};
  start(opts);
  udp_client c;
  c.send(where, std::string(101, 'a'));
  c.send(where, std::string(5000, 'b'));
  c.send(where, std::string(100, 'c'));
  auto got = c.recv();
  BOOST_REQUIRE(got);
  BOOST_CHECK_EQUAL(*got, std::string(100, 'c')); // the only one answered
  BOOST_CHECK(!c.recv(300ms));
  BOOST_CHECK(wait_until([&] { return srv->stats().too_large == 2; }));
  auto events = rec.named("atoll.udp.listener.packet_too_large");
  BOOST_REQUIRE_EQUAL(events.size(), 2u);
  std::set<uint64_t> sizes;
  for (auto& ev : events) {
    sizes.insert(ev.metadata.get_or<uint64_t>("packet_size", 0));
    BOOST_CHECK_EQUAL(ev.metadata.get_or<std::string>("remote_address", ""), "127.0.0.1");
    BOOST_CHECK_EQUAL(ev.metadata.get_or<uint64_t>("remote_port", 0), c.port());
  }
  BOOST_CHECK((sizes == std::set<uint64_t>{101, 5000}));
}

BOOST_FIXTURE_TEST_CASE(rate_limit_passes_exactly_n_per_source_ip, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.rate_limit_enabled = true;
  opts.rate_limit_max_packets = 5;
  opts.rate_limit_window = 60s; // no refill during the test
  event_recorder rec{opts.telemetry};
  start(opts);
  udp_client a;
  for (int i = 0; i < 8; ++i)
    a.send(where, "a" + std::to_string(i));
  std::set<std::string> got;
  while (auto d = a.recv(500ms))
    got.insert(*d);
  BOOST_CHECK_EQUAL(got.size(), 5u);
  // Another port of the same IP shares the bucket: nothing passes.
  udp_client a2;
  a2.send(where, "same ip");
  BOOST_CHECK(!a2.recv(300ms));
  // Another IP has its own bucket.
  udp_client b{"127.0.0.2"};
  b.send(where, "other ip");
  auto d = b.recv();
  BOOST_REQUIRE(d);
  BOOST_CHECK_EQUAL(*d, "other ip");
  BOOST_CHECK(wait_until([&] { return srv->stats().rate_limited == 4; }));
  auto s = srv->stats();
  BOOST_REQUIRE(s.rate_limit);
  BOOST_CHECK_EQUAL(s.rate_limit->allowed, 6u);
  BOOST_CHECK_EQUAL(s.rate_limit->dropped, 4u);
  auto events = rec.named("atoll.udp.listener.rate_limit_exceeded");
  BOOST_REQUIRE_EQUAL(events.size(), 4u);
  BOOST_CHECK_EQUAL(events[0].metadata.get_or<std::string>("remote_address", ""), "127.0.0.1");
  // Raising the limit at run time lets the source send again.
  BOOST_CHECK(srv->set_rate_limit(5, 1ms) == caf::none);
  BOOST_CHECK(wait_until([&] {
    a.send(where, "again");
    return a.recv(100ms).has_value();
  }));
  BOOST_CHECK(srv->set_rate_limit(0, 1s) == errc::invalid_option);
}

BOOST_FIXTURE_TEST_CASE(per_datagram_actor_ends_after_its_datagram, udp_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<recording_handler>(log);
  start(opts);
  udp_client c;
  c.send(where, "one");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "1:one");
  c.send(where, "two");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "1:two"); // a fresh handler object
  BOOST_REQUIRE(log->wait_for_size(6));
  BOOST_CHECK((names(*log) == std::vector<std::string>{"connection", "data", "close", "connection",
                                                       "data", "close"}));
  BOOST_CHECK(actor_of(*log, 0) != actor_of(*log, 3));
  BOOST_CHECK(wait_until([&] { return srv->connections()->empty(); }));
}

BOOST_FIXTURE_TEST_CASE(the_inspector_lists_a_udp_server_and_its_handlers_records, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.handler_name = "udp-echo";
  opts.lifetime = udp_lifetime::per_peer;
  opts.read_timeout = 10s;
  start(opts);
  auto insp = spawn_local_inspector(sys);
  caf::scoped_actor self{sys};
  auto root = caf::actor_cast<udp_server_actor>(srv->handle());
  bool added = false;
  self->request(insp, 5s, add_server_atom::value, std::string{"dns"}, root)
      .receive([&](caf::ok_atom) { added = true; },
               [&](caf::error& err) { BOOST_ERROR(describe(err)); });
  BOOST_REQUIRE(added);
  udp_client c;
  c.send(where, "hello");
  BOOST_REQUIRE_EQUAL(c.recv().value_or("-"), "hello");
  std::vector<inspected_server> servers;
  self->request(insp, 5s, servers_atom::value)
      .receive([&](std::vector<inspected_server>& xs) { servers = std::move(xs); },
               [&](caf::error& err) { BOOST_ERROR(describe(err)); });
  BOOST_REQUIRE_EQUAL(servers.size(), 1u);
  BOOST_CHECK_EQUAL(servers[0].name, "dns");
  BOOST_CHECK(servers[0].info.status == server_status::running);
  BOOST_CHECK_EQUAL(servers[0].info.active_connections, 1u);
  std::vector<connection_record> records;
  self->request(insp, 5s, connections_atom::value, std::string{"dns"})
      .receive([&](std::vector<connection_record>& xs) { records = std::move(xs); },
               [&](caf::error& err) { BOOST_ERROR(describe(err)); });
  BOOST_REQUIRE_EQUAL(records.size(), 1u);
  BOOST_CHECK_EQUAL(records[0].peer.port, c.port());
  BOOST_CHECK_EQUAL(records[0].handler, "udp-echo");
  BOOST_CHECK_EQUAL(records[0].transport, "udp");
  BOOST_CHECK_EQUAL(records[0].recv_oct, 5u);
  BOOST_CHECK_EQUAL(records[0].send_oct, 5u);
  // The tree shows the record as the handler node's details.
  tree_node tree;
  self->request(insp, 5s, tree_atom::value, std::string{"dns"})
    .receive([&](tree_node& t) { tree = std::move(t); },
             [&](caf::error& err) { BOOST_ERROR(describe(err)); });
  const tree_node* handler_node = nullptr;
  for (auto& child : tree.children)
    if (child.role == "connection_sup" && child.children.size() == 1)
      handler_node = &child.children[0];
  BOOST_REQUIRE(handler_node != nullptr);
  BOOST_CHECK_EQUAL(handler_node->role, "handler");
  std::string peer_detail;
  for (auto& d : handler_node->details)
    if (d.key == "peer")
      peer_detail = d.value;
  BOOST_CHECK_EQUAL(peer_detail, "127.0.0.1:" + std::to_string(c.port()));
  // The record's handle reaches the handler actor: it is the live one.
  caf::actor_addr seen;
  self->monitor(records[0].handle);
  caf::anon_send_exit(records[0].handle, caf::exit_reason::kill);
  self->receive([&](caf::down_msg& msg) { seen = msg.source; });
  BOOST_CHECK(seen == records[0].handle.address());
  BOOST_CHECK(wait_until([&] { return srv->connections()->empty(); }));
  caf::anon_send_exit(insp, caf::exit_reason::user_shutdown);
}

BOOST_FIXTURE_TEST_CASE(per_peer_actor_serves_one_peer_until_silence, udp_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<recording_handler>(log);
  opts.lifetime = udp_lifetime::per_peer;
  // Long enough for every exchange below under a sanitizer on a loaded
  // machine: a peer's actor must not time out before the silence.
  opts.read_timeout = 2000ms;
  start(opts);
  udp_client c;
  udp_client other;
  for (int i = 1; i <= 3; ++i) {
    c.send(where, "m" + std::to_string(i));
    BOOST_CHECK_EQUAL(c.recv().value_or("-"), std::to_string(i) + ":m" + std::to_string(i));
  }
  other.send(where, "x");
  BOOST_CHECK_EQUAL(other.recv().value_or("-"), "1:x");
  BOOST_CHECK_EQUAL(srv->stats().peers, 2u);
  // Each peer's actor reports its record: peer, address, datagrams and
  // bytes each way (c: 3 datagrams of 2 bytes in, 3 replies of 4 out).
  auto records = srv->connections();
  BOOST_REQUIRE(records);
  BOOST_REQUIRE_EQUAL(records->size(), 2u);
  auto of_peer = [&](uint16_t port) -> const connection_record* {
    for (auto& r : *records)
      if (r.peer.port == port)
        return &r;
    return nullptr;
  };
  auto rc = of_peer(c.port());
  BOOST_REQUIRE(rc != nullptr);
  BOOST_CHECK(rc->handle);
  BOOST_CHECK_EQUAL(rc->peer.address, "127.0.0.1");
  BOOST_CHECK_EQUAL(rc->local.port, where.port);
  BOOST_CHECK_EQUAL(rc->transport, "udp");
  BOOST_CHECK(rc->state == connection_state::open);
  BOOST_CHECK_EQUAL(rc->recv_cnt, 3u);
  BOOST_CHECK_EQUAL(rc->recv_oct, 6u);
  BOOST_CHECK_EQUAL(rc->send_cnt, 3u);
  BOOST_CHECK_EQUAL(rc->send_oct, 12u);
  BOOST_CHECK(rc->age > 0ns);
  auto ro = of_peer(other.port());
  BOOST_REQUIRE(ro != nullptr);
  BOOST_CHECK_EQUAL(ro->recv_cnt, 1u);
  BOOST_CHECK_EQUAL(ro->send_oct, 3u);
  // Silence: each actor times out (its handler still sends), then ends.
  BOOST_CHECK_EQUAL(c.recv(6000ms).value_or("-"), "timeout");
  BOOST_CHECK_EQUAL(other.recv(6000ms).value_or("-"), "timeout");
  BOOST_CHECK(wait_until([&] { return srv->connections()->empty(); }));
  BOOST_CHECK_EQUAL(srv->stats().peers, 0u);
  // All of c's callbacks ran in one actor, in order.
  std::vector<std::string> of_c;
  auto first = actor_of(*log, 0);
  for (size_t i = 0; i < log->size(); ++i)
    if (actor_of(*log, i) == first)
      of_c.push_back(names(*log)[i]);
  BOOST_CHECK((of_c == std::vector<std::string>{"connection", "data", "data", "data", "timeout"}));
  // The next datagram starts a new actor.
  c.send(where, "again");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "1:again");
}

BOOST_FIXTURE_TEST_CASE(close_verdict_and_exceptions_end_one_actor_only, udp_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<recording_handler>(log);
  opts.lifetime = udp_lifetime::per_peer;
  start(opts);
  udp_client c;
  udp_client bystander;
  bystander.send(where, "hi");
  BOOST_CHECK_EQUAL(bystander.recv().value_or("-"), "1:hi");
  c.send(where, "close");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "1:close");
  BOOST_REQUIRE(log->wait_for_size(5));
  c.send(where, "throw");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "1:throw");
  BOOST_REQUIRE(wait_until([&] {
    auto n = names(*log);
    return std::count(n.begin(), n.end(), "error:exception") == 1;
  }));
  // The bystander's actor (the same one) still counts its datagrams.
  bystander.send(where, "still");
  BOOST_CHECK_EQUAL(bystander.recv().value_or("-"), "2:still");
  auto n = names(*log);
  BOOST_CHECK_EQUAL(std::count(n.begin(), n.end(), "close"), 1);
}

BOOST_FIXTURE_TEST_CASE(a_hold_verdict_ends_a_udp_handler_as_unsupported, udp_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<recording_handler>(log);
  opts.lifetime = udp_lifetime::per_peer;
  start(opts);
  udp_client c;
  c.send(where, "hold");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "1:hold");
  BOOST_REQUIRE(wait_until([&] {
    auto n = names(*log);
    return std::count(n.begin(), n.end(), "error:unsupported") == 1;
  }));
  // That peer's next datagram gets a fresh handler actor.
  c.send(where, "again");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "1:again");
}

BOOST_FIXTURE_TEST_CASE(suspend_stops_receiving_and_frees_the_port, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.port = 0;
  start(opts);
  udp_client c;
  c.send(where, "before");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "before");
  BOOST_REQUIRE(srv->suspend() == caf::none);
  BOOST_CHECK(srv->status() == server_status::suspended);
  BOOST_CHECK(srv->listener_info().error() == errc::suspended);
  c.send(where, "while suspended");
  BOOST_CHECK(!c.recv(300ms));
  BOOST_REQUIRE(srv->resume() == caf::none);
  BOOST_CHECK(srv->status() == server_status::running);
  auto again = srv->listener_info();
  BOOST_REQUIRE(again);
  c.send(*again, "after");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "after");
}

BOOST_FIXTURE_TEST_CASE(suspended_port_can_be_bound_by_others, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  start(opts);
  auto port = where.port;
  BOOST_REQUIRE(srv->suspend() == caf::none);
  auto other = datagram_socket::open(bind_address::loopback(), port, udp_options{});
  BOOST_CHECK_MESSAGE(other, "the port stayed bound while suspended");
  if (other)
    (*other)->close();
  BOOST_CHECK(srv->resume() == caf::none);
}

BOOST_FIXTURE_TEST_CASE(port_in_use_fails_the_start_clearly, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  start(opts);
  auto second = loopback_options();
  second.set_handler<echo_handler>();
  second.port = where.port;
  auto s = start_udp_server(sys, second);
  BOOST_REQUIRE(!s);
  BOOST_CHECK(s.error() == errc::address_in_use);
  // The first one still answers.
  udp_client c;
  c.send(where, "ok");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "ok");
}

BOOST_FIXTURE_TEST_CASE(stop_sends_a_goodbye_through_handle_shutdown, system_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<recording_handler>(log);
  opts.lifetime = udp_lifetime::per_peer;
  opts.read_timeout = infinite;
  auto srv = start_udp_server(sys, opts);
  BOOST_REQUIRE(srv);
  auto where = *srv->listener_info();
  udp_client c;
  c.send(where, "hello");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "1:hello");
  BOOST_REQUIRE(srv->stop(10s) == caf::none);
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "bye");
  BOOST_CHECK((names(*log) == std::vector<std::string>{"connection", "data", "shutdown"}));
  BOOST_CHECK(srv->status() == server_status::stopped);
  // Stopped: nothing answers any more.
  c.send(where, "late");
  BOOST_CHECK(!c.recv(300ms));
}

BOOST_FIXTURE_TEST_CASE(telemetry_spans_carry_the_seed_fields, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.num_listeners = 1;
  event_recorder rec{opts.telemetry};
  start(opts);
  udp_client c;
  c.send(where, "ping");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "ping");
  BOOST_REQUIRE(wait_until([&] { return rec.named("atoll.udp.connection.stop").size() == 1; }));
  auto lstart = rec.named("atoll.udp.listener.start");
  BOOST_REQUIRE_EQUAL(lstart.size(), 1u);
  BOOST_CHECK_EQUAL(lstart[0].metadata.get_or<std::string>("local_address", ""), "127.0.0.1");
  BOOST_CHECK_EQUAL(lstart[0].metadata.get_or<uint64_t>("local_port", 0), where.port);
  BOOST_CHECK_EQUAL(lstart[0].metadata.get_or<std::string>("transport_module", ""), "udp");
  BOOST_CHECK_EQUAL(rec.named("atoll.udp.listener.ready").size(), 1u);
  auto cstart = rec.named("atoll.udp.connection.start");
  BOOST_REQUIRE_EQUAL(cstart.size(), 1u);
  BOOST_CHECK_EQUAL(cstart[0].metadata.get_or<std::string>("remote_address", ""), "127.0.0.1");
  BOOST_CHECK_EQUAL(cstart[0].metadata.get_or<uint64_t>("remote_port", 0), c.port());
  // Abyss's acceptor span: a child of the listener's, the parent of the
  // connection's; its stop counts the datagrams handed to handlers.
  auto astart = rec.named("atoll.udp.acceptor.start");
  BOOST_REQUIRE_EQUAL(astart.size(), 1u);
  BOOST_CHECK_EQUAL(astart[0].metadata.get_or<uint64_t>("parent_telemetry_span_context", 0),
                    lstart[0].metadata.get_or<uint64_t>("telemetry_span_context", 1));
  BOOST_CHECK_EQUAL(cstart[0].metadata.get_or<uint64_t>("parent_telemetry_span_context", 0),
                    astart[0].metadata.get_or<uint64_t>("telemetry_span_context", 1));
  auto recv = rec.named("atoll.udp.connection.recv");
  BOOST_REQUIRE_EQUAL(recv.size(), 1u);
  BOOST_CHECK_EQUAL(recv[0].measurements.get_or<std::string>("data", ""), "ping");
  BOOST_CHECK_EQUAL(rec.named("atoll.udp.connection.send").size(), 1u);
  auto cstop = rec.named("atoll.udp.connection.stop");
  BOOST_CHECK_EQUAL(cstop[0].measurements.get_or<uint64_t>("recv_cnt", 0), 1u);
  BOOST_CHECK_EQUAL(cstop[0].measurements.get_or<uint64_t>("recv_oct", 0), 4u);
  BOOST_CHECK_EQUAL(cstop[0].measurements.get_or<uint64_t>("send_cnt", 0), 1u);
  BOOST_CHECK_EQUAL(cstop[0].measurements.get_or<uint64_t>("send_oct", 0), 4u);
  BOOST_CHECK_EQUAL(cstop[0].metadata.get_or<std::string>("reason", ""), "local_closed");
  BOOST_CHECK(cstop[0].measurements.contains("duration"));
  // The acceptor span ends with its listener.
  BOOST_REQUIRE(!srv->stop(10s));
  BOOST_REQUIRE(wait_until([&] { return rec.named("atoll.udp.acceptor.stop").size() == 1; }));
  auto astop = rec.named("atoll.udp.acceptor.stop");
  BOOST_CHECK_EQUAL(astop[0].measurements.get_or<uint64_t>("connections", 0), 1u);
  BOOST_CHECK(!astop[0].metadata.contains("error"));
  BOOST_CHECK_EQUAL(astop[0].metadata.get_or<uint64_t>("telemetry_span_context", 0),
                    astart[0].metadata.get_or<uint64_t>("telemetry_span_context", 1));
}

/// Sends each datagram to the broadcast address (refused by the kernel
/// without SO_BROADCAST), then tells the peer the outcome.
class broadcast_refused_handler : public udp_handler {
public:
  verdict handle_data(std::string_view data, socket& sock) override {
    auto err = sock.send_to(endpoint{endpoint::family_type::ipv4, "255.255.255.255", 9}, data);
    static_cast<void>(sock.send(err ? "refused" : "sent"));
    return verdict::close();
  }
};

BOOST_FIXTURE_TEST_CASE(a_failed_send_emits_send_error_with_the_data_and_the_error, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<broadcast_refused_handler>();
  opts.num_listeners = 1;
  event_recorder rec{opts.telemetry};
  start(opts);
  udp_client c;
  c.send(where, "ping");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "refused");
  BOOST_REQUIRE(wait_until([&] { return rec.named("atoll.udp.connection.stop").size() == 1; }));
  auto failed = rec.named("atoll.udp.connection.send_error");
  BOOST_REQUIRE_EQUAL(failed.size(), 1u);
  BOOST_CHECK_EQUAL(failed[0].measurements.get_or<std::string>("data", ""), "ping");
  auto error = failed[0].measurements.get_or<std::string>("error", "");
  BOOST_CHECK_MESSAGE(error.find("sendto: Permission denied") != std::string::npos, error);
  BOOST_CHECK_EQUAL(failed[0].metadata.get_or<uint64_t>("telemetry_span_context", 0),
                    rec.named("atoll.udp.connection.start")
                      .front()
                      .metadata.get_or<uint64_t>("telemetry_span_context", 1));
  // Only the answer counts as sent.
  auto sent = rec.named("atoll.udp.connection.send");
  BOOST_REQUIRE_EQUAL(sent.size(), 1u);
  BOOST_CHECK_EQUAL(sent[0].measurements.get_or<std::string>("data", ""), "refused");
  auto stop = rec.named("atoll.udp.connection.stop");
  BOOST_CHECK_EQUAL(stop[0].measurements.get_or<uint64_t>("send_cnt", 0), 1u);
  BOOST_CHECK_EQUAL(stop[0].measurements.get_or<uint64_t>("send_oct", 0), 7u);
}

BOOST_FIXTURE_TEST_CASE(tree_shows_the_abyss_roles, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.rate_limit_enabled = true;
  opts.num_listeners = 3;
  opts.name = "dns";
  start(opts);
  auto tree = srv->tree();
  BOOST_REQUIRE(tree);
  BOOST_CHECK_EQUAL(tree->role, "dns");
  std::vector<std::string> ids;
  for (auto& child : tree->children)
    ids.push_back(child.role);
  BOOST_CHECK((ids == std::vector<std::string>{"rate_limiter", "connection_sup", "listener_pool",
                                               "shutdown_listener"}));
  BOOST_CHECK_EQUAL(tree->children[2].children.size(), 3u);
}

BOOST_FIXTURE_TEST_CASE(limit_reached_drops_after_the_retries, udp_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<recording_handler>(log);
  opts.lifetime = udp_lifetime::per_peer;
  opts.read_timeout = infinite;
  opts.num_connections = 1;
  opts.max_connections_retry_count = 1;
  opts.max_connections_retry_wait = 50ms;
  event_recorder rec{opts.telemetry};
  start(opts);
  udp_client a;
  udp_client b;
  a.send(where, "a");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "1:a");
  b.send(where, "b");
  BOOST_CHECK(!b.recv(500ms));
  BOOST_CHECK(wait_until([&] { return srv->stats().spawn_failed == 1; }));
  BOOST_CHECK_EQUAL(rec.named("atoll.udp.acceptor.spawn_error").size(), 1u);
  // a keeps its actor.
  a.send(where, "a2");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "2:a2");
}

/// Answers "held:<data>" and keeps its per-datagram actor waiting for
/// mailbox messages that never come (until the stop).
class holding_handler : public udp_handler {
public:
  explicit holding_handler(std::shared_ptr<event_log> log) : log_(std::move(log)) {}

  verdict handle_data(std::string_view data, socket& sock) override {
    static_cast<void>(sock.send("held:" + std::string{data}));
    return verdict::proceed(infinite);
  }

  void handle_shutdown(socket&) override {
    log_->add("shutdown");
  }

private:
  std::shared_ptr<event_log> log_;
};

BOOST_FIXTURE_TEST_CASE(a_killed_connection_supervisor_restarts_with_the_listeners_behind_it,
                        udp_fixture) {
  // rest_for_one: the connection supervisor and what follows it (the
  // listener pool, the shutdown listener) start again; the handler actors of
  // the killed one end, and new ones join the new supervisor.
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<holding_handler>(log);
  start(opts);
  udp_client first;
  first.send(where, "a");
  BOOST_REQUIRE_EQUAL(first.recv().value_or("-"), "held:a");
  std::vector<connection_record> records;
  BOOST_REQUIRE(wait_until([&] {
    auto c = srv->connections();
    if (c)
      records = *c;
    return records.size() == 1;
  }));
  auto held = records[0].handle;
  auto ids = [&] {
    std::map<std::string, caf::actor_id> m;
    if (auto t = srv->tree())
      for (auto& c : t->children)
        m[c.role] = c.running ? c.id : 0;
    return m;
  };
  auto before = ids();
  BOOST_REQUIRE_NE(before["connection_sup"], 0u);
  caf::scoped_actor self{sys};
  self->monitor(held);
  auto children = which_children(sys, srv->handle());
  BOOST_REQUIRE(children);
  for (auto& c : *children)
    if (c.id == "connection_sup")
      caf::anon_send_exit(c.handle, caf::exit_reason::kill);
  bool ended = false;
  self->receive([&](caf::down_msg&) { ended = true; },
                caf::after(5s) >> [] { BOOST_ERROR("the killed supervisor's handler still runs"); });
  BOOST_CHECK(ended);
  BOOST_REQUIRE(wait_until([&] {
    auto now = ids();
    return now["connection_sup"] != 0 && now["connection_sup"] != before["connection_sup"]
           && now["listener_pool"] != 0 && now["listener_pool"] != before["listener_pool"]
           && now["shutdown_listener"] != 0
           && now["shutdown_listener"] != before["shutdown_listener"]
           && static_cast<bool>(srv->listener_info());
  }));
  where = *srv->listener_info();
  udp_client second;
  second.send(where, "b");
  BOOST_CHECK_EQUAL(second.recv().value_or("-"), "held:b");
  BOOST_CHECK(wait_until([&] {
    auto c = srv->connections();
    return c && c->size() == 1 && (*c)[0].peer.port == second.port();
  }));
  BOOST_CHECK(srv->status() == server_status::running);
}

BOOST_FIXTURE_TEST_CASE(a_burst_of_datagrams_never_runs_more_actors_than_the_limit,
                        system_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<holding_handler>(log);
  opts.num_listeners = 2;
  opts.num_connections = 3;
  opts.max_connections_retry_count = 0;
  auto srv = start_udp_server(sys, opts);
  BOOST_REQUIRE(srv);
  auto where = *srv->listener_info();
  std::vector<std::unique_ptr<udp_client>> clients;
  for (int i = 0; i < 10; ++i)
    clients.push_back(std::make_unique<udp_client>());
  for (int i = 0; i < 10; ++i)
    clients[i]->send(where, "q" + std::to_string(i));
  BOOST_CHECK(wait_until([&] { return srv->stats().spawn_failed == 7; }));
  BOOST_CHECK(wait_until([&] { return srv->connections()->size() == 3; }));
  size_t answered = 0;
  for (int i = 0; i < 10; ++i)
    if (auto reply = clients[i]->recv(200ms)) {
      BOOST_CHECK_EQUAL(*reply, "held:q" + std::to_string(i));
      ++answered;
    }
  BOOST_CHECK_EQUAL(answered, 3u);
  auto tree = srv->tree();
  BOOST_REQUIRE(tree);
  BOOST_CHECK_EQUAL(tree->children[0].role, "connection_sup");
  BOOST_CHECK_EQUAL(tree->children[0].children.size(), 3u);
  BOOST_CHECK_EQUAL(srv->stats().spawn_failed, 7u); // still: nothing retried
  // The stop reaches every held actor through its supervisor.
  BOOST_REQUIRE(srv->stop(10s) == caf::none);
  BOOST_CHECK_EQUAL(log->count("shutdown"), 3u);
}

BOOST_FIXTURE_TEST_CASE(a_handler_actor_whose_supervisor_is_gone_ends_as_in_a_stop,
                        system_fixture) {
  // A handler actor that outlives its first run asks the supervisor it was
  // spawned for to adopt it; here that supervisor has already ended.
  auto log = std::make_shared<event_log>();
  auto sock = datagram_socket::open(bind_address::loopback(), 0, udp_options{});
  BOOST_REQUIRE(sock);
  udp_client client;
  endpoint client_ep;
  client_ep.address = "127.0.0.1";
  client_ep.port = client.port();
  auto peer = udp_peer::from(client_ep);
  BOOST_REQUIRE(peer);
  auto conf = std::make_shared<detail::udp_session_config>();
  conf->factory = [log] { return std::make_unique<holding_handler>(log); };
  conf->handler_name = "holding_handler";
  conf->events = std::make_shared<telemetry::bus>();
  conf->span_prefix = std::make_shared<const telemetry::event_name>(
      telemetry::event_name{"atoll", "udp", "connection"});
  conf->slots = std::make_shared<detail::session_slots>(std::nullopt);
  auto gone = sys.spawn([]() -> caf::behavior { return {[](int) {}}; });
  {
    caf::scoped_actor self{sys};
    self->monitor(gone);
    caf::anon_send_exit(gone, caf::exit_reason::kill);
    self->receive([](caf::down_msg&) {});
  }
  detail::udp_hand_off h;
  h.sock = std::move(*sock);
  h.peer = *peer;
  h.first.data = "q";
  h.first.received_at = telemetry::monotonic_time();
  BOOST_REQUIRE(conf->slots->try_take());
  h.holds_slot = true;
  h.adopter = gone;
  auto spawned = std::make_shared<caf::actor>();
  caf::actor handler;
  {
    caf::scoped_actor self{sys};
    auto parent = sys.spawn([conf, h, spawned](caf::event_based_actor* p) {
      *spawned = spawn_udp_session(p, conf, h);
    });
    self->monitor(parent);
    self->receive([](caf::down_msg&) {}); // the parent ends after its spawn
    handler = *spawned;
  }
  BOOST_REQUIRE(handler);
  BOOST_CHECK_EQUAL(client.recv().value_or("-"), "held:q");
  caf::scoped_actor self{sys};
  self->monitor(handler);
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(5s) >> [] { BOOST_FAIL("the orphaned handler actor still runs"); });
  BOOST_CHECK(reason == caf::exit_reason::user_shutdown);
  BOOST_CHECK((log->entries() == std::vector<std::string>{"shutdown"}));
  BOOST_CHECK_EQUAL(conf->slots->in_use(), 0u);
}

BOOST_FIXTURE_TEST_CASE(every_bad_option_is_named, system_fixture) {
  auto check = [this](const char* what, auto mutate) {
    auto opts = loopback_options();
    opts.set_handler<echo_handler>();
    mutate(opts);
    auto s = start_udp_server(sys, opts);
    BOOST_REQUIRE_MESSAGE(!s, what << " was accepted");
    BOOST_CHECK_MESSAGE(describe(s.error()).find(what) != std::string::npos,
                        describe(s.error()) << " does not name " << what);
  };
  check("port", [](auto& o) { o.port = 70000; });
  check("num_listeners", [](auto& o) { o.num_listeners = 0; });
  check("num_listeners", [](auto& o) { o.num_listeners = 10001; });
  check("num_connections", [](auto& o) { o.num_connections = 0; });
  check("read_timeout", [](auto& o) { o.read_timeout = 0ms; });
  check("rate_limit_max_packets", [](auto& o) { o.rate_limit_max_packets = 0; });
  check("rate_limit_window_ms", [](auto& o) { o.rate_limit_window = 0ms; });
  check("max_packet_size", [](auto& o) { o.max_packet_size = 0; });
  check("max_packet_size", [](auto& o) { o.max_packet_size = 65536; });
  check("transport.recbuf", [](auto& o) { o.transport.recbuf = -1; });
  check("transport.multicast_ttl", [](auto& o) { o.transport.multicast_ttl = 256; });
  check("transport.multicast_if", [](auto& o) { o.transport.multicast_if = "nope"; });
  check("transport.membership", [](auto& o) { o.transport.membership = {"10.0.0.1"}; });
  check("address", [](auto& o) { o.address = bind_address::local("/tmp/x.sock"); });
  auto none = loopback_options();
  auto s = start_udp_server(sys, none);
  BOOST_REQUIRE(!s);
  BOOST_CHECK(s.error() == errc::missing_option);
}

BOOST_FIXTURE_TEST_CASE(per_datagram_actor_waits_for_mailbox_messages_on_request, udp_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<deferred_handler>(log);
  start(opts);
  udp_client c;
  c.send(where, "q1");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "later:q1");
  BOOST_REQUIRE(log->wait_for("close"));
  c.send(where, "never");
  BOOST_CHECK(!c.recv(300ms)); // the 100 ms wait ended first: no late answer
  BOOST_REQUIRE(log->wait_for("timeout"));
  BOOST_CHECK((log->entries() == std::vector<std::string>{"close", "timeout"}));
}

BOOST_FIXTURE_TEST_CASE(a_per_datagram_handler_that_never_asks_for_its_actor_gets_none,
                        udp_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<actorless_handler>(log);
  event_recorder rec{opts.telemetry, {"atoll", "udp", "connection"}};
  start(opts);
  auto before = sys.latest_actor_id();
  udp_client c;
  for (int i = 0; i < 20; ++i) {
    c.send(where, "d" + std::to_string(i));
    BOOST_CHECK_EQUAL(c.recv().value_or("-"), "2:d" + std::to_string(i)); // a fresh object each
  }
  BOOST_REQUIRE(log->wait_for_size(20));
  BOOST_CHECK_EQUAL(log->count("close:3"), 20u);
  // Ran in the listeners: not one actor was made for the 20 datagrams.
  BOOST_CHECK_EQUAL(sys.latest_actor_id(), before);
  // Each still has its connection span, with the seed's fields.
  BOOST_REQUIRE(wait_until([&] { return rec.named("atoll.udp.connection.stop").size() == 20; }));
  auto starts = rec.named("atoll.udp.connection.start");
  BOOST_REQUIRE_EQUAL(starts.size(), 20u);
  BOOST_CHECK_EQUAL(starts[0].metadata.get_or<std::string>("remote_address", ""), "127.0.0.1");
  BOOST_CHECK_EQUAL(starts[0].metadata.get_or<uint64_t>("remote_port", 0), c.port());
  auto stop = rec.named("atoll.udp.connection.stop")[0];
  BOOST_CHECK_EQUAL(stop.metadata.get_or<std::string>("reason", ""), "local_closed");
  BOOST_CHECK_EQUAL(stop.measurements.get_or<uint64_t>("recv_cnt", 0), 1u);
  BOOST_CHECK_EQUAL(stop.measurements.get_or<uint64_t>("send_cnt", 0), 1u);
  BOOST_CHECK(wait_until([&] { return srv->connections()->empty(); }));
}

BOOST_FIXTURE_TEST_CASE(messages_a_handler_sends_itself_before_its_actor_runs_reach_it,
                        udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<self_messaging_handler>();
  start(opts);
  udp_client c;
  for (int i = 0; i < 5; ++i) {
    auto q = "q" + std::to_string(i);
    c.send(where, q);
    BOOST_CHECK_EQUAL(c.recv().value_or("-"), "early,data:" + q);
  }
  BOOST_CHECK(wait_until([&] { return srv->connections()->empty(); }));
}

BOOST_FIXTURE_TEST_CASE(multicast_group_members_receive, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.address = bind_address::any();
  opts.transport.membership = {"239.255.0.9"};
  opts.transport.multicast_if = "127.0.0.1";
  opts.transport.reuseaddr = true;
  start(opts);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  in_addr ifaddr{};
  ::inet_pton(AF_INET, "127.0.0.1", &ifaddr);
  ::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr));
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in group{};
  group.sin_family = AF_INET;
  group.sin_port = htons(where.port);
  ::inet_pton(AF_INET, "239.255.0.9", &group.sin_addr);
  std::string msg = "to the group";
  BOOST_CHECK(::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&group),
                       sizeof(group)) == static_cast<ssize_t>(msg.size()));
  char buf[64] = {};
  auto n = ::recv(fd, buf, sizeof(buf), 0);
  ::close(fd);
  BOOST_REQUIRE(n > 0);
  BOOST_CHECK_EQUAL(std::string(buf, static_cast<size_t>(n)), msg);
}

/// Whether the kernel lists the IPv6 group `hex` (32 hex digits) as joined
/// on interface `ifname` (/proc/net/igmp6: index, name, group, users, ...).
static bool kernel_lists_ipv6_group(const std::string& ifname, const std::string& hex) {
  std::ifstream in{"/proc/net/igmp6"};
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields{line};
    std::string index, name, group;
    fields >> index >> name >> group;
    if (name == ifname && group == hex)
      return true;
  }
  return false;
}

BOOST_AUTO_TEST_CASE(ipv6_multicast_groups_are_joined_and_left) {
  fd_leak_check fds;
  // (This machine's loopback carries no IPv6 multicast route, so the test
  // asks the kernel's membership table instead of sending to the group.)
  const std::string hex = "ff1500000000000000000000a7a70119"; // ff15::a7a7:119
  udp_options opts;
  opts.membership = {"ff15::a7a7:119%lo"};
  opts.multicast_ttl = 3;
  opts.multicast_loop = true;
  BOOST_REQUIRE(!kernel_lists_ipv6_group("lo", hex));
  {
    auto sock = datagram_socket::open(bind_address::any6(), 0, opts);
    BOOST_REQUIRE_MESSAGE(sock, "open: " << (sock ? "" : describe(sock.error())));
    BOOST_CHECK(kernel_lists_ipv6_group("lo", hex));
    BOOST_CHECK(!(*sock)->leave_group("ff15::a7a7:119", "lo"));
    BOOST_CHECK(!kernel_lists_ipv6_group("lo", hex));
    // Joined at run time, on the interface given by number (lo is 1).
    BOOST_CHECK(!(*sock)->join_group("ff15::a7a7:119", "1"));
    BOOST_CHECK(kernel_lists_ipv6_group("lo", hex));
    // An IPv4 interface address means nothing to an IPv6 group.
    BOOST_CHECK((*sock)->join_group("ff15::a7a7:11a", "127.0.0.1") == errc::invalid_address);
  }
  BOOST_CHECK(!kernel_lists_ipv6_group("lo", hex)); // closing left it
  // An IPv6 group on an IPv4 socket, and bad groups: clear errors.
  auto v4 = datagram_socket::open(bind_address::loopback(), 0, udp_options{});
  BOOST_REQUIRE(v4);
  auto err = (*v4)->join_group("ff15::a7a7:119");
  BOOST_CHECK(err == errc::invalid_address);
  BOOST_CHECK_MESSAGE(describe(err).find("IPv6 address") != std::string::npos, describe(err));
  for (auto bad : {"ff15::zz", "2001:db8::1", "ff15::1%nosuch0", "10.0.0.1"}) {
    udp_options o;
    o.membership = {bad};
    auto verdict = validate(o);
    BOOST_CHECK_MESSAGE(verdict == errc::invalid_option, bad);
    BOOST_CHECK_MESSAGE(describe(verdict).find(bad) != std::string::npos, describe(verdict));
  }
}

BOOST_FIXTURE_TEST_CASE(send_recv_asks_and_waits_for_the_answer, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  start(opts);
  auto answer = send_recv(where, "question", 2s);
  BOOST_REQUIRE(answer);
  BOOST_CHECK_EQUAL(*answer, "question");
  // Nobody answers on a port of our own that we never read.
  auto silent = datagram_socket::open(bind_address::loopback(), 0, udp_options{});
  BOOST_REQUIRE(silent);
  auto t0 = std::chrono::steady_clock::now();
  auto none = send_recv((*silent)->local(), "hello?", 200ms);
  BOOST_CHECK(!none && none.error() == errc::timeout);
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 >= 200ms);
  (*silent)->close();
}

BOOST_FIXTURE_TEST_CASE(each_listener_gets_its_own_socket_with_reuseport, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.num_listeners = 4;
  opts.transport.reuseport = true;
  start(opts);
  std::vector<std::unique_ptr<udp_client>> clients;
  for (int i = 0; i < 16; ++i)
    clients.push_back(std::make_unique<udp_client>());
  for (auto& c : clients)
    c->send(where, "r");
  for (auto& c : clients)
    BOOST_CHECK_EQUAL(c->recv().value_or("-"), "r");
  auto tree = srv->tree();
  BOOST_REQUIRE(tree);
  BOOST_CHECK_EQUAL(tree->children[1].children.size(), 4u);
}

/// One listener running one `recording_handler` for every datagram.
static udp_server_options in_listener_options(std::shared_ptr<event_log> log) {
  auto opts = loopback_options();
  opts.set_handler<recording_handler>(std::move(log));
  opts.lifetime = udp_lifetime::in_listener;
  opts.num_listeners = 1;
  return opts;
}

BOOST_FIXTURE_TEST_CASE(in_listener_handlers_answer_every_sender_and_survive_exceptions,
                        udp_fixture) {
  auto log = std::make_shared<event_log>();
  start(in_listener_options(log));
  BOOST_REQUIRE(log->wait_for_size(1)); // handle_connection when the listener starts
  udp_client a;
  udp_client b;
  a.send(where, "x");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "1:x");
  b.send(where, "y");
  BOOST_CHECK_EQUAL(b.recv().value_or("-"), "2:y"); // one handler object, each sender answered
  a.send(where, "throw");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "3:throw"); // sent before the exception
  BOOST_REQUIRE(wait_until([&] {
    auto n = names(*log);
    return std::count(n.begin(), n.end(), "error:exception") == 1;
  }));
  b.send(where, "z");
  BOOST_CHECK_EQUAL(b.recv().value_or("-"), "1:z"); // a fresh handler object took over
  BOOST_CHECK(srv->connections()->empty());         // no actor per datagram
  BOOST_REQUIRE(srv->stop(10s) == caf::none);
  srv.reset();
  auto n = names(*log);
  BOOST_CHECK_EQUAL(n.back(), "shutdown");
  BOOST_CHECK_EQUAL(std::count(n.begin(), n.end(), "connection"), 2);
}

BOOST_FIXTURE_TEST_CASE(in_listener_message_handlers_are_the_current_handler_objects,
                        udp_fixture) {
  auto log = std::make_shared<event_log>();
  start(in_listener_options(log));
  auto pool = child_of(sys, srv->handle(), "listener_pool");
  auto listener = child_of(sys, pool, "listener_0");
  BOOST_REQUIRE(listener);
  caf::scoped_actor self{sys};
  auto seen = [&](const caf::actor& who) {
    int n = -1;
    self->request(who, 5s, std::string{"seen"})
        .receive([&](int x) { n = x; }, [&](caf::error& err) { BOOST_ERROR(describe(err)); });
    return n;
  };
  auto errors = [&] {
    auto n = names(*log);
    return std::count(n.begin(), n.end(), "error:exception");
  };
  udp_client a;
  a.send(where, "x");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "1:x");
  BOOST_CHECK_EQUAL(seen(listener), 1);
  a.send(where, "throw");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "2:throw");
  BOOST_REQUIRE(wait_until([&] { return errors() == 1; }));
  // The fresh object answers; the old one (and its handlers) is gone.
  BOOST_CHECK_EQUAL(seen(listener), 0);
  a.send(where, "y");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "1:y");
  BOOST_CHECK_EQUAL(seen(listener), 1);
  // An exception in a message handler: handle_error runs, the listener
  // ends and the pool starts a fresh one that serves the same port.
  self->send(listener, std::string{"raise"});
  BOOST_REQUIRE(wait_until([&] { return errors() == 2; }));
  caf::actor fresh;
  BOOST_REQUIRE(wait_until([&] {
    fresh = child_of(sys, pool, "listener_0");
    return fresh && fresh != listener;
  }));
  a.send(where, "z");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "1:z");
  BOOST_CHECK_EQUAL(seen(fresh), 1);
  auto n = names(*log);
  BOOST_CHECK_EQUAL(std::count(n.begin(), n.end(), "close"), 0); // handle_error, not close
}

BOOST_FIXTURE_TEST_CASE(in_listener_handlers_get_a_connection_span_per_datagram_when_watched,
                        udp_fixture) {
  auto opts = in_listener_options(std::make_shared<event_log>());
  event_recorder rec{opts.telemetry};
  start(opts);
  udp_client a;
  a.send(where, "x");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "1:x");
  a.send(where, "throw");
  BOOST_CHECK_EQUAL(a.recv().value_or("-"), "2:throw");
  BOOST_REQUIRE(wait_until([&] { return rec.named("atoll.udp.connection.stop").size() == 2; }));
  auto starts = rec.named("atoll.udp.connection.start");
  auto stops = rec.named("atoll.udp.connection.stop");
  auto acceptor = rec.named("atoll.udp.acceptor.start");
  BOOST_REQUIRE_EQUAL(starts.size(), 2u);
  BOOST_REQUIRE_EQUAL(acceptor.size(), 1u);
  for (size_t i = 0; i < 2; ++i) {
    BOOST_CHECK_EQUAL(starts[i].metadata.get_or<uint64_t>("remote_port", 0), a.port());
    BOOST_CHECK_EQUAL(starts[i].metadata.get_or<uint64_t>("parent_telemetry_span_context", 0),
                      acceptor[0].metadata.get_or<uint64_t>("telemetry_span_context", 1));
    BOOST_CHECK_EQUAL(stops[i].metadata.get_or<uint64_t>("telemetry_span_context", 0),
                      starts[i].metadata.get_or<uint64_t>("telemetry_span_context", 1));
    // This datagram's figures, not the handler object's running totals.
    BOOST_CHECK_EQUAL(stops[i].measurements.get_or<uint64_t>("recv_cnt", 0), 1u);
    BOOST_CHECK_EQUAL(stops[i].measurements.get_or<uint64_t>("send_cnt", 0), 1u);
  }
  BOOST_CHECK_EQUAL(stops[0].measurements.get_or<uint64_t>("recv_oct", 0), 1u);
  BOOST_CHECK_EQUAL(stops[0].measurements.get_or<uint64_t>("send_oct", 0), 3u);
  BOOST_CHECK_EQUAL(stops[0].metadata.get_or<std::string>("reason", ""), "local_closed");
  BOOST_CHECK(!stops[0].metadata.contains("error"));
  BOOST_CHECK_EQUAL(stops[1].metadata.get_or<std::string>("reason", ""), "exception");
  BOOST_CHECK(stops[1].metadata.contains("error"));
  auto recvs = rec.named("atoll.udp.connection.recv");
  BOOST_REQUIRE_EQUAL(recvs.size(), 2u);
  BOOST_CHECK_EQUAL(recvs[1].measurements.get_or<std::string>("data", ""), "throw");
  auto sends = rec.named("atoll.udp.connection.send");
  BOOST_REQUIRE_EQUAL(sends.size(), 2u);
  BOOST_CHECK_EQUAL(sends[0].measurements.get_or<std::string>("data", ""), "1:x");
}

BOOST_FIXTURE_TEST_CASE(in_listener_metrics_count_every_datagram_from_summaries_without_spans,
                        udp_fixture) {
  auto opts = in_listener_options(std::make_shared<event_log>());
  server_metrics metrics{opts.telemetry};
  // Subscribers that accept summaries, like the metrics: no span is made
  // for them; the listener reports `handled` per receive batch instead.
  event_recorder counted{opts.telemetry, {"atoll", "udp", "connection"},
                         telemetry::delivery::summaries};
  event_recorder handled{opts.telemetry, {"atoll", "udp", "listener", "handled"}};
  auto sessions = [&] {
    uint64_t n = 0;
    for (auto& ev : handled.named("atoll.udp.listener.handled"))
      n += ev.measurements.get_or<uint64_t>("sessions", 0);
    return n;
  };
  start(opts);
  udp_client a;
  auto ask = [&](const std::string& what) {
    a.send(where, what);
    return a.recv().value_or("-");
  };
  BOOST_CHECK_EQUAL(ask("x"), "1:x");
  BOOST_CHECK_EQUAL(ask("yy"), "2:yy");
  // The summary follows the replies; the recorders see it one after the other.
  BOOST_REQUIRE(wait_until([&] { return sessions() == 2; }));
  BOOST_REQUIRE(wait_until([&] { return metrics.snapshot().udp_handlers_started == 2; }));
  auto m = metrics.snapshot();
  BOOST_CHECK_EQUAL(m.udp_handlers_active, 0u);
  BOOST_CHECK_EQUAL(m.bytes_received, 3u);
  BOOST_CHECK_EQUAL(m.packets_received, 2u);
  BOOST_CHECK_EQUAL(m.bytes_sent, 7u); // "1:x", "2:yy"
  BOOST_CHECK_EQUAL(m.packets_sent, 2u);
  BOOST_CHECK_EQUAL(sessions(), 2u);
  BOOST_CHECK(counted.named("atoll.udp.connection.start").empty());
  for (auto& ev : handled.named("atoll.udp.listener.handled"))
    BOOST_CHECK_NE(ev.metadata.get_or<uint64_t>("telemetry_span_context", 0), 0u);
  {
    // A subscriber that wants every event: a span per datagram again, and
    // the metrics count each datagram once (from its span).
    event_recorder detailed{opts.telemetry, {"atoll", "udp", "connection"}};
    BOOST_CHECK_EQUAL(ask("z"), "3:z");
    BOOST_REQUIRE(wait_until([&] { return metrics.snapshot().udp_handlers_started == 3; }));
    BOOST_CHECK_EQUAL(detailed.named("atoll.udp.connection.stop").size(), 1u);
    BOOST_CHECK_EQUAL(counted.named("atoll.udp.connection.stop").size(), 1u);
  }
  BOOST_CHECK_EQUAL(ask("w"), "4:w");
  BOOST_REQUIRE(wait_until([&] { return sessions() == 3; }));
  BOOST_REQUIRE(wait_until([&] { return metrics.snapshot().udp_handlers_started == 4; }));
  m = metrics.snapshot();
  BOOST_CHECK_EQUAL(counted.named("atoll.udp.connection.start").size(), 1u);
  BOOST_CHECK_EQUAL(m.bytes_received, 5u);
  BOOST_CHECK_EQUAL(m.packets_sent, 4u);
}

BOOST_FIXTURE_TEST_CASE(per_peer_sessions_report_their_traffic_while_they_run, udp_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<recording_handler>(log);
  opts.lifetime = udp_lifetime::per_peer;
  opts.read_timeout = 60s;
  server_metrics metrics{opts.telemetry};
  event_recorder reports{opts.telemetry, {"atoll", "udp", "connection", "progress"}};
  auto count = [&] { return reports.named("atoll.udp.connection.progress").size(); };
  start(opts);
  udp_client c;
  c.send(where, "m1");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "1:m1");
  // No further datagram: the session's timer brings its first report, a
  // second after its start, while it runs.
  BOOST_REQUIRE(wait_until([&] { return count() == 1; }));
  auto m = metrics.snapshot();
  BOOST_CHECK_EQUAL(m.udp_handlers_active, 1u);
  BOOST_CHECK_EQUAL(m.bytes_received, 2u);
  BOOST_CHECK_EQUAL(m.packets_received, 1u);
  BOOST_CHECK_EQUAL(m.bytes_sent, 4u); // "1:m1"
  BOOST_CHECK_EQUAL(m.packets_sent, 1u);
  c.send(where, "m2");
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "2:m2");
  BOOST_REQUIRE(wait_until([&] { return count() == 2; }));
  auto last = reports.named("atoll.udp.connection.progress").back();
  BOOST_CHECK_EQUAL(last.measurements.get_or<uint64_t>("recv_oct", 0), 4u);
  BOOST_CHECK_EQUAL(last.measurements.get_or<uint64_t>("send_cnt", 0), 2u);
  BOOST_CHECK_EQUAL(metrics.snapshot().bytes_received, 4u);
  // The stop adds what the reports did not (the "bye" of handle_shutdown),
  // and nothing twice.
  BOOST_CHECK(!srv->stop(10s));
  BOOST_CHECK_EQUAL(c.recv().value_or("-"), "bye");
  m = metrics.snapshot();
  BOOST_CHECK_EQUAL(m.udp_handlers_active, 0u);
  BOOST_CHECK_EQUAL(m.bytes_received, 4u);
  BOOST_CHECK_EQUAL(m.bytes_sent, 11u);
  BOOST_CHECK_EQUAL(m.packets_sent, 3u);
  BOOST_CHECK_EQUAL(m.packets_received, 2u);
  BOOST_CHECK_EQUAL(count(), 2u);
}

BOOST_FIXTURE_TEST_CASE(metrics_count_udp_handlers_and_drops, udp_fixture) {
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  opts.max_packet_size = 10;
  opts.rate_limit_enabled = true;
  opts.rate_limit_max_packets = 2;
  opts.rate_limit_window = 60s;
  server_metrics metrics{opts.telemetry};
  start(opts);
  udp_client c;
  c.send(where, std::string(11, 'x')); // too large
  c.send(where, "one");
  c.send(where, "two");
  c.send(where, "three"); // over the limit
  BOOST_CHECK_EQUAL(c.recv().value_or("-").size(), 3u);
  BOOST_CHECK_EQUAL(c.recv().value_or("-").size(), 3u);
  BOOST_REQUIRE(wait_until([&] {
    auto m = metrics.snapshot();
    return m.udp_handlers_started == 2 && m.udp_handlers_active == 0 &&
           m.datagrams_dropped["rate_limited"] == 1;
  }));
  auto m = metrics.snapshot();
  BOOST_CHECK_EQUAL(m.datagrams_dropped["too_large"], 1u);
  BOOST_CHECK_EQUAL(m.datagrams_dropped["no_handler"], 0u);
  BOOST_CHECK_EQUAL(m.bytes_received, 6u);
  BOOST_CHECK_EQUAL(m.packets_sent, 2u);
  auto text = to_prometheus_text(m);
  BOOST_CHECK_MESSAGE(text.find("atoll_datagrams_dropped_total{reason=\"rate_limited\"} 1") !=
                          std::string::npos,
                      text);
  BOOST_CHECK(text.find("atoll_udp_handlers_started_total 2") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(handlers_see_the_destination_and_socket_options, udp_fixture) {
  for (auto lifetime : {udp_lifetime::per_datagram, udp_lifetime::in_listener}) {
    auto opts = loopback_options();
    opts.set_handler<destination_handler>();
    opts.address = bind_address::any();
    opts.transport.pktinfo = true;
    opts.transport.recbuf = 65536;
    opts.lifetime = lifetime;
    start(opts);
    udp_client c;
    endpoint to{endpoint::family_type::ipv4, "127.0.0.1", where.port};
    c.send(to, "?");
    auto got = c.recv();
    BOOST_REQUIRE(got);
    // Linux doubles SO_RCVBUF for its bookkeeping.
    BOOST_CHECK_MESSAGE(*got == "127.0.0.1 131072 no-nodelay", *got);
    BOOST_CHECK(srv->stop(10s) == caf::none);
    srv.reset();
  }
}

/// Where two blocking handlers meet: "wait" blocks its thread until "go"
/// arrived at another handler (or 5 s passed).
struct rendezvous {
  std::mutex mtx;
  std::condition_variable cv;
  bool waiting = false;
  bool go = false;
};

class blocking_handler : public udp_handler {
public:
  explicit blocking_handler(std::shared_ptr<rendezvous> r) : r_(std::move(r)) {}

  verdict handle_data(std::string_view data, socket& sock) override {
    std::unique_lock<std::mutex> lock{r_->mtx};
    if (data == "go") {
      r_->go = true;
      r_->cv.notify_all();
      lock.unlock();
      static_cast<void>(sock.send("go"));
      return verdict::close();
    }
    r_->waiting = true;
    r_->cv.notify_all();
    auto released = r_->cv.wait_for(lock, 5s, [this] { return r_->go; });
    lock.unlock();
    static_cast<void>(sock.send(released ? "released" : "timed out"));
    return verdict::close();
  }

private:
  std::shared_ptr<rendezvous> r_;
};

BOOST_AUTO_TEST_CASE(detached_udp_handler_actors_block_only_their_own_thread) {
  fd_leak_check fds;
  caf::actor_system_config cfg;
  atl::register_types(cfg);
  cfg.set("scheduler.max-threads", 1); // a blocked scheduled actor would stall the server
  caf::actor_system sys{cfg};
  auto r = std::make_shared<rendezvous>();
  auto opts = loopback_options();
  opts.set_handler<blocking_handler>(r);
  opts.detached_connections = true;
  auto srv = start_udp_server(sys, opts);
  BOOST_REQUIRE_MESSAGE(srv, (srv ? std::string{} : describe(srv.error())));
  auto where = srv->listener_info();
  BOOST_REQUIRE(where);
  udp_client a;
  udp_client b;
  a.send(*where, "wait");
  {
    std::unique_lock<std::mutex> lock{r->mtx};
    BOOST_REQUIRE(r->cv.wait_for(lock, 5s, [&] { return r->waiting; }));
  }
  // The first handler blocks its own thread; the listener and a second
  // handler still run.
  b.send(*where, "go");
  BOOST_CHECK_EQUAL(b.recv(8s).value_or("-"), "go");
  BOOST_CHECK_EQUAL(a.recv(8s).value_or("-"), "released");
  BOOST_CHECK(!srv->stop(10s));
  // An in_listener server has no handler actors to detach.
  opts.lifetime = udp_lifetime::in_listener;
  auto refused = start_udp_server(sys, opts);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error() == errc::invalid_option);
  BOOST_CHECK_MESSAGE(describe(refused.error()).find("detached_connections") != std::string::npos,
                      describe(refused.error()));
}

/// Per peer: blocks in its first datagram until released, counts the
/// datagrams it handles and its `handle_shutdown` calls.
class blocking_peer_handler : public udp_handler {
public:
  struct counts {
    std::atomic<int> data{0};
    std::atomic<int> shutdown{0};
    std::atomic<int> close{0};
  };

  blocking_peer_handler(std::shared_ptr<rendezvous> r, std::shared_ptr<counts> n)
    : r_(std::move(r)), n_(std::move(n)) {}

  verdict handle_data(std::string_view, socket&) override {
    if (++n_->data == 1) {
      std::unique_lock<std::mutex> lock{r_->mtx};
      r_->waiting = true;
      r_->cv.notify_all();
      r_->cv.wait_for(lock, 20s, [this] { return r_->go; });
    }
    return verdict::proceed();
  }

  void handle_shutdown(socket&) override {
    ++n_->shutdown;
  }

  void handle_close(socket&) override {
    ++n_->close;
  }

private:
  std::shared_ptr<rendezvous> r_;
  std::shared_ptr<counts> n_;
};

/// A detached handler blocked in its first datagram (`blocking_peer_handler`)
/// and a stop of its server that runs on another thread.
struct busy_handler_fixture : system_fixture {
  std::shared_ptr<rendezvous> r = std::make_shared<rendezvous>();
  std::shared_ptr<blocking_peer_handler::counts> n =
      std::make_shared<blocking_peer_handler::counts>();
  std::optional<udp_server> srv;
  endpoint where;
  udp_client c;

  /// Starts a server with `opts` and this handler; returns once the handler
  /// blocks in the datagram "first".
  void start_blocked(udp_server_options opts) {
    opts.set_handler<blocking_peer_handler>(r, n);
    opts.detached_connections = true;
    auto started = start_udp_server(sys, opts);
    BOOST_REQUIRE_MESSAGE(started, (started ? std::string{} : describe(started.error())));
    srv = std::move(*started);
    auto bound = srv->listener_info();
    BOOST_REQUIRE(bound);
    where = *bound;
    c.send(where, "first");
    std::unique_lock<std::mutex> lock{r->mtx};
    BOOST_REQUIRE(r->cv.wait_for(lock, 10s, [&] { return r->waiting; }));
  }

  /// Stops the server on another thread; returns once the stop began.
  std::future<caf::error> stop_async() {
    auto stopped = std::async(std::launch::async, [this] { return srv->stop(30s); });
    BOOST_REQUIRE(wait_until([&] { return srv->status() == server_status::stopped; }));
    return stopped;
  }

  /// Lets the handler go on.
  void release() {
    {
      std::lock_guard<std::mutex> lock{r->mtx};
      r->go = true;
    }
    r->cv.notify_all();
  }
};

BOOST_FIXTURE_TEST_CASE(a_stop_drops_the_datagrams_queued_for_a_busy_per_peer_handler,
                        busy_handler_fixture) {
  // A per-peer handler that blocks (dns_forwarder's, waiting for its
  // upstream) has datagrams queued behind it when the stop comes: handling
  // them would hold the stop for each one. They are dropped; the handler
  // finishes the datagram it has and gets handle_shutdown.
  auto opts = loopback_options();
  opts.lifetime = udp_lifetime::per_peer;
  opts.read_timeout = infinite;
  start_blocked(opts);
  constexpr int queued = 10;
  for (int i = 0; i < queued; ++i)
    c.send(where, "q" + std::to_string(i));
  // Counted at reception, routed to the busy actor in the same step.
  BOOST_REQUIRE(wait_until([&] { return srv->stats().received == queued + 1; }));
  auto stopped = stop_async();
  release();
  BOOST_REQUIRE(stopped.wait_for(30s) == std::future_status::ready);
  BOOST_CHECK(stopped.get() == caf::none);
  BOOST_CHECK_EQUAL(n->data.load(), 1);
  BOOST_CHECK_EQUAL(n->shutdown.load(), 1);
}

BOOST_FIXTURE_TEST_CASE(a_busy_per_peer_handler_has_at_most_256_datagrams_waiting,
                        busy_handler_fixture) {
  // A peer that sends faster than its handler keeps up: beyond 256 waiting
  // datagrams, the excess is dropped and counted, so one peer cannot grow a
  // mailbox without bound. Once the handler catches up, more get through.
  auto opts = loopback_options();
  opts.lifetime = udp_lifetime::per_peer;
  opts.read_timeout = infinite;
  start_blocked(opts);
  // In bursts of 50 that the listener takes in before the next (the
  // socket's receive buffer must not drop any).
  constexpr uint64_t sent = 300;
  for (uint64_t i = 0; i < sent; ++i) {
    c.send(where, "q" + std::to_string(i));
    if ((i + 1) % 50 == 0)
      BOOST_REQUIRE(wait_until([&] { return srv->stats().received == i + 2; }));
  }
  BOOST_CHECK(wait_until([&] {
    return srv->stats().spawn_failed == sent - detail::udp_peer_table::max_queued;
  }));
  release();
  BOOST_CHECK(wait_until([&] { return n->data.load() == 1 + 256; }));
  c.send(where, "after");
  BOOST_CHECK(wait_until([&] { return n->data.load() == 1 + 256 + 1; }));
  BOOST_CHECK_EQUAL(srv->stats().spawn_failed, sent - detail::udp_peer_table::max_queued);
  BOOST_REQUIRE(!srv->stop(30s));
}

BOOST_FIXTURE_TEST_CASE(a_stop_waits_for_a_detached_handler_busy_with_its_first_datagram,
                        busy_handler_fixture) {
  // A detached per-datagram handler (dns_forwarder's) that blocks in its
  // first datagram is already its supervisor's child: the stop waits for it
  // (it used to return at once and leave the handler to the process's
  // exit), and the handler ends as it would have.
  auto opts = loopback_options();
  opts.shutdown_timeout = shutdown_policy::timeout(30s);
  start_blocked(opts);
  auto stopped = stop_async();
  // Bounded by nothing but the handler: not done while it blocks.
  BOOST_CHECK(stopped.wait_for(300ms) == std::future_status::timeout);
  release();
  BOOST_REQUIRE(stopped.wait_for(30s) == std::future_status::ready);
  BOOST_CHECK(stopped.get() == caf::none);
  BOOST_CHECK_EQUAL(n->data.load(), 1);
  BOOST_CHECK_EQUAL(n->close.load() + n->shutdown.load(), 1);
}

BOOST_AUTO_TEST_CASE(an_actor_on_a_one_thread_scheduler_runs_a_udp_server_without_blocking) {
  fd_leak_check fds;
  caf::actor_system_config cfg;
  atl::register_types(cfg);
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  auto log = std::make_shared<event_log>();
  auto opts = loopback_options();
  opts.set_handler<echo_handler>();
  auto port = std::make_shared<std::atomic<uint16_t>>(0);
  auto root = std::make_shared<udp_server_actor>();
  sys.spawn([log, opts, port, root](caf::event_based_actor* self) {
    auto blocked = start_udp_server(self->system(), opts);
    log->add(!blocked && blocked.error() == errc::would_deadlock ? "blocking:refused"
                                                                 : "blocking:ran");
    auto srv = spawn_udp_server(self->system(), opts);
    if (!srv) {
      log->add("spawn:" + describe(srv.error()));
      return;
    }
    auto s = *srv;
    *root = s;
    self->request(s, 10s, listening_atom::value).then([=](endpoint& ep) {
      port->store(ep.port);
      log->add("listening");
    });
  });
  BOOST_REQUIRE(log->wait_for("listening"));
  udp_client c;
  endpoint to;
  to.address = "127.0.0.1";
  to.port = port->load();
  c.send(to, "one");
  BOOST_CHECK_EQUAL(c.recv().value_or("nothing"), "one");
  sys.spawn([log, root](caf::event_based_actor* self) {
    auto s = *root;
    self->request(s, 10s, suspend_atom::value).then([=](caf::ok_atom) {
      self->request(s, 10s, server_info_atom::value).then([=](server_info& info) {
        log->add("info:" + to_string(info.status) + (info.local ? ":bound" : ":unbound"));
        self->request(s, 10s, resume_atom::value).then([=](caf::ok_atom) {
          self->request(s, 10s, status_atom::value).then([=](server_status st) {
            log->add("status:" + to_string(st));
            self->request(s, 30s, stop_atom::value).then([=](caf::ok_atom) {
              log->add("stopped");
            });
          });
        });
      });
    });
  });
  BOOST_REQUIRE(log->wait_for("stopped", 1, 20000ms));
  std::vector<std::string> expected{"blocking:refused", "listening", "info:suspended:unbound",
                                    "status:running", "stopped"};
  auto got = log->entries();
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
}

BOOST_AUTO_TEST_SUITE_END()
