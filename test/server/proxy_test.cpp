// Servers behind load balancers: the PROXY protocol (v1 and v2, over clear
// TCP and before a TLS handshake, trusted sources, a timeout, malformed and
// missing headers) and the per-source connection limit.
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>

#include <atomic>
#include <thread>

#include "atoll/handlers/detail/source_limiter.hpp" // the limiter itself is tested too
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

const std::string v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};

/// A version 2 PROXY header for a TCP over IPv4 connection from
/// `src:sport` to `dst:dport`, with `tlvs` appended (command 1: PROXY).
std::string v2_tcp4(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                    const std::string& tlvs = {}, uint8_t command = 0x21) {
  std::string body(12, '\0');
  inet_pton(AF_INET, src, body.data());
  inet_pton(AF_INET, dst, body.data() + 4);
  body[8] = static_cast<char>(sport >> 8);
  body[9] = static_cast<char>(sport & 0xff);
  body[10] = static_cast<char>(dport >> 8);
  body[11] = static_cast<char>(dport & 0xff);
  body += tlvs;
  std::string out = v2_signature;
  out += static_cast<char>(command);
  out += '\x11'; // INET, STREAM
  out += static_cast<char>(body.size() >> 8);
  out += static_cast<char>(body.size() & 0xff);
  return out + body;
}

std::string tlv(uint8_t type, const std::string& value) {
  std::string out;
  out += static_cast<char>(type);
  out += static_cast<char>(value.size() >> 8);
  out += static_cast<char>(value.size() & 0xff);
  return out + value;
}

/// Records what the handler saw of its peer and of the PROXY header, then
/// echoes.
std::shared_ptr<probe_script> recording_script() {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    auto peer = sock.peername();
    log->add("peer:" + (peer ? to_string(*peer) : describe(peer.error())));
    auto via = sock.via();
    log->add("via:" + (via ? via->address : describe(via.error())));
    if (auto hdr = sock.proxy_info()) {
      log->add("version:" + std::to_string(hdr->version));
      log->add(std::string{"proxied:"} + (hdr->proxied ? "yes" : "no"));
      if (hdr->destination)
        log->add("destination:" + to_string(*hdr->destination));
      if (auto authority = hdr->tlv(proxy_header::tlv_authority))
        log->add("authority:" + *authority);
    } else {
      log->add("proxy_info:" + describe(hdr.error()));
    }
    log->add(std::string{"secure:"} + (sock.secure() ? "yes" : "no"));
    return verdict::proceed();
  };
  script->on_data = echo;
  return script;
}

/// Trusts loopback sources.
proxy_protocol_options loopback_proxy(proxy_protocol_version version
                                      = proxy_protocol_version::any) {
  proxy_protocol_options opts;
  opts.version = version;
  opts.trusted = {*ip_network::parse("127.0.0.0/8"), *ip_network::parse("::1")};
  return opts;
}

/// The value of the last `key:value` entry of the script's log.
std::string entry(const probe_script& script, const std::string& key) {
  auto entries = script.log->entries();
  for (auto e = entries.rbegin(); e != entries.rend(); ++e)
    if (e->rfind(key + ":", 0) == 0)
      return e->substr(key.size() + 1);
  return "<missing>";
}

/// A clear server whose handler records what it sees (`script`).
struct proxy_fixture : server_fixture {
  std::shared_ptr<probe_script> script = recording_script();

  server& start_proxied(proxy_protocol_options proxy) {
    auto opts = probe_options(script);
    opts.tls.reset();
    opts.proxy_protocol = std::move(proxy);
    return start(opts);
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(proxy_protocol_server, proxy_fixture)

BOOST_AUTO_TEST_CASE(a_v1_header_names_the_client_to_the_handler_and_in_telemetry) {
  auto& srv = start_proxied(loopback_proxy());
  telemetry_recorder rec{bus};
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv)));
  // The header and the first data in one segment: nothing past the header
  // may be lost.
  client.send("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nhello");
  BOOST_CHECK_EQUAL(client.recv_exact(5), "hello");
  BOOST_REQUIRE(script->log->wait_for("data:hello"));
  BOOST_CHECK_EQUAL(entry(*script, "peer"), "203.0.113.7:56324");
  BOOST_CHECK_EQUAL(entry(*script, "via"), "127.0.0.1");
  BOOST_CHECK_EQUAL(entry(*script, "version"), "1");
  BOOST_CHECK_EQUAL(entry(*script, "proxied"), "yes");
  BOOST_CHECK_EQUAL(entry(*script, "destination"), "192.0.2.1:443");
  client.close();
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  auto start_ev = rec.named("atoll.connection.start").at(0);
  BOOST_CHECK_EQUAL(start_ev.metadata.get_or<std::string>("remote_address", ""), "203.0.113.7");
  BOOST_CHECK_EQUAL(start_ev.metadata.get_or<uint64_t>("remote_port", 0), 56324u);
  BOOST_CHECK_EQUAL(start_ev.metadata.get_or<std::string>("proxy_address", ""), "127.0.0.1");
  BOOST_CHECK_NE(start_ev.metadata.get_or<uint64_t>("proxy_port", 0), 0u);
  BOOST_CHECK_EQUAL(rec.named("atoll.connection.stop").at(0).metadata.get_or<std::string>(
                      "reason", ""),
                    "peer_closed");
}

