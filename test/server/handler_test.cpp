// The handler lifecycle over real sockets: callback dispatch, verdicts, each
// timeout rule, continue steps, mailbox messages, exceptions.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <thread>

#include "atoll/handlers/detail/connection_common.hpp"
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using push_atom = caf::atom_constant<caf::atom("push")>;
using close_atom = caf::atom_constant<caf::atom("closeconn")>;
using boom_atom = caf::atom_constant<caf::atom("boom")>;

} // namespace

BOOST_FIXTURE_TEST_SUITE(handler_lifecycle, server_fixture)

BOOST_AUTO_TEST_CASE(callbacks_run_in_order_and_peer_close_calls_handle_close) {
  auto script = std::make_shared<probe_script>();
  script->on_data = echo;
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  client.send("hi");
  BOOST_CHECK_EQUAL(client.recv_exact(2), "hi");
  client.close();
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_CHECK((script->log->entries() == std::vector<std::string>{"connection", "data:hi", "close"}));
}

BOOST_AUTO_TEST_CASE(late_and_early_first_bytes_both_arrive_whatever_the_first_read_policy) {
  // Clients that send only after the connection is set up make the
  // speculative first read stop paying (the workers then skip it); clients
  // that send with the connection make it pay again. Either way, every
  // connection's first bytes reach handle_data once, in order.
  auto script = std::make_shared<probe_script>();
  script->on_data = echo;
  auto& srv = start(probe_options(script));
  size_t opened = 0;
  for (int i = 0; i < 40; ++i) {
    auto client = connect(srv);
    BOOST_REQUIRE(script->log->wait_for("connection", ++opened));
    auto text = "late" + std::to_string(i);
    client.send(text);
    BOOST_REQUIRE_EQUAL(client.recv_exact(text.size()), text);
  }
  for (int i = 0; i < 40; ++i) {
    auto client = connect(srv);
    auto text = "early" + std::to_string(i);
    client.send(text);
    BOOST_REQUIRE_EQUAL(client.recv_exact(text.size()), text);
    ++opened;
  }
  BOOST_REQUIRE(script->log->wait_for("close", opened));
  BOOST_CHECK_EQUAL(script->log->count("connection"), opened);
  BOOST_CHECK_EQUAL(script->log->count("data:late7"), 1u);
  BOOST_CHECK_EQUAL(script->log->count("data:early7"), 1u);
}

BOOST_AUTO_TEST_CASE(the_first_read_is_skipped_only_while_it_does_not_pay) {
  // The policy itself, on a thread of its own (its outcomes are per thread).
  std::vector<bool> decisions;
  std::thread([&] {
    for (int i = 0; i < 16; ++i) { // learning: always tried
      decisions.push_back(detail::first_read_worth_trying());
      detail::first_read_tried(false);
    }
    for (int i = 0; i < 32; ++i) // nothing found: one probe in 16
      decisions.push_back(detail::first_read_worth_trying());
    // The next probe finds bytes: learning again, every one tried.
    while (!detail::first_read_worth_trying())
      continue;
    detail::first_read_tried(true);
    for (int i = 0; i < 16; ++i) {
      decisions.push_back(detail::first_read_worth_trying());
      detail::first_read_tried(i % 2 == 0); // one in two finds bytes
    }
    decisions.push_back(detail::first_read_worth_trying());
  }).join();
  BOOST_REQUIRE_EQUAL(decisions.size(), 16u + 32u + 17u);
  auto tried = [&](size_t from, size_t to) {
    return std::count(decisions.begin() + from, decisions.begin() + to, true);
  };
  BOOST_CHECK_EQUAL(tried(0, 16), 16);
  BOOST_CHECK_EQUAL(tried(16, 48), 2);
  BOOST_CHECK_EQUAL(tried(48, 65), 17); // one in two pays: always tried
}

