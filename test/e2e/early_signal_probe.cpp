// Preloaded into an example program by the end-to-end tests (LD_PRELOAD):
// its constructor runs while the program initializes, after the
// executable's pre-initialization functions and before main(). It announces
// itself on standard output, then waits (at most 10 s) until a SIGTERM is
// pending, so that the test's signal surely arrives at that moment. Raw
// system calls only: it may run before a sanitizer runtime is initialized.
#include <csignal>
#include <cstdint>
#include <ctime>

#include <sys/syscall.h>
#include <unistd.h>

namespace {

[[gnu::constructor]] void wait_for_a_stop_signal() {
  static const char line[] = "probe: initializing\n";
  ::syscall(SYS_write, STDOUT_FILENO, line, sizeof(line) - 1);
  for (int i = 0; i < 10000; ++i) {
    uint64_t pending = 0;
    if (::syscall(SYS_rt_sigpending, &pending, sizeof(pending)) == 0
        && (pending & (uint64_t{1} << (SIGTERM - 1))) != 0)
      return;
    timespec step{0, 1000000};
    ::syscall(SYS_nanosleep, &step, nullptr);
  }
}

} // namespace
