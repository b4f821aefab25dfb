// The spdlog adapter: records reach an spdlog logger at the matching level,
// with their time and text.
#include <boost/test/unit_test.hpp>

#include <sstream>

#include <spdlog/sinks/ostream_sink.h>

#include "atoll/runtime/spdlog_sink.hpp"
#include "support/fd_leak_check.hpp"

BOOST_FIXTURE_TEST_SUITE(spdlog_sink, atl::test::fd_leak_check)

BOOST_AUTO_TEST_CASE(records_reach_spdlog_with_their_level_time_and_text) {
  using atl::log_level;
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  auto logger = std::make_shared<spdlog::logger>("atoll", sink);
  logger->set_pattern("%l|%Y-%m-%dT%H:%M:%S.%f|%v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::debug); // spdlog's own filter applies on top
  atl::set_log_sink(atl::spdlog_log_sink(logger));
  atl::register_log_levels({{{"t", "spd", "oops"}, log_level::error},
                            {{"t", "spd", "start"}, log_level::debug},
                            {{"t", "spd", "recv"}, log_level::trace}});
  atl::telemetry::bus b;
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::trace));
  b.emit({"t", "spd", "oops"}, {{"error", std::string{"emfile"}}}, {});
  b.emit({"t", "spd", "start"}, {}, {});
  b.emit({"t", "spd", "recv"}, {{"data", std::string{"A"}}}, {}); // filtered by spdlog
  atl::log(log_level::info, "plain message");
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::error));
  atl::set_log_sink({});
  std::vector<std::string> lines;
  std::istringstream in{out.str()};
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  BOOST_REQUIRE_EQUAL(lines.size(), 3u);
  BOOST_CHECK(lines[0].rfind("error|", 0) == 0);
  BOOST_CHECK(lines[0].find("|t.spd.oops error=emfile") != std::string::npos);
  BOOST_CHECK(lines[1].rfind("debug|", 0) == 0);
  BOOST_CHECK(lines[1].find("|t.spd.start") != std::string::npos);
  BOOST_CHECK(lines[2].rfind("info|", 0) == 0);
  BOOST_CHECK(lines[2].find("|plain message") != std::string::npos);
  // The time is the record's (UTC), this year.
  BOOST_CHECK_EQUAL(lines[0].substr(6, 2), "20");
  BOOST_CHECK_EQUAL(lines[0].find('T'), 16u);
  BOOST_CHECK(atl::to_spdlog_level(log_level::trace) == spdlog::level::trace);
}

BOOST_AUTO_TEST_SUITE_END()
