// The live observer page (`atl::start_observer_page`): its HTTP answers, its
// event stream, and the page itself in headless Chromium (Debian's
// `chromium`, installed by setup.sh): the tree of a running server, a new
// connection, a killed acceptor's restart, at each load and live (one page
// kept open, refreshed by its event stream).
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <nlohmann/json.hpp>

#include "atoll/runtime/reactor.hpp"
#include "atoll/supervisors/observer_page.hpp"
#include "support/headless_browser.hpp"
#include "support/process.hpp"
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

struct page_fixture : server_fixture {
  inspector_actor inspector = spawn_local_inspector(sys);
  std::optional<server> page;
  endpoint page_address;

  ~page_fixture() {
    if (page)
      static_cast<void>(page->stop(10000ms));
    caf::anon_send_exit(inspector, caf::exit_reason::user_shutdown);
  }

  /// Starts a server shown under `name`, and the page.
  server& start_shown(const std::string& name) {
    auto opts = probe_options(echo_script());
    opts.tls.reset(); // the page shows TCP and TLS alike
    auto& srv = start(opts);
    caf::anon_send(inspector, add_server_atom::value, name, srv.actor());
    observer_page_options po;
    po.interval = 200ms;
    auto started = start_observer_page(sys, inspector, po);
    BOOST_REQUIRE_MESSAGE(started, "start_observer_page: " << (started ? "" : describe(started.error())));
    page = *started;
    auto where = page->listener_info();
    BOOST_REQUIRE(where);
    page_address = *where;
    return srv;
  }

  /// Sends `request` to the page's server; what came back until it closed.
  std::string http(const std::string& request) {
    test_client c;
    BOOST_REQUIRE(c.try_connect(page_address));
    c.send(request);
    return c.recv_until_closed(10000ms);
  }

  /// The body of a response.
  static std::string body_of(const std::string& response) {
    auto end = response.find("\r\n\r\n");
    return end == std::string::npos ? "" : response.substr(end + 4);
  }

  /// The page after its scripts ran, as headless Chromium renders it.
  std::string rendered_page() {
    static const std::string chromium = "/usr/bin/chromium";
    BOOST_REQUIRE_MESSAGE(::access(chromium.c_str(), X_OK) == 0,
                          chromium << " is missing: setup.sh installs Debian's chromium");
    auto profile = "/tmp/atoll-chromium-" + std::to_string(::getpid());
    child_process browser{{chromium, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-quic", "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync",
                           "--user-data-dir=" + profile, "--dump-dom",
                           "http://" + to_string(page_address) + "/"}};
    BOOST_REQUIRE(browser.started());
    auto dom = browser.stdout_until_eof(60000ms);
    auto code = browser.wait(60000ms);
    BOOST_REQUIRE_MESSAGE(code && *code == 0, "chromium failed: " << browser.stderr_text());
    return dom;
  }
};

