// The typed protocol of a server's root actor (atl::server_actor): used from
// actors on a one-thread scheduler, connection records, subscriptions,
// atomic and serialized suspend/resume, scoped_server.
#include <boost/test/unit_test.hpp>

#include <set>

#include <caf/scoped_actor.hpp>

#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

/// A system with one scheduler thread: an actor that blocked on it would
/// wait for itself.
struct one_thread_fixture : fd_leak_check {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys_ptr;
  caf::actor_system& sys;

  one_thread_fixture() : sys_ptr(make(cfg)), sys(*sys_ptr) {
  }

  static std::unique_ptr<caf::actor_system> make(caf::actor_system_config& cfg) {
    atl::register_types(cfg);
    cfg.set("scheduler.max-threads", 1);
    return std::make_unique<caf::actor_system>(cfg);
  }
};

server_options echo_options() {
  server_options opts;
  auto script = echo_script();
  opts.handler = [script]() -> std::unique_ptr<handler> {
    return std::make_unique<probe_handler>(script);
  };
  opts.handler_name = "probe";
  opts.port = 0;
  opts.address = bind_address::loopback();
  opts.num_acceptors = 2;
  opts.telemetry = std::make_shared<telemetry::bus>();
  if (tls_mode())
    opts.tls = test_tls_options();
  return apply_connection_actor_mode(opts);
}

/// Sends a line and expects it back.
void expect_echo(test_client& client, const std::string& text) {
  client.send(text);
  BOOST_CHECK_EQUAL(client.recv_exact(text.size()), text);
}

