// End-to-end tests: run each example program, talk to it over TCP, stop it
// with a signal and check its exit code.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

/// The example program `name`, from the build or from the directory in
/// $ATOLL_EXAMPLES_DIR (to run these tests against other builds).
std::string example_path(const std::string& name) {
  auto dir = std::getenv("ATOLL_EXAMPLES_DIR");
  return std::string{dir != nullptr && *dir != '\0' ? dir : ATOLL_EXAMPLES_DIR} + "/" + name;
}

/// True for the UDP examples (they have listeners, not acceptors).
bool is_udp(const std::string& name) {
  for (auto udp : {"udp_echo", "dns_server", "dns_forwarder", "dhcp_dump", "mdns_dump"})
    if (name == udp)
      return true;
  return false;
}

/// A running example: started with --port=0 on loopback; knows its address.
struct running_example {
  child_process proc;
  endpoint address;

  explicit running_example(const std::string& name, std::vector<std::string> extra = {})
    : proc(make_args(name, std::move(extra))) {
    BOOST_REQUIRE(proc.started());
    auto line = proc.read_line();
    BOOST_REQUIRE_MESSAGE(line, name << " printed no line; stderr: " << proc.stderr_text());
    std::smatch m;
    static const std::regex pattern{R"(^listening on (.+):(\d+)$)"};
    BOOST_REQUIRE_MESSAGE(std::regex_match(*line, m, pattern), "unexpected line: " << *line);
    address.address = m[1];
    address.port = static_cast<uint16_t>(std::stoi(m[2]));
  }

