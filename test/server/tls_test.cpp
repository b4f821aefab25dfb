// TLS-specific behaviour: versions, ALPN, SNI, client certificates,
// certificate pairs, handshake failures and timeouts, start-up errors,
// STARTTLS upgrades. (The socket and handler suites also run over TLS.)
#include <boost/test/unit_test.hpp>

#include <future>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {


std::string cert(const std::string& name) {
  return certs_dir() + "/" + name;
}

/// The DER encoding of a PEM certificate file.
std::string der_of(const std::string& pem_file) {
  FILE* f = std::fopen(pem_file.c_str(), "r");
  BOOST_REQUIRE(f != nullptr);
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  BOOST_REQUIRE(x != nullptr);
  unsigned char* der = nullptr;
  auto len = i2d_X509(x, &der);
  std::string out{reinterpret_cast<char*>(der), static_cast<size_t>(len)};
  OPENSSL_free(der);
  X509_free(x);
  return out;
}

/// The subject CN of the certificate the server presented to `client`.
std::string server_cn(const test_client& client) {
  X509* x = SSL_get1_peer_certificate(client.ssl());
  BOOST_REQUIRE(x != nullptr);
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf));
  X509_free(x);
  return buf;
}

/// Records what a TLS connection negotiated, as the handler saw it.
struct negotiated {
  std::shared_ptr<event_log> log = std::make_shared<event_log>();

  std::function<verdict(atl::socket&)> recorder() {
    return [log{log}](atl::socket& sock) {
      log->add(std::string{"secure:"} + (sock.secure() ? "yes" : "no"));
      if (auto info = sock.connection_information()) {
        log->add("protocol:" + info->protocol);
        log->add("cipher:" + info->cipher);
        log->add("sni:" + info->sni_hostname);
        log->add("info_alpn:" + info->alpn);
        log->add("group:" + info->group);
        log->add("bits:" + std::to_string(info->cipher_bits));
        log->add(std::string{"reused:"} + (info->session_reused ? "yes" : "no"));
      }
      auto alpn = sock.negotiated_protocol();
      log->add("alpn:" + (alpn ? *alpn : describe(alpn.error())));
      auto peer = sock.peercert();
      log->add("peercert:" + (peer ? std::to_string(peer->size()) + " bytes"
                                   : describe(peer.error())));
      if (peer)
        log->add("peerder:" + *peer);
      log->add("done");
      return verdict::proceed();
    };
  }

  std::string value(const std::string& key) {
    for (auto& e : log->entries())
      if (e.rfind(key + ":", 0) == 0)
        return e.substr(key.size() + 1);
    return "<missing>";
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(tls, server_fixture)

BOOST_AUTO_TEST_CASE(tls_1_2_and_1_3_both_work_and_report_their_parameters) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    negotiated seen;
    auto script = std::make_shared<probe_script>();
    script->on_connection = seen.recorder();
    script->on_data = echo;
    auto opts = probe_options(script);
    opts.tls = test_tls_options();
    auto& srv = start(opts);
    test_client client;
    tls_client_options copts;
    copts.min_version = copts.max_version = version;
    copts.cafile = cert("ca.pem"); // the client verifies the server
    BOOST_REQUIRE_MESSAGE(client.try_connect_tls(address_of(srv), copts), client.tls_error());
    client.send("secret");
    BOOST_CHECK_EQUAL(client.recv_exact(6), "secret");
    BOOST_REQUIRE(seen.log->wait_for("done"));
    auto expected = version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3";
    BOOST_CHECK_EQUAL(seen.value("protocol"), expected);
    BOOST_CHECK_EQUAL(SSL_get_version(client.ssl()), std::string{expected});
    BOOST_CHECK_NE(seen.value("cipher"), "<missing>");
    BOOST_CHECK_EQUAL(seen.value("sni"), "localhost");
    BOOST_CHECK_EQUAL(seen.value("info_alpn"), "");
    // OpenSSL 3's defaults: X25519 key exchange, AES-256-GCM.
    BOOST_CHECK_EQUAL(seen.value("group"), "X25519");
    BOOST_CHECK_EQUAL(seen.value("bits"), "256");
    BOOST_CHECK_EQUAL(seen.value("reused"), "no");
    BOOST_CHECK_EQUAL(seen.value("alpn"), "atoll error protocol_not_negotiated");
    BOOST_CHECK_EQUAL(seen.value("peercert"), "atoll error not_found: the peer sent no certificate");
  }
}