BOOST_AUTO_TEST_CASE(a_close_verdict_closes_after_the_reply_and_calls_handle_close) {
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view data, atl::socket& sock) {
    sock.send("bye:" + std::string{data});
    return verdict::close();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  client.send("x");
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "bye:x");
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_CHECK((script->log->entries() == std::vector<std::string>{"connection", "data:x", "close"}));
}

BOOST_AUTO_TEST_CASE(hello_world_sends_from_handle_connection_and_closes) {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [](atl::socket& sock) {
    sock.send("Hello, World");
    return verdict::close();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "Hello, World");
  BOOST_REQUIRE(script->log->wait_for("close"));
}

BOOST_AUTO_TEST_CASE(an_error_verdict_calls_handle_error_with_the_reason) {
  log_capture logs;
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view, atl::socket&) {
    return verdict::error(caf::make_error(errc::handler_error, "bad request"));
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  client.send("?");
  BOOST_CHECK(client.closed_within(5000ms));
  BOOST_REQUIRE(script->log->wait_for("error:atoll error handler_error: bad request"));
  BOOST_CHECK_EQUAL(script->log->count("close"), 0u);
  BOOST_CHECK(logs.contains("bad request")); // not silent: logged
}

BOOST_AUTO_TEST_CASE(silent_terminate_on_error_does_not_log_error_verdicts) {
  log_capture logs;
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view, atl::socket&) {
    return verdict::error(caf::make_error(errc::handler_error, "quietly"));
  };
  auto opts = probe_options(script);
  opts.silent_terminate_on_error = true;
  auto& srv = start(opts);
  auto client = connect(srv);
  client.send("?");
  BOOST_REQUIRE(script->log->wait_for("error:atoll error handler_error: quietly"));
  BOOST_CHECK(!logs.contains("quietly"));
}

BOOST_AUTO_TEST_CASE(an_error_verdict_of_timeout_calls_handle_timeout) {
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view, atl::socket&) {
    return verdict::error(caf::make_error(errc::timeout));
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  client.send("t");
  BOOST_REQUIRE(script->log->wait_for("timeout"));
  BOOST_CHECK_EQUAL(script->log->count("error:atoll error timeout"), 0u);
}

BOOST_AUTO_TEST_CASE(the_read_timeout_calls_handle_timeout_with_the_socket_open) {
  auto script = std::make_shared<probe_script>();
  script->on_timeout = [](atl::socket& sock) { sock.send("idle, bye"); };
  auto opts = probe_options(script);
  opts.read_timeout = 200ms;
  auto& srv = start(opts);
  auto started = std::chrono::steady_clock::now();
  auto client = connect(srv);
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "idle, bye"); // sent from handle_timeout
  auto elapsed = std::chrono::steady_clock::now() - started;
  BOOST_CHECK(elapsed >= 200ms);
  BOOST_CHECK(elapsed < 2000ms);
  BOOST_CHECK((script->log->entries() == std::vector<std::string>{"connection", "timeout"}));
}

BOOST_AUTO_TEST_CASE(client_data_restarts_the_read_timeout) {
  auto script = std::make_shared<probe_script>();
  script->on_data = echo;
  auto opts = probe_options(script);
  opts.read_timeout = 1000ms;
  auto& srv = start(opts);
  auto client = connect(srv);
  // Data every 100 ms for ~1.5 s keeps the connection alive past its 1 s
  // (a wide margin: a round trip under a sanitizer can take a while).
  for (int i = 0; i < 15; ++i) {
    client.send("k");
    BOOST_REQUIRE_EQUAL(client.recv_exact(1), "k");
    std::this_thread::sleep_for(100ms);
  }
  BOOST_CHECK_EQUAL(script->log->count("timeout"), 0u);
  BOOST_CHECK(client.closed_within(4000ms)); // then silence times out
  BOOST_CHECK(script->log->wait_for("timeout"));
}