  static std::vector<std::string> make_args(const std::string& name,
                                            std::vector<std::string> extra) {
    // mdns_dump takes one listener only (each socket would get every message).
    std::string scale = !is_udp(name)         ? "--num-acceptors=4"
                        : name == "mdns_dump" ? "--num-listeners=1"
                                              : "--num-listeners=4";
    std::vector<std::string> args{example_path(name), "--port=0", "--host=loopback", scale};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  test_client connect() {
    return test_client::connect(address);
  }

  /// Stops it with `sig`; expects a clean exit.
  void stop(int sig = SIGINT) {
    proc.signal(sig);
    auto code = proc.wait();
    BOOST_REQUIRE_MESSAGE(code, "the example did not exit");
    BOOST_CHECK_EQUAL(*code, 0);
  }
};

/// Runs an example that should fail at once; returns its exit code and stderr.
std::pair<int, std::string> run_failing(std::vector<std::string> args) {
  child_process proc{args};
  BOOST_REQUIRE(proc.started());
  auto code = proc.wait(10000ms);
  BOOST_REQUIRE_MESSAGE(code, "still running: " << args.back());
  return {*code, proc.stderr_text()};
}

/// Expects `args` to be refused with exit code 1 (not a signal) and a
/// message on stderr that contains `mentions`.
void expect_refused(std::vector<std::string> args, const std::string& mentions) {
  auto what = args.back();
  auto [code, err] = run_failing(std::move(args));
  BOOST_CHECK_MESSAGE(code == 1, what << ": exit code " << code << ", stderr: " << err);
  BOOST_CHECK_MESSAGE(err.find(mentions) != std::string::npos,
                      what << ": stderr does not mention " << mentions << ": " << err);
}

/// Reads from `c` until `n` newlines arrived (fails the test on timeout).
std::string recv_lines(test_client& c, size_t n, std::chrono::milliseconds timeout = 10000ms) {
  std::string got;
  size_t lines = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (lines < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto chunk = left.count() > 0 ? c.recv_some(left) : std::nullopt;
    BOOST_REQUIRE_MESSAGE(chunk && !chunk->empty(), "got " << lines << " of " << n << " lines");
    lines += static_cast<size_t>(std::count(chunk->begin(), chunk->end(), '\n'));
    got += *chunk;
  }
  return got;
}

/// `n` lines of `size` bytes each (newline included), numbered.
std::vector<std::string> numbered_lines(size_t n, size_t size) {
  std::vector<std::string> lines;
  for (size_t i = 0; i < n; ++i) {
    auto line = "line " + std::to_string(i) + " ";
    line.resize(size - 1, 'x');
    lines.push_back(line + "\n");
  }
  return lines;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(examples, fd_leak_check)

BOOST_AUTO_TEST_CASE(echo_echoes_and_stops_gracefully_on_sigint) {
  running_example ex{"echo"};
  BOOST_CHECK_EQUAL(ex.address.address, "127.0.0.1");
  auto a = ex.connect();
  auto b = ex.connect();
  a.send("ping\n");
  b.send(std::string(100000, 'x'));
  BOOST_CHECK_EQUAL(a.recv_exact(5), "ping\n");
  BOOST_CHECK_EQUAL(b.recv_exact(100000), std::string(100000, 'x'));
  ex.stop(SIGINT);
  BOOST_CHECK(a.closed_within(2000ms));
  BOOST_CHECK(ex.proc.stderr_text().find("received SIGINT") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(echo_stops_on_sigterm_and_refuses_new_connections) {
  running_example ex{"echo"};
  auto a = ex.connect();
  a.send("x");
  BOOST_CHECK_EQUAL(a.recv_exact(1), "x");
  ex.stop(SIGTERM);
  test_client late;
  BOOST_CHECK(!late.try_connect(ex.address));
}

// Issue 13: a custom connection actor per connection (`connection_process`),
// shared and on its own thread; the drain answers input sent just before
// the signal, then closes with a FIN.
BOOST_AUTO_TEST_CASE(echo_actor_echoes_from_its_own_actors_and_drains_on_sigterm) {
  for (bool detached : {false, true}) {
    BOOST_TEST_MESSAGE("detached: " << detached);
    std::vector<std::string> extra{"--greeting=hi there"};
    if (detached)
      extra.emplace_back("--detached");
    running_example ex{"echo_actor", extra};
    auto a = ex.connect();
    auto b = ex.connect();
    BOOST_CHECK_EQUAL(a.recv_exact(9), "hi there\n");
    BOOST_CHECK_EQUAL(b.recv_exact(9), "hi there\n");
    a.send("ping\n");
    b.send(std::string(100000, 'x'));
    BOOST_CHECK_EQUAL(a.recv_exact(5), "ping\n");
    BOOST_CHECK_EQUAL(b.recv_exact(100000), std::string(100000, 'x'));
    a.send("late\n");
    ex.stop(SIGTERM);
    BOOST_CHECK_EQUAL(a.recv_until_closed(), "late\nbye\n");
    BOOST_CHECK(!a.was_reset());
    BOOST_CHECK_EQUAL(b.recv_until_closed(), "bye\n");
  }
  // --read-timeout takes effect on the actor's reads too.
  running_example ex{"echo_actor", {"--read-timeout=300"}};
  auto silent = ex.connect();
  BOOST_CHECK(silent.closed_within(5000ms));
  ex.stop();
}

BOOST_AUTO_TEST_CASE(echo_managed_runs_its_server_from_an_actor) {
  running_example ex{"echo_managed", {"--events", "--status-every=100", "--goodbye=see you"}};
  auto a = ex.connect();
  auto b = ex.connect();
  a.send("ping\n");
  b.send("pong pong\n");
  BOOST_CHECK_EQUAL(a.recv_exact(5), "ping\n");
  BOOST_CHECK_EQUAL(b.recv_exact(10), "pong pong\n");
  auto pa = "127.0.0.1:" + std::to_string(local_endpoint(a.fd())->port);
  auto pb = "127.0.0.1:" + std::to_string(local_endpoint(b.fd())->port);
  // The manager's subscription and its listings of the connection records.
  auto a_line = "connection from " + pa + "\n";
  auto a_status = pa + " open in=5 out=5 age=";
  auto b_status = pb + " open in=10 out=10 age=";
  BOOST_CHECK_MESSAGE(wait_until([&] {
                        auto err = ex.proc.stderr_text();
                        return err.find(a_line) != std::string::npos
                               && err.find("connections: 2\n") != std::string::npos
                               && err.find(a_status) != std::string::npos
                               && err.find(b_status) != std::string::npos;
                      }),
                      "stderr: " << ex.proc.stderr_text());
  {
    auto c = ex.connect();
    c.send("x");
    BOOST_CHECK_EQUAL(c.recv_exact(1), "x");
  } // closed by the client
  // Its end seen before the stop (else the stop could end it first).
  BOOST_CHECK_MESSAGE(wait_until([&] {
                        return ex.proc.stderr_text().find(" closed: peer_closed\n")
                               != std::string::npos;
                      }),
                      "stderr: " << ex.proc.stderr_text());
  // At the stop each connection actor sends the goodbye line, then drains.
  ex.stop(SIGTERM);
  BOOST_CHECK_EQUAL(a.recv_until_closed(), "see you\n");
  BOOST_CHECK_EQUAL(b.recv_until_closed(), "see you\n");
  BOOST_CHECK(!a.was_reset());
  auto err = ex.proc.stderr_text();
  BOOST_CHECK_MESSAGE(err.find(" closed: peer_closed\n") != std::string::npos, err);
  BOOST_CHECK_MESSAGE(err.find(pa + " closed: shutdown\n") != std::string::npos, err);
}

BOOST_AUTO_TEST_CASE(hello_world_greets_and_closes) {
  running_example ex{"hello_world"};
  for (int i = 0; i < 3; ++i) {
    auto c = ex.connect();
    BOOST_CHECK_EQUAL(c.recv_until_closed(), "Hello, World\n");
  }
  ex.stop();
}

BOOST_AUTO_TEST_CASE(daytime_sends_one_line_with_the_date) {
  running_example ex{"daytime"};
  auto c = ex.connect();
  auto line = c.recv_until_closed();
  static const std::regex pattern{
      R"(^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), [A-Z][a-z]+ [ 0-9]\d, \d{4} \d\d:\d\d:\d\d UTC\r\n$)"};
  BOOST_CHECK_MESSAGE(std::regex_match(line, pattern), "unexpected daytime line: " << line);
  ex.stop();
}

BOOST_AUTO_TEST_CASE(messenger_delivers_a_line_to_the_other_connections) {
  running_example ex{"messenger"};
  auto alice = ex.connect();
  auto bob = ex.connect();
  auto carol = ex.connect();
  for (auto* c : {&alice, &bob, &carol}) {
    auto welcome = c->recv_exact(9);
    BOOST_CHECK_EQUAL(welcome, "welcome, ");
  }
  // Drain the rest of the welcome lines ("127.0.0.1:PORT\n").
  for (auto* c : {&alice, &bob, &carol}) {
    std::string rest;
    while (rest.empty() || rest.back() != '\n')
      rest += c->recv_exact(1);
  }
  // A welcome is sent once the room knows the client: all three are members.
  alice.send("hello everyone\n");
  for (auto* c : {&bob, &carol}) {
    std::string got;
    while (got.empty() || got.back() != '\n')
      got += c->recv_exact(1);
    BOOST_CHECK_MESSAGE(got.find(": hello everyone\n") != std::string::npos, got);
  }
  BOOST_CHECK(alice.silent_for(200ms)); // no echo to the sender
  ex.stop();
}

BOOST_AUTO_TEST_CASE(http_hello_serves_keep_alive_pipelined_and_close_requests) {
  running_example ex{"http_hello"};
  auto c = ex.connect();
  const std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string response = "HTTP/1.1 200 OK\r\n"
                               "Content-Length: 13\r\n"
                               "Content-Type: text/plain\r\n"
                               "Connection: keep-alive\r\n"
                               "\r\n"
                               "Hello, World!";
  c.send(get);
  BOOST_CHECK_EQUAL(c.recv_exact(response.size()), response);
  c.send(get + get + get); // pipelined
  BOOST_CHECK_EQUAL(c.recv_exact(3 * response.size()), response + response + response);
  c.send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  auto last = c.recv_until_closed();
  BOOST_CHECK(last.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  BOOST_CHECK(last.find("Connection: close") != std::string::npos);
  auto bad = ex.connect();
  bad.send("NONSENSE\r\n\r\n");
  BOOST_CHECK(bad.recv_until_closed().rfind("HTTP/1.1 400 Bad Request", 0) == 0);
  // HEAD: the same headers without the body, so the next answer on the
  // connection is framed right (an empty line before a request is ignored).
  auto head = ex.connect();
  head.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n\r\n" + get);
  auto head_only = response.substr(0, response.size() - 13);
  BOOST_CHECK_EQUAL(head.recv_exact(head_only.size() + response.size()), head_only + response);
  BOOST_CHECK(head.silent_for(100ms));
  // Each header on its own line: a header's value is not a header, names and
  // connection options in any case, with or without the optional space.
  auto close_with = [&](const std::string& request, const std::string& status_line) {
    auto c2 = ex.connect();
    c2.send(request);
    auto got = c2.recv_until_closed();
    BOOST_CHECK_MESSAGE(got.rfind(status_line, 0) == 0 && got.find(status_line, 1) == std::string::npos,
                        request << " got: " << got);
  };
  const std::string ok = "HTTP/1.1 200 OK\r\n";
  const std::string refused = "HTTP/1.1 400 Bad Request\r\n";
  close_with("GET / HTTP/1.1\r\nConnection:close\r\n\r\n", ok);
  close_with("GET / HTTP/1.1\r\nconnection: Keep-Alive, CLOSE\r\n\r\n", ok);
  close_with("GET / HTTP/1.1\r\nContent-Length:0\r\nConnection: close\r\n\r\n", ok);
  close_with("POST / HTTP/1.1\r\nX-A: content-length: 0\r\nContent-Length: 4\r\n\r\n"
             "GET / HTTP/1.1\r\n\r\n",
             refused);
  close_with("GET / HTTP/1.1\r\nContent-Length: 05\r\n\r\nhello", refused);
  close_with("GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n", refused);
  close_with("POST / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\nhello", refused); // bare LF
  // Lines ended by LF or CR alone never make a "\r\n\r\n": answered at once,
  // not after the read timeout (the client below waits 2 s at most).
  auto answered_at_once = [&](const std::string& request) {
    auto c3 = ex.connect();
    c3.send(request);
    auto got = c3.recv_until_closed(2000ms);
    BOOST_CHECK_MESSAGE(got.rfind(refused, 0) == 0, request << " got: " << got);
  };
  answered_at_once("GET / HTTP/1.1\nHost: x\n\n");
  answered_at_once("GET / HTTP/1.1\rHost: x\r\r");
  answered_at_once(std::string{"GET / HTTP/1.1\r\nHost: "} + '\0' + "x\r\n");
  // A head longer than 8 KiB is refused however it arrives (one write here).
  close_with("GET / HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n", refused);
  ex.stop();
}

BOOST_AUTO_TEST_CASE(examples_reject_bad_options_with_a_clear_message) {
  auto echo = example_path("echo");
  auto [code1, err1] = run_failing({echo, "--port=-1"});
  BOOST_CHECK_EQUAL(code1, 1);
  BOOST_CHECK_MESSAGE(err1.find("port") != std::string::npos, err1);
  auto [code2, err2] = run_failing({echo, "--port=0", "--host=not-an-address"});
  BOOST_CHECK_EQUAL(code2, 1);
  BOOST_CHECK_MESSAGE(err2.find("invalid_address") != std::string::npos, err2);
  auto [code3, err3] = run_failing({echo, "--port=0", "--num-listen-sockets=2"});
  BOOST_CHECK_EQUAL(code3, 1);
  BOOST_CHECK_MESSAGE(err3.find("reuseport") != std::string::npos, err3);
  auto [code4, err4] = run_failing({echo, "--no-such-option=1"});
  BOOST_CHECK_EQUAL(code4, 1);
  BOOST_CHECK_MESSAGE(err4.find("unknown option --no-such-option (see --help)") != std::string::npos,
                      err4);
  expect_refused({echo, "--port=0", "--host="}, "--host: a value is missing or empty");
  // CAF's scheduler settings that Atoll's scheduler does not read.
  expect_refused({echo, "--port=0", "--scheduler.policy=sharing"},
                 "--scheduler.policy is not used: Atoll's scheduler replaces CAF's");
  expect_refused({echo, "--port=0", "--work-stealing.moderate-poll-attempts=3"},
                 "--work-stealing.moderate-poll-attempts is not used");
  expect_refused({example_path("udp_echo"), "--port=0", "--scheduler.policy=stealing"},
                 "--scheduler.policy is not used");
  // A port in use.
  running_example first{"echo"};
  auto [code5, err5] =
      run_failing({echo, "--host=loopback", "--port=" + std::to_string(first.address.port)});
  BOOST_CHECK_EQUAL(code5, 1);
  BOOST_CHECK_MESSAGE(err5.find("address_in_use") != std::string::npos, err5);
  // The address as bound, not as named.
  BOOST_CHECK_MESSAGE(err5.find("bind 127.0.0.1:" + std::to_string(first.address.port)) !=
                          std::string::npos,
                      err5);
  first.stop();
}

namespace {

std::vector<std::string> tls_args() {
  return {"--certfile=" + certs_dir() + "/server-chain.pem",
          "--keyfile=" + certs_dir() + "/server.key"};
}

/// Reads `client`'s output until a line equal to `want` (or the deadline).
bool saw_line(child_process& client, const std::string& want) {
  while (auto line = client.read_line(5000ms))
    if (*line == want)
      return true;
  return false;
}

} // namespace

BOOST_AUTO_TEST_CASE(tls_echo_echoes_to_openssl_s_client) {
  running_example ex{"tls_echo", tls_args()};
  child_process client{{"/usr/bin/openssl", "s_client", "-connect",
                        "127.0.0.1:" + std::to_string(ex.address.port), "-quiet", "-servername",
                        "localhost"}};
  BOOST_REQUIRE(client.started());
  client.write_stdin("hello over tls\n");
  BOOST_CHECK_MESSAGE(saw_line(client, "hello over tls"), client.stderr_text());
  client.signal(SIGTERM);
  client.wait();
  ex.stop();
}

BOOST_AUTO_TEST_CASE(starttls_upgrades_for_openssl_s_client) {
  running_example ex{"starttls", tls_args()};
  // In clear text, only the greeting and the STARTTLS exchange work.
  auto clear = ex.connect();
  clear.send("hello\r\n");
  auto greeting = std::string{"220 atoll STARTTLS example ready\r\n"};
  BOOST_CHECK_EQUAL(clear.recv_exact(greeting.size()), greeting);
  auto refused = std::string{"530 issue STARTTLS first\r\n"};
  BOOST_CHECK_EQUAL(clear.recv_exact(refused.size()), refused);
  // openssl's SMTP STARTTLS dialogue upgrades, then lines are echoed.
  child_process client{{"/usr/bin/openssl", "s_client", "-connect",
                        "127.0.0.1:" + std::to_string(ex.address.port), "-starttls", "smtp",
                        "-quiet"}};
  BOOST_REQUIRE(client.started());
  client.write_stdin("hello after starttls\n");
  BOOST_CHECK_MESSAGE(saw_line(client, "hello after starttls"), client.stderr_text());
  client.signal(SIGTERM);
  client.wait();
  ex.stop();
}

BOOST_AUTO_TEST_CASE(tls_examples_reject_bad_certificates_and_time_out_handshakes) {
  auto tls_echo = example_path("tls_echo");
  auto [code1, err1] = run_failing({tls_echo, "--port=0"});
  BOOST_CHECK_EQUAL(code1, 1);
  BOOST_CHECK_MESSAGE(err1.find("--certfile") != std::string::npos, err1);
  auto [code2, err2] = run_failing({tls_echo, "--port=0", "--certfile=/nonexistent.pem",
                                    "--keyfile=" + certs_dir() + "/server.key"});
  BOOST_CHECK_EQUAL(code2, 1);
  BOOST_CHECK_MESSAGE(err2.find("/nonexistent.pem") != std::string::npos, err2);
  auto [code3, err3] =
      run_failing({tls_echo, "--port=0", "--certfile=" + certs_dir() + "/server.pem",
                   "--keyfile=" + certs_dir() + "/other.key"});
  BOOST_CHECK_EQUAL(code3, 1);
  BOOST_CHECK_MESSAGE(err3.find("does not match") != std::string::npos, err3);
  // A client that never starts the handshake is dropped after the timeout.
  auto args = tls_args();
  args.push_back("--handshake-timeout=200");
  running_example ex{"tls_echo", args};
  auto started = std::chrono::steady_clock::now();
  test_client silent;
  BOOST_REQUIRE(silent.try_connect(ex.address));
  BOOST_CHECK(silent.closed_within(3000ms));
  BOOST_CHECK(std::chrono::steady_clock::now() - started >= 200ms);
  ex.stop();
}

namespace {

/// The standard output of `example --help`; expects exit code 0.
std::string help_text(const std::string& example) {
  child_process proc{{example_path(example), "--help"}};
  std::string text;
  while (auto line = proc.read_line(5000ms))
    text += *line + "\n";
  BOOST_CHECK_EQUAL(proc.wait().value_or(-1), 0);
  return text;
}

} // namespace

BOOST_AUTO_TEST_CASE(help_prints_the_options_and_exits_zero) {
  auto text = help_text("echo");
  for (auto option :
       {"--port", "--host", "--num-acceptors=", "--num-listen-sockets=", "--num-connections=",
        "--read-timeout=", "--shutdown-timeout=", "--reuseport", "--detached", "--print-tree",
        "--log=", "--scheduler.max-threads", "--scheduler.max-throughput",
        "--scheduler.release-memory-after", "--scheduler.spinning-workers",
        "--scheduler.compaction"})
    BOOST_CHECK_MESSAGE(text.find(option) != std::string::npos, option << " missing:\n" << text);
  // The limits.
  for (auto limit : {"0..65535", "1..10000", "1..1024", "1..512", "(0: none; default: 60000)"})
    BOOST_CHECK_MESSAGE(text.find(limit) != std::string::npos, limit << " missing:\n" << text);
  // The help goes to stdout; CAF's own words said STDERR.
  BOOST_CHECK_MESSAGE(text.find("STDERR") == std::string::npos, text);
  BOOST_CHECK_MESSAGE(text.find(": print help and exit") != std::string::npos, text);
  BOOST_CHECK(help_text("udp_echo").find("STDERR") == std::string::npos);
  BOOST_CHECK(help_text("messenger").find("(0: none; default: 0)") != std::string::npos);
  auto tls = help_text("tls_echo");
  for (auto option :
       {"--certfile=", "--keyfile=", "--cafile=", "--verify=", "--alpn=", "--handshake-timeout="})
    BOOST_CHECK_MESSAGE(tls.find(option) != std::string::npos, option << " missing:\n" << tls);
  BOOST_CHECK(help_text("daytime").find("--local-time") != std::string::npos);
  BOOST_CHECK(help_text("echo_actor").find("--greeting=") != std::string::npos);
  for (auto option : {"--events", "--status-every=", "--goodbye="})
    BOOST_CHECK_MESSAGE(help_text("echo_managed").find(option) != std::string::npos,
                        option << " missing from echo_managed --help");
  BOOST_CHECK(help_text("supervision_demo").find("--crashes=") != std::string::npos);
}

// The UDP examples' --help: the shared options with their limits, the
// scheduler's settings, and each example's own defaults (they differ).
BOOST_AUTO_TEST_CASE(udp_examples_help_shows_their_own_defaults) {
  auto has = [](const std::string& text, const std::string& what, const std::string& example) {
    BOOST_CHECK_MESSAGE(text.find(what) != std::string::npos,
                        example << " --help lacks \"" << what << "\":\n" << text);
  };
  struct expected {
    const char* example;
    std::vector<std::string> mentions;
  };
  for (const auto& [example, mentions] : std::vector<expected>{
         {"udp_echo", {"(0: pick a free port; default: 4000)", "default: per-datagram",
                       "(default: 100)", "(default: 16384)"}},
         {"dns_server", {"--zone=", "--origin=", "default: per-datagram"}},
         {"dns_forwarder", {"--upstream=", "--upstream-timeout=", "(default: 256)",
                            "its own thread (on by default here; =false turns it off)"}},
         {"dhcp_dump", {"(0: pick a free port; default: 67)", "default: in-listener",
                        "(default: 1)", "(SO_BROADCAST) (on by default here; =false turns it off)"}},
         {"mdns_dump", {"(0: pick a free port; default: 5353)", "default: in-listener",
                        "--interface=", "--group=",
                        "one SO_REUSEPORT socket per listener (default: true)"}}}) {
    auto text = help_text(example);
    for (const auto& what : mentions)
      has(text, what, example);
    for (auto option : {"--num-listeners=", "--rate-limit-max-sources=", "--recbuf=",
                        "--detached", "--log-level=", "limits (checked at start)",
                        "--scheduler.max-threads", "--scheduler.spinning-workers",
                        "--scheduler.compaction"})
      has(text, option, example);
    if (std::string{example} != "dns_forwarder" && std::string{example} != "dhcp_dump")
      BOOST_CHECK_MESSAGE(text.find("on by default here") == std::string::npos, example);
  }
  // The forwarder's handler blocks: it refuses what would not run, naming
  // the option the user gave (not a library option).
  auto forwarder = example_path("dns_forwarder");
  expect_refused({forwarder, "--port=0", "--upstream=127.0.0.1:53", "--lifetime=in-listener"},
                 "--lifetime=in-listener");
  expect_refused({forwarder, "--port=0", "--upstream=127.0.0.1:53", "--detached=false"},
                 "--detached=false");
}

// supervision_demo is not a server, but a stop signal ends it the same way:
// the tree is stopped, exit code 0 (it had died of the signal).
BOOST_AUTO_TEST_CASE(supervision_demo_stops_cleanly_on_sigint_and_sigterm) {
  for (int sig : {SIGINT, SIGTERM}) {
    child_process demo{{example_path("supervision_demo"), "--crashes=100"}};
    std::optional<std::string> line;
    while ((line = demo.read_line(10000ms)) && line->rfind("crashed ", 0) != 0) {
    }
    BOOST_REQUIRE_MESSAGE(line, "no crash shown");
    demo.signal(sig);
    BOOST_CHECK_EQUAL(demo.wait(10000ms).value_or(-1), 0);
    auto rest = demo.stdout_until_eof();
    BOOST_CHECK_MESSAGE(rest.find("stopped\n") != std::string::npos, rest);
    BOOST_CHECK_MESSAGE(rest.find("escalated") == std::string::npos, rest); // ended early
    BOOST_CHECK_MESSAGE(demo.stderr_text().find(sig == SIGINT ? "received SIGINT, stopping"
                                                              : "received SIGTERM, stopping")
                          != std::string::npos,
                        "signal " << sig);
  }
}

// Issue 11, point 4: every value is checked; a bad one is refused with a
// message naming the option and exit code 1, never a signal or a hang.
BOOST_AUTO_TEST_CASE(examples_reject_integers_that_are_not_plain_decimal) {
  auto echo = example_path("echo");
  for (std::string value : {"0x10", "1e3", "+5", " 5", "5 ", "5abc", "", "-", "99999999999"})
    expect_refused({echo, "--port=0", "--num-acceptors=" + value}, "--num-acceptors");
  expect_refused({echo, "--port=0", "--shutdown-timeout=0x10"}, "--shutdown-timeout");
  expect_refused({echo, "-p", "0x10"}, "--port");
  expect_refused({echo, "-p0x10"}, "--port");
  expect_refused({echo, "--port"}, "--port"); // no value
  expect_refused({echo, "-p"}, "--port");     // no value
  expect_refused({echo, "--port=0", "--scheduler.max-threads=0x2"}, "--scheduler.max-threads");
  expect_refused({echo, "--port=0", "--scheduler.max-threads=-1"}, "--scheduler.max-threads");
  // Checked also while their feature is off (a typo must not wait until the
  // feature is turned on).
  expect_refused({echo, "--port=0", "--proxy-trusted=foo"}, "--proxy-trusted");
  expect_refused({echo, "--port=0", "--proxy-timeout=-1"}, "--proxy-timeout");
  expect_refused({echo, "--port=0", "--metrics-host=not-an-address"}, "--metrics-host");
  // A CA file asks for client certificates only with --verify.
  auto tls = tls_args();
  tls.insert(tls.begin(), {example_path("tls_echo"), "--port=0"});
  tls.push_back("--cafile=" + certs_dir() + "/ca.pem");
  expect_refused(tls, "--cafile needs --verify=optional or --verify=required");
  auto managed = example_path("echo_managed");
  expect_refused({managed, "--port=0", "--status-every=-5"}, "--status-every");
  expect_refused({managed, "--port=0", "--status-every=3600001"}, "--status-every");
  expect_refused({managed, "--port=0", "--goodbye=" + std::string(1025, 'x')}, "--goodbye");
  auto demo = example_path("supervision_demo");
  expect_refused({demo, "--crashes=0x1"}, "--crashes");
  expect_refused({demo, "--crashes=-1"}, "--crashes");
  expect_refused({demo, "--crashes=1000"}, "--crashes");
  // A stray argument is not silently ignored.
  expect_refused({echo, "--port=0", "4000"}, "4000");
  // Leading zeros are decimal, not octal: 010 acceptors are ten.
  running_example ex{"echo", {"--num-acceptors=010", "--print-tree"}};
  ex.stop();
  auto tree = ex.proc.stderr_text();
  size_t acceptors = 0;
  for (auto at = tree.find("acceptor-"); at != std::string::npos;
       at = tree.find("acceptor-", at + 1))
    ++acceptors;
  BOOST_CHECK_MESSAGE(acceptors == 10, tree);
}

BOOST_AUTO_TEST_CASE(examples_reject_values_beyond_the_limits) {
  auto echo = example_path("echo");
  // Limits of the server (server_options validation).
  expect_refused({echo, "--port=0", "--num-acceptors=2147483647"}, "num_acceptors");
  expect_refused({echo, "--port=0", "--num-acceptors=10001"}, "num_acceptors");
  expect_refused(
      {echo, "--port=0", "--reuseport", "--num-acceptors=2000", "--num-listen-sockets=1025"},
      "num_listen_sockets");
  expect_refused({echo, "--port=65536"}, "--port");
  expect_refused({echo, "--port=0", "--shutdown-timeout=-2"}, "--shutdown-timeout");
  expect_refused({echo, "--port=0", "--read-timeout=-1"}, "--read-timeout");
  expect_refused({echo, "--port=0", "--log=everything"}, "--log");
  // CAF's own scheduler options: 0 threads, too many threads, no throughput.
  expect_refused({echo, "--port=0", "--scheduler.max-threads=0"}, "--scheduler.max-threads");
  expect_refused({echo, "--port=0", "--scheduler.max-threads=513"}, "--scheduler.max-threads");
  expect_refused({echo, "--port=0", "--scheduler.max-threads=100000"}, "--scheduler.max-threads");
  expect_refused({echo, "--port=0", "--scheduler.max-throughput=0"}, "--scheduler.max-throughput");
  // Atoll's scheduler option: milliseconds, 0..3600000.
  for (std::string value : {"-1", "3600001", "100ms", "0x10", ""})
    expect_refused({echo, "--port=0", "--scheduler.release-memory-after=" + value},
                   "--scheduler.release-memory-after");
  // How many workers may busy-wait at once: 0..512.
  for (std::string value : {"-1", "513", "1.5", "0x2", ""})
    expect_refused({echo, "--port=0", "--scheduler.spinning-workers=" + value},
                   "--scheduler.spinning-workers");
  // Load compaction: true or false.
  for (std::string value : {"maybe", "1", "False", ""})
    expect_refused({echo, "--port=0", "--scheduler.compaction=" + value},
                   "--scheduler.compaction");
  // Threads that cannot start (2 file descriptors each) end it cleanly too.
  expect_refused(
      {"/usr/bin/prlimit", "--nofile=64", echo, "--port=0", "--scheduler.max-threads=64"},
      "cannot start the actor system");
  auto tls_echo = example_path("tls_echo");
  auto certs = std::vector<std::string>{tls_echo, "--port=0",
                                        "--certfile=" + certs_dir() + "/server-chain.pem",
                                        "--keyfile=" + certs_dir() + "/server.key"};
  certs.push_back("--handshake-timeout=-5");
  expect_refused(certs, "--handshake-timeout");
  // Values within the limits are accepted.
  running_example most{"echo",
                       {"--scheduler.max-threads=64", "--num-listen-sockets=4", "--reuseport"}};
  most.stop();
}

// Issue 11, point 5: lines are split before the length limit applies.
BOOST_AUTO_TEST_CASE(messenger_delivers_a_burst_of_pipelined_lines) {
  running_example ex{"messenger"};
  auto alice = ex.connect();
  auto bob = ex.connect();
  recv_lines(alice, 1); // the welcomes: both are members
  recv_lines(bob, 1);
  auto lines = numbered_lines(200, 1001); // 200 KB, lines across every read
  std::string burst;
  for (auto& line : lines)
    burst += line;
  alice.send(burst);
  auto got = recv_lines(bob, lines.size());
  size_t at = 0;
  for (auto& line : lines) {
    auto found = got.find(": " + line, at);
    BOOST_REQUIRE_MESSAGE(found != std::string::npos, "missing: " << line.substr(0, 10));
    at = found + line.size();
  }
  // A line of 64 KiB (newline included) is the longest allowed...
  auto carol = ex.connect();
  recv_lines(carol, 1);
  auto longest = std::string(64 * 1024 - 1, 'y') + "\n";
  carol.send(longest);
  auto delivered = recv_lines(bob, 1);
  BOOST_CHECK(delivered.size() > longest.size() &&
              delivered.compare(delivered.size() - longest.size(), longest.size(), longest) == 0);
  // ... and more without a newline is refused.
  auto dave = ex.connect();
  recv_lines(dave, 1);
  dave.send(std::string(64 * 1024, 'z'));
  BOOST_CHECK(dave.recv_until_closed().find("line too long") != std::string::npos);
  // The others are still there, and heard nothing of it.
  alice.send("still here\n");
  auto next = recv_lines(bob, 1);
  BOOST_CHECK_MESSAGE(next.find(": still here\n") != std::string::npos &&
                          next.find('z') == std::string::npos,
                      next.substr(0, 100));
  ex.stop();
}

BOOST_AUTO_TEST_CASE(messenger_disconnects_a_client_that_reads_nothing_at_its_output_limit) {
  // Regression: output queued for a client that never reads grew without
  // bound (164 MB seen), and the send timeout never came while others
  // talked. Now the transport's limit (4 MiB queued) ends that client.
  running_example ex{"messenger"};
  auto silent = ex.connect();
  auto talker = ex.connect();
  recv_lines(silent, 1); // both are members; then silent reads nothing
  recv_lines(talker, 1);
  const std::string line = std::string(60000, 'x') + "\n";
  size_t sent = 0;
  // 300 lines (18 MB): more than the limit and the kernel's buffers hold.
  for (int i = 0; i < 300 && talker.try_send(line); ++i)
    sent += line.size();
  BOOST_CHECK_EQUAL(sent, 300 * line.size());
  // The silent client gets what was written before the limit, then EOF.
  std::string got;
  bool closed = false;
  for (;;) {
    auto chunk = silent.recv_some(20000ms);
    if (!chunk)
      break;
    if (chunk->empty()) {
      closed = true;
      break;
    }
    got += *chunk;
  }
  BOOST_CHECK(closed);
  BOOST_TEST_MESSAGE("the silent client received " << got.size() << " bytes of " << sent);
  BOOST_CHECK_LT(got.size(), sent);
  // The talker is unharmed.
  talker.send("still here\n");
  auto other = ex.connect();
  recv_lines(other, 1);
  talker.send("and now\n");
  // (It may first hear the end of the flood, still being delivered.)
  std::string heard;
  while (heard.find(": and now\n") == std::string::npos) {
    auto chunk = other.recv_some(20000ms);
    BOOST_REQUIRE_MESSAGE(chunk && !chunk->empty(), "no 'and now' line");
    heard += *chunk;
  }
  ex.stop();
}

BOOST_AUTO_TEST_CASE(starttls_answers_every_line_of_a_pipelined_burst) {
  running_example ex{"starttls", tls_args()};
  auto c = ex.connect();
  const std::string greeting = "220 atoll STARTTLS example ready\r\n";
  BOOST_CHECK_EQUAL(c.recv_exact(greeting.size()), greeting);
  std::string burst;
  for (auto& line : numbered_lines(200, 1001))
    burst += line;
  c.send(burst);
  // In clear text, every line gets its refusal.
  std::string refused = "530 issue STARTTLS first\r\n";
  std::string all;
  for (int i = 0; i < 200; ++i)
    all += refused;
  BOOST_CHECK(c.recv_exact(all.size(), 10000ms) == all);
  c.send("QUIT\r\n");
  BOOST_CHECK_EQUAL(c.recv_until_closed(), "221 bye\r\n");
  // A line of 8192 bytes (line end included) is the longest allowed, one
  // more is refused, complete or not.
  auto longest = ex.connect();
  BOOST_CHECK_EQUAL(longest.recv_exact(greeting.size()), greeting);
  longest.send(std::string(8190, 'y') + "\r\n");
  BOOST_CHECK_EQUAL(longest.recv_exact(refused.size()), refused);
  longest.send(std::string(8191, 'y') + "\r\n");
  BOOST_CHECK_EQUAL(longest.recv_until_closed(), "500 line too long\r\n");
  auto endless = ex.connect();
  BOOST_CHECK_EQUAL(endless.recv_exact(greeting.size()), greeting);
  endless.send(std::string(8192, 'z'));
  BOOST_CHECK_EQUAL(endless.recv_until_closed(), "500 line too long\r\n");
  ex.stop();
}

// Issue 11 (hostile input, seen while writing fuzz_starttls_lines): an EHLO name is
// echoed only when it is printable (a bare CR in it would have forged a reply
// line), and bytes pipelined behind STARTTLS are refused, not answered later
// as if they had come over TLS.
BOOST_AUTO_TEST_CASE(starttls_refuses_reply_injection_and_pipelining_after_starttls) {
  running_example ex{"starttls", tls_args()};
  const std::string greeting = "220 atoll STARTTLS example ready\r\n";
  auto c = ex.connect();
  BOOST_CHECK_EQUAL(c.recv_exact(greeting.size()), greeting);
  c.send("EHLO a\r250 forged\r\nEHLO ok.test\r\n");
  const std::string answers = "501 the name must be printable ASCII\r\n"
                              "250-atoll greets ok.test\r\n250 STARTTLS\r\n";
  BOOST_CHECK_EQUAL(c.recv_exact(answers.size()), answers);
  c.send("STARTTLS\r\nEHLO injected\r\n");
  BOOST_CHECK_EQUAL(c.recv_until_closed(), "501 pipelining after STARTTLS\r\n");
  ex.stop();
}

// Issue 11, point 6: a stop signal that arrives while the example is still
// initializing (here: during the shared libraries' constructors, before
// main(); the probe holds the program there until the signal is pending)
// stops it gracefully instead of killing it.
BOOST_AUTO_TEST_CASE(examples_stop_gracefully_on_a_signal_before_main) {
  std::vector<std::string> env{"LD_PRELOAD=" ATOLL_EARLY_SIGNAL_PROBE};
  // A sanitizer runtime must otherwise be the first library loaded.
  auto asan = std::getenv("ASAN_OPTIONS");
  env.push_back(std::string{"ASAN_OPTIONS="} + (asan != nullptr ? asan : "") +
                ":verify_asan_link_order=0");
  for (int i = 0; i < 20; ++i) {
    auto name = i % 2 == 0 ? "echo" : "messenger";
    child_process proc{running_example::make_args(name, {}), env};
    BOOST_REQUIRE(proc.started());
    auto line = proc.read_line();
    BOOST_REQUIRE_MESSAGE(line && *line == "probe: initializing",
                          "the probe did not run; stderr: " << proc.stderr_text());
    proc.signal(SIGTERM);
    auto code = proc.wait();
    BOOST_REQUIRE_MESSAGE(code, name << " did not exit");
    BOOST_CHECK_MESSAGE(*code == 0, name << " run " << i << ": exit code " << *code
                                         << (*code > 128 ? " (killed by the signal)" : ""));
    BOOST_CHECK(proc.stderr_text().find("received SIGTERM") != std::string::npos);
  }
}

// Issue 11, point 7: an option offered takes effect.
BOOST_AUTO_TEST_CASE(messenger_closes_idle_clients_after_its_read_timeout) {
  running_example ex{"messenger", {"--read-timeout=300"}};
  auto started = std::chrono::steady_clock::now();
  auto idle = ex.connect();
  auto all = idle.recv_until_closed(5000ms);
  auto elapsed = std::chrono::steady_clock::now() - started;
  // The welcome follows the room's answer to the join, which a loaded
  // machine (a sanitizer run) can delay past the timeout: then it never
  // comes, and the goodbye is all there is.
  static const std::regex expected{"(welcome, [^\n]+\n)?silent for too long, bye\n"};
  BOOST_CHECK_MESSAGE(std::regex_match(all, expected), all);
  BOOST_CHECK(elapsed >= 300ms);
  ex.stop();
}

BOOST_AUTO_TEST_CASE(daytime_reports_local_time_when_asked) {
  // A made-up zone, so that local time is recognizably not UTC.
  child_process proc{running_example::make_args("daytime", {"--local-time"}), {"TZ=ATL-3"}};
  BOOST_REQUIRE(proc.started());
  auto line = proc.read_line();
  BOOST_REQUIRE_MESSAGE(line, "no line; stderr: " << proc.stderr_text());
  std::smatch m;
  BOOST_REQUIRE(std::regex_match(*line, m, std::regex{R"(^listening on (.+):(\d+)$)"}));
  endpoint address;
  address.address = m[1];
  address.port = static_cast<uint16_t>(std::stoi(m[2]));
  auto c = test_client::connect(address);
  auto text = c.recv_until_closed();
  BOOST_CHECK_MESSAGE(text.size() > 6 && text.substr(text.size() - 6) == " ATL\r\n", text);
  proc.signal(SIGTERM);
  BOOST_CHECK_EQUAL(proc.wait().value_or(-1), 0);
  expect_refused({example_path("daytime"), "--port=0", "--utc", "--local-time"}, "--local-time");
}

// Issue 11, point 3 (fixed in the library): an infinite drain still stops.
BOOST_AUTO_TEST_CASE(echo_stops_with_an_infinite_shutdown_timeout) {
  running_example ex{"echo", {"--shutdown-timeout=-1"}};
  auto c = ex.connect();
  c.send("x");
  BOOST_CHECK_EQUAL(c.recv_exact(1), "x");
  ex.stop(SIGTERM);
  BOOST_CHECK_MESSAGE(ex.proc.stderr_text().find("stop:") == std::string::npos,
                      ex.proc.stderr_text());
  BOOST_CHECK(c.closed_within(2000ms));
}

BOOST_AUTO_TEST_SUITE_END()

// -- observability ---------------------------------------------------------------------

namespace {

/// The JSON telemetry lines of an example's stderr, parsed.
std::vector<nlohmann::json> json_lines(const std::string& err) {
  std::vector<nlohmann::json> out;
  std::istringstream in{err};
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '{')
      out.push_back(nlohmann::json::parse(line));
  return out;
}

/// The HOST:PORT/metrics of the endpoint that `ex` announced on stderr.
std::string metrics_endpoint_of(running_example& ex) {
  std::string where;
  BOOST_REQUIRE(wait_until([&] {
    auto err = ex.proc.stderr_text();
    auto at = err.find("metrics on http://");
    if (at == std::string::npos)
      return false;
    where = err.substr(at + 18, err.find('\n', at) - at - 18);
    return true;
  }));
  return where;
}

/// The body of `url` (empty if curl failed).
std::string curl_get(const std::string& url) {
  child_process curl{{"/usr/bin/curl", "-s", "--max-time", "5", url}};
  auto body = curl.stdout_until_eof();
  curl.wait();
  return body;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(examples_observability, fd_leak_check)

BOOST_AUTO_TEST_CASE(echo_writes_json_telemetry_logs_and_serves_metrics) {
  running_example ex{
      "echo",
      {"--telemetry-json", "--log-level", "debug", "--metrics-port=0", "--read-timeout=300"}};
  for (int i = 0; i < 3; ++i) {
    auto c = ex.connect();
    c.send("ping");
    BOOST_CHECK_EQUAL(c.recv_exact(4), "ping");
  }
  {
    auto reset = ex.connect(); // reset by the client: a peer close, like a FIN
    reset.send("x");
    BOOST_CHECK_EQUAL(reset.recv_exact(1), "x");
    reset.reset();
  }
  auto silent = ex.connect(); // ends at the read timeout
  BOOST_CHECK(silent.closed_within(3000ms));
  // The metrics endpoint, announced on stderr.
  auto endpoint_line = metrics_endpoint_of(ex);
  BOOST_REQUIRE(wait_until([&] {
    auto body = curl_get("http://" + endpoint_line);
    return body.find("\natoll_connections_accepted_total 5\n") != std::string::npos &&
           body.find("\natoll_connections_active 0\n") != std::string::npos &&
           body.find("atoll_connections_closed_total{reason=\"timeout\"} 1\n") != std::string::npos;
  }));
  ex.stop(SIGTERM);
  auto err = ex.proc.stderr_text();
  auto events = json_lines(err);
  std::map<uint64_t, int> starts;
  std::map<uint64_t, nlohmann::json> stops;
  for (auto& ev : events) {
    BOOST_REQUIRE(ev.contains("event") && ev.contains("measurements") && ev.contains("metadata"));
    BOOST_REQUIRE_EQUAL(ev["event"].size(), 3u);
    BOOST_CHECK_EQUAL(ev["event"][0].get<std::string>(), "atoll");
    auto ctx = ev["metadata"].value("telemetry_span_context", uint64_t{0});
    BOOST_CHECK_NE(ctx, 0u);
    if (ev["event"][1] != "connection")
      continue;
    if (ev["event"][2] == "start") {
      ++starts[ctx];
      BOOST_CHECK_EQUAL(ev["metadata"]["remote_address"].get<std::string>(), "127.0.0.1");
      BOOST_CHECK(ev["metadata"]["remote_port"].is_number_unsigned());
      BOOST_CHECK(ev["measurements"]["monotonic_time"].is_number());
    } else if (ev["event"][2] == "stop") {
      BOOST_CHECK_MESSAGE(stops.emplace(ctx, ev).second, "two stops for span " << ctx);
    } else if (ev["event"][2] == "async_recv" || ev["event"][2] == "send") {
      // Bytes in hex, never raw.
      auto data = ev["measurements"]["data"].get<std::string>();
      BOOST_CHECK(data == "70696e67" || data == "78");
    }
  }
  BOOST_CHECK_EQUAL(starts.size(), 5u);
  BOOST_CHECK_EQUAL(stops.size(), 5u);
  int with_error = 0;
  for (auto& [ctx, n] : starts) {
    BOOST_CHECK_EQUAL(n, 1);
    BOOST_REQUIRE_MESSAGE(stops.count(ctx) == 1, "no stop for span " << ctx);
    auto& stop = stops[ctx];
    for (auto key : {"duration", "send_oct", "send_cnt", "recv_oct", "recv_cnt"})
      BOOST_CHECK_MESSAGE(stop["measurements"].contains(key), "stop without " << key);
    if (stop["metadata"].contains("error")) {
      ++with_error;
      BOOST_CHECK_EQUAL(stop["metadata"]["error"].get<std::string>(), "timeout");
      BOOST_CHECK_EQUAL(stop["metadata"]["reason"].get<std::string>(), "timeout");
    } else {
      BOOST_CHECK_EQUAL(stop["metadata"]["reason"].get<std::string>(), "peer_closed");
    }
  }
  // Only the timeout is an abnormal end.
  BOOST_CHECK_EQUAL(with_error, 1);
  // The log lines at debug: one start and one stop per connection, no trace.
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = err.find(what); at != std::string::npos; at = err.find(what, at + 1))
      ++n;
    return n;
  };
  BOOST_CHECK_EQUAL(count("atoll [debug] atoll.connection.start server=127.0.0.1:"), 5u);
  BOOST_CHECK_EQUAL(count("atoll [debug] atoll.connection.stop server=127.0.0.1:"), 5u);
  BOOST_CHECK_EQUAL(count("atoll [info] atoll.listener.start"), 1u);
  BOOST_CHECK_EQUAL(count("atoll [trace]"), 0u);
}

BOOST_AUTO_TEST_SUITE_END()

// -- behind load balancers: the PROXY protocol, per-source limits -----------------------

namespace {

/// A free TCP port on loopback (for programs that cannot report theirs).
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(in);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&in), len) == 0);
  BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len) == 0);
  ::close(fd);
  return ntohs(in.sin_port);
}