BOOST_AUTO_TEST_CASE(version_bounds_are_enforced) {
  auto script = std::make_shared<probe_script>();
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  opts.tls->max_version = tls_version::tls1_2;
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  test_client client;
  tls_client_options copts;
  copts.min_version = TLS1_3_VERSION;
  BOOST_CHECK(!client.try_connect_tls(address_of(srv), copts));
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.start"), 1u);
  BOOST_CHECK(rec.named("atoll.connection.stop").front().metadata.contains("error"));
  // handle_error ran with the TLS reason; handle_connection never ran.
  BOOST_REQUIRE(wait_until([&] { return script->log->size() == 1; }));
  auto entry = script->log->entries().front();
  BOOST_CHECK_MESSAGE(entry.rfind("error:atoll error tls_error: TLS handshake", 0) == 0, entry);
}

BOOST_AUTO_TEST_CASE(alpn_picks_the_servers_preference) {
  negotiated seen;
  auto script = std::make_shared<probe_script>();
  script->on_connection = seen.recorder();
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  opts.tls->alpn = {"h2", "http/1.1"};
  auto& srv = start(opts);
  test_client client;
  tls_client_options copts;
  copts.alpn = {"http/1.1", "h2"};
  BOOST_REQUIRE_MESSAGE(client.try_connect_tls(address_of(srv), copts), client.tls_error());
  BOOST_REQUIRE(seen.log->wait_for("done"));
  BOOST_CHECK_EQUAL(seen.value("alpn"), "h2");
  BOOST_CHECK_EQUAL(seen.value("info_alpn"), "h2");
  // A client that offers no ALPN: the handshake proceeds without a protocol.
  // (Servers of their own: the first connection may still be running its
  // callback, which must not be replaced under it.)
  negotiated other;
  auto other_script = std::make_shared<probe_script>();
  other_script->on_connection = other.recorder();
  auto other_opts = probe_options(other_script);
  other_opts.tls = opts.tls;
  auto& other_srv = start(other_opts);
  test_client plain;
  BOOST_REQUIRE_MESSAGE(plain.try_connect_tls(address_of(other_srv), tls_client_options{}),
                        plain.tls_error());
  BOOST_REQUIRE(other.log->wait_for("done"));
  BOOST_CHECK_EQUAL(other.value("alpn"), "atoll error protocol_not_negotiated");
  // ALPN offered, none in common: a no_application_protocol alert (RFC 7301
  // §3.2) ends the handshake; handle_error sees the TLS error, and
  // handle_connection never runs.
  auto refused_script = std::make_shared<probe_script>();
  auto refused_opts = probe_options(refused_script);
  refused_opts.tls = opts.tls;
  auto& refused_srv = start(refused_opts);
  test_client mismatched;
  tls_client_options spdy;
  spdy.alpn = {"spdy/3"};
  BOOST_CHECK(!mismatched.try_connect_tls(address_of(refused_srv), spdy));
  BOOST_CHECK_MESSAGE(mismatched.tls_error().find("no application protocol") != std::string::npos,
                      mismatched.tls_error());
  BOOST_REQUIRE(wait_until([&] { return refused_script->log->size() == 1; }));
  auto entry = refused_script->log->entries().front();
  BOOST_CHECK_MESSAGE(entry.rfind("error:atoll error tls_error: TLS handshake", 0) == 0, entry);
}