BOOST_AUTO_TEST_CASE(mailbox_messages_do_not_reset_the_read_timeout) {
  auto script = std::make_shared<probe_script>();
  script->messages = [log{script->log}](atl::handler&, atl::socket&) -> caf::message_handler {
    return {[log](ping_atom) { log->add("ping"); }};
  };
  auto opts = probe_options(script);
  opts.read_timeout = 1000ms;
  auto& srv = start(opts);
  auto started = std::chrono::steady_clock::now();
  auto client = connect(srv);
  auto conn = only_connection(srv);
  // Messages every 50 ms must not keep the silent client alive.
  while (!script->log->count("timeout")
         && std::chrono::steady_clock::now() - started < 6000ms) {
    caf::anon_send(conn, ping_atom::value);
    std::this_thread::sleep_for(50ms);
  }
  auto elapsed = std::chrono::steady_clock::now() - started;
  BOOST_REQUIRE_EQUAL(script->log->count("timeout"), 1u);
  BOOST_CHECK(elapsed < 3000ms);
  BOOST_CHECK_GT(script->log->count("ping"), 3u);
}

BOOST_AUTO_TEST_CASE(a_one_shot_timeout_applies_once) {
  auto script = std::make_shared<probe_script>();
  // Long enough for the talker's first bytes to be read within it on a
  // slow (sanitizer) run.
  script->on_connection = [](atl::socket&) { return verdict::proceed(1000ms); };
  script->on_data = [](std::string_view, atl::socket&) { return verdict::proceed(); };
  auto opts = probe_options(script);
  opts.read_timeout = 60000ms;
  auto& srv = start(opts);
  // Silent: the one-shot 1 s applies.
  auto silent = connect(srv);
  BOOST_CHECK(silent.closed_within(5000ms));
  BOOST_REQUIRE(script->log->wait_for("timeout"));
  // Talkative: after the first data the 60 s read timeout is back.
  auto talker = connect(srv);
  talker.send("a");
  BOOST_REQUIRE(script->log->wait_for("data:a"));
  BOOST_CHECK(talker.silent_for(1500ms));
  BOOST_CHECK_EQUAL(script->log->count("timeout"), 1u);
}

BOOST_AUTO_TEST_CASE(a_persistent_timeout_replaces_the_read_timeout) {
  auto script = std::make_shared<probe_script>();
  // Callbacks run on server threads: they record, the test thread checks.
  script->on_connection = [log{script->log}](atl::socket& sock) {
    log->add("timeout_before:" + std::to_string(sock.read_timeout().count()));
    return verdict::proceed(persistent{1000ms}); // the first bytes come within it
  };
  script->on_data = [log{script->log}](std::string_view, atl::socket& sock) {
    log->add("timeout_now:" + std::to_string(sock.read_timeout().count()));
    return verdict::proceed(); // plain proceed keeps the persistent 1000 ms
  };
  auto opts = probe_options(script);
  opts.read_timeout = 60000ms;
  auto& srv = start(opts);
  auto client = connect(srv);
  client.send("a");
  BOOST_REQUIRE(script->log->wait_for("data:a"));
  auto after_data = std::chrono::steady_clock::now();
  BOOST_CHECK(client.closed_within(6000ms));
  BOOST_CHECK(std::chrono::steady_clock::now() - after_data < 5000ms);
  BOOST_CHECK(script->log->wait_for("timeout"));
  BOOST_CHECK_EQUAL(script->log->count("timeout_before:60000"), 1u);
  BOOST_CHECK_EQUAL(script->log->count("timeout_now:1000"), 1u);
}

BOOST_AUTO_TEST_CASE(an_infinite_timeout_never_fires) {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [](atl::socket&) { return verdict::proceed(infinite); };
  auto opts = probe_options(script);
  opts.read_timeout = 100ms;
  auto& srv = start(opts);
  auto client = connect(srv);
  BOOST_CHECK(client.silent_for(600ms)); // six read timeouts long
  client.close();
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_CHECK_EQUAL(script->log->count("timeout"), 0u);
}