/// Debian's haproxy in front of `backend`, sending PROXY headers
/// (`send_proxy`: "send-proxy" or "send-proxy-v2"); stopped on destruction.
struct haproxy_front {
  std::string config_path;
  std::unique_ptr<child_process> proc;
  endpoint address;

  haproxy_front(const endpoint& backend, const std::string& send_proxy) {
    address.address = "127.0.0.1";
    address.port = free_port();
    config_path = "haproxy-" + std::to_string(::getpid()) + "-" + send_proxy + ".cfg";
    std::ofstream cfg{config_path};
    cfg << "global\n  maxconn 100\n"
        << "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n"
        << "  timeout server 30s\n"
        << "frontend front\n  bind 127.0.0.1:" << address.port << "\n  default_backend back\n"
        << "backend back\n  server echo " << backend.address << ":" << backend.port << " "
        << send_proxy << "\n";
    cfg.close();
    proc = std::make_unique<child_process>(
      std::vector<std::string>{"/usr/sbin/haproxy", "-db", "-f", config_path});
    BOOST_REQUIRE(proc->started());
    BOOST_REQUIRE_MESSAGE(wait_until([&] {
                            test_client probe;
                            return probe.try_connect(address);
                          }),
                          "haproxy did not listen: " << proc->stderr_text());
  }

