// Thousand Island's logger on real servers: the level of every event a server
// emits, and attaching and detaching levels while a server runs.
#include <boost/test/unit_test.hpp>

#include <map>
#include <set>

#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

/// Captures the logger's records (level and text) while alive.
struct event_log_capture {
  std::shared_ptr<event_log> lines = std::make_shared<event_log>();

  event_log_capture() {
    set_log_sink([l{lines}](const log_record& rec) {
      if (rec.event != nullptr)
        l->add(to_string(rec.level) + " " + std::string{rec.text});
    });
  }

  ~event_log_capture() {
    set_log_sink({});
  }

  /// The captured lines that start with `level + " " + name` (an event name
  /// followed by a space).
  std::vector<std::string> of(const std::string& level, const std::string& name) const {
    std::vector<std::string> out;
    auto head = level + " " + name + " ";
    for (auto& line : lines->entries())
      if (line.rfind(head, 0) == 0)
        out.push_back(line);
    return out;
  }

  /// Waits for `n` lines of `of(level, name)`.
  bool wait_for(const std::string& level, const std::string& name, size_t n = 1) const {
    return wait_until([&] { return of(level, name).size() >= n; });
  }

  /// The event names of all captured lines, each once.
  std::set<std::string> names() const {
    std::set<std::string> out;
    for (auto& line : lines->entries()) {
      auto from = line.find(' ') + 1;
      out.insert(line.substr(from, line.find(' ', from) - from));
    }
    return out;
  }
};

