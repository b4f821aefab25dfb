// Custom connection actors (`server_options::connection_process` with
// `atl::stream_connection`): the user's own actor per connection, handed the
// socket; bytes, mailbox messages, telemetry, the PROXY protocol, closing
// with queued output and the server's drain, as for built-in handlers.
#include <boost/test/unit_test.hpp>

#include <future>

#include <algorithm>
#include <atomic>
#include <thread>

#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

using say_atom = caf::atom_constant<caf::atom("say")>;
using blast_atom = caf::atom_constant<caf::atom("blast")>;
using boom_atom = caf::atom_constant<caf::atom("boom")>;
using wait_mail_atom = caf::atom_constant<caf::atom("waitmail")>;

/// How the test actor behaves.
struct process_script {
  std::shared_ptr<event_log> log = std::make_shared<event_log>();
  /// Answers a stop (`on_stop`): reads what is left, says goodbye. False:
  /// no `on_stop` (the stop only drains).
  bool answer_on_stop = true;
  /// Lets a `wait_mail_atom` handler return.
  std::shared_ptr<std::atomic<bool>> release = std::make_shared<std::atomic<bool>>(false);
};

/// Echoes; "hold" is echoed without asking for more input, so that what
/// follows stays unread until a stop. Logs what it sees.
class echo_process : public caf::event_based_actor {
public:
  echo_process(caf::actor_config& cfg, connection_hand_off hand_off,
               std::shared_ptr<const process_script> script)
    : caf::event_based_actor(cfg), conn_(this, std::move(hand_off)), script_(std::move(script)) {
  }

  caf::behavior make_behavior() override {
    auto& log = *script_->log;
    if (script_->answer_on_stop)
      conn_.on_stop([this, &log] {
        log.add("shutdown");
        if (auto rest = conn_.read_available(); rest && !rest->empty())
          static_cast<void>(conn_.socket().send("late:" + *rest + "\n"));
        static_cast<void>(conn_.socket().send("bye\n"));
      });
    conn_.start();
    return conn_.handlers().or_else(
      [this, &log](stream_open_atom) {
        auto peer = conn_.socket().peername();
        log.add("open:" + (peer ? to_string(*peer) : describe(peer.error())));
        log.add(std::string{"secure:"} + (conn_.socket().secure() ? "yes" : "no"));
        conn_.activate();
      },
      [this, &log](stream_data_atom, const std::string& data) {
        log.add("data:" + data);
        static_cast<void>(conn_.socket().send(data));
        if (data != "hold")
          conn_.activate();
      },
      [this, &log](stream_closed_atom) {
        log.add("closed");
        conn_.close();
      },
      [this, &log](stream_error_atom, const caf::error& reason) {
        log.add("error:" + describe(reason));
        conn_.close();
      },
      [this](say_atom, const std::string& text) { static_cast<void>(conn_.socket().send(text)); },
      [this](blast_atom, uint64_t size) {
        // More than the socket buffers take: most of it is queued.
        static_cast<void>(conn_.socket().send(std::string(size, 'x')));
        conn_.close();
      },
      [](boom_atom) { throw std::runtime_error("boom"); },
      [this, &log](wait_mail_atom) {
        // Holds the actor until the test releases it, saying when a
        // message arrived meanwhile (the socket's event): the test sends
        // the stop's exit message after that one.
        log.add("holding");
        bool seen = false;
        auto give_up = std::chrono::steady_clock::now() + 10s;
        while (!script_->release->load() && std::chrono::steady_clock::now() < give_up) {
          if (!seen && !mailbox().empty()) {
            seen = true;
            log.add("queued");
          }
          std::this_thread::sleep_for(1ms);
        }
      });
  }

private:
  stream_connection conn_;
  std::shared_ptr<const process_script> script_;
};

struct process_fixture : server_fixture {
  std::shared_ptr<process_script> script = std::make_shared<process_script>();

  server_options process_options() {
    auto opts = probe_options(echo_script());
    opts.handler = nullptr;
    opts.set_connection_process<echo_process>(
      std::shared_ptr<const process_script>{script});
    return opts;
  }