  ~haproxy_front() {
    proc->signal(SIGTERM);
    static_cast<void>(proc->wait());
    std::remove(config_path.c_str());
  }
};

/// The local port of a connected client socket.
uint16_t local_port_of(const test_client& c) {
  sockaddr_in in{};
  socklen_t len = sizeof(in);
  ::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&in), &len);
  return ntohs(in.sin_port);
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(examples_proxy, fd_leak_check)

BOOST_AUTO_TEST_CASE(echo_behind_haproxy_sees_the_original_clients) {
  if (::access("/usr/sbin/haproxy", X_OK) != 0) {
    BOOST_FAIL("haproxy is not installed (setup.sh installs it)");
    return;
  }
  for (std::string mode : {"send-proxy", "send-proxy-v2"}) {
    BOOST_TEST_CONTEXT(mode) {
      running_example ex{"echo", {"--proxy-protocol=any", "--telemetry-json"}};
      haproxy_front front{ex.address, mode};
      std::vector<uint16_t> client_ports;
      for (int i = 0; i < 3; ++i) {
        test_client c;
        BOOST_REQUIRE(c.try_connect(front.address));
        client_ports.push_back(local_port_of(c));
        c.send("through haproxy " + std::to_string(i));
        BOOST_CHECK_EQUAL(c.recv_exact(17), "through haproxy " + std::to_string(i));
      }
      // A client that skips the balancer has no header: refused.
      auto direct = ex.connect();
      direct.send("no header\r\n");
      BOOST_CHECK(direct.closed_within(3000ms));
      ex.stop(SIGTERM);
      std::vector<uint16_t> seen_ports;
      std::vector<uint16_t> proxy_ports;
      int refused = 0;
      for (auto& ev : json_lines(ex.proc.stderr_text())) {
        if (ev["event"][1] != "connection")
          continue;
        auto& meta = ev["metadata"];
        if (ev["event"][2] == "start" && meta.contains("proxy_port")) {
          seen_ports.push_back(meta["remote_port"].get<uint16_t>());
          proxy_ports.push_back(meta["proxy_port"].get<uint16_t>());
          BOOST_CHECK_EQUAL(meta["remote_address"].get<std::string>(), "127.0.0.1");
        }
        if (ev["event"][2] == "stop" && meta.value("reason", "") == "proxy_error") {
          ++refused;
          BOOST_CHECK(!meta.contains("proxy_address")); // no header: no balancer
          BOOST_CHECK_MESSAGE(meta.value("error", "").find("proxy_header") != std::string::npos,
                              meta.dump());
        }
      }
      // The server saw the clients' own ports, not haproxy's (the probe
      // that waited for haproxy to listen went through too).
      for (auto p : client_ports)
        BOOST_CHECK_MESSAGE(std::find(seen_ports.begin(), seen_ports.end(), p)
                              != seen_ports.end(),
                            "client port " << p << " not seen");
      for (auto p : proxy_ports)
        BOOST_CHECK(std::find(client_ports.begin(), client_ports.end(), p) == client_ports.end());
      BOOST_CHECK_MESSAGE(refused == 1, refused << " refused; stderr:\n" << ex.proc.stderr_text());
    }
  }
}

