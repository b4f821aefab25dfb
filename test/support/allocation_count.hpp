// Counting the allocations a piece of code makes (operator new), for tests
// of "allocates nothing" promises. Link test/support/allocation_count.cpp,
// which replaces the global operator new and delete of the test binary.
#pragma once

#include <cstddef>
#include <functional>

namespace atl::test {

/// The number of operator new calls `fn` makes on the calling thread.
/// Allocations of other threads are not counted.
size_t allocations_of(const std::function<void()>& fn);

} // namespace atl::test