/// The seed's table (ThousandIsland.Logger), plus Atoll's extra acceptor
/// errors at level error.
const std::map<std::string, log_level>& expected_levels() {
  static const std::map<std::string, log_level> table{
    {"atoll.acceptor.spawn_error", log_level::error},
    {"atoll.acceptor.econnaborted", log_level::error},
    {"atoll.acceptor.einval", log_level::error},
    {"atoll.acceptor.emfile", log_level::error},
    {"atoll.acceptor.accept_error", log_level::error},
    {"atoll.listener.start", log_level::info},
    {"atoll.listener.stop", log_level::info},
    {"atoll.acceptor.start", log_level::debug},
    {"atoll.acceptor.stop", log_level::debug},
    {"atoll.connection.start", log_level::debug},
    {"atoll.connection.stop", log_level::debug},
    {"atoll.connection.ready", log_level::trace},
    {"atoll.connection.async_recv", log_level::trace},
    {"atoll.connection.recv", log_level::trace},
    {"atoll.connection.recv_error", log_level::trace},
    {"atoll.connection.send", log_level::trace},
    {"atoll.connection.send_error", log_level::trace},
    {"atoll.connection.sendfile", log_level::trace},
    {"atoll.connection.sendfile_error", log_level::trace},
    {"atoll.connection.socket_shutdown", log_level::trace},
  };
  return table;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(server_logger, server_fixture)

BOOST_AUTO_TEST_CASE(the_server_registers_thousand_islands_level_table) {
  std::map<std::string, log_level> actual;
  for (const auto& [name, level] : server_log_levels())
    BOOST_CHECK_MESSAGE(actual.emplace(telemetry::to_string(name), level).second,
                        "registered twice: " << telemetry::to_string(name));
  BOOST_CHECK_EQUAL(actual.size(), expected_levels().size());
  for (const auto& [name, level] : expected_levels()) {
    auto i = actual.find(name);
    BOOST_REQUIRE_MESSAGE(i != actual.end(), "missing: " << name);
    BOOST_CHECK_MESSAGE(i->second == level, name << " is logged at " << to_string(i->second)
                                                  << ", expected " << to_string(level));
  }
  // A server registers it before it emits anything.
  auto& srv = start(probe_options(echo_script()));
  static_cast<void>(srv);
  for (const auto& [name, level] : server_log_levels())
    BOOST_CHECK(level_of(name) == level);
}

BOOST_AUTO_TEST_CASE(every_event_of_a_server_is_logged_at_its_level_and_no_other) {
  event_log_capture captured;
  BOOST_REQUIRE(!attach_logger(*bus, log_level::trace));
  auto script = std::make_shared<probe_script>();
  script->on_data = [](std::string_view data, atl::socket& sock) -> verdict {
    if (data == "bye") {
      static_cast<void>(sock.shutdown(shutdown_way::write));
      return verdict::close();
    }
    return echo(data, sock);
  };
  auto opts = probe_options(script);
  opts.num_acceptors = 1;
  auto& srv = start(opts);
  auto ep = address_of(srv);
  {
    auto client = connect(srv);
    client.send("ping");
    BOOST_CHECK_EQUAL(client.recv_exact(4), "ping");
    client.send("bye");
    client.recv_until_closed();
  }
  BOOST_REQUIRE(captured.wait_for("debug", "atoll.connection.stop"));
  BOOST_REQUIRE(!srv.stop());
  BOOST_REQUIRE(captured.wait_for("info", "atoll.listener.stop"));
  BOOST_REQUIRE(captured.wait_for("debug", "atoll.acceptor.stop"));
  BOOST_REQUIRE(!detach_logger(*bus, log_level::error));
  // Each line carries its event's registered level.
  for (const auto& line : captured.lines->entries()) {
    auto level = line.substr(0, line.find(' '));
    auto from = line.find(' ') + 1;
    auto name = line.substr(from, line.find(' ', from) - from);
    auto i = expected_levels().find(name);
    BOOST_REQUIRE_MESSAGE(i != expected_levels().end(), "unexpected event logged: " << line);
    BOOST_CHECK_MESSAGE(level == to_string(i->second), "wrong level: " << line);
  }
  for (auto name : {"atoll.listener.start", "atoll.acceptor.start", "atoll.connection.start",
                    "atoll.connection.ready", "atoll.connection.async_recv", "atoll.connection.send",
                    "atoll.connection.socket_shutdown", "atoll.connection.stop",
                    "atoll.acceptor.stop", "atoll.listener.stop"})
    BOOST_CHECK_MESSAGE(captured.names().count(name) == 1, "not logged: " << name);
  auto server = "server=127.0.0.1:" + std::to_string(ep.port);
  // Lines of connection events name the server and the peer; the data is hex.
  auto recv = captured.of("trace", "atoll.connection.async_recv");
  BOOST_REQUIRE(!recv.empty());
  BOOST_CHECK(recv[0].find(server + " peer=127.0.0.1:") != std::string::npos);
  if (!tls_mode())
    BOOST_CHECK_MESSAGE(recv[0].find(" data=70696e67") != std::string::npos, recv[0]);
  auto listener = captured.of("info", "atoll.listener.start");
  BOOST_REQUIRE_EQUAL(listener.size(), 1u);
  BOOST_CHECK(listener[0].find(server) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(levels_attach_and_detach_on_a_running_server) {
  event_log_capture captured;
  auto& srv = start(probe_options(echo_script()));
  auto ep = address_of(srv);
  auto talk = [&](const std::string& text) {
    auto client = connect(srv);
    client.send(text);
    BOOST_CHECK_EQUAL(client.recv_exact(text.size()), text);
  };
  talk("before");
  // Attached after the server started: debug shows connections, named by
  // server and peer, and no trace events.
  BOOST_REQUIRE(!attach_logger(*bus, log_level::debug));
  talk("debug");
  BOOST_REQUIRE(captured.wait_for("debug", "atoll.connection.stop", 1));
  auto starts = captured.of("debug", "atoll.connection.start");
  BOOST_REQUIRE_EQUAL(starts.size(), 1u);
  BOOST_CHECK_MESSAGE(starts[0].find("server=127.0.0.1:" + std::to_string(ep.port)
                                     + " peer=127.0.0.1:")
                        != std::string::npos,
                      starts[0]);
  BOOST_CHECK(captured.of("trace", "atoll.connection.async_recv").empty());
  // Trace added live.
  BOOST_REQUIRE(!attach_logger(*bus, log_level::trace));
  BOOST_CHECK(attach_logger(*bus, log_level::debug) == errc::already_present);
  talk("trace");
  BOOST_REQUIRE(captured.wait_for("debug", "atoll.connection.stop", 2));
  BOOST_CHECK(!captured.of("trace", "atoll.connection.async_recv").empty());
  // Detaching debug takes trace with it; info and error stay.
  BOOST_REQUIRE(!detach_logger(*bus, log_level::debug));
  BOOST_CHECK(detach_logger(*bus, log_level::trace) == errc::not_found);
  auto before = captured.lines->size();
  talk("quiet");
  BOOST_REQUIRE(!srv.stop());
  BOOST_REQUIRE(captured.wait_for("info", "atoll.listener.stop"));
  auto after = captured.lines->since(before);
  BOOST_CHECK_MESSAGE(after.size() == 1u && after[0].rfind("info atoll.listener.stop", 0) == 0,
                      "after detaching debug: " << after.size() << " lines");
  BOOST_REQUIRE(!detach_logger(*bus, log_level::error));
  BOOST_CHECK(!bus->enabled());
}

BOOST_AUTO_TEST_SUITE_END()
