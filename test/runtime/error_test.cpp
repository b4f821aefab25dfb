// Tests of Atoll's error category.
#include <boost/test/unit_test.hpp>

#include <cerrno>

#include <caf/all.hpp>

#include "atoll/runtime/error.hpp"
#include "support/test_support.hpp"

using namespace atl;

BOOST_FIXTURE_TEST_SUITE(error, atl::test::fd_leak_check)

BOOST_AUTO_TEST_CASE(codes_compare_and_render) {
  auto err = caf::make_error(errc::address_in_use, "bind 127.0.0.1:80");
  BOOST_CHECK(err == errc::address_in_use);
  BOOST_CHECK(err != errc::timeout);
  BOOST_CHECK(caf::error{} != errc::timeout);
  BOOST_CHECK_EQUAL(describe(err), "atoll error address_in_use: bind 127.0.0.1:80");
  BOOST_CHECK_EQUAL(describe(caf::make_error(errc::timeout)), "atoll error timeout");
  BOOST_CHECK_EQUAL(describe(caf::error{}), "none");
  BOOST_CHECK_EQUAL(describe(caf::make_error(caf::sec::runtime_error)),
                    "system_error(runtime_error)");
}

BOOST_AUTO_TEST_CASE(the_context_of_an_error_is_its_text_without_the_code) {
  BOOST_CHECK_EQUAL(error_context(caf::make_error(errc::address_in_use, "bind 127.0.0.1:80")),
                    "bind 127.0.0.1:80");
  BOOST_CHECK_EQUAL(error_context(caf::make_error(errc::timeout)), "");
  BOOST_CHECK_EQUAL(error_context(caf::make_error(caf::sec::runtime_error)),
                    "system_error(runtime_error)");
  BOOST_CHECK_EQUAL(error_context(caf::error{}), "none");
}

BOOST_AUTO_TEST_CASE(every_code_has_a_name) {
  for (uint8_t code = 1; code <= static_cast<uint8_t>(errc::output_limit); ++code)
    BOOST_CHECK_MESSAGE(to_string(static_cast<errc>(code)).find("unknown") == std::string::npos,
                        "code " << int{code});
}

BOOST_AUTO_TEST_CASE(system_errors_map_well_known_errno_values) {
  BOOST_CHECK(make_system_error("bind", EADDRINUSE) == errc::address_in_use);
  BOOST_CHECK(make_system_error("bind", EACCES) == errc::access_denied);
  BOOST_CHECK(make_system_error("connect", ETIMEDOUT) == errc::timeout);
  auto other = make_system_error("socket", EMFILE);
  BOOST_CHECK(other == errc::system_error);
  BOOST_CHECK_MESSAGE(describe(other).find("socket: Too many open files") != std::string::npos,
                      describe(other));
}

BOOST_FIXTURE_TEST_CASE(the_category_is_registered_with_the_actor_system,
                        atl::test::system_fixture) {
  auto err = caf::make_error(errc::max_children, "connections");
  BOOST_CHECK_EQUAL(sys.render(err), "atoll error max_children: connections");
}

BOOST_AUTO_TEST_SUITE_END()