  std::string stop_reason(const telemetry_recorder& rec, size_t index = 0) {
    return rec.named("atoll.connection.stop").at(index).metadata.get_or<std::string>("reason", "");
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(custom_process, process_fixture)

BOOST_AUTO_TEST_CASE(a_custom_actor_gets_bytes_and_mailbox_messages_with_the_same_telemetry) {
  auto& srv = start(process_options());
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  BOOST_REQUIRE(script->log->wait_for("secure:" + std::string{tls_mode() ? "yes" : "no"}));
  client.send("hello");
  BOOST_CHECK_EQUAL(client.recv_exact(5), "hello");
  // An ordinary message to the connection's actor, from outside.
  auto conn = only_connection(srv);
  caf::anon_send(conn, say_atom::value, std::string{"note\n"});
  BOOST_CHECK_EQUAL(client.recv_exact(5), "note\n");
  client.close();
  BOOST_REQUIRE(script->log->wait_for("closed"));
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_REQUIRE(wait_until([&] { return srv.connections() && srv.connections()->empty(); }));
  auto entries = script->log->entries();
  BOOST_REQUIRE_GE(entries.size(), 4u);
  BOOST_CHECK_EQUAL(entries[0].rfind("open:127.0.0.1:", 0), 0u);
  BOOST_CHECK_EQUAL(entries[2], "data:hello");
  BOOST_CHECK_EQUAL(entries.back(), "closed");
  // The connection span, as for built-in handlers.
  auto start_ev = rec.named("atoll.connection.start").at(0);
  BOOST_CHECK_EQUAL(start_ev.metadata.get_or<std::string>("remote_address", ""), "127.0.0.1");
  // The type's name, without "(anonymous namespace)::".
  BOOST_CHECK_EQUAL(start_ev.metadata.get_or<std::string>("handler", ""), "echo_process");
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.ready"), 1u);
  BOOST_REQUIRE_EQUAL(rec.count("atoll.connection.async_recv"), 1u);
  BOOST_CHECK_EQUAL(
    rec.named("atoll.connection.async_recv")[0].measurements.get_or<std::string>("data", ""),
    "hello");
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.send"), 2u);
  auto stop_ev = rec.named("atoll.connection.stop").at(0);
  BOOST_CHECK_EQUAL(stop_ev.metadata.get_or<std::string>("reason", ""), "peer_closed");
  BOOST_CHECK_EQUAL(stop_ev.measurements.get_or<uint64_t>("recv_oct", 0), 5u);
  BOOST_CHECK_EQUAL(stop_ev.measurements.get_or<uint64_t>("send_oct", 0), 10u);
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.stop"), 1u);
}

BOOST_AUTO_TEST_CASE(bytes_sent_with_the_connection_and_a_close_right_after_arrive_in_order) {
  // What the first activate() reads at once (if it is there by then).
  auto& srv = start(process_options());
  auto client = connect(srv);
  client.send("first");
  client.shutdown_write();
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "first");
  BOOST_REQUIRE(script->log->wait_for("closed"));
  auto entries = script->log->entries();
  BOOST_REQUIRE_EQUAL(entries.size(), 4u);
  BOOST_CHECK_EQUAL(entries[2], "data:first");
  BOOST_CHECK_EQUAL(entries[3], "closed");
  // A client that closes without a byte: the actor sees the close.
  auto quiet = connect(srv);
  quiet.close();
  BOOST_REQUIRE(script->log->wait_for("closed", 2));
  BOOST_REQUIRE(wait_until([&] { return srv.connections() && srv.connections()->empty(); }));
}

BOOST_AUTO_TEST_CASE(close_writes_queued_output_first) {
  auto& srv = start(process_options());
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  BOOST_REQUIRE(script->log->wait_for_size(2));
  constexpr uint64_t size = 8 << 20;
  caf::anon_send(only_connection(srv), blast_atom::value, size);
  auto all = client.recv_until_closed(20000ms);
  BOOST_CHECK_EQUAL(all.size(), size);
  BOOST_CHECK(!client.was_reset());
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(stop_reason(rec), "local_closed");
  BOOST_CHECK_EQUAL(
    rec.named("atoll.connection.stop")[0].measurements.get_or<uint64_t>("send_oct", 0), size);
}

BOOST_AUTO_TEST_CASE(a_stop_lets_the_actor_answer_what_it_had_not_read_then_drains) {
  auto& srv = start(process_options());
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  client.send("hold");
  BOOST_CHECK_EQUAL(client.recv_exact(4), "hold");
  // Not read by the actor (it asked for nothing more): in the socket when
  // the stop comes (loopback delivers at send).
  client.send("late");
  BOOST_REQUIRE(!srv.stop(10000ms));
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "late:late\nbye\n");
  BOOST_CHECK(!client.was_reset());
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(stop_reason(rec), "shutdown");
  BOOST_CHECK_EQUAL(script->log->count("shutdown"), 1u);
}