/// One request from a blocking actor, waiting for the answer.
template <class T, class Handle, class... Ts>
caf::expected<T> ask(caf::actor_system& sys, const Handle& dest, Ts... xs) {
  caf::scoped_actor self{sys};
  caf::expected<T> result{caf::error{}};
  self->request(dest, 10s, xs...)
    .receive([&](T& x) { result = std::move(x); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

/// `event` as "started:handshaking:peer-port" or "stopped:closed:reason:recv_oct".
std::string describe_event(const connection_event& ev) {
  if (ev.kind == connection_event::kind_t::started)
    return "started:" + to_string(ev.connection.state) + ":"
           + std::to_string(ev.connection.peer.port);
  return "stopped:" + to_string(ev.connection.state) + ":" + ev.reason + ":"
         + std::to_string(ev.connection.recv_oct);
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(server_protocol, atl::test::fd_leak_check)

BOOST_FIXTURE_TEST_CASE(an_actor_on_a_one_thread_scheduler_runs_a_server_without_blocking,
                        one_thread_fixture) {
  auto log = std::make_shared<event_log>();
  auto opts = echo_options();
  sys.spawn([log, opts](caf::event_based_actor* self) {
    // A blocking call here would wait for this very thread: it fails at once.
    auto blocked = start_server(self->system(), opts);
    log->add(!blocked && blocked.error() == errc::would_deadlock ? "blocking:refused"
                                                                 : "blocking:ran");
    auto srv = spawn_server(self->system(), opts);
    if (!srv) {
      log->add("spawn:" + describe(srv.error()));
      return;
    }
    auto s = *srv;
    self->request(s, 10s, listening_atom::value).then([=](endpoint& ep) {
      log->add(ep.port != 0 ? "listening" : "listening:port 0");
      self->request(s, 10s, suspend_atom::value).then([=](caf::ok_atom) {
        log->add("suspended");
        self->request(s, 10s, status_atom::value).then([=](server_status st) {
          log->add("status:" + to_string(st));
          self->request(s, 10s, resume_atom::value).then([=](caf::ok_atom) {
            log->add("resumed");
            self->request(s, 10s, server_info_atom::value).then([=](server_info& info) {
              log->add("info:" + to_string(info.status) + (info.local ? ":bound" : ":unbound"));
              self->request(s, 30s, stop_atom::value).then([=](caf::ok_atom) {
                log->add("stopped");
              });
            });
          });
        });
      });
    });
  });
  BOOST_REQUIRE(log->wait_for("stopped", 1, 20000ms));
  std::vector<std::string> expected{"blocking:refused", "listening",       "suspended",
                                    "status:suspended", "resumed",         "info:running:bound",
                                    "stopped"};
  auto got = log->entries();
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
}

using start_atom = caf::atom_constant<caf::atom("start")>;

BOOST_FIXTURE_TEST_CASE(spawn_server_answers_a_request_when_listening_or_with_the_start_error,
                        one_thread_fixture) {
  // An actor that starts servers on request, answering when they listen.
  auto manager = sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {
      [self](start_atom, uint16_t port, uint32_t acceptors) {
        auto opts = echo_options();
        opts.port = port;
        opts.num_acceptors = acceptors;
        return spawn_server(self, std::move(opts));
      },
    };
  });
  caf::scoped_actor self{sys};
  server_actor first;
  endpoint where;
  self->request(manager, 10s, start_atom::value, uint16_t{0}, uint32_t{2})
    .receive(
      [&](server_actor& srv, endpoint& ep) {
        first = srv;
        where = ep;
      },
      [&](caf::error& err) { BOOST_FAIL("start: " << describe(err)); });
  BOOST_REQUIRE(first);
  BOOST_CHECK_NE(where.port, 0);
  auto client = test_client::connect(where);
  expect_echo(client, "up");
  // The same port again: the bind fails, and the requester learns why.
  caf::error failure;
  self->request(manager, 10s, start_atom::value, where.port, uint32_t{2})
    .receive([&](server_actor&, endpoint&) { BOOST_FAIL("a second server bound a taken port"); },
             [&](caf::error& err) { failure = std::move(err); });
  BOOST_CHECK_MESSAGE(failure == errc::address_in_use, describe(failure));
  // A bad option: the validation's error.
  failure = caf::error{};
  self->request(manager, 10s, start_atom::value, uint16_t{0}, uint32_t{0})
    .receive([&](server_actor&, endpoint&) { BOOST_FAIL("0 acceptors accepted"); },
             [&](caf::error& err) { failure = std::move(err); });
  BOOST_CHECK_MESSAGE(failure == errc::invalid_option, describe(failure));
  BOOST_CHECK(ask<caf::ok_atom>(sys, first, stop_atom::value));
  self->send_exit(manager, caf::exit_reason::user_shutdown);
}

BOOST_FIXTURE_TEST_CASE(connection_records_name_both_ends_and_count_bytes, server_fixture) {
  auto& srv = start(probe_options(echo_script()));
  auto a = connect(srv);
  auto b = connect(srv);
  expect_echo(a, "hello");
  expect_echo(b, "hi");
  auto conns = srv.connections();
  BOOST_REQUIRE(conns);
  BOOST_REQUIRE_EQUAL(conns->size(), 2u);
  BOOST_CHECK_LT((*conns)[0].handle.id(), (*conns)[1].handle.id()); // ordered by id
  auto server_end = address_of(srv);
  size_t matched = 0;
  for (auto& client : {&a, &b}) {
    auto mine = local_endpoint(client->fd());
    BOOST_REQUIRE(mine);
    for (auto& rec : *conns) {
      if (rec.peer.port != mine->port)
        continue;
      ++matched;
      BOOST_CHECK_EQUAL(rec.peer.address, mine->address);
      BOOST_CHECK_EQUAL(rec.local.port, server_end.port);
      BOOST_CHECK_EQUAL(rec.transport, tls_mode() ? "tls" : "tcp");
      BOOST_CHECK_EQUAL(rec.handler, "probe");
      BOOST_CHECK(rec.state == connection_state::open);
      auto bytes = client == &a ? 5u : 2u;
      BOOST_CHECK_EQUAL(rec.recv_oct, bytes);
      BOOST_CHECK_EQUAL(rec.send_oct, bytes);
      BOOST_CHECK_EQUAL(rec.send_pend, 0u);
      BOOST_CHECK(rec.age > 0ns && rec.age < 60s);
    }
  }
  BOOST_CHECK_EQUAL(matched, 2u);
  // A connection actor answers for itself too.
  auto own = ask<connection_record>(sys, (*conns)[0].handle, connection_info_atom::value);
  BOOST_REQUIRE(own);
  BOOST_CHECK_EQUAL(own->peer.port, (*conns)[0].peer.port);
}

BOOST_FIXTURE_TEST_CASE(the_tree_shows_strategies_and_each_connections_record, server_fixture) {
  auto& srv = start(probe_options(echo_script()));
  auto a = connect(srv);
  auto b = connect(srv);
  expect_echo(a, "hello");
  expect_echo(b, "hi");
  auto tree = srv.tree();
  BOOST_REQUIRE(tree);
  BOOST_CHECK_EQUAL(tree->strategy, "rest_for_one");
  std::vector<const tree_node*> conns;
  std::function<void(const tree_node&)> walk = [&](const tree_node& n) {
    if (n.role == "connection")
      conns.push_back(&n);
    if (n.role == "acceptor_pool")
      BOOST_CHECK_EQUAL(n.strategy, "one_for_one");
    for (auto& c : n.children)
      walk(c);
  };
  walk(*tree);
  BOOST_REQUIRE_EQUAL(conns.size(), 2u);
  auto detail = [](const tree_node& n, const std::string& key) {
    for (auto& d : n.details)
      if (d.key == key)
        return d.value;
    return std::string{"(none)"};
  };
  std::set<std::string> peers;
  for (auto* n : conns) {
    peers.insert(detail(*n, "peer"));
    BOOST_CHECK_EQUAL(detail(*n, "state"), "open");
    BOOST_CHECK_EQUAL(detail(*n, "handler"), "probe");
    BOOST_CHECK_EQUAL(detail(*n, "transport"), tls_mode() ? "tls" : "tcp");
    auto in = detail(*n, "recv_oct");
    BOOST_CHECK(in == "5" || in == "2");
  }
  std::set<std::string> expected;
  for (auto* c : {&a, &b})
    expected.insert(to_string(*local_endpoint(c->fd())));
  BOOST_CHECK(peers == expected);
  auto dot = tree_to_dot(*tree);
  BOOST_CHECK(dot.find("peer=" + *expected.begin()) != std::string::npos);
  BOOST_CHECK(tree_to_json(*tree).find("\"state\": \"open\"") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(subscribers_get_each_start_and_stop_until_they_unsubscribe,
                        server_fixture) {
  auto& srv = start(probe_options(echo_script()));
  auto events = std::make_shared<event_log>();
  auto sub = sys.spawn([events](caf::event_based_actor*) -> caf::behavior {
    return {
      [events](connection_event& ev) { events->add(describe_event(ev)); },
      [](caf::ok_atom) { return caf::ok_atom::value; }, // a ping: all before it was seen
    };
  });
  BOOST_REQUIRE(ask<caf::ok_atom>(sys, srv.actor(), subscribe_atom::value, sub));
  BOOST_REQUIRE(ask<caf::ok_atom>(sys, srv.actor(), subscribe_atom::value, sub)); // once only
  telemetry_recorder rec{bus};
  uint16_t port = 0;
  {
    auto client = connect(srv);
    port = local_endpoint(client.fd())->port;
    expect_echo(client, "hello");
  } // closed by the client
  BOOST_REQUIRE(events->wait_for_size(2));
  std::vector<std::string> expected{"started:handshaking:" + std::to_string(port),
                                    "stopped:closed:peer_closed:5"};
  auto got = events->entries();
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
  BOOST_REQUIRE(ask<caf::ok_atom>(sys, srv.actor(), unsubscribe_atom::value, sub));
  auto again = ask<caf::ok_atom>(sys, srv.actor(), unsubscribe_atom::value, sub);
  BOOST_REQUIRE(!again);
  BOOST_CHECK(again.error() == errc::not_found);
  {
    auto client = connect(srv);
    expect_echo(client, "unseen");
  }
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop", 2));
  // The stop event went out after the subscribers were told: a ping sent
  // now arrives after anything sent to `sub` before.
  BOOST_REQUIRE(ask<caf::ok_atom>(sys, sub, caf::ok_atom::value));
  BOOST_CHECK_EQUAL(events->size(), 2u);
  caf::anon_send_exit(sub, caf::exit_reason::user_shutdown);
}

BOOST_FIXTURE_TEST_CASE(a_failed_resume_leaves_the_server_suspended_as_it_was, server_fixture) {
  auto& probe = start(probe_options(echo_script()));
  auto port = address_of(probe).port;
  BOOST_REQUIRE(!probe.stop());
  auto opts = probe_options(echo_script());
  opts.port = port;
  auto& srv = start(opts);
  auto kept = connect(srv);
  expect_echo(kept, "before");
  BOOST_REQUIRE(!srv.suspend());
  BOOST_REQUIRE(!srv.suspend()); // suspending a suspended server is ok
  // Someone else takes the port (without SO_REUSEPORT, so ours cannot share it).
  tcp_options plain;
  auto blocker = listen_socket::open(bind_address::loopback(), port, plain);
  BOOST_REQUIRE_MESSAGE(blocker, "the blocker could not bind");
  auto err = srv.resume();
  BOOST_REQUIRE(err);
  BOOST_CHECK(err == errc::address_in_use);
  // Not half resumed: no listener, no acceptor, the port is the blocker's.
  BOOST_CHECK(srv.status() == server_status::suspended);
  auto tree = srv.tree();
  BOOST_REQUIRE(tree);
  size_t running_acceptors = 0;
  std::function<void(const tree_node&)> walk = [&](const tree_node& n) {
    if ((n.role == "acceptor" || n.role == "listener") && n.running)
      ++running_acceptors;
    for (auto& c : n.children)
      walk(c);
  };
  walk(*tree);
  BOOST_CHECK_EQUAL(running_acceptors, 0u);
  expect_echo(kept, "during"); // connections go on
  blocker = listen_socket{};   // the port is free again
  BOOST_REQUIRE(!srv.resume());
  BOOST_CHECK(srv.status() == server_status::running);
  BOOST_CHECK_EQUAL(address_of(srv).port, port);
  auto fresh = connect(srv);
  expect_echo(fresh, "after");
}

BOOST_FIXTURE_TEST_CASE(suspend_and_resume_run_one_at_a_time_in_order, server_fixture) {
  auto& srv = start(probe_options(echo_script()));
  auto log = std::make_shared<event_log>();
  auto root = srv.actor();
  sys.spawn([log, root](caf::event_based_actor* self) {
    // All four at once: each one waits for the one before.
    for (int i = 0; i < 2; ++i) {
      self->request(root, 10s, suspend_atom::value).then([=](caf::ok_atom) {
        log->add("suspend");
      });
      self->request(root, 10s, resume_atom::value).then([=](caf::ok_atom) {
        log->add("resume");
      });
    }
  });
  BOOST_REQUIRE(log->wait_for_size(4));
  std::vector<std::string> expected{"suspend", "resume", "suspend", "resume"};
  auto got = log->entries();
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
  BOOST_CHECK(srv.status() == server_status::running);
  auto client = connect(srv);
  expect_echo(client, "running");
}

BOOST_FIXTURE_TEST_CASE(a_scoped_server_stops_its_server_at_the_end_of_its_scope,
                        server_fixture) {
  endpoint ep;
  test_client client;
  server kept;
  {
    auto started = start_server(sys, probe_options(echo_script()));
    BOOST_REQUIRE(started);
    scoped_server guard{*started};
    kept = guard.get();
    ep = address_of(kept);
    client = test_client::connect(ep);
    expect_echo(client, "inside");
  }
  BOOST_CHECK(kept.status() == server_status::stopped);
  BOOST_CHECK(client.closed_within(5000ms));
  test_client refused;
  BOOST_CHECK(!refused.try_connect(ep));
  // release() gives the server up: it keeps running.
  auto started = start_server(sys, probe_options(echo_script()));
  BOOST_REQUIRE(started);
  server released;
  {
    scoped_server guard{*started};
    released = guard.release();
  }
  BOOST_CHECK(released.status() == server_status::running);
  servers.push_back(released); // the fixture stops it
}

BOOST_FIXTURE_TEST_CASE(a_connection_actors_exit_reason_tells_how_it_ended, server_fixture) {
  // What a monitor of the connection actor sees, for each way to end.
  auto reason_of = [&](const std::shared_ptr<probe_script>& script, auto&& trigger,
                       std::chrono::milliseconds read_timeout = 60000ms) {
    auto opts = probe_options(script);
    opts.read_timeout = read_timeout;
    auto& srv = start(opts);
    auto client = connect(srv);
    auto conn = only_connection(srv);
    caf::scoped_actor self{sys};
    self->monitor(conn);
    trigger(client, srv);
    caf::error reason = caf::make_error(errc::timeout, "no down message");
    self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                  caf::after(std::chrono::seconds{10}) >> [] {});
    return reason;
  };
  auto nothing = [](test_client&, server&) {};
  auto send_x = [](test_client& c, server&) { c.send("x"); };
  auto quiet = std::make_shared<probe_script>(); // reads and does nothing
  quiet->on_data = [](std::string_view, atl::socket&) { return verdict::proceed(); };
  // The client closes.
  auto peer = reason_of(quiet, [](test_client& c, server&) { c.close(); });
  BOOST_CHECK_MESSAGE(peer == errc::peer_closed, describe(peer));
  // A close verdict: the normal end.
  auto closing = std::make_shared<probe_script>();
  closing->on_data = [](std::string_view, atl::socket&) { return verdict::close(); };
  auto closed = reason_of(closing, send_x);
  BOOST_CHECK_MESSAGE(!closed, describe(closed));
  // The read timeout.
  auto timed_out = reason_of(quiet, nothing, 500ms);
  BOOST_CHECK_MESSAGE(timed_out == errc::timeout, describe(timed_out));
  // The server's stop.
  auto stopped = reason_of(quiet, [](test_client&, server& srv) {
    BOOST_CHECK(!srv.stop());
  });
  BOOST_CHECK_MESSAGE(stopped == caf::exit_reason::user_shutdown, describe(stopped));
  // An error verdict: its error.
  auto failing = std::make_shared<probe_script>();
  failing->on_data = [](std::string_view, atl::socket&) {
    return verdict::error(caf::make_error(errc::handler_error, "bad request"));
  };
  auto failed = reason_of(failing, send_x);
  BOOST_CHECK_MESSAGE(failed == errc::handler_error, describe(failed));
}

BOOST_AUTO_TEST_SUITE_END()