BOOST_AUTO_TEST_CASE(echo_limits_connections_per_source) {
  running_example ex{"echo", {"--max-connections-per-source=2"}};
  auto a = ex.connect();
  auto b = ex.connect();
  a.send("a");
  b.send("b");
  BOOST_CHECK_EQUAL(a.recv_exact(1), "a");
  BOOST_CHECK_EQUAL(b.recv_exact(1), "b");
  auto c = ex.connect();
  BOOST_CHECK(c.closed_within(3000ms));
  a.send("still");
  BOOST_CHECK_EQUAL(a.recv_exact(5), "still");
  ex.stop();
}

namespace {

/// Runs echo with 2 workers and `args`: two clients get 20 echoes each, and
/// a SIGINT ends it.
void check_echo_with_two_workers(const std::vector<std::string>& args,
                                 std::optional<bool> compaction = std::nullopt) {
  std::vector<std::string> all{"--scheduler.max-threads=2"};
  if (compaction)
    all.emplace_back("--metrics-port=0");
  all.insert(all.end(), args.begin(), args.end());
  running_example ex{"echo", all};
  auto a = ex.connect();
  auto b = ex.connect();
  for (int i = 0; i < 20; ++i) {
    a.send("one");
    b.send("two");
    BOOST_CHECK_EQUAL(a.recv_exact(3), "one");
    BOOST_CHECK_EQUAL(b.recv_exact(3), "two");
  }
  if (compaction) {
    // The setting took effect: the scheduler's metrics say so.
    auto url = "http://" + metrics_endpoint_of(ex);
    auto want = std::string{"\natoll_scheduler_compaction "} + (*compaction ? "1" : "0") + "\n";
    std::string body;
    BOOST_CHECK_MESSAGE(wait_until([&] {
                          body = curl_get(url);
                          return body.find("\natoll_scheduler_workers 2\n") != std::string::npos
                                 && body.find(want) != std::string::npos;
                        }),
                        body);
  }
  ex.stop(SIGINT);
  BOOST_CHECK(a.closed_within(2000ms));
}

} // namespace

BOOST_AUTO_TEST_CASE(echo_serves_with_any_number_of_busy_waiting_workers) {
  for (auto value : {"0", "1", "512"})
    BOOST_TEST_CONTEXT("--scheduler.spinning-workers=" << value) {
      check_echo_with_two_workers({std::string{"--scheduler.spinning-workers="} + value});
    }
}

BOOST_AUTO_TEST_CASE(echo_serves_with_load_compaction_on_and_off) {
  for (auto& [args, on] : std::vector<std::pair<std::vector<std::string>, bool>>{
         {{}, true},
         {{"--scheduler.compaction=false"}, false},
         {{"--scheduler.compaction=true"}, true},
         {{"--scheduler.compaction"}, true},
         {{"--scheduler.compaction=false", "--scheduler.compaction"}, true},
         {{"--scheduler.compaction", "--scheduler.compaction=false"}, false}})
    BOOST_TEST_CONTEXT((args.empty() ? "default" : args.front()) << " (" << args.size()
                                                                 << " options)") {
      check_echo_with_two_workers(args, on);
      // --dump-config shows the value that takes effect.
      std::vector<std::string> dump{example_path("echo")};
      dump.insert(dump.end(), args.begin(), args.end());
      dump.emplace_back("--dump-config");
      child_process proc{dump};
      BOOST_REQUIRE(proc.started());
      auto text = proc.stdout_until_eof(30000ms);
      BOOST_CHECK_EQUAL(proc.wait(30000ms).value_or(-1), 0);
      if (args.empty())
        BOOST_CHECK_EQUAL(text.find("compaction = "), std::string::npos);
      else
        BOOST_CHECK_MESSAGE(text.find(std::string{"compaction = "} + (on ? "true" : "false"))
                              != std::string::npos,
                            text);
    }
}