BOOST_AUTO_TEST_CASE(a_stop_during_the_tls_handshake_lets_it_finish_then_the_actor_answers) {
  // As with the built-in connection actor: the handshake goes on, the actor
  // gets the open, then its on_stop (whose goodbye goes out over TLS).
  auto opts = process_options();
  opts.tls = test_tls_options();
  opts.shutdown_timeout = shutdown_policy::timeout(10000ms);
  opts.handshake_timeout = 30000ms; // room for the checks before the handshake
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv)));
  // The ClientHello is in, the server waits for the client's Finished.
  BOOST_REQUIRE_MESSAGE(client.begin_tls({}), client.tls_error());
  auto conn = only_connection(srv);
  auto stopping = std::async(std::launch::async, [&] { return srv.stop(); });
  BOOST_REQUIRE(wait_for_connection_state(sys, conn, connection_state::draining));
  check_shown_while_draining(srv, conn);
  BOOST_CHECK_EQUAL(script->log->count("shutdown"), 0u);
  BOOST_REQUIRE_MESSAGE(client.finish_tls(), client.tls_error());
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "bye\n");
  BOOST_CHECK(!client.was_reset());
  BOOST_CHECK(!stopping.get());
  auto entries = script->log->entries();
  BOOST_REQUIRE_EQUAL(entries.size(), 3u);
  BOOST_CHECK_EQUAL(entries[0].rfind("open:", 0), 0u);
  BOOST_CHECK_EQUAL(entries[1], "secure:yes");
  BOOST_CHECK_EQUAL(entries[2], "shutdown");
}

BOOST_AUTO_TEST_CASE(a_stop_does_not_wait_for_a_tls_client_that_sent_nothing) {
  // As with the built-in connection actor: a client that has not sent a
  // byte of its handshake is closed at once, without an open, instead of
  // holding the stop for the handshake timeout.
  auto opts = process_options();
  opts.tls = test_tls_options();
  opts.shutdown_timeout = shutdown_policy::timeout(30000ms);
  opts.handshake_timeout = 30000ms;
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  check_stop_closes_a_silent_client(srv);
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(stop_reason(rec), "shutdown");
  BOOST_CHECK(script->log->entries().empty());
}

BOOST_AUTO_TEST_CASE(without_on_stop_a_stop_drains_the_connection) {
  script->answer_on_stop = false;
  auto& srv = start(process_options());
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  client.send("ping");
  BOOST_CHECK_EQUAL(client.recv_exact(4), "ping");
  BOOST_REQUIRE(!srv.stop(10000ms));
  BOOST_CHECK_EQUAL(client.recv_until_closed(), ""); // a FIN, not a reset
  BOOST_CHECK(!client.was_reset());
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(stop_reason(rec), "shutdown");
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.stop"), 1u);
}

// The stop's exit message arrives after the actor read "late" from the
// socket and before it handled the message carrying it: the bytes are
// still delivered (and echoed), then `on_stop` runs, then the drain.
BOOST_AUTO_TEST_CASE(a_stop_between_a_read_and_its_delivery_loses_nothing) {
  // Detached: while the actor is held, the reactor thread that watches its
  // socket must go on (a shared one would be the thread held).
  auto opts = process_options();
  opts.set_connection_process<echo_process, caf::detached>(
    std::shared_ptr<const process_script>{script});
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  client.send("ping");
  BOOST_CHECK_EQUAL(client.recv_exact(4), "ping"); // and asked for more
  auto conn = only_connection(srv);
  caf::anon_send(conn, wait_mail_atom::value);
  BOOST_REQUIRE(script->log->wait_for("holding"));
  client.send("late");
  BOOST_REQUIRE(script->log->wait_for("queued")); // the socket's event
  // The server's stop, as the connection supervisor sends it (enqueued
  // before this returns: behind the socket's event).
  caf::anon_send_exit(conn, caf::exit_reason::user_shutdown);
  script->release->store(true);
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "latebye\n");
  BOOST_CHECK(!client.was_reset());
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(stop_reason(rec), "shutdown");
  auto entries = script->log->entries();
  auto late = std::find(entries.begin(), entries.end(), "data:late");
  auto shutdown = std::find(entries.begin(), entries.end(), "shutdown");
  BOOST_CHECK(late < shutdown);
  BOOST_CHECK(shutdown != entries.end());
}

