// Metrics: exact values after a scripted set of connections, read from C++,
// from an actor, and from the Prometheus endpoint (fetched with curl and
// checked with promtool).
#include <boost/test/unit_test.hpp>

#include "atoll/runtime/reactor.hpp"
#include "support/process.hpp"
#include "atoll/handlers/detail/socket_access.hpp" // detail::data_events
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

/// Echoes; answers "bye" and closes.
std::shared_ptr<probe_script> echo_or_bye_script() {
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view data, atl::socket& sock) -> verdict {
    sock.send(data);
    return data == "bye" ? verdict::close() : verdict::proceed();
  };
  return script;
}

/// Sends `text` and expects it back.
void echo_round(test_client& client, const std::string& text) {
  client.send(text);
  BOOST_CHECK_EQUAL(client.recv_exact(text.size()), text);
}

/// Runs curl with `args` on `url`; returns its standard output (headers
/// included with -i).
std::string curl(const std::vector<std::string>& args, const std::string& url) {
  std::vector<std::string> argv{"/usr/bin/curl", "-s", "--max-time", "5"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(url);
  child_process proc{argv};
  BOOST_REQUIRE_MESSAGE(proc.started(), "cannot run curl");
  auto out = proc.stdout_until_eof();
  BOOST_CHECK_EQUAL(proc.wait().value_or(-1), 0);
  return out;
}

uint64_t closed(const metrics_snapshot& snap, const std::string& reason) {
  auto i = snap.connections_closed.find(reason);
  return i == snap.connections_closed.end() ? 0 : i->second;
}

} // namespace

/// A server fixture that can serve one echo connection.
struct metrics_fixture : server_fixture {
  /// Starts an echo server, echoes `text` on one connection, closes it and
  /// waits for its stop event.
  void serve_one_echo(const std::string& text) {
    telemetry_recorder rec{bus};
    auto& srv = start(probe_options(echo_script()));
    {
      auto c = connect(srv);
      echo_round(c, text);
    }
    BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  }
};

BOOST_FIXTURE_TEST_SUITE(metrics, metrics_fixture)

