// What the fuzz targets share. FUZZ_CHECK: the invariant check of every
// fuzz target. A broken invariant
// prints "<file>: invariant violated: <condition>" and aborts, which
// libFuzzer reports like a crash (with the input saved).
#pragma once

#include <cstdio>
#include <cstdlib>

[[noreturn]] inline void fuzz_fail(const char* file, const char* what) {
  std::fprintf(stderr, "%s: invariant violated: %s\n", file, what);
  std::abort();
}

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      fuzz_fail(__FILE__, #cond);                                                                  \
  } while (false)

#include <cstddef>
#include <cstdint>

/// Pseudo-random read sizes for targets that cut one input stream into
/// reads: 1 to 2^(seed % 15) bytes each, a xorshift sequence seeded with
/// `seed` (the input's first byte), so that an input replays exactly.
class fuzz_read_sizes {
public:
  explicit fuzz_read_sizes(uint8_t seed)
    : state_(seed * 2654435761u + 1), max_read_(size_t{1} << (seed % 15)) {
  }

  /// The next read's size.
  size_t operator()() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return 1 + state_ % max_read_;
  }

private:
  uint32_t state_;
  size_t max_read_;
};