BOOST_AUTO_TEST_CASE(an_exception_in_the_actor_ends_its_connection_only) {
  auto& srv = start(process_options());
  telemetry_recorder rec{bus};
  auto first = connect(srv);
  auto second = connect(srv);
  BOOST_REQUIRE(script->log->wait_for_size(4));
  first.send("a");
  BOOST_CHECK_EQUAL(first.recv_exact(1), "a");
  auto conns = srv.connections();
  BOOST_REQUIRE(conns && conns->size() == 2);
  for (auto& conn : *conns)
    caf::anon_send(conn.handle, boom_atom::value);
  BOOST_CHECK(first.closed_within(5000ms));
  BOOST_CHECK(second.closed_within(5000ms));
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop", 2));
  for (auto& ev : rec.named("atoll.connection.stop")) {
    BOOST_CHECK_EQUAL(ev.metadata.get_or<std::string>("reason", ""), "error");
    // CAF's default exception handler ends the actor with
    // sec::runtime_error (and prints the exception).
    BOOST_CHECK_NE(ev.metadata.get_or<std::string>("error", "").find("runtime_error"),
                   std::string::npos);
  }
  // The server goes on.
  auto third = connect(srv);
  third.send("still");
  BOOST_CHECK_EQUAL(third.recv_exact(5), "still");
}

BOOST_AUTO_TEST_CASE(the_proxy_protocol_and_its_errors_reach_the_actor) {
  auto opts = process_options();
  opts.tls.reset();
  proxy_protocol_options proxy;
  proxy.trusted = {*ip_network::parse("127.0.0.0/8")};
  proxy.timeout = 300ms;
  opts.proxy_protocol = proxy;
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  {
    test_client client;
    BOOST_REQUIRE(client.try_connect(address_of(srv)));
    client.send("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nhi");
    BOOST_CHECK_EQUAL(client.recv_exact(2), "hi");
    BOOST_REQUIRE(script->log->wait_for("open:203.0.113.7:56324"));
  }
  {
    // No header within the timeout: the actor hears why, no data flows.
    test_client client;
    BOOST_REQUIRE(client.try_connect(address_of(srv)));
    BOOST_CHECK(client.closed_within(5000ms));
    BOOST_REQUIRE(wait_until([&] {
      for (auto& e : script->log->entries())
        if (e.find("error:") == 0 && e.find("PROXY header: none within 300 ms") != std::string::npos)
          return true;
      return false;
    }));
  }
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop", 2));
  BOOST_CHECK_EQUAL(stop_reason(rec, 1), "proxy_error");
}

BOOST_AUTO_TEST_CASE(a_silent_client_ends_at_the_read_timeout) {
  auto opts = process_options();
  opts.read_timeout = 500ms; // the first bytes must be read within it
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  client.send("once");
  BOOST_CHECK_EQUAL(client.recv_exact(4), "once");
  // The timeout counts from each activate(), not from the connection start.
  BOOST_CHECK(client.closed_within(5000ms));
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(stop_reason(rec), "timeout");
  BOOST_CHECK_EQUAL(
    rec.named("atoll.connection.stop")[0].metadata.get_or<std::string>("error", ""), "timeout");
  BOOST_REQUIRE(wait_until([&] {
    for (auto& e : script->log->entries())
      if (e.rfind("error:", 0) == 0 && e.find("timeout") != std::string::npos)
        return true;
    return false;
  }));
}

BOOST_AUTO_TEST_CASE(options_are_validated) {
  auto opts = process_options();
  opts.handler = make_handler_factory<probe_handler>(echo_script());
  auto both = validate(opts);
  BOOST_CHECK(both == errc::invalid_option);
  BOOST_CHECK_NE(describe(both).find("connection_process"), std::string::npos);
  opts = process_options();
  opts.detached_connections = true;
  BOOST_CHECK(validate(opts) == errc::invalid_option);
  opts = process_options();
  opts.hidden_connections = true;
  BOOST_CHECK(validate(opts) == errc::invalid_option);
  opts = process_options();
  opts.lightweight_connections = true;
  BOOST_CHECK(validate(opts) == errc::invalid_option);
  BOOST_CHECK_NE(describe(validate(opts)).find("lightweight_connections"), std::string::npos);
  // A detached connection needs an event_based_actor.
  opts = process_options();
  opts.connection_process = nullptr;
  opts.handler = make_handler_factory<probe_handler>(echo_script());
  BOOST_CHECK(!validate(opts));
  opts.lightweight_connections = true;
  BOOST_CHECK(!validate(opts));
  opts.detached_connections = true;
  BOOST_CHECK(validate(opts) == errc::invalid_option);
  BOOST_CHECK_NE(describe(validate(opts)).find("lightweight_connections"), std::string::npos);
  opts = process_options();
  opts.connection_process = nullptr;
  BOOST_CHECK(validate(opts) == errc::missing_option);
  BOOST_CHECK(!validate(process_options()));
}

BOOST_AUTO_TEST_SUITE_END()