BOOST_AUTO_TEST_CASE(sni_chooses_between_certificates) {
  negotiated seen;
  auto script = std::make_shared<probe_script>();
  script->on_connection = seen.recorder();
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  opts.tls->sni_hosts["other.test"] = {{cert("other.pem"), cert("other.key"), {}}};
  auto calls = std::make_shared<std::atomic<int>>(0);
  opts.tls->sni_callback =
    [calls](const std::string& host) -> std::optional<std::vector<tls_certificate>> {
    ++*calls;
    if (host == "dynamic.test")
      return std::vector<tls_certificate>{{cert("other.pem"), cert("other.key"), {}}};
    return std::nullopt;
  };
  auto& srv = start(opts);
  auto connect_with = [&](const std::string& sni) {
    test_client c;
    tls_client_options copts;
    copts.sni = sni;
    BOOST_REQUIRE_MESSAGE(c.try_connect_tls(address_of(srv), copts), c.tls_error());
    return server_cn(c);
  };
  BOOST_CHECK_EQUAL(connect_with("localhost"), "localhost");
  BOOST_CHECK_EQUAL(connect_with("other.test"), "other.test");
  BOOST_REQUIRE(seen.log->wait_for("done"));
  BOOST_CHECK_EQUAL(connect_with("dynamic.test"), "other.test");
  BOOST_CHECK_EQUAL(connect_with("dynamic.test"), "other.test");
  BOOST_CHECK_EQUAL(connect_with("unknown.test"), "localhost");
  // The callback runs once per unknown name (results are cached).
  BOOST_CHECK_EQUAL(calls->load(), 3); // localhost, dynamic.test, unknown.test
}

BOOST_AUTO_TEST_CASE(rsa_and_ecdsa_pairs_serve_clients_of_either_kind) {
  auto script = std::make_shared<probe_script>();
  auto opts = probe_options(script);
  opts.tls = tls_options{};
  opts.tls->certificates = {{cert("server-chain.pem"), cert("server.key"), {}},
                            {cert("server-ecdsa.pem"), cert("server-ecdsa.key"), {}}};
  auto& srv = start(opts);
  auto key_type_for = [&](const char* cipher) {
    auto ep = address_of(srv);
    // Restrict the client's TLS 1.2 ciphers to one key type.
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, cipher);
    test_client raw;
    BOOST_REQUIRE(raw.try_connect(ep));
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, raw.fd());
    BOOST_REQUIRE_MESSAGE(SSL_connect(ssl) == 1, "handshake with " << cipher);
    X509* x = SSL_get1_peer_certificate(ssl);
    std::string type = EVP_PKEY_base_id(X509_get0_pubkey(x)) == EVP_PKEY_EC ? "EC" : "RSA";
    X509_free(x);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return type;
  };
  BOOST_CHECK_EQUAL(key_type_for("ECDHE-ECDSA-AES128-GCM-SHA256"), "EC");
  BOOST_CHECK_EQUAL(key_type_for("ECDHE-RSA-AES128-GCM-SHA256"), "RSA");
}

BOOST_AUTO_TEST_CASE(a_required_client_certificate_is_verified) {
  negotiated seen;
  auto script = std::make_shared<probe_script>();
  script->on_connection = seen.recorder();
  script->on_data = echo;
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  opts.tls->verify = tls_verify::required;
  opts.tls->cafile = cert("ca.pem");
  auto& srv = start(opts);
  // With a certificate signed by the CA: accepted, and the handler sees it.
  test_client good;
  tls_client_options with_cert;
  with_cert.certfile = cert("client.pem");
  with_cert.keyfile = cert("client.key");
  BOOST_REQUIRE_MESSAGE(good.try_connect_tls(address_of(srv), with_cert), good.tls_error());
  good.send("ok");
  BOOST_CHECK_EQUAL(good.recv_exact(2), "ok");
  BOOST_CHECK_EQUAL(seen.value("peerder"), der_of(cert("client.pem")));
  // Without one, or with an untrusted one: the connection fails; TLS 1.3
  // reports it to the client after its side of the handshake.
  for (auto* pair : {"", "untrusted-client"}) {
    auto before = script->log->count("connection");
    test_client bad;
    tls_client_options copts;
    if (*pair != '\0') {
      copts.certfile = cert(std::string{pair} + ".pem");
      copts.keyfile = cert(std::string{pair} + ".key");
    }
    if (bad.try_connect_tls(address_of(srv), copts)) {
      bad.try_send("x"); // may fail already: the server's alert is on its way
      BOOST_CHECK(bad.closed_within(3000ms));
    }
    BOOST_CHECK_EQUAL(script->log->count("connection"), before);
  }
  BOOST_REQUIRE(wait_until([&] {
    size_t n = 0;
    for (auto& e : script->log->entries())
      if (e.rfind("error:atoll error tls_error", 0) == 0)
        ++n;
    return n == 2;
  }));
}