BOOST_AUTO_TEST_CASE(v1_tcp6_and_unknown_headers) {
  auto& srv = start_proxied(loopback_proxy(proxy_protocol_version::v1));
  {
    test_client client;
    BOOST_REQUIRE(client.try_connect(address_of(srv)));
    client.send("PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\nx");
    BOOST_CHECK_EQUAL(client.recv_exact(1), "x");
    BOOST_CHECK_EQUAL(entry(*script, "peer"), "[2001:db8::7]:4000");
    BOOST_CHECK_EQUAL(entry(*script, "destination"), "[2001:db8::1]:80");
  }
  BOOST_REQUIRE(wait_until([&] { return script->log->count("close") == 1; }));
  {
    // UNKNOWN: the connection's own addresses stand.
    test_client client;
    BOOST_REQUIRE(client.try_connect(address_of(srv)));
    client.send("PROXY UNKNOWN\r\ny");
    BOOST_CHECK_EQUAL(client.recv_exact(1), "y");
    BOOST_CHECK_EQUAL(entry(*script, "peer").rfind("127.0.0.1:", 0), 0u);
    BOOST_CHECK_EQUAL(entry(*script, "proxied"), "no");
  }
}

BOOST_AUTO_TEST_CASE(a_v2_header_with_tlvs_and_a_local_command) {
  auto& srv = start_proxied(loopback_proxy(proxy_protocol_version::v2));
  {
    test_client client;
    BOOST_REQUIRE(client.try_connect(address_of(srv)));
    auto header = v2_tcp4("198.51.100.20", 40000, "192.0.2.9", 8443,
                          tlv(proxy_header::tlv_authority, "example.test")
                            + tlv(proxy_header::tlv_noop, std::string(5, '\0')));
    // Delivered in three pieces: the reader waits for the rest.
    client.send(header.substr(0, 7));
    BOOST_CHECK(client.silent_for(50ms));
    client.send(header.substr(7, 12));
    BOOST_CHECK(client.silent_for(50ms));
    client.send(header.substr(19) + "ping");
    BOOST_CHECK_EQUAL(client.recv_exact(4), "ping");
    BOOST_CHECK_EQUAL(entry(*script, "peer"), "198.51.100.20:40000");
    BOOST_CHECK_EQUAL(entry(*script, "destination"), "192.0.2.9:8443");
    BOOST_CHECK_EQUAL(entry(*script, "authority"), "example.test");
    BOOST_CHECK_EQUAL(entry(*script, "version"), "2");
  }
  BOOST_REQUIRE(wait_until([&] { return script->log->count("close") == 1; }));
  {
    // LOCAL (a health check of the balancer itself): no client named.
    test_client client;
    BOOST_REQUIRE(client.try_connect(address_of(srv)));
    client.send(v2_tcp4("0.0.0.0", 0, "0.0.0.0", 0, {}, 0x20) + "ok");
    BOOST_CHECK_EQUAL(client.recv_exact(2), "ok");
    BOOST_CHECK_EQUAL(entry(*script, "proxied"), "no");
    BOOST_CHECK_EQUAL(entry(*script, "peer").rfind("127.0.0.1:", 0), 0u);
  }
}

BOOST_AUTO_TEST_CASE(the_header_comes_before_the_tls_handshake) {
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  opts.proxy_protocol = loopback_proxy();
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv)));
  client.send("PROXY TCP4 203.0.113.50 192.0.2.1 1234 443\r\n");
  BOOST_REQUIRE_MESSAGE(client.start_tls({}), client.tls_error());
  client.send("secret");
  BOOST_CHECK_EQUAL(client.recv_exact(6), "secret");
  BOOST_CHECK_EQUAL(entry(*script, "peer"), "203.0.113.50:1234");
  BOOST_CHECK_EQUAL(entry(*script, "secure"), "yes");
}

BOOST_AUTO_TEST_CASE(without_the_option_the_handler_sees_no_header) {
  auto opts = probe_options(script);
  auto& srv = start(opts);
  auto client = test_client::connect(address_of(srv));
  client.send("z");
  BOOST_CHECK_EQUAL(client.recv_exact(1), "z");
  BOOST_CHECK_EQUAL(entry(*script, "proxy_info"),
                    "atoll error not_found: the connection came without a PROXY header");
  BOOST_CHECK_EQUAL(entry(*script, "peer").rfind("127.0.0.1:", 0), 0u);
}