BOOST_AUTO_TEST_CASE(echo_serves_with_each_connection_actor_and_refuses_bad_ones) {
  for (auto value : {"auto", "light", "event-based"}) {
    BOOST_TEST_CONTEXT("--connection-actor=" << value) {
      running_example ex{"echo", {std::string{"--connection-actor="} + value}};
      auto a = ex.connect();
      auto b = ex.connect();
      a.send("one");
      b.send("two");
      BOOST_CHECK_EQUAL(a.recv_exact(3), "one");
      BOOST_CHECK_EQUAL(b.recv_exact(3), "two");
      ex.stop();
    }
  }
  running_example detached{"echo", {"--detached"}}; // auto: event-based then
  auto c = detached.connect();
  c.send("three");
  BOOST_CHECK_EQUAL(c.recv_exact(5), "three");
  detached.stop();
  auto echo = example_path("echo");
  expect_refused({echo, "--port=0", "--connection-actor=heavy"}, "--connection-actor");
  expect_refused({echo, "--port=0", "--connection-actor=light", "--detached"},
                 "--connection-actor");
  BOOST_CHECK(examples::help_text("echo").find("--connection-actor") != std::string::npos);
  // Its handler uses self(): the messenger does not offer the choice.
  BOOST_CHECK(examples::help_text("messenger").find("--connection-actor") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(echo_refuses_bad_proxy_and_source_limit_options) {
  auto echo = example_path("echo");
  expect_refused({echo, "--port=0", "--proxy-protocol=v3"}, "--proxy-protocol");
  expect_refused({echo, "--port=0", "--proxy-protocol=v1", "--proxy-trusted=10.0.0.1/8"},
                 "--proxy-trusted");
  expect_refused({echo, "--port=0", "--proxy-protocol=v1", "--proxy-trusted="},
                 "--proxy-trusted");
  expect_refused({echo, "--port=0", "--proxy-protocol=any", "--proxy-timeout=0"},
                 "--proxy-timeout");
  expect_refused({echo, "--port=0", "--max-connections-per-source=-1"},
                 "--max-connections-per-source");
  auto text = examples::help_text("echo");
  for (auto option : {"--proxy-protocol", "--proxy-trusted", "--proxy-timeout",
                      "--max-connections-per-source"})
    BOOST_CHECK_MESSAGE(text.find(option) != std::string::npos, option << " missing:\n" << text);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// Sends `request` to `to` from a fresh socket and returns the first answer
/// (empty optional after `timeout`).
std::optional<std::string> udp_ask(const endpoint& to, const std::string& request,
                                   std::chrono::milliseconds timeout = 3000ms) {
  auto answer = send_recv(to, request, timeout);
  if (!answer)
    return std::nullopt;
  return *answer;
}

/// Like `udp_ask`, from a socket bound to `source` (an IPv4 address; any in
/// 127.0.0.0/8 works on loopback). Empty optional after `timeout`.
std::optional<std::string> udp_ask_from(const std::string& source, const endpoint& to,
                                        const std::string& request,
                                        std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  std::optional<std::string> answer;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  sockaddr_in dest{};
  dest.sin_family = AF_INET;
  dest.sin_port = htons(to.port);
  if (::inet_pton(AF_INET, source.c_str(), &from.sin_addr) == 1
      && ::inet_pton(AF_INET, to.address.c_str(), &dest.sin_addr) == 1
      && ::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0
      && ::sendto(fd, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&dest),
                  sizeof(dest))
           == static_cast<ssize_t>(request.size())) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1) {
      char buf[2048];
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      if (n >= 0)
        answer = std::string(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return answer;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(examples_udp, fd_leak_check)

BOOST_AUTO_TEST_CASE(udp_echo_echoes_datagrams_and_stops_on_sigterm) {
  running_example ex{"udp_echo", {"--max-packet-size=2000"}};
  BOOST_CHECK_EQUAL(ex.address.address, "127.0.0.1");
  BOOST_CHECK_EQUAL(udp_ask(ex.address, "hello").value_or("-"), "hello");
  BOOST_CHECK_EQUAL(udp_ask(ex.address, "").value_or("-"), "");
  BOOST_CHECK_EQUAL(udp_ask(ex.address, std::string(2000, 'z')).value_or("-"),
                    std::string(2000, 'z'));
  BOOST_CHECK(!udp_ask(ex.address, std::string(2001, 'z'), 300ms)); // dropped
  ex.stop(SIGTERM);
  auto err = ex.proc.stderr_text();
  BOOST_CHECK_MESSAGE(err.find("4 received, 1 too large") != std::string::npos, err);
}

BOOST_AUTO_TEST_CASE(udp_echo_rate_limits_a_source_and_logs_it) {
  running_example ex{"udp_echo",
                     {"--rate-limit-enabled", "--rate-limit-max-packets=3",
                      "--rate-limit-window-ms=60000", "--log-level=debug"}};
  size_t answered = 0;
  for (int i = 0; i < 5; ++i) // the first three answered, however slow the server
    if (udp_ask(ex.address, "x" + std::to_string(i), i < 3 ? 3000ms : 300ms))
      ++answered;
  BOOST_CHECK_EQUAL(answered, 3u);
  ex.stop();
  auto err = ex.proc.stderr_text();
  BOOST_CHECK_MESSAGE(err.find("atoll.udp.listener.rate_limit_exceeded") != std::string::npos, err);
  BOOST_CHECK_MESSAGE(err.find("2 rate-limited") != std::string::npos, err);
}

BOOST_AUTO_TEST_CASE(udp_echo_rate_limit_max_sources_bounds_the_table_and_fails_closed) {
  // One slot in the limiter's table; a 60 s window keeps the first source's
  // bucket from refilling, so it cannot be forgotten to make room.
  running_example ex{"udp_echo",
                     {"--rate-limit-enabled", "--rate-limit-max-sources=1",
                      "--rate-limit-max-packets=3", "--rate-limit-window-ms=60000"}};
  BOOST_CHECK_EQUAL(udp_ask_from("127.0.0.1", ex.address, "first", 3000ms).value_or("-"),
                    "first");
  BOOST_CHECK(!udp_ask_from("127.0.0.2", ex.address, "second", 300ms)); // no room: dropped
  BOOST_CHECK(!udp_ask_from("127.0.0.3", ex.address, "third", 300ms));
  BOOST_CHECK_EQUAL(udp_ask_from("127.0.0.1", ex.address, "again", 3000ms).value_or("-"),
                    "again"); // the tracked source keeps its bucket
  ex.stop(SIGTERM);
  auto err = ex.proc.stderr_text();
  BOOST_CHECK_MESSAGE(err.find("4 received, 0 too large, 2 rate-limited") != std::string::npos,
                      err);
  BOOST_CHECK_MESSAGE(err.find("rate limiter: 1 sources tracked, 2 datagrams from new sources "
                               "refused (table full), 0 full buckets forgotten")
                        != std::string::npos,
                      err);
}

BOOST_AUTO_TEST_CASE(udp_echo_in_listener_serves_metrics_per_datagram) {
  running_example ex{"udp_echo", {"--lifetime=in-listener", "--metrics-port=0"}};
  auto endpoint = metrics_endpoint_of(ex);
  for (auto word : {"one", "two", "three"})
    BOOST_CHECK_EQUAL(udp_ask(ex.address, word).value_or("-"), word);
  // One handler session per datagram, with its bytes each way.
  std::string body;
  BOOST_CHECK_MESSAGE(wait_until([&] {
                        body = curl_get("http://" + endpoint);
                        return body.find("\natoll_udp_handlers_started_total 3\n")
                                 != std::string::npos
                               && body.find("\natoll_received_bytes_total 11\n")
                                    != std::string::npos
                               && body.find("\natoll_sent_packets_total 3\n")
                                    != std::string::npos;
                      }),
                      body);
  ex.stop(SIGTERM);
}

BOOST_AUTO_TEST_CASE(udp_echo_per_peer_lifetime_and_print_tree) {
  running_example ex{"udp_echo", {"--lifetime=per-peer", "--reuseport", "--print-tree"}};
  BOOST_CHECK_EQUAL(udp_ask(ex.address, "peer").value_or("-"), "peer");
  ex.stop();
  auto err = ex.proc.stderr_text();
  for (auto role : {"connection_sup", "listener_pool", "listener_3", "shutdown_listener"})
    BOOST_CHECK_MESSAGE(err.find(role) != std::string::npos, role << " missing: " << err);
}

BOOST_AUTO_TEST_CASE(udp_echo_help_and_bad_options) {
  auto text = examples::help_text("udp_echo");
  for (auto option :
       {"--port", "--host", "--num-listeners=", "--num-connections=", "--read-timeout=",
        "--shutdown-timeout=", "--max-packet-size=", "--rate-limit-enabled",
        "--rate-limit-max-packets=", "--rate-limit-window-ms=", "--rate-limit-max-sources=",
        "--reuseport", "--broadcast",
        "--lifetime=", "--detached", "--print-tree", "--log-level=", "--telemetry-json"})
    BOOST_CHECK_MESSAGE(text.find(option) != std::string::npos, option << " missing:\n" << text);
  auto udp_echo = example_path("udp_echo");
  expect_refused({udp_echo, "--port=65536"}, "--port");
  expect_refused({udp_echo, "--port=0", "--max-packet-size=0"}, "--max-packet-size");
  expect_refused({udp_echo, "--port=0", "--max-packet-size=65536"}, "--max-packet-size");
  expect_refused({udp_echo, "--port=0", "--rate-limit-max-packets=0"}, "--rate-limit-max-packets");
  expect_refused({udp_echo, "--port=0", "--rate-limit-window-ms=0"}, "--rate-limit-window-ms");
  expect_refused({udp_echo, "--port=0", "--rate-limit-max-sources=0"}, "--rate-limit-max-sources");
  expect_refused({udp_echo, "--port=0", "--rate-limit-max-sources=16777217"},
                 "--rate-limit-max-sources");
  expect_refused({udp_echo, "--port=0", "--num-listeners=0"}, "--num-listeners");
  expect_refused({udp_echo, "--port=0", "--num-listeners=10001"}, "num_listeners");
  expect_refused({udp_echo, "--port=0", "--lifetime=forever"}, "--lifetime");
  expect_refused({udp_echo, "--port=0", "--host=unix:/tmp/x.sock"}, "--host");
  expect_refused({udp_echo, "--port=0", "--num-listeners=0x10"}, "--num-listeners");
  // Options that would do nothing with the lifetime: refused, naming it.
  expect_refused({udp_echo, "--port=0", "--read-timeout=500"}, "--lifetime=per-datagram");
  expect_refused({udp_echo, "--port=0", "--lifetime=in-listener", "--read-timeout=500"},
                 "--read-timeout: only per-peer");
  expect_refused({udp_echo, "--port=0", "--lifetime=in-listener", "--num-connections=5"},
                 "--num-connections: with --lifetime=in-listener");
  expect_refused({example_path("mdns_dump"), "--port=0", "--num-connections=5"},
                 "--num-connections");
  // Every listener's socket would get (and print) each multicast message.
  expect_refused({example_path("mdns_dump"), "--port=0", "--num-listeners=3"},
                 "--num-listeners must be 1 with --reuseport");
  // Options only: a "--" is named as what is wrong.
  expect_refused({udp_echo, "--port=0", "--host=loopback", "--"}, "-- is not accepted");
  expect_refused({udp_echo, "--port=0", "--log-level=loud"}, "--log-level");
  // A port in use.
  running_example first{"udp_echo"};
  expect_refused({udp_echo, "--host=loopback", "--port=" + std::to_string(first.address.port)},
                 "bind 127.0.0.1:" + std::to_string(first.address.port) + "/udp");
  first.stop();
}

namespace {

/// Runs dig against `server`; returns its output (empty if dig is missing).
std::string dig(const endpoint& server, const std::vector<std::string>& query) {
  std::vector<std::string> args{"/usr/bin/dig", "@" + server.address,
                                "-p", std::to_string(server.port),
                                "+time=2", "+tries=1"};
  args.insert(args.end(), query.begin(), query.end());
  child_process proc{args};
  BOOST_REQUIRE_MESSAGE(proc.started(), "dig missing: run setup.sh (bind9-dnsutils)");
  std::string out;
  while (auto line = proc.read_line(5000ms))
    out += *line + "\n";
  proc.wait();
  return out;
}

std::string zone_file() {
  return std::string{ATOLL_SOURCE_DIR} + "/examples/zones/example.test.zone";
}

} // namespace

BOOST_AUTO_TEST_CASE(dns_server_answers_dig_authoritatively) {
  running_example ex{"dns_server", {"--zone=" + zone_file()}};
  auto a = dig(ex.address, {"www.example.test", "A", "+norec"});
  BOOST_CHECK_MESSAGE(a.find("status: NOERROR") != std::string::npos, a);
  BOOST_CHECK_MESSAGE(a.find("flags: qr aa;") != std::string::npos, a);
  BOOST_CHECK_MESSAGE(a.find("www.example.test.\t3600\tIN\tA\t192.0.2.80") != std::string::npos,
                      a);
  auto nx = dig(ex.address, {"nothing.example.test", "A"});
  BOOST_CHECK_MESSAGE(nx.find("status: NXDOMAIN") != std::string::npos, nx);
  BOOST_CHECK_MESSAGE(nx.find("IN\tSOA") != std::string::npos, nx); // SOA in authority
  auto nodata = dig(ex.address, {"www.example.test", "MX"});
  BOOST_CHECK_MESSAGE(nodata.find("status: NOERROR") != std::string::npos, nodata);
  BOOST_CHECK_MESSAGE(nodata.find("ANSWER: 0") != std::string::npos, nodata);
  auto outside = dig(ex.address, {"example.org", "A"});
  BOOST_CHECK_MESSAGE(outside.find("status: REFUSED") != std::string::npos, outside);
  auto cname = dig(ex.address, {"web.example.test", "A"});
  BOOST_CHECK_MESSAGE(cname.find("CNAME\twww.example.test.") != std::string::npos, cname);
  // Malformed queries: silence or FORMERR, and the server keeps answering.
  BOOST_CHECK(!udp_ask(ex.address, "tiny", 300ms));
  auto garbage = udp_ask(ex.address, std::string("\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                                                 "\xc0\x0c\x00\x01\x00\x01",
                                                 18));
  BOOST_REQUIRE(garbage);
  BOOST_REQUIRE_GE(garbage->size(), 4u);
  BOOST_CHECK_EQUAL((*garbage)[0], '\x12'); // the query's ID
  BOOST_CHECK_EQUAL(static_cast<int>((*garbage)[3]) & 0x0f, 1); // FORMERR
  auto again = dig(ex.address, {"example.test", "SOA"});
  BOOST_CHECK_MESSAGE(again.find("status: NOERROR") != std::string::npos, again);
  ex.stop();
}

BOOST_AUTO_TEST_CASE(dns_server_refuses_a_bad_zone_and_missing_options) {
  auto dns = example_path("dns_server");
  expect_refused({dns, "--port=0"}, "--zone");
  auto [code, err] = run_failing({dns, "--port=0", "--zone=/nonexistent.zone"});
  BOOST_CHECK_EQUAL(code, 1);
  BOOST_CHECK_MESSAGE(err.find("/nonexistent.zone") != std::string::npos, err);
}

namespace {

/// A UDP socket bound to a free port of the IPv4 `address`: its fd and port.
std::pair<int, uint16_t> udp_socket_on(const char* address) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, address, &addr.sin_addr);
  socklen_t len = sizeof(addr);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  return {fd, ntohs(addr.sin_port)};
}

} // namespace

BOOST_AUTO_TEST_CASE(dns_forwarder_relays_to_dns_server) {
  running_example upstream{"dns_server", {"--zone=" + zone_file()}};
  running_example fwd{"dns_forwarder", {"--upstream=127.0.0.1:"
                                          + std::to_string(upstream.address.port)}};
  auto a = dig(fwd.address, {"www.example.test", "AAAA"});
  BOOST_CHECK_MESSAGE(a.find("status: NOERROR") != std::string::npos, a);
  BOOST_CHECK_MESSAGE(a.find("IN\tAAAA\t2001:db8::80") != std::string::npos, a);
  upstream.stop();
  // Upstream gone: no answer (the client times out), the forwarder lives on.
  BOOST_CHECK(!udp_ask(fwd.address, std::string(12, '\0') + "x", 500ms));
  fwd.stop();
  auto fw = example_path("dns_forwarder");
  expect_refused({fw, "--port=0"}, "--upstream");
  expect_refused({fw, "--port=0", "--upstream=127.0.0.1"}, "--upstream");
  expect_refused({fw, "--port=0", "--upstream=host:53"}, "--upstream");
  expect_refused({fw, "--port=0", "--upstream=127.0.0.1:0"}, "--upstream");
  expect_refused({fw, "--port=0", "--upstream=[::1]"}, "in brackets: [::1]:53");
  expect_refused({fw, "--port=0", "--upstream=::1:53"}, "goes in brackets");
  for (auto not_unicast : {"224.0.0.251:53", "255.255.255.255:53", "0.0.0.0:53", "[ff02::fb]:53",
                           "[::]:53", "[::ffff:224.0.0.251]:53"})
    expect_refused({fw, "--port=0", std::string{"--upstream="} + not_unicast}, "unicast");
  // The forwarder's own address and port: each query would come back as a
  // new one. Another loopback address or another port is a real upstream
  // (127.0.0.53:53 is systemd-resolved's).
  expect_refused({fw, "--port=5399", "--upstream=127.0.0.1:5399"}, "relayed to itself");
  expect_refused({fw, "--port=5399", "--host=loopback", "--upstream=127.0.0.1:5399"},
                 "relayed to itself");
  expect_refused({fw, "--port=5399", "--host=any6", "--upstream=[::1]:5399"},
                 "relayed to itself");
  expect_refused({fw, "--port=5399", "--host=127.0.0.2", "--upstream=127.0.0.2:5399"},
                 "relayed to itself");
  expect_refused({fw, "--port=5399", "--upstream=[::ffff:127.0.0.1]:5399"}, "relayed to itself");
  // A bad option is named as such, before what other options would do.
  expect_refused({example_path("udp_echo"), "--port=0", "--read-timeout=-1"},
                 "--read-timeout must not be negative");
  // The same port on another address is not itself (a free port of 127.0.0.2).
  auto [probe, probe_port] = udp_socket_on("127.0.0.2");
  ::close(probe);
  auto free_port = std::to_string(probe_port);
  running_example beside{"dns_forwarder",
                         {"--port=" + free_port, "--host=127.0.0.2",
                          "--upstream=127.0.0.1:" + free_port}};
  BOOST_CHECK_EQUAL(std::to_string(beside.address.port), free_port);
  beside.stop();
  expect_refused({fw, "--port=0", "--upstream=127.0.0.1:53", "--upstream-timeout=0"},
                 "--upstream-timeout");
}

BOOST_AUTO_TEST_CASE(dns_forwarder_relays_queries_not_responses) {
  // A message with QR set is a response: relaying it would hold a handler
  // thread for the upstream timeout on a message the upstream ignores (a
  // burst of them locked real clients out).
  auto [up, up_port] = udp_socket_on("127.0.0.1");
  running_example fwd{"dns_forwarder",
                      {"--upstream=127.0.0.1:" + std::to_string(up_port),
                       "--upstream-timeout=300"}};
  std::string response(12, '\0');
  response[0] = 1;
  response[2] = static_cast<char>(0x80); // QR: a response
  std::string query(12, '\0');
  query[0] = 2;
  BOOST_CHECK(!udp_ask(fwd.address, response, 50ms));
  BOOST_CHECK(!udp_ask(fwd.address, query, 50ms)); // the upstream does not answer
  pollfd pfd{up, POLLIN, 0};
  BOOST_REQUIRE(::poll(&pfd, 1, 3000) == 1);
  char buf[512];
  auto n = ::recv(up, buf, sizeof(buf), 0);
  BOOST_CHECK_EQUAL(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), query);
  BOOST_CHECK_EQUAL(::poll(&pfd, 1, 200), 0); // the response never came
  ::close(up);
  fwd.stop();
}

BOOST_AUTO_TEST_CASE(dhcp_dump_prints_a_discover_and_survives_garbage) {
  running_example ex{"dhcp_dump"};
  std::string msg(240, '\0');
  msg[0] = 1; // BOOTREQUEST
  msg[1] = 1;
  msg[2] = 6;
  msg[4] = '\xde', msg[5] = '\xad', msg[6] = '\xbe', msg[7] = '\xef';
  std::string mac("\x02\x00\x00\x00\x00\x01", 6);
  msg.replace(28, 6, mac);
  msg[236] = 99, msg[237] = static_cast<char>(130), msg[238] = 83, msg[239] = 99;
  msg += std::string("\x35\x01\x01", 3);                 // DISCOVER
  msg += std::string("\x32\x04\xc0\x00\x02\x07", 6);     // requested 192.0.2.7
  msg += std::string("\x0c\x05") + "alpha" + "\xff";
  auto send = [&](const std::string& data) {
    auto sock = datagram_socket::open(bind_address::loopback(), 0, udp_options{});
    BOOST_REQUIRE(sock);
    auto to = udp_peer::from(ex.address);
    BOOST_REQUIRE(to);
    BOOST_CHECK((*sock)->send_to(*to, data) == caf::none);
  };
  send("garbage");
  send(msg);
  auto first = ex.proc.read_line(3000ms);
  BOOST_REQUIRE(first);
  BOOST_CHECK_MESSAGE(first->find("dhcp malformed from 127.0.0.1:") == 0, *first);
  auto second = ex.proc.read_line(3000ms);
  BOOST_REQUIRE(second);
  BOOST_CHECK_MESSAGE(second->find("dhcp DISCOVER from 127.0.0.1:") == 0, *second);
  for (auto part : {"xid=0xdeadbeef", "mac=02:00:00:00:00:01", "requested=192.0.2.7",
                    "hostname=alpha"})
    BOOST_CHECK_MESSAGE(second->find(part) != std::string::npos, part << " missing: " << *second);
  ex.stop();
}

BOOST_AUTO_TEST_CASE(mdns_dump_prints_queries_sent_to_its_group) {
  running_example ex{"mdns_dump", {"--host=any", "--interface=127.0.0.1"}};
  // A query for _http._tcp.local PTR, with a record in its authority section
  // as a probe has (RFC 6762 8.2): A 192.0.2.9 at the question's name.
  std::string q("\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00", 12);
  q += std::string("\x05_http\x04_tcp\x05local\x00", 18);
  q += std::string("\x00\x0c\x00\x01", 4);
  q += std::string("\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x78\x00\x04\xc0\x00\x02\x09", 16);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  in_addr ifaddr{};
  ::inet_pton(AF_INET, "127.0.0.1", &ifaddr);
  ::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr));
  sockaddr_in group{};
  group.sin_family = AF_INET;
  group.sin_port = htons(ex.address.port);
  ::inet_pton(AF_INET, "224.0.0.251", &group.sin_addr);
  BOOST_CHECK(::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&group),
                       sizeof(group))
              == static_cast<ssize_t>(q.size()));
  ::close(fd);
  auto line = ex.proc.read_line(3000ms);
  BOOST_REQUIRE(line);
  BOOST_CHECK_MESSAGE(line->find("mdns query from ") == 0, *line);
  BOOST_CHECK_MESSAGE(line->find("_http._tcp.local.") != std::string::npos, *line);
  BOOST_CHECK_MESSAGE(line->find("PTR") != std::string::npos, *line);
  BOOST_CHECK_MESSAGE(line->find(" authority: _http._tcp.local. 120 IN A 192.0.2.9")
                          != std::string::npos,
                      *line);
  ex.stop();
  expect_refused({example_path("mdns_dump"), "--port=0", "--group=10.0.0.1"}, "--group");
}