BOOST_AUTO_TEST_CASE(an_optional_client_certificate_may_be_missing) {
  negotiated seen;
  auto script = std::make_shared<probe_script>();
  script->on_connection = seen.recorder();
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  opts.tls->verify = tls_verify::optional;
  opts.tls->cafile = cert("ca.pem");
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect_tls(address_of(srv), {}));
  BOOST_REQUIRE(seen.log->wait_for("done"));
  BOOST_CHECK_EQUAL(seen.value("peercert"), "atoll error not_found: the peer sent no certificate");
}

BOOST_AUTO_TEST_CASE(a_silent_client_hits_the_handshake_timeout) {
  auto script = std::make_shared<probe_script>();
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  opts.handshake_timeout = 200ms;
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  auto started = std::chrono::steady_clock::now();
  test_client silent;
  BOOST_REQUIRE(silent.try_connect(address_of(srv))); // TCP only, no ClientHello
  BOOST_CHECK(silent.closed_within(3000ms));
  auto elapsed = std::chrono::steady_clock::now() - started;
  BOOST_CHECK(elapsed >= 200ms);
  BOOST_CHECK(elapsed < 2000ms);
  BOOST_REQUIRE(script->log->wait_for("error:atoll error timeout: handshake timeout"));
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.start"), 1u);
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.stop"), 1u);
  // Other connections are unaffected.
  test_client fine;
  BOOST_CHECK(fine.try_connect_tls(address_of(srv), {}));
}

BOOST_AUTO_TEST_CASE(a_stop_during_the_handshake_lets_it_finish_then_says_goodbye) {
  // A client still in its TLS handshake when the server stops: the
  // handshake goes on, then handle_connection, then handle_shutdown, whose
  // goodbye the client reads over TLS (as in Thousand Island, where the
  // handshake runs before the stop is taken up). Before, the connection
  // got handle_shutdown without handle_connection and the client's
  // handshake failed.
  auto script = std::make_shared<probe_script>();
  script->on_shutdown = [](atl::socket& sock) { sock.send("bye"); };
  auto opts = probe_options(script);
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
  // Its record says "draining" once the stop has reached it.
  BOOST_REQUIRE(wait_for_connection_state(sys, conn, connection_state::draining));
  check_shown_while_draining(srv, conn);
  BOOST_CHECK_EQUAL(script->log->count("shutdown"), 0u);
  BOOST_REQUIRE_MESSAGE(client.finish_tls(), client.tls_error());
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "bye");
  BOOST_CHECK(!client.was_reset());
  BOOST_CHECK(!stopping.get());
  BOOST_CHECK((script->log->entries() == std::vector<std::string>{"connection", "shutdown"}));
}

BOOST_AUTO_TEST_CASE(a_stop_does_not_wait_for_a_handshake_that_nothing_bounds) {
  // No handshake timeout and no drain deadline: a client that never
  // finishes its handshake would hold the stop for ever, so its connection
  // ends at once, without a callback (its handler never saw it open). (The
  // client has begun: one that sent nothing is not waited for anyway.)
  auto script = std::make_shared<probe_script>();
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  opts.handshake_timeout = infinite;
  opts.shutdown_timeout = shutdown_policy::infinity();
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  test_client stalled;
  BOOST_REQUIRE(stalled.try_connect(address_of(srv)));
  BOOST_REQUIRE_MESSAGE(stalled.begin_tls({}), stalled.tls_error()); // never finished
  only_connection(srv);
  auto stopping = std::async(std::launch::async, [&] { return srv.stop(); });
  BOOST_REQUIRE(stopping.wait_for(5s) == std::future_status::ready);
  BOOST_CHECK(!stopping.get());
  BOOST_CHECK(stalled.closed_within(3000ms));
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(rec.named("atoll.connection.stop")[0].metadata.get_or<std::string>("reason", ""),
                    "shutdown");
  BOOST_CHECK(script->log->entries().empty());
}

