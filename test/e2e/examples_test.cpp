// End-to-end tests: run each example program, talk to it over TCP, stop it
// with a signal and check its exit code.
#include <boost/test/unit_test.hpp>

#include <regex>
#include <thread>

#include "support/process.hpp"
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

std::string example_path(const std::string& name) {
  return std::string{ATOLL_EXAMPLES_DIR} + "/" + name;
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
    std::vector<std::string> args{example_path(name), "--port=0", "--host=loopback",
                                  "--num-acceptors=4"};
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
  auto code = proc.wait();
  BOOST_REQUIRE(code);
  return {*code, proc.stderr_text()};
}

} // namespace

BOOST_AUTO_TEST_SUITE(examples)

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
  auto [code4, err4] = run_failing({echo, "--no-such-option"});
  BOOST_CHECK_EQUAL(code4, 1);
  // A port in use.
  running_example first{"echo"};
  auto [code5, err5] = run_failing(
    {echo, "--host=loopback", "--port=" + std::to_string(first.address.port)});
  BOOST_CHECK_EQUAL(code5, 1);
  BOOST_CHECK_MESSAGE(err5.find("address_in_use") != std::string::npos, err5);
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
                        "127.0.0.1:" + std::to_string(ex.address.port), "-quiet",
                        "-servername", "localhost"}};
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
  auto [code3, err3] = run_failing({tls_echo, "--port=0",
                                    "--certfile=" + certs_dir() + "/server.pem",
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

BOOST_AUTO_TEST_CASE(help_prints_the_options_and_exits_zero) {
  child_process proc{{example_path("echo"), "--help"}};
  std::string text;
  while (auto line = proc.read_line(5000ms))
    text += *line + "\n";
  BOOST_CHECK_EQUAL(proc.wait().value_or(-1), 0);
  BOOST_CHECK(text.find("--port") != std::string::npos);
  BOOST_CHECK(text.find("--read-timeout") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