BOOST_AUTO_TEST_CASE(a_synchronous_recv_works_and_its_timeout_leads_to_handle_timeout) {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [](atl::socket& sock) {
    sock.send("name? ");
    auto name = sock.recv(5, 2000ms);
    if (!name)
      return verdict::error(name.error());
    sock.send("hi " + *name + "\n");
    auto more = sock.recv(0, 150ms); // the client says nothing more
    if (!more)
      return verdict::error(more.error());
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  BOOST_CHECK_EQUAL(client.recv_exact(6), "name? ");
  client.send("alice");
  BOOST_CHECK_EQUAL(client.recv_exact(9), "hi alice\n");
  BOOST_CHECK(client.closed_within(3000ms));
  BOOST_REQUIRE(script->log->wait_for("timeout"));
}

BOOST_AUTO_TEST_CASE(a_continue_step_runs_before_other_messages) {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [](atl::socket&) {
    return verdict::proceed(continue_step{caf::make_message(42)});
  };
  script->on_continue = [](const caf::message&, atl::socket& sock) {
    sock.send("ready");
    return verdict::proceed();
  };
  script->on_data = echo;
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  BOOST_CHECK_EQUAL(client.recv_exact(5), "ready");
  client.send("z");
  BOOST_CHECK_EQUAL(client.recv_exact(1), "z");
  BOOST_CHECK((script->log->since(0)
               == std::vector<std::string>{"connection", "continue:(42)", "data:z"}));
}

BOOST_AUTO_TEST_CASE(message_handlers_answer_requests_and_use_the_socket) {
  auto script = std::make_shared<probe_script>();
  script->messages = [](atl::handler&, atl::socket& sock) -> caf::message_handler {
    return {
      [&sock](ping_atom) { return std::string{"pong"}; },          // call
      [&sock](push_atom, const std::string& msg) { sock.send(msg); }, // cast / info
    };
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  auto conn = only_connection(srv);
  caf::scoped_actor self{sys};
  std::string reply;
  self->request(conn, 5s, ping_atom::value)
    .receive([&](const std::string& r) { reply = r; },
             [&](caf::error& err) { BOOST_FAIL(describe(err)); });
  BOOST_CHECK_EQUAL(reply, "pong");
  caf::anon_send(conn, push_atom::value, std::string{"news\n"});
  BOOST_CHECK_EQUAL(client.recv_exact(5), "news\n");
  // A message no handler matches is dropped; a request gets an error.
  bool got_error = false;
  self->request(conn, 5s, 3.14).receive([](double) {}, [&](caf::error&) { got_error = true; });
  BOOST_CHECK(got_error);
  client.send("still here");
  BOOST_REQUIRE(script->log->wait_for("data:still here"));
}

// Run by both connection actors (the suite's `.light` run): what a requester
// gets is CAF's answer in every case.
BOOST_AUTO_TEST_CASE(requests_get_what_caf_answers_up_to_and_after_the_end) {
  auto script = std::make_shared<probe_script>();
  script->messages = [](atl::handler&, atl::socket&) -> caf::message_handler {
    return {[](boom_atom) -> std::string { throw std::logic_error("request boom"); }};
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  auto conn = only_connection(srv);
  caf::scoped_actor self{sys};
  self->monitor(conn);
  caf::error err;
  auto keep_error = [&](caf::error& e) { err = std::move(e); };
  self->request(conn, 5s, 3.14).receive([](double) {}, keep_error);
  BOOST_CHECK(err == caf::sec::unexpected_message);
  std::string name;
  self->request(conn, 5s, caf::sys_atom::value, caf::get_atom::value, std::string{"info"})
    .receive([&](caf::ok_atom, const std::string&, const caf::strong_actor_ptr&,
                 const std::string& n) { name = n; },
             [&](caf::error& e) { BOOST_FAIL(describe(e)); });
  BOOST_CHECK_EQUAL(name, "atoll.connection");
  // An exception in the request's handler: the request gets the reason the
  // connection ends with, and so does its monitor.
  err = caf::error{};
  self->request(conn, 5s, boom_atom::value).receive([](const std::string&) {}, keep_error);
  BOOST_CHECK(err == errc::handler_exception);
  BOOST_CHECK(client.closed_within(5000ms));
  caf::error down_reason;
  self->receive([&](caf::down_msg& dm) { down_reason = dm.reason; },
                caf::after(std::chrono::seconds{5}) >> [] { BOOST_FAIL("no down message"); });
  BOOST_CHECK(down_reason == errc::handler_exception);
  err = caf::error{};
  self->request(conn, 5s, ping_atom::value).receive([](const std::string&) {}, keep_error);
  BOOST_CHECK(err == caf::sec::request_receiver_down);
  BOOST_REQUIRE(script->log->wait_for("error:atoll error handler_exception: request boom"));
}

// Run by both connection actors: a message the handler skips waits, in
// order, and is tried again after each message it handles.
BOOST_AUTO_TEST_CASE(a_message_the_handler_skips_is_tried_again_after_the_next_one) {
  auto script = std::make_shared<probe_script>();
  script->messages = [](atl::handler&, atl::socket& sock) -> caf::message_handler {
    // State of this connection's handlers (they run in its actor only).
    auto ready = std::make_shared<bool>(false);
    return {
      [ready, &sock](push_atom, const std::string& text) -> caf::result<void> {
        if (!*ready)
          return caf::skip;
        sock.send(text);
        return caf::unit;
      },
      [ready](ping_atom) { *ready = true; },
    };
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  auto conn = only_connection(srv);
  caf::anon_send(conn, push_atom::value, std::string{"one "});
  caf::anon_send(conn, push_atom::value, std::string{"two "});
  client.send("x"); // a socket event in between: skipped ones still wait
  BOOST_REQUIRE(script->log->wait_for("data:x"));
  BOOST_CHECK(client.silent_for(200ms));
  caf::anon_send(conn, ping_atom::value);
  caf::anon_send(conn, push_atom::value, std::string{"three"});
  BOOST_CHECK_EQUAL(client.recv_exact(13), "one two three");
}

BOOST_AUTO_TEST_CASE(self_is_unavailable_on_a_lightweight_connection_and_ends_only_it) {
  log_capture logs;
  auto script = std::make_shared<probe_script>();
  // Each connection's handler, set before its first callback (the
  // callbacks of one connection run in its actor, one at a time).
  auto probe = std::make_shared<std::atomic<atl::handler*>>(nullptr);
  script->messages = [probe](atl::handler& h, atl::socket&) {
    probe->store(&h);
    return caf::message_handler{};
  };
  script->on_data = [probe](std::string_view data, atl::socket& sock) {
    if (data == "self?")
      static_cast<void>(static_cast<probe_handler*>(probe->load())->actor());
    return echo(data, sock);
  };
  auto opts = probe_options(script);
  opts.lightweight_connections = true;
  auto& srv = start(opts);
  auto neighbour = connect(srv);
  neighbour.send("n");
  BOOST_REQUIRE_EQUAL(neighbour.recv_exact(1), "n");
  auto asker = connect(srv);
  asker.send("self?");
  BOOST_CHECK(asker.closed_within(5000ms));
  BOOST_REQUIRE(script->log->wait_for(
    "error:atoll error handler_exception: self() is not available to the handlers of "
    "lightweight connections (server_options::lightweight_connections)"));
  BOOST_CHECK(logs.contains("self() is not available"));
  neighbour.send("m");
  BOOST_CHECK_EQUAL(neighbour.recv_exact(1), "m");
}

BOOST_AUTO_TEST_CASE(socket_events_and_mailbox_messages_arriving_together_are_all_handled) {
  // A connection actor handles socket events without CAF's mailbox when no
  // message waits, and blocks its mailbox itself: a message or an event
  // that arrives meanwhile must still wake it. Eight clients, each on its
  // own thread, send "d\n" tokens in bursts (each token its own segment,
  // so events arrive while the actor runs) and read the echoes, while
  // another thread sends each connection "m\n" tokens through its mailbox;
  // every token must come back, once.
  constexpr size_t num_clients = 8;
  constexpr int rounds = 400;
  constexpr int burst = 4;
  constexpr int pushes = 1000;
  auto script = std::make_shared<probe_script>();
  script->on_data = echo;
  script->messages = [](atl::handler&, atl::socket& sock) -> caf::message_handler {
    return {[&sock](push_atom, const std::string& msg) { sock.send(msg); }};
  };
  auto& srv = start(probe_options(script));
  std::vector<test_client> clients;
  for (size_t i = 0; i < num_clients; ++i)
    clients.push_back(connect(srv));
  std::vector<caf::actor> conns;
  BOOST_REQUIRE(wait_until([&] {
    auto all = srv.connections();
    if (!all || all->size() != num_clients)
      return false;
    conns.clear();
    for (auto& rec : *all)
      conns.push_back(rec.handle);
    return true;
  }));
  std::vector<int> echoed(num_clients, 0);
  std::vector<int> pushed(num_clients, 0);
  std::vector<int> stalled(num_clients, 0);
  std::vector<std::string> unexpected(num_clients);
  std::vector<std::string> partial(num_clients);
  // Reads what client `k` gets within 5 s and counts its tokens. (The
  // threads only count, with no Boost.Test macro, even a passing one: they
  // write the framework's state.)
  auto take_tokens = [&](size_t k) {
    auto chunk = clients[k].recv_some(5s);
    if (!chunk || chunk->empty()) {
      stalled[k] = 1;
      return;
    }
    auto& buf = partial[k];
    buf += *chunk;
    size_t i = 0;
    for (; i + 2 <= buf.size(); i += 2) {
      auto token = buf.substr(i, 2);
      if (token == "d\n")
        ++echoed[k];
      else if (token == "m\n")
        ++pushed[k];
      else
        unexpected[k] += token;
    }
    buf.erase(0, i);
  };
  auto read_until = [&](size_t k, int echoes, int pushes_seen) {
    while ((echoed[k] < echoes || pushed[k] < pushes_seen) && !stalled[k]
           && unexpected[k].empty())
      take_tokens(k);
  };
  std::thread pusher{[&] {
    for (int i = 0; i < pushes; ++i) {
      for (auto& conn : conns)
        caf::anon_send(conn, push_atom::value, std::string{"m\n"});
      std::this_thread::yield(); // spread over the ping-pong
    }
  }};
  std::vector<std::thread> players;
  for (size_t k = 0; k < num_clients; ++k)
    players.emplace_back([&, k] {
      for (int r = 0; r < rounds && !stalled[k]; ++r) {
        for (int b = 0; b < burst; ++b)
          if (!clients[k].try_send("d\n"))
            stalled[k] = 1;
        read_until(k, (r + 1) * burst, 0);
      }
    });
  for (auto& player : players)
    player.join();
  pusher.join();
  for (size_t k = 0; k < num_clients; ++k) {
    read_until(k, rounds * burst, pushes);
    BOOST_CHECK_EQUAL(stalled[k], 0);
    BOOST_CHECK_EQUAL(unexpected[k], "");
    BOOST_CHECK_EQUAL(echoed[k], rounds * burst);
    BOOST_CHECK_EQUAL(pushed[k], pushes);
  }
  // Nothing more: no token came twice.
  for (auto& client : clients)
    client.send("d\n");
  for (size_t k = 0; k < num_clients; ++k) {
    read_until(k, rounds * burst + 1, pushes);
    BOOST_CHECK_EQUAL(echoed[k], rounds * burst + 1);
    BOOST_CHECK_EQUAL(pushed[k], pushes);
    BOOST_CHECK_EQUAL(partial[k], "");
  }
  // And nothing after it: the counts stop here.
  for (auto& client : clients)
    BOOST_CHECK(!client.recv_some(50ms));
}

BOOST_AUTO_TEST_CASE(apply_lets_a_message_handler_end_the_connection) {
  auto script = std::make_shared<probe_script>();
  script->messages = [](atl::handler& h, atl::socket& sock) -> caf::message_handler {
    auto* probe = static_cast<probe_handler*>(&h);
    return {[probe, &sock](close_atom) {
      sock.send("closing");
      probe->apply_now(verdict::close());
    }};
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  caf::anon_send(only_connection(srv), close_atom::value);
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "closing");
  BOOST_REQUIRE(script->log->wait_for("close"));
}

BOOST_AUTO_TEST_CASE(a_hold_verdict_reads_nothing_and_times_nothing_out_until_proceed) {
  auto script = std::make_shared<probe_script>();
  // Holds after the first data; echoes later data.
  script->on_data = [](std::string_view data, atl::socket& sock) {
    return data == "first" ? verdict::hold() : echo(data, sock);
  };
  script->messages = [](atl::handler& h, atl::socket&) -> caf::message_handler {
    auto* probe = static_cast<probe_handler*>(&h);
    return {[probe](ping_atom) { probe->apply_now(verdict::proceed()); }};
  };
  auto opts = probe_options(script);
  opts.read_timeout = 500ms;
  auto& srv = start(opts);
  auto client = connect(srv);
  client.send("first");
  BOOST_REQUIRE(script->log->wait_for("data:first"));
  client.send("second");
  // Three read timeouts long: the held connection neither reads "second"
  // nor times out, and stays open.
  BOOST_CHECK(client.silent_for(1500ms));
  BOOST_CHECK_EQUAL(script->log->count("data:second"), 0u);
  BOOST_CHECK_EQUAL(script->log->count("timeout"), 0u);
  // Proceed from a message: the waiting bytes are read and echoed, then the
  // read timeout applies again.
  caf::anon_send(only_connection(srv), ping_atom::value);
  BOOST_CHECK_EQUAL(client.recv_exact(6), "second");
  BOOST_CHECK(client.closed_within(3000ms));
  BOOST_CHECK(script->log->wait_for("timeout"));
  BOOST_CHECK_EQUAL(script->log->count("data:second"), 1u);
}

BOOST_AUTO_TEST_CASE(a_held_connection_gets_handle_shutdown_at_a_stop) {
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view, atl::socket&) { return verdict::hold(); };
  script->on_shutdown = [](atl::socket& sock) { sock.send("bye"); };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  client.send("hold me");
  BOOST_REQUIRE(script->log->wait_for("data:hold me"));
  BOOST_REQUIRE(!srv.stop());
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "bye");
  BOOST_CHECK_EQUAL(script->log->count("shutdown"), 1u);
}

BOOST_AUTO_TEST_CASE(an_exception_ends_only_its_own_connection_and_is_logged) {
  log_capture logs;
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view data, atl::socket& sock) {
    if (data == "crash")
      throw std::runtime_error("handler blew up");
    sock.send(data);
    return verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.silent_terminate_on_error = true; // exceptions are logged regardless
  auto& srv = start(opts);
  auto neighbour = connect(srv);
  auto victim = connect(srv);
  neighbour.send("a");
  BOOST_REQUIRE_EQUAL(neighbour.recv_exact(1), "a");
  victim.send("crash");
  BOOST_CHECK(victim.closed_within(5000ms));
  BOOST_REQUIRE(
    script->log->wait_for("error:atoll error handler_exception: handler blew up"));
  BOOST_CHECK(logs.contains("handler blew up"));
  neighbour.send("b");
  BOOST_CHECK_EQUAL(neighbour.recv_exact(1), "b");
  // The server is unharmed: new connections work.
  auto fresh = connect(srv);
  fresh.send("c");
  BOOST_CHECK_EQUAL(fresh.recv_exact(1), "c");
}

BOOST_AUTO_TEST_CASE(an_exception_in_a_message_handler_ends_only_its_connection) {
  log_capture logs;
  auto script = std::make_shared<probe_script>();
  script->on_data = echo;
  script->messages = [](atl::handler&, atl::socket&) -> caf::message_handler {
    return {[](boom_atom) { throw std::logic_error("mailbox boom"); }};
  };
  auto& srv = start(probe_options(script));
  auto neighbour = connect(srv);
  neighbour.send("n");
  BOOST_REQUIRE_EQUAL(neighbour.recv_exact(1), "n");
  auto victim = connect(srv);
  victim.send("v");
  BOOST_REQUIRE_EQUAL(victim.recv_exact(1), "v");
  BOOST_REQUIRE(wait_until([&] {
    auto conns = srv.connections();
    return conns && conns->size() == 2;
  }));
  auto conns = srv.connections();
  BOOST_REQUIRE(conns);
  for (auto& conn : *conns)
    caf::anon_send(conn.handle, boom_atom::value); // both get it; both end
  BOOST_CHECK(victim.closed_within(5000ms));
  BOOST_CHECK(neighbour.closed_within(5000ms));
  BOOST_REQUIRE(script->log->wait_for("error:atoll error handler_exception: mailbox boom", 2));
  BOOST_CHECK(logs.contains("mailbox boom"));
  auto fresh = connect(srv);
  fresh.send("f");
  BOOST_CHECK_EQUAL(fresh.recv_exact(1), "f");
}

BOOST_AUTO_TEST_CASE(closing_the_socket_in_a_callback_ends_without_handle_close) {
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view, atl::socket& sock) {
    sock.send("done");
    static_cast<void>(sock.close());
    return verdict::proceed(); // ignored: the socket is closed
  };
  auto opts = probe_options(script);
  opts.read_timeout = 60000ms;
  auto& srv = start(opts);
  auto client = connect(srv);
  client.send("q");
  BOOST_CHECK_EQUAL(client.recv_until_closed(2000ms), "done");
  BOOST_REQUIRE(wait_until([&] { return srv.info()->active_connections == 0; }));
  BOOST_CHECK((script->log->entries() == std::vector<std::string>{"connection", "data:q"}));
}

BOOST_AUTO_TEST_CASE(a_reset_by_the_peer_calls_handle_close) {
  auto script = std::make_shared<probe_script>();
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  BOOST_REQUIRE(script->log->wait_for("connection"));
  client.reset();
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_CHECK_EQUAL(script->log->size(), 2u);
}

BOOST_AUTO_TEST_CASE(stopping_the_server_calls_handle_shutdown_which_can_say_goodbye) {
  auto script = std::make_shared<probe_script>();
  script->on_shutdown = [](atl::socket& sock) { sock.send("goodbye\n"); };
  auto opts = probe_options(script);
  auto& srv = start(opts);
  auto a = connect(srv);
  auto b = connect(srv);
  BOOST_REQUIRE(script->log->wait_for("connection", 2));
  BOOST_REQUIRE(!srv.stop());
  BOOST_CHECK_EQUAL(a.recv_until_closed(), "goodbye\n");
  BOOST_CHECK_EQUAL(b.recv_until_closed(), "goodbye\n");
  BOOST_CHECK_EQUAL(script->log->count("shutdown"), 2u);
  BOOST_CHECK_EQUAL(script->log->count("close"), 0u);
  BOOST_CHECK(srv.status() == server_status::stopped);
}

BOOST_AUTO_TEST_SUITE_END()