BOOST_AUTO_TEST_CASE(a_stop_does_not_wait_for_a_client_that_sent_nothing) {
  // A client that connected but has not sent a byte of its ClientHello is
  // as far along as one not yet accepted: a stop closes it at once, without
  // a callback, instead of waiting out the handshake timeout. One that has
  // begun its handshake is waited for and served.
  auto script = std::make_shared<probe_script>();
  script->on_shutdown = [](atl::socket& sock) { sock.send("bye"); };
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  opts.handshake_timeout = 30000ms;
  opts.shutdown_timeout = shutdown_policy::timeout(30000ms);
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  test_client silent;
  BOOST_REQUIRE(silent.try_connect(address_of(srv))); // TCP only, no ClientHello
  test_client begun;
  BOOST_REQUIRE(begun.try_connect(address_of(srv)));
  BOOST_REQUIRE_MESSAGE(begun.begin_tls({}), begun.tls_error());
  BOOST_REQUIRE(wait_until([&] {
    auto conns = srv.connections();
    return conns && conns->size() == 2;
  }));
  auto stopping = std::async(std::launch::async, [&] { return srv.stop(); });
  BOOST_CHECK(silent.closed_within(5000ms)); // not the 30 s of either timeout
  BOOST_CHECK(stopping.wait_for(0ms) == std::future_status::timeout); // `begun` holds it
  BOOST_REQUIRE_MESSAGE(begun.finish_tls(), begun.tls_error());
  BOOST_CHECK_EQUAL(begun.recv_until_closed(), "bye");
  BOOST_REQUIRE(stopping.wait_for(10s) == std::future_status::ready);
  BOOST_CHECK(!stopping.get());
  BOOST_REQUIRE(wait_until([&] { return rec.count("atoll.connection.stop") == 2; }));
  for (auto& e : rec.named("atoll.connection.stop"))
    BOOST_CHECK_EQUAL(e.metadata.get_or<std::string>("reason", ""), "shutdown");
  BOOST_CHECK((script->log->entries() == std::vector<std::string>{"connection", "shutdown"}));
}

BOOST_AUTO_TEST_CASE(a_plaintext_client_on_the_tls_port_is_an_error) {
  log_capture logs;
  auto script = std::make_shared<probe_script>();
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  test_client plain;
  BOOST_REQUIRE(plain.try_connect(address_of(srv)));
  plain.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  plain.recv_until_closed(); // an alert, then the close
  BOOST_REQUIRE(wait_until([&] { return script->log->size() == 1; }));
  auto entry = script->log->entries().front();
  BOOST_CHECK_MESSAGE(entry.rfind("error:atoll error tls_error", 0) == 0, entry);
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.stop"), 1u);
  // A failed handshake is the client's doing: telemetry shows it, the log
  // does not (a scanner of the port would fill it).
  BOOST_CHECK_EQUAL(logs.lines->size(), 0u);
}

