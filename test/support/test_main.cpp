// Boost.Test entry point shared by Atoll's test executables.
#define BOOST_TEST_MODULE atoll
#include <boost/test/unit_test.hpp>
