// The inspector published with CAF's OpenSSL module (`inspector_options::
// secure`): nodes with certificates of the same CA see each other's
// servers; a node with an untrusted certificate or without TLS gets nothing;
// a node set up wrongly gets a clear error before anything is published.
#include <boost/test/unit_test.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "atoll/all.hpp"
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

/// A CAF node with the middleman and, unless told otherwise, the OpenSSL
/// module with the named certificate and key of the test CA's directory.
struct node {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  explicit node(const std::string& cert, const std::string& key, bool with_openssl = true,
                const std::string& cafile = "ca.pem") {
    register_types(cfg);
    cfg.set("scheduler.max-threads", 2);
    cfg.load<caf::io::middleman>();
    if (with_openssl)
      cfg.load<caf::openssl::manager>();
    if (!cert.empty())
      cfg.openssl_certificate = certs_dir() + "/" + cert;
    if (!key.empty())
      cfg.openssl_key = certs_dir() + "/" + key;
    if (!cafile.empty())
      cfg.openssl_cafile = certs_dir() + "/" + cafile;
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

/// The names of the servers `insp` lists, or the error's text.
std::string listed(caf::actor_system& sys, const inspector_actor& insp) {
  caf::scoped_actor self{sys};
  std::string out;
  self->request(insp, 10s, servers_atom::value)
    .receive(
      [&](std::vector<inspected_server>& xs) {
        for (auto& x : xs)
          out += x.name + ":" + to_string(x.info.status) + ";";
      },
      [&](caf::error& err) { out = "error: " + describe(err); });
  return out;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(inspector, atl::test::fd_leak_check)

BOOST_AUTO_TEST_CASE(secure_links_admit_only_nodes_with_a_trusted_certificate) {
  fd_leak_check fds;
  node server_node{"server.pem", "server.key"};
  auto& sys = *server_node.sys;
  auto script = echo_script();
  server_options opts;
  opts.handler = [script]() -> std::unique_ptr<handler> {
    return std::make_unique<probe_handler>(script);
  };
  opts.port = 0;
  opts.address = bind_address::loopback();
  opts.num_acceptors = 1;
  auto srv = start_server(sys, opts);
  BOOST_REQUIRE_MESSAGE(srv, "start_server: " << (srv ? "" : describe(srv.error())));
  inspector_options io;
  io.secure = true;
  auto published = spawn_inspector(sys, io);
  BOOST_REQUIRE_MESSAGE(published, "spawn_inspector: "
                                     << (published ? "" : describe(published.error())));
  caf::anon_send(published->handle, add_server_atom::value, std::string{"shop"}, srv->actor());
  BOOST_REQUIRE(wait_until([&] { return listed(sys, published->handle) == "shop:running;"; }));
  auto port = published->port;

  { // A node with a certificate of the same CA sees the server.
    node trusted{"client.pem", "client.key"};
    auto insp = connect_inspector(*trusted.sys, "127.0.0.1", port, true);
    BOOST_REQUIRE_MESSAGE(insp, "connect_inspector: " << (insp ? "" : describe(insp.error())));
    BOOST_CHECK_EQUAL(listed(*trusted.sys, *insp), "shop:running;");
  }
  { // A self-signed certificate: the handshake fails, nothing is seen.
    node untrusted{"untrusted-client.pem", "untrusted-client.key"};
    auto insp = connect_inspector(*untrusted.sys, "127.0.0.1", port, true);
    BOOST_REQUIRE(!insp);
    BOOST_CHECK(insp.error() == errc::closed);
  }
  { // Plain TCP to the secure port: refused as well.
    node plain{"", "", false, ""};
    auto insp = connect_inspector(*plain.sys, "127.0.0.1", port, false);
    BOOST_REQUIRE(!insp);
    BOOST_CHECK(insp.error() == errc::closed);
  }
  // The trusted node's visit changed nothing: the server still serves.
  auto c = test_client::connect(*srv->listener_info());
  c.send("still");
  BOOST_CHECK_EQUAL(c.recv_exact(5), "still");
  BOOST_CHECK_EQUAL(listed(sys, published->handle), "shop:running;");
  BOOST_CHECK(!srv->stop(10s));
  caf::anon_send_exit(published->handle, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(secure_links_need_the_module_a_certificate_a_key_and_a_ca) {
  fd_leak_check fds;
  inspector_options io;
  io.secure = true;
  auto fails_with = [&](node& n, const std::string& needle) {
    auto p = spawn_inspector(*n.sys, io);
    BOOST_REQUIRE(!p);
    BOOST_CHECK(p.error() == errc::invalid_option);
    BOOST_CHECK_MESSAGE(describe(p.error()).find(needle) != std::string::npos,
                        describe(p.error()) << " does not name " << needle);
    auto c = connect_inspector(*n.sys, "127.0.0.1", 1, true);
    BOOST_REQUIRE(!c);
    BOOST_CHECK(c.error() == errc::invalid_option);
  };
  node without_module{"server.pem", "server.key", false};
  fails_with(without_module, "caf::openssl::manager");
  // Nothing set: CAF's module would link without authentication. (A CA or
  // a key without a certificate, or a certificate without a key, makes CAF's
  // module refuse to start the actor system.)
  node without_certificate{"", "", true, ""};
  fails_with(without_certificate, "openssl.certificate");
  node without_ca{"server.pem", "server.key", true, ""};
  fails_with(without_ca, "openssl.cafile");
  node missing_file{"no-such.pem", "server.key"};
  fails_with(missing_file, "no-such.pem");
  node wrong_key{"server.pem", "other.key"};
  fails_with(wrong_key, "match");
}

BOOST_AUTO_TEST_SUITE_END()