BOOST_AUTO_TEST_CASE(bad_tls_settings_fail_the_start_with_clear_errors) {
  struct bad_case {
    std::function<void(tls_options&)> mutate;
    std::string mentions;
  };
  std::vector<bad_case> cases{
    {[](tls_options& t) { t.certificates.clear(); }, "no certificate"},
    {[](tls_options& t) { t.certificates[0].certfile = "/nonexistent/cert.pem"; },
     "/nonexistent/cert.pem"},
    {[](tls_options& t) { t.certificates[0].keyfile = cert("other.key"); }, "does not match"},
    {[](tls_options& t) { t.certificates[0].certfile = cert("server.key"); }, "certfile"},
    {[](tls_options& t) { t.ciphers = "NOT-A-CIPHER"; }, "ciphers"},
    {[](tls_options& t) { t.ciphersuites = "TLS_NOPE"; }, "ciphersuites"},
    {[](tls_options& t) { t.verify = tls_verify::required; }, "cafile"},
    {[](tls_options& t) {
       t.min_version = tls_version::tls1_3;
       t.max_version = tls_version::tls1_2;
     },
     "min_version"},
    {[](tls_options& t) { t.alpn = {""}; }, "ALPN"},
  };
  auto before = sys.registry().running();
  for (auto& c : cases) {
    auto opts = probe_options(std::make_shared<probe_script>());
    opts.tls = test_tls_options();
    c.mutate(*opts.tls);
    auto srv = start_server(sys, opts);
    BOOST_REQUIRE(!srv);
    BOOST_CHECK_MESSAGE(srv.error() == errc::invalid_option, describe(srv.error()));
    BOOST_CHECK_MESSAGE(describe(srv.error()).find(c.mentions) != std::string::npos,
                        describe(srv.error()) << " should mention " << c.mentions);
  }
  BOOST_CHECK_EQUAL(sys.registry().running(), before);
}

BOOST_AUTO_TEST_CASE(the_server_closes_with_close_notify) {
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view, atl::socket& sock) {
    sock.send("bye");
    return verdict::close();
  };
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect_tls(address_of(srv), {}));
  client.send("x");
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "bye");
  BOOST_CHECK(SSL_get_shutdown(client.ssl()) & SSL_RECEIVED_SHUTDOWN);
}

// -- STARTTLS -------------------------------------------------------------------------

namespace {

/// A line protocol: "STARTTLS\n" upgrades (after "OK\n"); everything else
/// is echoed with a "secure:"/"clear:" prefix.
std::shared_ptr<probe_script> starttls_script(std::shared_ptr<tls_context> ctx,
                                              verdict then = verdict::proceed()) {
  auto script = std::make_shared<probe_script>();
  script->on_data = [ctx, then](std::string_view data, atl::socket& sock) {
    if (data == "STARTTLS\n") {
      sock.send("OK\n");
      return verdict::switch_transport(tls_upgrade(ctx), then);
    }
    if (data == "DOWNGRADE\n")
      return verdict::switch_transport(tcp_upgrade());
    sock.send(std::string{sock.secure() ? "secure:" : "clear:"} + std::string{data});
    return verdict::proceed();
  };
  return script;
}

/// A clear connection to `ep` upgraded with STARTTLS (fails the test if not).
test_client upgraded_client(const endpoint& ep) {
  test_client client;
  BOOST_REQUIRE(client.try_connect(ep));
  client.send("STARTTLS\n");
  BOOST_REQUIRE_EQUAL(client.recv_exact(3), "OK\n");
  BOOST_REQUIRE_MESSAGE(client.start_tls({}), client.tls_error());
  return client;
}

std::shared_ptr<tls_context> test_tls_context() {
  auto ctx = tls_context::make(test_tls_options());
  BOOST_REQUIRE(ctx);
  return *ctx;
}

} // namespace

BOOST_AUTO_TEST_CASE(starttls_upgrades_a_clear_connection_in_place) {
  auto script = starttls_script(test_tls_context());
  auto opts = probe_options(script);
  opts.tls.reset(); // the server is clear; the handler upgrades
  auto& srv = start(opts);
  telemetry_recorder rec{bus};
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv)));
  client.send("hi\n");
  BOOST_CHECK_EQUAL(client.recv_exact(9), "clear:hi\n");
  client.send("STARTTLS\n");
  BOOST_CHECK_EQUAL(client.recv_exact(3), "OK\n");
  BOOST_REQUIRE_MESSAGE(client.start_tls({}), client.tls_error());
  client.send("hi\n");
  BOOST_CHECK_EQUAL(client.recv_exact(10), "secure:hi\n");
  client.close();
  BOOST_REQUIRE(rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_EQUAL(rec.count("atoll.connection.start"), 1u);
  BOOST_CHECK(!rec.named("atoll.connection.stop").front().metadata.contains("error"));
}