BOOST_AUTO_TEST_CASE(metrics_count_a_scripted_set_of_connections_exactly) {
  auto metrics = std::make_shared<server_metrics>(bus);
  telemetry_recorder rec{bus};
  auto script = echo_or_bye_script();
  // Only the fifth connection (the silent one) has a short read timeout: a
  // server-wide one could also end a slow client that is meant to end
  // otherwise (the open one, before the stop reaches it under a sanitizer).
  auto connections = std::make_shared<std::atomic<int>>(0);
  script->on_connection = [connections](atl::socket&) {
    return ++*connections == 5 ? verdict::proceed(300ms) : verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.tls.reset();
  auto& srv = start(opts);
  auto ep = address_of(srv);
  for (int i = 0; i < 3; ++i) { // peer_closed x3: 4 bytes each way
    auto c = test_client::connect(ep);
    echo_round(c, "ping");
  }
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop", 3));
  {
    auto c = test_client::connect(ep); // local_closed (close verdict): 3 bytes each way
    echo_round(c, "bye");
    c.recv_until_closed();
  }
  auto silent = test_client::connect(ep); // timeout, no bytes
  BOOST_CHECK_EQUAL(silent.recv_until_closed(3000ms), "");
  auto open = test_client::connect(ep); // shutdown: 1 byte each way
  echo_round(open, "x");
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop", 5));
  auto during = metrics->snapshot();
  BOOST_CHECK_EQUAL(during.connections_accepted, 6u);
  BOOST_CHECK_EQUAL(during.connections_active, 1u);
  BOOST_REQUIRE(!srv.stop());
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop", 6));
  auto snap = metrics->snapshot();
  BOOST_CHECK_EQUAL(snap.connections_accepted, 6u);
  BOOST_CHECK_EQUAL(snap.connections_active, 0u);
  BOOST_CHECK_EQUAL(closed(snap, "peer_closed"), 3u);
  BOOST_CHECK_EQUAL(closed(snap, "local_closed"), 1u);
  BOOST_CHECK_EQUAL(closed(snap, "timeout"), 1u);
  BOOST_CHECK_EQUAL(closed(snap, "shutdown"), 1u);
  uint64_t total_closed = 0;
  for (const auto& [reason, n] : snap.connections_closed)
    total_closed += n;
  BOOST_CHECK_EQUAL(total_closed, 6u);
  BOOST_CHECK_EQUAL(snap.bytes_received, 16u);
  BOOST_CHECK_EQUAL(snap.bytes_sent, 16u);
  BOOST_CHECK_EQUAL(snap.packets_received, 5u);
  BOOST_CHECK_EQUAL(snap.packets_sent, 5u);
  BOOST_CHECK_EQUAL(snap.handshake_failures, 0u);
  BOOST_CHECK_EQUAL(snap.spawn_errors, 0u);
  for (const auto& [kind, n] : snap.accept_errors)
    BOOST_CHECK_MESSAGE(n == 0, kind << ": " << n);
  BOOST_CHECK_EQUAL(snap.connection_duration.count, 6u);
  // The silent connection lived at least its 300 ms read timeout.
  BOOST_CHECK_GE(snap.connection_duration.sum, 0.3);
  BOOST_CHECK_EQUAL(snap.time_to_first_byte.count, 5u);
  BOOST_CHECK_EQUAL(snap.time_to_first_byte.buckets.back(), 5u);
  // Buckets are cumulative.
  for (size_t i = 1; i < snap.connection_duration.buckets.size(); ++i)
    BOOST_CHECK_LE(snap.connection_duration.buckets[i - 1], snap.connection_duration.buckets[i]);
  BOOST_CHECK_LE(snap.connection_duration.buckets.back(), 6u);
}

BOOST_AUTO_TEST_CASE(open_connections_report_their_traffic_about_once_a_second) {
  auto metrics = std::make_shared<server_metrics>(bus);
  telemetry_recorder rec{bus};
  auto& srv = start(probe_options(echo_script()));
  auto c = connect(srv);
  BOOST_REQUIRE(rec.wait_for("atoll.connection.start"));
  auto started = rec.named("atoll.connection.start").front().measurements.get_or<int64_t>(
    "monotonic_time", 0);
  echo_round(c, "hello");
  // The first report comes a second after the start at the earliest.
  auto checked_at = telemetry::monotonic_time();
  auto early = rec.count("atoll.connection.progress");
  if (checked_at - started < 900'000'000)
    BOOST_CHECK_EQUAL(early, 0u);
  BOOST_REQUIRE(rec.wait_for("atoll.connection.progress"));
  auto first = rec.named("atoll.connection.progress").front();
  BOOST_CHECK_GE(first.measurements.get_or<uint64_t>("recv_oct", 0), 5u);
  BOOST_CHECK_EQUAL(first.metadata.get_or<uint64_t>("telemetry_span_context", 0),
                    rec.named("atoll.connection.start")
                      .front()
                      .metadata.get_or<uint64_t>("telemetry_span_context", 1));
  auto during = metrics->snapshot(); // the connection is open
  BOOST_CHECK_EQUAL(during.connections_active, 1u);
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.stop"), 0u);
  if (!tls_mode()) {
    BOOST_CHECK_EQUAL(during.bytes_received, 5u);
    BOOST_CHECK_EQUAL(during.bytes_sent, 5u);
    BOOST_CHECK_EQUAL(during.packets_received, 1u);
  }
  // Quiet connections do not report.
  echo_round(c, "world!");
  BOOST_REQUIRE(rec.wait_for("atoll.connection.progress", 2));
  auto second = rec.named("atoll.connection.progress").back();
  if (!tls_mode()) {
    BOOST_CHECK_EQUAL(second.measurements.get_or<uint64_t>("recv_oct", 0), 11u);
    BOOST_CHECK_EQUAL(second.measurements.get_or<uint64_t>("send_oct", 0), 11u);
    BOOST_CHECK_EQUAL(second.measurements.get_or<uint64_t>("recv_cnt", 0), 2u);
    BOOST_CHECK_EQUAL(metrics->snapshot().bytes_received, 11u);
  }
  c.close();
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  // The stop adds only what the reports did not: nothing is counted twice.
  auto after = metrics->snapshot();
  BOOST_CHECK_EQUAL(after.connections_active, 0u);
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.progress"), 2u);
  if (!tls_mode()) {
    BOOST_CHECK_EQUAL(after.bytes_received, 11u);
    BOOST_CHECK_EQUAL(after.bytes_sent, 11u);
    BOOST_CHECK_EQUAL(after.packets_received, 2u);
    BOOST_CHECK_EQUAL(after.packets_sent, 2u);
  }
}

BOOST_AUTO_TEST_CASE(output_written_outside_socket_events_is_reported_too) {
  auto metrics = std::make_shared<server_metrics>(bus);
  telemetry_recorder rec{bus, {"atoll", "connection", "progress"}};
  auto script = std::make_shared<probe_script>();
  script->on_connection = [](atl::socket& sock) {
    static_cast<void>(sock.send("pushed"));
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto c = connect(srv);
  BOOST_CHECK_EQUAL(c.recv_exact(6), "pushed");
  // The client never writes: no socket event follows the push.
  BOOST_REQUIRE(rec.wait_for("atoll.connection.progress"));
  auto report = rec.named("atoll.connection.progress").front().measurements;
  BOOST_CHECK_EQUAL(report.get_or<uint64_t>("recv_cnt", 1), 0u);
  BOOST_CHECK_EQUAL(metrics->snapshot().connections_active, 1u);
  if (!tls_mode()) {
    BOOST_CHECK_EQUAL(report.get_or<uint64_t>("send_oct", 0), 6u);
    BOOST_CHECK_EQUAL(metrics->snapshot().bytes_sent, 6u);
  }
}

BOOST_AUTO_TEST_CASE(input_read_by_a_blocking_recv_is_reported_too) {
  auto metrics = std::make_shared<server_metrics>(bus);
  telemetry_recorder rec{bus, {"atoll", "connection", "progress"}};
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log = script->log](atl::socket& sock) {
    // On the connection's worker thread: no Boost.Test assertion here (they
    // are not thread-safe); the test thread checks the log.
    auto got = sock.recv(5, std::chrono::milliseconds{5000});
    log->add(got ? "recv:" + *got : "recv failed");
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto c = connect(srv);
  c.send("hello");
  BOOST_REQUIRE(script->log->wait_for("recv:hello"));
  // The handler took the bytes itself: no socket event follows them.
  BOOST_REQUIRE(rec.wait_for("atoll.connection.progress"));
  auto report = rec.named("atoll.connection.progress").front().measurements;
  BOOST_CHECK_EQUAL(report.get_or<uint64_t>("send_cnt", 1), 0u);
  BOOST_CHECK_EQUAL(metrics->snapshot().connections_active, 1u);
  if (!tls_mode()) {
    BOOST_CHECK_EQUAL(report.get_or<uint64_t>("recv_oct", 0), 5u);
    BOOST_CHECK_EQUAL(metrics->snapshot().bytes_received, 5u);
  }
}

BOOST_AUTO_TEST_CASE(metrics_do_not_make_connections_build_data_events) {
  auto metrics = std::make_shared<server_metrics>(bus);
  detail::data_events data{bus.get(), {"atoll", "connection"}};
  BOOST_CHECK(bus->enabled());
  BOOST_CHECK(!data.async_recv.enabled());
  BOOST_CHECK(!data.recv.enabled());
  BOOST_CHECK(!data.send.enabled());
  telemetry_recorder rec{bus}; // everything under "atoll"
  BOOST_CHECK(data.async_recv.enabled());
}

BOOST_AUTO_TEST_CASE(failed_tls_handshakes_are_counted_as_such) {
  auto metrics = std::make_shared<server_metrics>(bus);
  telemetry_recorder rec{bus};
  auto opts = probe_options(echo_script());
  opts.tls = test_tls_options();
  auto& srv = start(opts);
  {
    test_client plain;
    BOOST_REQUIRE(plain.try_connect(address_of(srv)));
    plain.send("GET / HTTP/1.0\r\n\r\n"); // not a TLS ClientHello
    plain.recv_until_closed();
  }
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  auto snap = metrics->snapshot();
  BOOST_CHECK_EQUAL(snap.connections_accepted, 1u);
  BOOST_CHECK_EQUAL(snap.handshake_failures, 1u);
  BOOST_CHECK_EQUAL(closed(snap, "handshake_error"), 1u);
  BOOST_CHECK_EQUAL(snap.time_to_first_byte.count, 0u);
}

BOOST_AUTO_TEST_CASE(an_actor_answers_with_the_snapshot) {
  auto metrics = std::make_shared<server_metrics>(bus);
  serve_one_echo("hello");
  auto reader = spawn_metrics_actor(sys, metrics);
  caf::scoped_actor self{sys};
  std::optional<metrics_snapshot> got;
  self->request(reader, caf::infinite, caf::get_atom::value)
    .receive([&](const metrics_snapshot& snap) { got = snap; },
             [&](const caf::error& err) { BOOST_FAIL("request failed: " << describe(err)); });
  BOOST_REQUIRE(got);
  BOOST_CHECK_EQUAL(got->connections_accepted, 1u);
  BOOST_CHECK_EQUAL(closed(*got, "peer_closed"), 1u);
  if (!tls_mode()) {
    BOOST_CHECK_EQUAL(got->bytes_received, 5u);
  }
  self->send_exit(reader, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(the_prometheus_endpoint_serves_valid_metrics_over_http) {
  auto metrics = std::make_shared<server_metrics>(bus);
  serve_one_echo("ab");
  metrics_endpoint_options mo;
  mo.port = 0;
  mo.address = bind_address::loopback();
  auto endpoint_srv = start_metrics_endpoint(sys, metrics, mo);
  BOOST_REQUIRE_MESSAGE(endpoint_srv,
                        "cannot start: " << (endpoint_srv ? "" : describe(endpoint_srv.error())));
  servers.push_back(*endpoint_srv);
  auto ep = address_of(servers.back());
  auto base = "http://127.0.0.1:" + std::to_string(ep.port);
  auto response = curl({"-i"}, base + "/metrics");
  BOOST_REQUIRE(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  BOOST_CHECK(response.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  auto body = response.substr(response.find("\r\n\r\n") + 4);
  BOOST_CHECK(body.find("\natoll_connections_accepted_total 1\n") != std::string::npos);
  BOOST_CHECK(body.find("\natoll_connections_closed_total{reason=\"peer_closed\"} 1\n")
              != std::string::npos);
  BOOST_CHECK(body.find("\natoll_connection_duration_seconds_count 1\n") != std::string::npos);
  // The system's scheduler follows the server's metrics.
  auto io = reactor::of(sys);
  BOOST_REQUIRE(io);
  BOOST_CHECK(body.find("\natoll_scheduler_workers " + std::to_string((*io)->num_pollers()) + "\n")
              != std::string::npos);
  auto compaction = std::string{(*io)->compaction() ? "1" : "0"};
  BOOST_CHECK(body.find("\natoll_scheduler_compaction " + compaction + "\n") != std::string::npos);
  for (size_t i = 0; i < (*io)->num_pollers(); ++i)
    BOOST_CHECK(body.find("\natoll_scheduler_registrations{poller=\"" + std::to_string(i) + "\"} ")
                != std::string::npos);
  // promtool accepts it (Debian's prometheus package).
  child_process promtool{{"/usr/bin/promtool", "check", "metrics"}};
  BOOST_REQUIRE_MESSAGE(promtool.started(), "promtool is missing (setup.sh installs it)");
  promtool.write_stdin(body);
  promtool.close_stdin();
  auto verdict_text = promtool.stdout_until_eof() + promtool.stderr_text();
  BOOST_CHECK_MESSAGE(promtool.wait().value_or(-1) == 0, "promtool: " << verdict_text);
  // Scrapes are not counted: the endpoint has its own bus.
  BOOST_CHECK_EQUAL(metrics->snapshot().connections_accepted, 1u);
  // Other paths, methods and heads.
  BOOST_CHECK(curl({"-i"}, base + "/").rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
  BOOST_CHECK(curl({"-i", "-X", "POST"}, base + "/metrics")
                .rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0)
              == 0);
  auto head = curl({"-I"}, base + "/metrics");
  BOOST_CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  BOOST_CHECK(head.find("atoll_") == std::string::npos);
  test_client raw;
  BOOST_REQUIRE(raw.try_connect(ep));
  raw.send("GARBAGE\r\n\r\n");
  BOOST_CHECK(raw.recv_until_closed().rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  test_client huge;
  BOOST_REQUIRE(huge.try_connect(ep));
  huge.send("GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a'));
  BOOST_CHECK(huge.recv_until_closed().rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
}

BOOST_AUTO_TEST_CASE(prometheus_text_of_the_scheduler) {
  scheduler_stats st;
  st.workers = 4;
  st.active_workers = 2;
  st.compaction = true;
  st.activations = 5;
  st.deactivations = 3;
  st.spin_waits = 17;
  st.memory_releases = 1;
  st.registrations = 12;
  st.registrations_per_poller = {7, 5, 0, 0};
  BOOST_CHECK_EQUAL(
    to_prometheus_text(st),
    "# HELP atoll_scheduler_workers Scheduler worker threads, each with its epoll instance.\n"
    "# TYPE atoll_scheduler_workers gauge\n"
    "atoll_scheduler_workers 4\n"
    "# HELP atoll_scheduler_active_workers Workers taking new work now (load compaction parks "
    "the others).\n"
    "# TYPE atoll_scheduler_active_workers gauge\n"
    "atoll_scheduler_active_workers 2\n"
    "# HELP atoll_scheduler_compaction 1 if load compaction is on, else 0.\n"
    "# TYPE atoll_scheduler_compaction gauge\n"
    "atoll_scheduler_compaction 1\n"
    "# HELP atoll_scheduler_worker_activations_total Workers made active by load compaction.\n"
    "# TYPE atoll_scheduler_worker_activations_total counter\n"
    "atoll_scheduler_worker_activations_total 5\n"
    "# HELP atoll_scheduler_worker_deactivations_total Workers parked by load compaction.\n"
    "# TYPE atoll_scheduler_worker_deactivations_total counter\n"
    "atoll_scheduler_worker_deactivations_total 3\n"
    "# HELP atoll_scheduler_spin_waits_total Busy waits of workers that ran out of work, before "
    "sleeping.\n"
    "# TYPE atoll_scheduler_spin_waits_total counter\n"
    "atoll_scheduler_spin_waits_total 17\n"
    "# HELP atoll_scheduler_memory_releases_total Free heap memory given back to the operating "
    "system after a rest.\n"
    "# TYPE atoll_scheduler_memory_releases_total counter\n"
    "atoll_scheduler_memory_releases_total 1\n"
    "# HELP atoll_scheduler_registrations Registered file descriptors, by the worker whose poller "
    "they are assigned to.\n"
    "# TYPE atoll_scheduler_registrations gauge\n"
    "atoll_scheduler_registrations{poller=\"0\"} 7\n"
    "atoll_scheduler_registrations{poller=\"1\"} 5\n"
    "atoll_scheduler_registrations{poller=\"2\"} 0\n"
    "atoll_scheduler_registrations{poller=\"3\"} 0\n");
}

BOOST_AUTO_TEST_CASE(prometheus_text_has_every_metric_with_help_and_type) {
  metrics_snapshot snap;
  snap.connections_accepted = 7;
  snap.connections_closed["error"] = 2;
  snap.accept_errors["emfile"] = 1;
  snap.connection_duration.bounds = {0.5, 1};
  snap.connection_duration.buckets = {1, 3};
  snap.connection_duration.count = 4;
  snap.connection_duration.sum = 9.25;
  auto text = to_prometheus_text(snap);
  for (auto name : {"atoll_connections_accepted_total", "atoll_connections_active",
                    "atoll_connections_closed_total", "atoll_received_bytes_total",
                    "atoll_sent_bytes_total", "atoll_received_packets_total",
                    "atoll_sent_packets_total", "atoll_handshake_failures_total",
                    "atoll_spawn_errors_total", "atoll_accept_errors_total",
                    "atoll_connection_duration_seconds", "atoll_time_to_first_byte_seconds"}) {
    BOOST_CHECK_MESSAGE(text.find(std::string{"# HELP "} + name + " ") != std::string::npos, name);
    BOOST_CHECK_MESSAGE(text.find(std::string{"# TYPE "} + name + " ") != std::string::npos, name);
  }
  BOOST_CHECK(text.find("atoll_connections_accepted_total 7\n") != std::string::npos);
  BOOST_CHECK(text.find("atoll_connections_closed_total{reason=\"error\"} 2\n")
              != std::string::npos);
  BOOST_CHECK(text.find("atoll_accept_errors_total{kind=\"emfile\"} 1\n") != std::string::npos);
  BOOST_CHECK(text.find("atoll_connection_duration_seconds_bucket{le=\"0.5\"} 1\n"
                        "atoll_connection_duration_seconds_bucket{le=\"1\"} 3\n"
                        "atoll_connection_duration_seconds_bucket{le=\"+Inf\"} 4\n"
                        "atoll_connection_duration_seconds_sum 9.25\n"
                        "atoll_connection_duration_seconds_count 4\n")
              != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