BOOST_AUTO_TEST_SUITE_END()

// Issue 9: the inspector (--inspector-port, --inspector-control) and
// atoll-observer, a second process on CAF's middleman.
namespace {

/// What a run of atoll-observer gave.
struct observer_run {
  int code = -1;
  std::string out;
  std::string err;
};

observer_run run_observer(std::vector<std::string> args) {
  args.insert(args.begin(), example_path("atoll-observer"));
  child_process proc{args};
  BOOST_REQUIRE(proc.started());
  observer_run run;
  run.out = proc.stdout_until_eof(30000ms);
  auto code = proc.wait(30000ms);
  BOOST_REQUIRE_MESSAGE(code, "atoll-observer did not exit");
  run.code = *code;
  run.err = proc.stderr_text();
  return run;
}

/// The port in the first match of `pattern` (its group 1) on the example's
/// standard error.
uint16_t port_on_stderr(running_example& ex, const std::regex& pattern) {
  std::string err;
  std::smatch m;
  BOOST_REQUIRE(wait_until(
    [&] {
      err += ex.proc.stderr_text();
      return std::regex_search(err, m, pattern);
    },
    10000ms));
  return static_cast<uint16_t>(std::stoi(m[1]));
}

/// The inspector's port, from the example's "inspector on ..." line.
uint16_t inspector_port(running_example& ex) {
  static const std::regex pattern{R"(inspector on 127\.0\.0\.1:(\d+))"};
  return port_on_stderr(ex, pattern);
}

/// The local port of a client's socket.
uint16_t local_port(const test_client& c) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  BOOST_REQUIRE(::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

/// The lines of `text`.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(examples_inspector, fd_leak_check)

BOOST_AUTO_TEST_CASE(the_observer_sees_messages_and_controls_a_server_from_another_process) {
  running_example ex{"messenger", {"--inspector-port=0", "--inspector-control"}};
  auto node = "127.0.0.1:" + std::to_string(inspector_port(ex));
  auto a = ex.connect();
  auto b = ex.connect();
  BOOST_CHECK_EQUAL(recv_lines(a, 1).rfind("welcome, ", 0), 0u);
  BOOST_CHECK_EQUAL(recv_lines(b, 1).rfind("welcome, ", 0), 0u);

  auto servers = run_observer({node, "servers"});
  BOOST_CHECK_EQUAL(servers.code, 0);
  BOOST_CHECK_EQUAL(servers.out, node + "  messenger  running  " + to_string(ex.address)
                                   + "  2 connections\n");

  // One line per connection, with the peer's address and port.
  auto conns = run_observer({node, "connections"});
  BOOST_REQUIRE_EQUAL(conns.code, 0);
  auto lines = lines_of(conns.out);
  BOOST_REQUIRE_EQUAL(lines.size(), 2u);
  std::string a_id;
  auto a_peer = "127.0.0.1:" + std::to_string(local_port(a));
  for (auto& line : lines) {
    std::istringstream fields{line};
    std::string where, server, id, peer, local, state;
    fields >> where >> server >> id >> peer >> local >> state;
    BOOST_CHECK_EQUAL(where, node);
    BOOST_CHECK_EQUAL(server, "messenger");
    BOOST_CHECK_EQUAL(local, to_string(ex.address));
    BOOST_CHECK_EQUAL(state, "open");
    BOOST_CHECK_NE(line.find("messenger_handler"), std::string::npos);
    if (peer == a_peer)
      a_id = id;
  }
  BOOST_REQUIRE_MESSAGE(!a_id.empty(), "no line for " << a_peer << " in " << conns.out);

  // A text to one client through its connection actor, answered.
  auto sent = run_observer({node, "send", a_id, "hello from afar"});
  BOOST_CHECK_EQUAL(sent.code, 0);
  BOOST_CHECK_EQUAL(sent.out, "delivered to " + a_peer + "\n");
  BOOST_CHECK_EQUAL(recv_lines(a, 1), "(operator): hello from afar\n");
  BOOST_CHECK(b.silent_for(200ms));

  // The tree as JSON: the server's root and its two connections.
  auto tree = run_observer({node, "tree", "--json"});
  BOOST_REQUIRE_EQUAL(tree.code, 0);
  auto json = nlohmann::json::parse(tree.out);
  BOOST_REQUIRE_EQUAL(json.size(), 1u);
  BOOST_CHECK_EQUAL(json[0]["server"], "messenger");
  BOOST_CHECK_EQUAL(json[0]["tree"]["role"], "messenger");
  BOOST_CHECK_EQUAL(std::count(tree.out.begin(), tree.out.end(), '\n') > 10, true);
  size_t connection_nodes = 0;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& n) {
    if (n["role"] == "connection")
      ++connection_nodes;
    for (auto& c : n["children"])
      walk(c);
  };
  walk(json[0]["tree"]);
  BOOST_CHECK_EQUAL(connection_nodes, 2u);
  auto dot = run_observer({node, "tree", "--dot"});
  BOOST_CHECK_EQUAL(dot.code, 0);
  BOOST_CHECK_NE(dot.out.find("digraph"), std::string::npos);

  // Control, allowed here: suspend, resume, then stop (the program exits).
  BOOST_CHECK_EQUAL(run_observer({node, "suspend"}).out, node + "  messenger  suspend: done\n");
  BOOST_CHECK_NE(run_observer({node, "servers"}).out.find("  suspended  "), std::string::npos);
  BOOST_CHECK_EQUAL(run_observer({node, "resume"}).code, 0);
  BOOST_CHECK_NE(run_observer({node, "servers"}).out.find("  running  "), std::string::npos);
  auto stopped = run_observer({node, "stop"});
  BOOST_CHECK_EQUAL(stopped.code, 0);
  BOOST_CHECK_EQUAL(stopped.out, node + "  messenger  stop: done\n");
  BOOST_CHECK_EQUAL(a.recv_until_closed(), "");
  auto code = ex.proc.wait();
  BOOST_REQUIRE_MESSAGE(code, "the example did not exit after a remote stop");
  BOOST_CHECK_EQUAL(*code, 0);
}

BOOST_AUTO_TEST_CASE(without_control_the_observer_looks_but_does_not_stop) {
  running_example ex{"echo", {"--inspector-port=0"}};
  auto port = inspector_port(ex);
  auto node = "127.0.0.1:" + std::to_string(port);
  auto client = ex.connect();
  client.send("ping\n");
  BOOST_CHECK_EQUAL(client.recv_exact(5), "ping\n");
  // "HOST PORT" works as well as "HOST:PORT".
  auto tree = run_observer({"127.0.0.1", std::to_string(port), "tree"});
  BOOST_CHECK_EQUAL(tree.code, 0);
  BOOST_CHECK_NE(tree.out.find("└─ connection"), std::string::npos);
  auto stop = run_observer({node, "stop"});
  BOOST_CHECK_EQUAL(stop.code, 3);
  BOOST_CHECK_NE(stop.err.find("control is not enabled"), std::string::npos);
  BOOST_CHECK_EQUAL(run_observer({node, "suspend"}).code, 3);
  // echo's handler takes no texts: CAF's unexpected_message, exit code 4.
  auto conns = run_observer({node, "connections"});
  std::istringstream fields{conns.out};
  std::string where, server, id;
  fields >> where >> server >> id;
  auto sent = run_observer({node, "send", id, "hi"});
  BOOST_CHECK_EQUAL(sent.code, 4);
  BOOST_CHECK_NE(sent.err.find("unexpected_message"), std::string::npos);
  BOOST_CHECK_EQUAL(run_observer({node, "send", "999999", "hi"}).code, 4);
  // Still serving.
  client.send("pong\n");
  BOOST_CHECK_EQUAL(client.recv_exact(5), "pong\n");
  ex.stop(SIGTERM);
}

BOOST_AUTO_TEST_CASE(several_nodes_side_by_side) {
  running_example first{"echo", {"--inspector-port=0"}};
  running_example second{"messenger", {"--inspector-port=0"}};
  auto node1 = "127.0.0.1:" + std::to_string(inspector_port(first));
  auto node2 = "127.0.0.1:" + std::to_string(inspector_port(second));
  auto a = first.connect();
  a.send("x");
  BOOST_CHECK_EQUAL(a.recv_exact(1), "x");
  auto b = second.connect();
  BOOST_CHECK_EQUAL(recv_lines(b, 1).rfind("welcome, ", 0), 0u);
  auto servers = run_observer({node1, node2, "servers"});
  BOOST_CHECK_EQUAL(servers.code, 0);
  BOOST_CHECK_EQUAL(servers.out, node1 + "  echo  running  " + to_string(first.address)
                                   + "  1 connections\n" + node2 + "  messenger  running  "
                                   + to_string(second.address) + "  1 connections\n");
  auto conns = lines_of(run_observer({node1, node2, "connections"}).out);
  BOOST_REQUIRE_EQUAL(conns.size(), 2u);
  BOOST_CHECK_EQUAL(conns[0].rfind(node1 + "  echo  ", 0), 0u);
  BOOST_CHECK_EQUAL(conns[1].rfind(node2 + "  messenger  ", 0), 0u);
  // One node gone: the other is still shown, the exit code says so.
  first.stop(SIGTERM);
  auto partial = run_observer({node1, node2, "servers"});
  BOOST_CHECK_EQUAL(partial.code, 2);
  BOOST_CHECK_NE(partial.out.find(node2 + "  messenger  running"), std::string::npos);
  BOOST_CHECK_NE(partial.err.find(node1 + " cannot be reached"), std::string::npos);
  second.stop(SIGTERM);
}

BOOST_AUTO_TEST_CASE(bad_observer_usage_and_unreachable_nodes_are_clear_errors) {
  auto help = run_observer({"--help"});
  BOOST_CHECK_EQUAL(help.code, 0);
  for (auto* word : {"servers", "tree --json", "tree --dot", "connections", "send ID TEXT",
                     "suspend", "resume", "stop", "--server", "--timeout"})
    BOOST_CHECK_MESSAGE(help.out.find(word) != std::string::npos, "--help lacks " << word);
  for (auto args : std::vector<std::vector<std::string>>{{},
                                                         {"127.0.0.1", "x", "tree"},
                                                         {"127.0.0.1:70000", "tree"},
                                                         {"127.0.0.1:4000"},
                                                         {"127.0.0.1:4000", "explode"},
                                                         {"127.0.0.1:4000", "send", "1"},
                                                         {"127.0.0.1:4000", "servers", "--json"},
                                                         {"127.0.0.1:4000", "tree", "--timeout=0"}}) {
    auto run = run_observer(args);
    BOOST_CHECK_MESSAGE(run.code == 1, "exit code " << run.code << " for " << run.err);
    BOOST_CHECK_NE(run.err.find("atoll-observer: "), std::string::npos);
  }
  // A port nobody listens on.
  auto unreachable = run_observer({"127.0.0.1:" + std::to_string(free_port()), "tree"});
  BOOST_CHECK_EQUAL(unreachable.code, 2);
  BOOST_CHECK_NE(unreachable.err.find("cannot be reached"), std::string::npos);
  // The examples validate their inspector options.
  expect_refused({example_path("echo"), "--port=0", "--inspector-port=70000"}, "--inspector-port");
  expect_refused({example_path("echo"), "--port=0", "--inspector-control"}, "--inspector-port");
  expect_refused({example_path("echo"), "--port=0", "--observer-port=-2"}, "--observer-port");
  auto certs = certs_dir();
  expect_refused({example_path("echo"), "--port=0", "--inspector-port=0",
                  "--inspector-cert=" + certs + "/server.pem"},
                 "--inspector-key");
  expect_refused({example_path("echo"), "--port=0", "--inspector-cert=" + certs + "/server.pem",
                  "--inspector-key=" + certs + "/server.key", "--inspector-ca=" + certs + "/ca.pem"},
                 "--inspector-port");
  expect_refused({example_path("echo"), "--port=0", "--inspector-port=0",
                  "--inspector-cert=" + certs + "/server.pem",
                  "--inspector-key=" + certs + "/other.key", "--inspector-ca=" + certs + "/ca.pem"},
                 "does not match");
  expect_refused({example_path("echo"), "--port=0", "--inspector-port=0",
                  "--inspector-cert=" + certs + "/missing.pem",
                  "--inspector-key=" + certs + "/server.key", "--inspector-ca=" + certs + "/ca.pem"},
                 "missing.pem");
  auto partial = run_observer({"127.0.0.1:4000", "servers", "--cert=" + certs + "/client.pem"});
  BOOST_CHECK_EQUAL(partial.code, 1);
  BOOST_CHECK_NE(partial.err.find("go together"), std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_tls_inspector_answers_only_nodes_with_a_trusted_certificate) {
  auto certs = certs_dir();
  running_example ex{"echo",
                     {"--inspector-port=0", "--inspector-cert=" + certs + "/server.pem",
                      "--inspector-key=" + certs + "/server.key",
                      "--inspector-ca=" + certs + "/ca.pem"}};
  static const std::regex pattern{R"(inspector on 127\.0\.0\.1:(\d+) \(TLS\))"};
  auto node = "127.0.0.1:" + std::to_string(port_on_stderr(ex, pattern));
  auto client = ex.connect();
  client.send("ping\n");
  BOOST_CHECK_EQUAL(client.recv_exact(5), "ping\n");
  auto trusted = run_observer({node, "connections", "--cert=" + certs + "/client.pem",
                               "--key=" + certs + "/client.key", "--ca=" + certs + "/ca.pem"});
  BOOST_CHECK_EQUAL(trusted.code, 0);
  BOOST_CHECK_EQUAL(lines_of(trusted.out).size(), 1u);
  BOOST_CHECK_NE(trusted.out.find("127.0.0.1:" + std::to_string(local_port(client))),
                 std::string::npos);
  // Without TLS, or with a certificate of another CA: not reached.
  auto plain = run_observer({node, "servers"});
  BOOST_CHECK_EQUAL(plain.code, 2);
  auto untrusted =
    run_observer({node, "servers", "--cert=" + certs + "/untrusted-client.pem",
                  "--key=" + certs + "/untrusted-client.key", "--ca=" + certs + "/ca.pem"});
  BOOST_CHECK_EQUAL(untrusted.code, 2);
  BOOST_CHECK_NE(untrusted.err.find("cannot be reached"), std::string::npos);
  // A key that does not match: a usage error, before any connection.
  auto bad = run_observer({node, "servers", "--cert=" + certs + "/client.pem",
                           "--key=" + certs + "/other.key", "--ca=" + certs + "/ca.pem"});
  BOOST_CHECK_EQUAL(bad.code, 1);
  BOOST_CHECK_NE(bad.err.find("does not match"), std::string::npos);
  // Still serving.
  client.send("pong\n");
  BOOST_CHECK_EQUAL(client.recv_exact(5), "pong\n");
  ex.stop(SIGTERM);
}

BOOST_AUTO_TEST_CASE(the_observer_page_of_an_example_serves_its_server) {
  running_example ex{"echo", {"--observer-port=0"}};
  static const std::regex pattern{R"(observer on http://127\.0\.0\.1:(\d+)/)"};
  endpoint page;
  page.address = "127.0.0.1";
  page.port = port_on_stderr(ex, pattern);
  auto client = ex.connect();
  client.send("ping\n");
  BOOST_CHECK_EQUAL(client.recv_exact(5), "ping\n");
  test_client http;
  BOOST_REQUIRE(http.try_connect(page));
  http.send("GET /snapshot HTTP/1.1\r\nHost: x\r\n\r\n");
  auto response = http.recv_until_closed(10000ms);
  auto body = response.substr(response.find("\r\n\r\n") + 4);
  auto snap = nlohmann::json::parse(body);
  BOOST_REQUIRE_EQUAL(snap["servers"].size(), 1u);
  BOOST_CHECK_EQUAL(snap["servers"][0]["name"], "echo");
  BOOST_CHECK_EQUAL(snap["servers"][0]["connections"], 1);
  ex.stop(SIGTERM);
}

BOOST_AUTO_TEST_CASE(the_observer_shows_each_nodes_scheduler) {
  running_example on{"echo", {"--inspector-port=0", "--scheduler.max-threads=2"}};
  running_example off{
    "echo", {"--inspector-port=0", "--scheduler.max-threads=2", "--scheduler.compaction=false"}};
  auto node_on = "127.0.0.1:" + std::to_string(inspector_port(on));
  auto node_off = "127.0.0.1:" + std::to_string(inspector_port(off));
  auto run = run_observer({node_on, node_off, "scheduler"});
  BOOST_REQUIRE_MESSAGE(run.code == 0, run.err);
  auto lines = lines_of(run.out);
  BOOST_REQUIRE_EQUAL(lines.size(), 2u);
  static const std::regex format{R"((\S+)  workers 2  active ([12])  compaction (on|off)  )"
                                 R"(activations \d+  parkings \d+  sockets (\d+) \((\d+),(\d+)\)  )"
                                 R"(busy-waits \d+  memory-releases \d+)"};
  std::smatch m;
  BOOST_REQUIRE_MESSAGE(std::regex_match(lines[0], m, format), lines[0]);
  BOOST_CHECK_EQUAL(m[1], node_on);
  BOOST_CHECK_EQUAL(m[3], "on");
  BOOST_CHECK_GE(std::stoul(m[4]), 1u); // the listener at least
  BOOST_REQUIRE_MESSAGE(std::regex_match(lines[1], m, format), lines[1]);
  BOOST_CHECK_EQUAL(m[1], node_off);
  BOOST_CHECK_EQUAL(m[2], "2"); // without compaction every worker is active
  BOOST_CHECK_EQUAL(m[3], "off");
  // Other formats are for the tree only; a node has one scheduler.
  BOOST_CHECK_EQUAL(run_observer({node_on, "scheduler", "--json"}).code, 1);
  BOOST_CHECK_EQUAL(run_observer({node_on, "scheduler", "--server", "echo"}).code, 1);
}

BOOST_AUTO_TEST_SUITE_END()