BOOST_AUTO_TEST_CASE(starttls_with_a_timeout_a_persistent_timeout_or_a_continue_step) {
  // One-shot timeout after the upgrade: a silent client times out.
  {
    auto script = starttls_script(test_tls_context(), verdict::proceed(200ms));
    auto opts = probe_options(script);
    opts.tls.reset();
    auto& srv = start(opts);
    auto client = upgraded_client(address_of(srv));
    BOOST_CHECK(client.closed_within(3000ms));
    BOOST_CHECK(script->log->wait_for("timeout"));
  }
  // A persistent timeout after the upgrade: data comes and goes, then the
  // new read timeout (not the server's 60 s) ends the silent connection.
  {
    auto script = starttls_script(test_tls_context(), verdict::proceed(persistent{200ms}));
    auto opts = probe_options(script);
    opts.tls.reset();
    opts.read_timeout = 60000ms;
    auto& srv = start(opts);
    auto client = upgraded_client(address_of(srv));
    client.send("x\n");
    BOOST_CHECK_EQUAL(client.recv_exact(9), "secure:x\n");
    auto after_data = std::chrono::steady_clock::now();
    BOOST_CHECK(client.closed_within(3000ms));
    BOOST_CHECK(std::chrono::steady_clock::now() - after_data < 2000ms);
    BOOST_CHECK(script->log->wait_for("timeout"));
  }
  // A continue step runs after the upgrade.
  {
    auto script = starttls_script(test_tls_context(),
                                  verdict::proceed(continue_step{caf::make_message(7)}));
    script->on_continue = [](const caf::message&, atl::socket& sock) {
      sock.send(sock.secure() ? "upgraded\n" : "still clear\n");
      return verdict::proceed();
    };
    auto opts = probe_options(script);
    opts.tls.reset();
    auto& srv = start(opts);
    auto client = upgraded_client(address_of(srv));
    BOOST_CHECK_EQUAL(client.recv_exact(9), "upgraded\n");
    BOOST_CHECK(script->log->wait_for("continue:(7)"));
  }
}

BOOST_AUTO_TEST_CASE(a_stop_during_an_upgrade_handshake_lets_it_finish_then_says_goodbye) {
  // As with the first handshake: a stop that reaches a STARTTLS upgrade's
  // handshake waits for it, then handle_shutdown's goodbye goes out over TLS.
  auto script = starttls_script(test_tls_context());
  script->on_shutdown = [](atl::socket& sock) { sock.send("bye"); };
  auto opts = probe_options(script);
  opts.tls.reset(); // the server is clear; the handler upgrades
  opts.shutdown_timeout = shutdown_policy::timeout(10000ms);
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv)));
  client.send("STARTTLS\n");
  BOOST_REQUIRE_EQUAL(client.recv_exact(3), "OK\n"); // the server waits for the ClientHello
  auto conn = only_connection(srv);
  auto stopping = std::async(std::launch::async, [&] { return srv.stop(); });
  BOOST_REQUIRE(wait_for_connection_state(sys, conn, connection_state::draining));
  BOOST_REQUIRE_MESSAGE(client.start_tls({}), client.tls_error());
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "bye");
  BOOST_CHECK(!stopping.get());
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection", "data:STARTTLS\n", "shutdown"}));
}

BOOST_AUTO_TEST_CASE(mailbox_messages_wait_until_the_connection_is_open) {
  using push_atom = caf::atom_constant<caf::atom("push")>;
  auto script = starttls_script(test_tls_context());
  script->on_connection = [](atl::socket& sock) {
    sock.send("welcome\n");
    return verdict::proceed();
  };
  script->messages = [log{script->log}](atl::handler& h, atl::socket& sock) {
    // Sent before the handshake: it must still run after handle_connection.
    // (A lightweight connection has no self(): the test sends it below.)
    if (!light_mode())
      caf::anon_send(static_cast<probe_handler&>(h).actor(), push_atom::value,
                     std::string{"early"});
    log->add("installed");
    return caf::message_handler{[log, &sock](push_atom, const std::string& text) {
      log->add("message:" + text);
      sock.send(text + "\n");
    }};
  };
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv))); // TCP only, no handshake yet
  auto conn = only_connection(srv);
  BOOST_REQUIRE(script->log->wait_for("installed"));
  if (light_mode())
    caf::anon_send(conn, push_atom::value, std::string{"early"});
  caf::anon_send(conn, push_atom::value, std::string{"outside"});
  BOOST_REQUIRE_MESSAGE(client.start_tls({}), client.tls_error());
  BOOST_CHECK_EQUAL(client.recv_exact(22), "welcome\nearly\noutside\n");
  BOOST_REQUIRE(script->log->wait_for("message:outside"));
  std::vector<std::string> expected{"installed", "connection", "message:early",
                                    "message:outside"};
  BOOST_CHECK(script->log->entries() == expected);
}

