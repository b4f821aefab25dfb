// How the examples take SIGINT and SIGTERM: blocked from the executable's
// start (so a signal during start-up is not lost and never kills the
// process), then taken synchronously by the main thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <ctime>

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace example {

/// SIGINT and SIGTERM.
inline sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

/// Blocks SIGINT and SIGTERM in this thread and every thread started after,
/// so that `wait_for_stop_signal` can take them synchronously.
inline void block_stop_signals() {
  auto set = stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

/// Waits for SIGINT or SIGTERM; returns its number.
inline int wait_for_stop_signal() {
  auto set = stop_signal_set();
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

/// Waits up to `timeout` (0: only looks) for SIGINT or SIGTERM (blocked,
/// see above); returns its number, or 0 when the time passed without one.
inline int wait_for_stop_signal_for(std::chrono::milliseconds timeout) {
  auto set = stop_signal_set();
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::max(std::chrono::nanoseconds{0},
                         std::chrono::duration_cast<std::chrono::nanoseconds>(
                           until - std::chrono::steady_clock::now()));
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
    auto sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0)
      return sig;
    if (left.count() == 0)
      return 0;
    // EAGAIN: the time passed (looked again above); EINTR: another signal.
  }
}

namespace detail {

/// Blocks SIGINT and SIGTERM for the whole process as its first act: it runs
/// from the executable's `.preinit_array`, before the constructors of the
/// shared libraries (CAF, OpenSSL, the C++ library) and before main(), so a
/// stop signal that arrives while the program initializes stays pending for
/// `wait_for_stop_signal` instead of killing the process. Only the kernel's
/// exec and the dynamic loader (mapping and relocating the libraries, about
/// 1 ms) run before it. A raw system call, as nothing is initialized yet
/// (sanitizer runtimes intercept the libc wrappers).
inline void block_stop_signals_at_exec(int, char**, char**) {
  uint64_t mask = (uint64_t{1} << (SIGINT - 1)) | (uint64_t{1} << (SIGTERM - 1));
  ::syscall(SYS_rt_sigprocmask, SIG_BLOCK, &mask, nullptr, sizeof(mask));
}

/// The executable's pre-initialization entry (one per program that includes
/// this header).
[[gnu::section(".preinit_array"), gnu::used]] static void (*block_stop_signals_entry)(
  int, char**, char**) = &block_stop_signals_at_exec;

} // namespace detail

} // namespace example