BOOST_AUTO_TEST_CASE(bad_missing_or_untrusted_headers_end_the_connection_before_the_handler) {
  struct attempt {
    std::string name;
    std::string sent;                 // what the client sends
    proxy_protocol_options proxy;     // the listener's settings
    std::string error;                // the start of the stop event's error
  };
  auto short_timeout = loopback_proxy();
  short_timeout.timeout = 200ms;
  proxy_protocol_options untrusted;
  untrusted.trusted = {*ip_network::parse("10.0.0.0/8")};
  std::vector<attempt> attempts{
    {"plain HTTP", "GET / HTTP/1.1\r\n\r\n", loopback_proxy(), "atoll error proxy_header"},
    {"bad address", "PROXY TCP4 300.1.1.1 1.1.1.1 1 2\r\n", loopback_proxy(),
     "atoll error proxy_header"},
    {"v2 on a v1 listener", v2_tcp4("1.2.3.4", 1, "5.6.7.8", 2),
     loopback_proxy(proxy_protocol_version::v1), "atoll error proxy_header"},
    {"closed mid-header", "PROXY TCP4 1.2.3.4", loopback_proxy(),
     "atoll error proxy_header: PROXY header: the client closed before the header ended"},
    {"silent", "", short_timeout, "atoll error proxy_header: PROXY header: none within 200 ms"},
    {"untrusted", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", untrusted,
     "atoll error untrusted_source: PROXY header from an untrusted source 127.0.0.1:"},
  };
  for (auto& a : attempts) {
    BOOST_TEST_CONTEXT(a.name) {
      auto fresh = recording_script();
      auto opts = probe_options(fresh);
      opts.tls.reset();
      opts.proxy_protocol = a.proxy;
      opts.silent_terminate_on_error = true;
      auto& srv = start(opts);
      telemetry_recorder rec{bus};
      test_client client;
      BOOST_REQUIRE(client.try_connect(address_of(srv)));
      if (!a.sent.empty())
        client.send(a.sent);
      if (a.name == "closed mid-header")
        client.shutdown_write();
      BOOST_CHECK(client.closed_within(3000ms));
      BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
      auto stop = rec.named("atoll.connection.stop").at(0);
      BOOST_CHECK_EQUAL(stop.metadata.get_or<std::string>("reason", ""), "proxy_error");
      auto error = stop.metadata.get_or<std::string>("error", "");
      BOOST_CHECK_MESSAGE(error.rfind(a.error, 0) == 0, error);
      BOOST_CHECK_EQUAL(rec.count("atoll.connection.start"), 1u);
      // No handler callback ran, and the server keeps serving.
      BOOST_CHECK_EQUAL(fresh->log->size(), 0u);
      BOOST_CHECK(wait_until([&] { return srv.connections() && srv.connections()->empty(); }));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_stop_during_the_header_ends_the_connection) {
  auto& srv = start_proxied(loopback_proxy());
  telemetry_recorder rec{bus};
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv)));
  client.send("PROXY TCP4 ");
  BOOST_REQUIRE(wait_until([&] { return srv.connections() && srv.connections()->size() == 1; }));
  BOOST_REQUIRE(!srv.stop(5000ms));
  BOOST_CHECK(client.closed_within(3000ms));
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(rec.named("atoll.connection.stop").at(0).metadata.get_or<std::string>(
                      "reason", ""),
                    "shutdown");
  BOOST_CHECK_EQUAL(script->log->size(), 0u);
}

BOOST_AUTO_TEST_CASE(proxy_and_source_limit_options_are_validated) {
  auto expect_invalid = [&](server_options opts, const std::string& text) {
    auto srv = start_server(sys, std::move(opts));
    BOOST_REQUIRE(!srv);
    BOOST_CHECK(srv.error() == errc::invalid_option);
    BOOST_CHECK_MESSAGE(describe(srv.error()).find(text) != std::string::npos,
                        describe(srv.error()));
  };
  auto opts = probe_options(script);
  opts.proxy_protocol = proxy_protocol_options{};
  expect_invalid(opts, "proxy_protocol.trusted");
  opts.proxy_protocol = loopback_proxy();
  opts.proxy_protocol->timeout = 0ms;
  expect_invalid(opts, "proxy_protocol.timeout");
  opts.proxy_protocol->timeout = infinite;
  expect_invalid(opts, "proxy_protocol.timeout");
  opts.proxy_protocol.reset();
  opts.max_connections_per_source = 0;
  expect_invalid(opts, "max_connections_per_source");
}