BOOST_AUTO_TEST_CASE(mailbox_messages_wait_for_an_upgrade_handshake) {
  using push_atom = caf::atom_constant<caf::atom("push")>;
  // The upgrade continues with a step: it runs once the handshake is done,
  // and the waiting message after it.
  auto script = starttls_script(test_tls_context(),
                                verdict::proceed(continue_step{caf::make_message(1)}));
  script->messages = [log{script->log}](atl::handler&, atl::socket& sock) {
    return caf::message_handler{[log, &sock](push_atom, const std::string& text) {
      log->add(std::string{"message:"} + (sock.secure() ? "secure:" : "clear:") + text);
      sock.send(text + "\n");
    }};
  };
  auto opts = probe_options(script);
  opts.tls.reset();
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv)));
  auto conn = only_connection(srv);
  client.send("STARTTLS\n");
  BOOST_REQUIRE_EQUAL(client.recv_exact(3), "OK\n");
  // The upgrade's handshake has not started: the message waits for it.
  caf::anon_send(conn, push_atom::value, std::string{"pushed"});
  BOOST_REQUIRE_MESSAGE(client.start_tls({}), client.tls_error());
  BOOST_CHECK_EQUAL(client.recv_exact(7), "pushed\n");
  BOOST_REQUIRE(script->log->wait_for("message:secure:pushed"));
  std::vector<std::string> expected{"connection", "data:STARTTLS\n", "continue:(1)",
                                    "message:secure:pushed"};
  BOOST_CHECK(script->log->entries() == expected);
}

BOOST_AUTO_TEST_CASE(a_failed_upgrade_handshake_calls_handle_error) {
  log_capture logs;
  auto script = starttls_script(test_tls_context());
  auto opts = probe_options(script);
  opts.tls.reset();
  opts.handshake_timeout = 200ms;
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv)));
  client.send("STARTTLS\n");
  BOOST_CHECK_EQUAL(client.recv_exact(3), "OK\n");
  // The client never starts TLS: the upgrade's handshake times out.
  BOOST_CHECK(client.closed_within(3000ms));
  BOOST_CHECK(script->log->wait_for("error:atoll error timeout: handshake timeout"));
  BOOST_CHECK_EQUAL(logs.lines->size(), 0u); // not logged: see above
}

BOOST_AUTO_TEST_CASE(a_tls_connection_cannot_switch_to_clear_tcp) {
  auto script = starttls_script(test_tls_context());
  auto opts = probe_options(script);
  opts.tls = test_tls_options();
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect_tls(address_of(srv), {}));
  client.send("DOWNGRADE\n");
  BOOST_CHECK(client.closed_within(3000ms));
  BOOST_CHECK(script->log->wait_for(
    "error:atoll error unsupported_upgrade: cannot switch a TLS connection to clear TCP"));
  // And a secure connection cannot be upgraded again.
  test_client twice;
  BOOST_REQUIRE(twice.try_connect_tls(address_of(srv), {}));
  twice.send("STARTTLS\n");
  BOOST_CHECK_EQUAL(twice.recv_exact(3), "OK\n");
  BOOST_CHECK(twice.closed_within(3000ms));
  BOOST_CHECK(script->log->wait_for(
    "error:atoll error unsupported_upgrade: the connection is already secure"));
}

BOOST_AUTO_TEST_SUITE_END()
