// The README's handler tutorial: its code block is the file
// test/docs/countdown_handler.hpp (so the README cannot drift from code that
// compiles), and that handler does what the README says on the wire.
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>

#include "docs/countdown_handler.hpp"
#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  BOOST_REQUIRE_MESSAGE(in, "cannot read " << path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(readme_tutorial, atl::test::fd_leak_check)

BOOST_AUTO_TEST_CASE(the_readme_shows_the_tested_handler) {
  std::string root = ATOLL_SOURCE_DIR;
  auto readme = read_file(root + "/README.md");
  const std::string marker = "<!-- snippet: test/docs/countdown_handler.hpp";
  auto at = readme.find(marker);
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, "README.md lost the tutorial's snippet marker");
  auto open = readme.find("```cpp\n", at);
  BOOST_REQUIRE(open != std::string::npos);
  open += 7;
  auto close = readme.find("```\n", open);
  BOOST_REQUIRE(close != std::string::npos);
  BOOST_CHECK_EQUAL(readme.substr(open, close - open),
                    read_file(root + "/test/docs/countdown_handler.hpp"));
}

BOOST_FIXTURE_TEST_CASE(the_countdown_counts_down_and_stops_early, server_fixture) {
  auto opts = probe_options(echo_script());
  opts.tls.reset();
  opts.set_handler<countdown_handler>(3, 50ms);
  auto& srv = start(opts);
  auto a = connect(srv);
  BOOST_CHECK_EQUAL(a.recv_until_closed(10000ms), "counting down from 3\n2\n1\nliftoff\n");
  // With ticks far apart, "stop" comes first.
  auto slow_opts = probe_options(echo_script());
  slow_opts.tls.reset();
  slow_opts.set_handler<countdown_handler>(3, 60s);
  auto& slow = start(slow_opts);
  auto b = connect(slow);
  BOOST_CHECK_EQUAL(b.recv_exact(21), "counting down from 3\n");
  b.send("stop\n");
  BOOST_CHECK_EQUAL(b.recv_until_closed(10000ms), "stopped at 3\n");
}

BOOST_AUTO_TEST_SUITE_END()
