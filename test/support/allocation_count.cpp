#include "support/allocation_count.hpp"

#include <cstdlib>
#include <new>

namespace {

// Operator new calls on this thread while counting.
thread_local bool counting = false;
thread_local size_t counted = 0;

} // namespace

namespace atl::test {

size_t allocations_of(const std::function<void()>& fn) {
  counted = 0;
  counting = true;
  fn();
  counting = false;
  return counted;
}

} // namespace atl::test

// The replacements: plain malloc and free, counted while `counting`.

void* operator new(std::size_t size) {
  if (counting)
    ++counted;
  if (void* p = std::malloc(size == 0 ? 1 : size))
    return p;
  throw std::bad_alloc{};
}

void operator delete(void* p) noexcept {
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