/// The handle of the child `id` of `sup`.
caf::actor child(caf::actor_system& sys, const caf::actor& sup, const std::string& id) {
  auto children = which_children(sys, sup);
  BOOST_REQUIRE(children);
  for (auto& c : *children)
    if (c.id == id)
      return c.handle;
  BOOST_FAIL("no child " << id);
  return {};
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(observer_page, page_fixture)

BOOST_AUTO_TEST_CASE(the_page_its_snapshot_and_its_event_stream) {
  auto& srv = start_shown("shop");
  auto client = connect(srv);
  client.send("x");
  BOOST_CHECK_EQUAL(client.recv_exact(1), "x");
  // (A connection registers its socket after its first read, which may
  // have echoed already.)
  auto io = reactor::of(sys);
  BOOST_REQUIRE(io);
  BOOST_REQUIRE(wait_until([&] { return (*io)->size() >= 3; }));
  auto response = http("GET /snapshot HTTP/1.1\r\nHost: t\r\n\r\n");
  BOOST_REQUIRE_EQUAL(response.rfind("HTTP/1.1 200 OK\r\nContent-Type: application/json", 0), 0u);
  auto snap = nlohmann::json::parse(body_of(response));
  BOOST_REQUIRE_EQUAL(snap["servers"].size(), 1u);
  auto& shop = snap["servers"][0];
  BOOST_CHECK_EQUAL(shop["name"], "shop");
  BOOST_CHECK_EQUAL(shop["status"], "running");
  BOOST_CHECK_EQUAL(shop["connections"], 1);
  BOOST_CHECK_EQUAL(shop["local"], to_string(address_of(srv)));
  BOOST_CHECK_GT(snap["time_ms"].get<int64_t>(), 0);
  // The scheduler's state, as the reactor reads it: here the shop's
  // listener and connection and the page's listener are registered (the
  // page's connection, this request, may not be: its first read found the
  // request, and it registers only when a read finds nothing).
  auto& sched = snap["scheduler"];
  BOOST_REQUIRE(sched.is_object());
  auto workers = sched["workers"].get<size_t>();
  BOOST_CHECK_EQUAL(workers, (*io)->num_pollers());
  BOOST_CHECK_EQUAL(sched["compaction"].get<bool>(), (*io)->compaction());
  BOOST_CHECK_GE(sched["active_workers"].get<size_t>(), 1u);
  BOOST_CHECK_LE(sched["active_workers"].get<size_t>(), workers);
  BOOST_CHECK_GE(sched["registrations"].get<size_t>(), 3u);
  BOOST_CHECK_EQUAL(sched["registrations_per_poller"].get<std::vector<size_t>>().size(), workers);
  for (auto key : {"activations", "deactivations", "spin_waits", "memory_releases"})
    BOOST_CHECK_MESSAGE(sched[key].is_number_unsigned(), key);
  // The page carries its first snapshot and nothing from elsewhere.
  auto page_response = http("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  BOOST_CHECK_EQUAL(page_response.rfind("HTTP/1.1 200 OK\r\nContent-Type: text/html", 0), 0u);
  auto html = body_of(page_response);
  BOOST_CHECK_NE(html.find("\"name\":\"shop\""), std::string::npos);
  BOOST_CHECK_EQUAL(html.find("http://"), std::string::npos);
  BOOST_CHECK_EQUAL(html.find("https://"), std::string::npos);
  // Server-sent events: one snapshot per interval.
  test_client events;
  BOOST_REQUIRE(events.try_connect(page_address));
  events.send("GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string stream;
  BOOST_REQUIRE(wait_until(
    [&] {
      if (auto more = events.recv_some(100ms))
        stream += *more;
      size_t n = 0;
      for (auto at = stream.find("\ndata: "); at != std::string::npos;
           at = stream.find("\ndata: ", at + 1))
        ++n;
      return n >= 3;
    },
    10000ms));
  BOOST_CHECK_EQUAL(stream.rfind("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream", 0), 0u);
  // Other paths, methods and versions.
  BOOST_CHECK_EQUAL(http("GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  BOOST_CHECK_EQUAL(http("POST / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  BOOST_CHECK_EQUAL(http("GET / SPDY/3\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  // Bad options.
  observer_page_options po;
  po.interval = 10ms;
  BOOST_CHECK(start_observer_page(sys, inspector, po).error() == errc::invalid_option);
  BOOST_CHECK(start_observer_page(sys, inspector_actor{}, {}).error() == errc::invalid_option);
}

BOOST_AUTO_TEST_CASE(chromium_shows_the_tree_a_new_connection_and_a_restart) {
  auto& srv = start_shown("shop");
  auto before = rendered_page();
  // (The markers are rendered elements, not the script's text.)
  BOOST_CHECK_NE(before.find("<section class=\"server\" data-server=\"shop\">"), std::string::npos);
  BOOST_CHECK_NE(before.find("<span class=\"sup\">acceptor_pool</span>"), std::string::npos);
  BOOST_CHECK_NE(before.find("no connections</td>"), std::string::npos);
  BOOST_CHECK_EQUAL(before.find("<span class=\"restarted\">"), std::string::npos);
  // The header shows the scheduler's workers.
  auto io = reactor::of(sys);
  BOOST_REQUIRE(io);
  auto workers = (*io)->num_pollers();
  BOOST_CHECK_NE(before.find("<span id=\"scheduler\">scheduler: "), std::string::npos);
  BOOST_CHECK_NE(before.find(" of " + std::to_string(workers)
                             + (workers == 1 ? " worker" : " workers") + " active"),
                 std::string::npos);

  // A new client is on the page at its next load (the first snapshot is
  // taken when the page is asked for).
  auto client = connect(srv);
  client.send("x");
  BOOST_CHECK_EQUAL(client.recv_exact(1), "x");
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  BOOST_REQUIRE(::getsockname(client.fd(), reinterpret_cast<sockaddr*>(&local), &len) == 0);
  auto peer = "127.0.0.1:" + std::to_string(ntohs(local.sin_port));
  auto with_client = rendered_page();
  BOOST_CHECK_NE(with_client.find("<tr class=\"connection"), std::string::npos);
  BOOST_CHECK_NE(with_client.find(peer), std::string::npos);

  // A killed acceptor is restarted by its supervisor, and the page says so.
  auto pool = child(sys, srv.handle(), "acceptor_pool");
  auto group = child(sys, pool, "acceptor-1");
  caf::anon_send_exit(child(sys, group, "acceptor"), caf::exit_reason::kill);
  BOOST_REQUIRE(wait_until([&] {
    auto t = srv.tree();
    auto a = t ? find_node(*t, "acceptor_pool/acceptor-1/acceptor") : nullptr;
    return a && a->running && a->restart_count == 1;
  }));
  auto after = rendered_page();
  BOOST_CHECK_NE(after.find("<span class=\"restarted\">restarted 1×</span>"), std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_open_page_follows_connections_and_restarts_live) {
  auto& srv = start_shown("live");
  headless_browser browser;
  BOOST_REQUIRE_MESSAGE(browser.started(), headless_browser::path
                                             << " did not start: setup.sh installs Debian's chromium");
  BOOST_REQUIRE(browser.open("http://" + to_string(page_address) + "/"));
  BOOST_REQUIRE(browser.wait_for(R"(document.querySelector('section.server[data-server="live"]'))",
                                 30000ms));
  // (Cells, not the body's text: that holds the inline script's too.)
  const std::string no_rows =
    "[...document.querySelectorAll('td')].some(c => c.textContent === 'no connections')";
  BOOST_CHECK(browser.wait_for(no_rows, 10000ms));
  // A mark in the page's script state: gone if the page were loaded again.
  auto mark = browser.evaluate("window.atollTestMark = 'the same page'");
  BOOST_REQUIRE(mark && *mark == "the same page");

  // A client connects: its row appears by the event stream alone.
  std::optional<test_client> client{connect(srv)};
  client->send("x");
  BOOST_CHECK_EQUAL(client->recv_exact(1), "x");
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  BOOST_REQUIRE(::getsockname(client->fd(), reinterpret_cast<sockaddr*>(&local), &len) == 0);
  auto peer = "127.0.0.1:" + std::to_string(ntohs(local.sin_port));
  auto row_of_peer = "[...document.querySelectorAll('tr.connection')].some(r => "
                     "r.textContent.includes('" + peer + "'))";
  // Within 10 s (the page's interval here is 200 ms; the browser and a
  // sanitized server share two cores).
  BOOST_CHECK(browser.wait_for(row_of_peer, 10000ms));
  BOOST_CHECK(browser.wait_for("!" + no_rows, 1000ms));

  // It leaves: the row goes.
  client.reset();
  BOOST_CHECK(browser.wait_for("!(" + row_of_peer + ")", 10000ms));
  BOOST_CHECK(browser.wait_for(no_rows, 10000ms));

  // A killed acceptor is restarted by its supervisor: the open page says so.
  auto pool = child(sys, srv.handle(), "acceptor_pool");
  auto group = child(sys, pool, "acceptor-1");
  caf::anon_send_exit(child(sys, group, "acceptor"), caf::exit_reason::kill);
  BOOST_CHECK(browser.wait_for("[...document.querySelectorAll('span.restarted')].some(s => "
                               "s.textContent === 'restarted 1×')",
                               10000ms));
  auto still = browser.evaluate("window.atollTestMark");
  BOOST_CHECK(still && *still == "the same page");
}

BOOST_AUTO_TEST_SUITE_END()
