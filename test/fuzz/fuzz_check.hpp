// FUZZ_CHECK: the invariant check of every fuzz target. A broken invariant
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
