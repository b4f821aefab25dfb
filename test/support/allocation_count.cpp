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

// The replacements: plain malloc and free, counted while `counting`. Every
// unaligned form is replaced (plain, array, nothrow, sized), so that no block
// is allocated by one allocator and freed by another (ASan reports such
// mismatches); the aligned forms keep the library's own matching pair.

namespace {

void* counted_alloc(std::size_t size) noexcept {
  if (counting)
    ++counted;
  return std::malloc(size == 0 ? 1 : size);
}

} // namespace

void* operator new(std::size_t size) {
  if (void* p = counted_alloc(size))
    return p;
  throw std::bad_alloc{};
}

void* operator new[](std::size_t size) {
  if (void* p = counted_alloc(size))
    return p;
  throw std::bad_alloc{};
}

void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return counted_alloc(size);
}

void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return counted_alloc(size);
}

void operator delete(void* p) noexcept {
  std::free(p);
}

void operator delete[](void* p) noexcept {
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