// -- per-source limits ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(connections_past_the_per_source_limit_are_refused_and_counted) {
  auto echoing = echo_script();
  auto opts = probe_options(echoing);
  opts.max_connections_per_source = 2;
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto first = test_client::connect(address_of(srv));
  auto second = test_client::connect(address_of(srv));
  first.send("1");
  second.send("2");
  BOOST_CHECK_EQUAL(first.recv_exact(1), "1");
  BOOST_CHECK_EQUAL(second.recv_exact(1), "2");
  {
    test_client third;
    BOOST_REQUIRE(third.try_connect(address_of(srv))); // accepted by the kernel ...
    BOOST_CHECK(third.closed_within(3000ms));          // ... then closed at once
    BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
    auto stop = rec.named("atoll.connection.stop").at(0);
    BOOST_CHECK_EQUAL(stop.metadata.get_or<std::string>("reason", ""), "source_limit");
    BOOST_CHECK_EQUAL(stop.metadata.get_or<std::string>("error", ""),
                      "atoll error source_limit: 127.0.0.1 has reached max_connections_per_source = 2");
  }
  // The neighbours are untouched; a slot freed is a slot to reuse.
  first.send("a");
  BOOST_CHECK_EQUAL(first.recv_exact(1), "a");
  second.close();
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop", 2));
  auto fourth = test_client::connect(address_of(srv));
  fourth.send("4");
  BOOST_CHECK_EQUAL(fourth.recv_exact(1), "4");
  BOOST_CHECK_EQUAL(echoing->log->count("connection"), 3u);
}

BOOST_AUTO_TEST_CASE(behind_a_proxy_the_limit_counts_the_clients_it_names) {
  auto opts = probe_options(script);
  opts.tls.reset();
  opts.proxy_protocol = loopback_proxy();
  opts.max_connections_per_source = 1;
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  // Two clients behind one balancer (same real source): both admitted.
  test_client a;
  test_client b;
  BOOST_REQUIRE(a.try_connect(address_of(srv)));
  BOOST_REQUIRE(b.try_connect(address_of(srv)));
  a.send("PROXY TCP4 203.0.113.1 192.0.2.1 1000 80\r\na");
  b.send("PROXY TCP4 203.0.113.2 192.0.2.1 1000 80\r\nb");
  BOOST_CHECK_EQUAL(a.recv_exact(1), "a");
  BOOST_CHECK_EQUAL(b.recv_exact(1), "b");
  // A second connection of the first client is one too many.
  test_client again;
  BOOST_REQUIRE(again.try_connect(address_of(srv)));
  again.send("PROXY TCP4 203.0.113.1 192.0.2.1 1001 80\r\nc");
  BOOST_CHECK(again.closed_within(3000ms));
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(rec.named("atoll.connection.stop").at(0).metadata.get_or<std::string>(
                      "error", ""),
                    "atoll error source_limit: 203.0.113.1 has reached max_connections_per_source = 1");
}

BOOST_AUTO_TEST_CASE(the_source_table_holds_only_sources_with_open_connections) {
  // A flood of distinct (spoofed) sources from 4 threads: every entry goes
  // when its connection does, so memory follows the open connections.
  detail::source_limiter limiter{2};
  std::vector<std::thread> threads;
  std::atomic<int> admitted{0};
  std::atomic<int> refused{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        auto key = "10." + std::to_string(t) + "." + std::to_string(i / 256) + "."
                   + std::to_string(i % 256);
        // Three tries per source: two admitted, the third refused.
        int ok = 0;
        for (int k = 0; k < 3; ++k)
          ok += limiter.acquire(key) ? 1 : 0;
        admitted += ok;
        refused += 3 - ok;
        for (int k = 0; k < ok; ++k)
          limiter.release(key);
      }
    });
  for (auto& th : threads)
    th.join();
  BOOST_CHECK_EQUAL(admitted.load(), 4 * 5000 * 2);
  BOOST_CHECK_EQUAL(refused.load(), 4 * 5000);
  BOOST_CHECK_EQUAL(limiter.sources(), 0u);
  // Keys: IPv4-mapped IPv6 is the IPv4 address; Unix clients share one.
  endpoint mapped{endpoint::family_type::ipv6, "::ffff:192.0.2.1", 1};
  endpoint v4{endpoint::family_type::ipv4, "192.0.2.1", 2};
  endpoint unix_a{endpoint::family_type::local, "", 0};
  BOOST_CHECK_EQUAL(detail::source_limiter::key_of(mapped), detail::source_limiter::key_of(v4));
  BOOST_CHECK_EQUAL(detail::source_limiter::key_of(unix_a), "unix");
  BOOST_CHECK_EQUAL(detail::source_limiter::key_of({endpoint::family_type::ipv6, "2001:db8::1", 3}),
                    "2001:db8::1");
  // Releasing what was never counted changes nothing.
  limiter.release("192.0.2.99");
  BOOST_CHECK_EQUAL(limiter.sources(), 0u);
}

BOOST_AUTO_TEST_SUITE_END()
