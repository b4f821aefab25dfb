// The connection actor and its output queue driven through a transport that
// injects faults (test/support/faulty_transport.hpp): byte-sized partial
// reads and writes, would-block results on ready sockets, and a reset or a
// system error on the Nth read or write, for every N a conversation has, and
// on the Nth step of a TLS handshake.
#include <boost/test/unit_test.hpp>

#include <string>

#include "support/faulty_transport.hpp"
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

/// `n` bytes that differ per position (a reordering or a loss shows).
std::string numbered_bytes(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return out;
}

/// Greets, echoes, and says goodbye and closes on "bye".
std::shared_ptr<probe_script> conversation_script() {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [](atl::socket& sock) {
    static_cast<void>(sock.send("welcome\n"));
    return verdict::proceed();
  };
  script->on_data = [](std::string_view data, atl::socket& sock) {
    if (data.find("bye") != std::string_view::npos) { // maybe coalesced with an earlier line
      static_cast<void>(sock.send("see you\n"));
      return verdict::close();
    }
    return echo(data, sock);
  };
  return script;
}

size_t final_callbacks(const event_log& log) {
  size_t n = 0;
  for (auto& e : log.entries())
    if (e == "close" || e == "shutdown" || e == "timeout" || e.rfind("error:", 0) == 0)
      ++n;
  return n;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(transport_faults, server_fixture)

// Found by test/fuzz/fuzz_output_queue: the defaulted move constructor left
// the moved-from queue's counters (and its read position) behind, so it
// claimed pending bytes it did not hold, and appending to it could index an
// empty vector.
BOOST_AUTO_TEST_CASE(a_moved_from_output_queue_is_empty_and_usable) {
  output_queue a;
  a.append("abc");
  output_queue b{std::move(a)};
  BOOST_CHECK_EQUAL(b.pending_bytes(), 3u);
  BOOST_CHECK(a.empty());
  BOOST_CHECK_EQUAL(a.pending_bytes(), 0u);
  BOOST_CHECK_EQUAL(a.buffered_bytes(), 0u);
  a.append("x");
  BOOST_CHECK_EQUAL(a.pending_bytes(), 1u);
  output_queue c;
  c = std::move(b);
  BOOST_CHECK(b.empty());
  BOOST_CHECK_EQUAL(b.pending_bytes(), 0u);
  BOOST_CHECK_EQUAL(c.pending_bytes(), 3u);
}

BOOST_AUTO_TEST_CASE(three_byte_writes_that_often_would_block_deliver_every_byte_in_order) {
  auto plan = std::make_shared<fault_plan>();
  plan->max_write = 3;
  plan->would_block_every = 3;
  // Sizes kept small: each would-block costs a trip through epoll, and
  // under CPU contention each trip can wait for a time slice.
  const auto a = numbered_bytes(8000);
  const auto b = std::string{"-"};
  const auto c = numbered_bytes(4000);
  auto script = std::make_shared<probe_script>();
  script->on_connection = [a, b, c](atl::socket& sock) {
    static_cast<void>(sock.send({a, b, c})); // gathered, mostly queued
    return verdict::proceed();
  };
  script->on_data = echo;
  auto opts = probe_options(script);
  opts.transport_layer = fault_plan::factory(plan);
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  BOOST_CHECK(client.recv_exact(a.size() + b.size() + c.size(), 60000ms) == a + b + c);
  client.send("after");
  BOOST_CHECK_EQUAL(client.recv_exact(5), "after");
  client.close();
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  auto stop = rec.named("atoll.connection.stop").front();
  BOOST_CHECK_EQUAL(stop.measurements.get_or<uint64_t>("send_oct", 0),
                    a.size() + b.size() + c.size() + 5);
  BOOST_CHECK_GT(plan->injected.load(), 1000u); // 4,000 writes, every third would block
  BOOST_CHECK_EQUAL(script->log->count("close"), 1u);
}

BOOST_AUTO_TEST_CASE(five_byte_reads_that_often_would_block_deliver_every_byte_in_order) {
  auto plan = std::make_shared<fault_plan>();
  plan->max_read = 5;
  plan->would_block_every = 2;
  auto script = std::make_shared<probe_script>();
  script->on_data = echo;
  auto opts = probe_options(script);
  opts.transport_layer = fault_plan::factory(plan);
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto client = connect(srv);
  const auto data = numbered_bytes(8000);
  client.send(data);
  BOOST_CHECK(client.recv_exact(data.size(), 60000ms) == data);
  client.close();
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  auto stop = rec.named("atoll.connection.stop").front();
  BOOST_CHECK_EQUAL(stop.measurements.get_or<uint64_t>("recv_oct", 0), data.size());
  // Every callback got at most 5 bytes.
  BOOST_CHECK_GE(script->log->entries().size(), data.size() / 5);
  BOOST_CHECK_GT(plan->injected.load(), 500u); // 1,600 reads, every second would block
}

BOOST_AUTO_TEST_CASE(a_reset_or_an_error_on_the_nth_operation_ends_the_connection_once) {
  // For N = 1, 2, ... the Nth read or write of a conversation (greeting,
  // three echoes, goodbye; writes of at most 3 bytes, so that most output
  // goes through the queue) fails, until N is past the conversation. Each
  // run must end with exactly one final callback and one stop event,
  // within the deadline, never with a hang or a second end.
  for (auto on_reads : {false, true}) {
    for (auto kind : {fault::reset, fault::failure}) {
      size_t runs = 0;
      for (size_t n = 1; n < 200; ++n) {
        auto plan = std::make_shared<fault_plan>();
        plan->max_write = 3;
        (on_reads ? plan->on_read : plan->on_write)[n] = kind;
        auto script = conversation_script();
        auto opts = probe_options(script);
        opts.transport_layer = fault_plan::factory(plan);
        opts.silent_terminate_on_error = true;
        auto& srv = start(opts);
        telemetry_recorder rec{bus};
        {
          auto client = connect(srv);
          // One step at a time (so that each message is a read of its own):
          // wait for the greeting, then for each echo, unless the
          // connection broke.
          bool open = true;
          auto await = [&](const std::string& want) {
            std::string got;
            while (open && got.find(want) == std::string::npos) {
              auto chunk = client.recv_some(500ms);
              if (!chunk)
                return; // lost to a fault: go on
              if (chunk->empty())
                open = false;
              got += *chunk;
            }
          };
          await("welcome\n");
          for (std::string msg : {"a", "b", "c"}) {
            if (open && client.try_send(msg))
              await(msg);
          }
          static_cast<void>(client.try_send("bye"));
          // The connection ends either way: by the fault or by "bye".
          static_cast<void>(client.recv_until_closed(5000ms));
        }
        BOOST_TEST_CONTEXT((on_reads ? "read " : "write ")
                           << n << (kind == fault::reset ? " reset" : " failure")) {
          BOOST_REQUIRE(rec.wait_for("atoll.connection.stop", 1, 5000ms));
          BOOST_CHECK(wait_until([&] { return final_callbacks(*script->log) == 1; }));
          BOOST_CHECK_EQUAL(final_callbacks(*script->log), 1u);
          BOOST_CHECK_EQUAL(rec.count("atoll.connection.stop"), 1u);
        }
        BOOST_CHECK(!srv.stop());
        ++runs;
        if (plan->injected.load() == 0)
          break; // N is past the conversation: every position was tried
      }
      BOOST_TEST_MESSAGE((on_reads ? "reads" : "writes")
                         << (kind == fault::reset ? " reset" : " failing") << ": " << runs
                         << " runs");
      BOOST_CHECK_GE(runs, 3u);
      BOOST_CHECK_LT(runs, 199u);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_fault_at_any_step_of_a_tls_handshake_ends_the_connection_once) {
  // For N = 1, 2, ... the Nth step of the server's TLS handshake (TLS 1.3
  // and TLS 1.2) would block (a spurious want_write), sees a reset or fails,
  // until N is past the handshake. A spurious would-block only delays: the client's echo
  // works. A reset or a failure ends the connection before the handler
  // sees it, as a handshake error, with exactly one stop event.
  for (auto version : {tls_version::tls1_3, tls_version::tls1_2})
  for (auto kind : {fault::would_block, fault::reset, fault::failure}) {
    auto tls = test_tls_options();
    tls.max_version = version;
    auto ctx = tls_context::make(tls);
    BOOST_REQUIRE(ctx);
    size_t runs = 0;
    for (size_t n = 1; n < 50; ++n) {
      auto plan = std::make_shared<fault_plan>();
      plan->on_handshake[n] = kind;
      auto script = std::make_shared<probe_script>();
      script->on_data = echo;
      auto opts = probe_options(script);
      opts.tls.reset();
      opts.transport_layer = fault_plan::factory(plan, tls_transport_factory(*ctx));
      opts.transport_name = "tls";
      opts.silent_terminate_on_error = true;
      auto& srv = start(opts);
      telemetry_recorder rec{bus};
      bool echoed = false;
      {
        test_client client;
        if (client.try_connect_tls(address_of(srv), {}) && client.try_send("ping")) {
          std::string got;
          while (got.size() < 4) {
            auto chunk = client.recv_some(2000ms);
            if (!chunk || chunk->empty())
              break;
            got += *chunk;
          }
          echoed = got == "ping";
        }
      }
      bool injected = plan->injected.load() > 0;
      BOOST_TEST_CONTEXT(to_string(version) << " handshake step " << n << ": "
                         << (kind == fault::would_block ? "would block"
                             : kind == fault::reset     ? "reset"
                                                        : "failure")) {
        BOOST_REQUIRE(rec.wait_for("atoll.connection.stop", 1, 5000ms));
        BOOST_CHECK_EQUAL(rec.count("atoll.connection.stop"), 1u);
        auto reason = rec.named("atoll.connection.stop")
                        .front()
                        .metadata.get_or<std::string>("reason", "?");
        if (kind == fault::would_block || !injected) {
          BOOST_CHECK(echoed);
          BOOST_CHECK_EQUAL(script->log->count("connection"), 1u);
          BOOST_CHECK_EQUAL(reason, "peer_closed");
        } else {
          BOOST_CHECK(!echoed);
          BOOST_CHECK_EQUAL(script->log->count("connection"), 0u);
          BOOST_CHECK_EQUAL(reason, "handshake_error");
        }
      }
      BOOST_CHECK(!srv.stop());
      ++runs;
      if (!injected)
        break; // N is past the handshake: every step was tried
    }
    // Every step was faulted, and a run past the handshake ended the loop.
    // How many steps a handshake takes depends on what has arrived when the
    // server tries again (OpenSSL's server finishes `SSL_do_handshake` once
    // its last flight is written, or only after the client's Finished):
    // one or two here, and one more after a spurious would-block.
    BOOST_TEST_MESSAGE(to_string(version) << ", " << static_cast<int>(kind) << ": " << runs - 1
                                          << " handshake steps faulted");
    BOOST_CHECK_GE(runs, 2u);
    BOOST_CHECK_LT(runs, 49u);
  }
}

BOOST_AUTO_TEST_SUITE_END()
