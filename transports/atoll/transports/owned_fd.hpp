// A file descriptor with exactly one eventual owner.
#pragma once

#include <atomic>

#include <unistd.h>

namespace atl {

/// Holds an fd until someone takes it; closes it if nobody does. Lets an fd
/// travel inside messages (as `std::shared_ptr<owned_fd>`) without leaking
/// when a message is dropped and without a double close. Thread-safe.
class owned_fd {
public:
  /// Takes ownership of `fd`.
  explicit owned_fd(int fd) noexcept : fd_(fd) {
  }

  owned_fd(const owned_fd&) = delete;
  owned_fd& operator=(const owned_fd&) = delete;

  ~owned_fd() {
    reset();
  }

  /// Takes the fd (the caller now owns it); -1 if already taken.
  int release() noexcept {
    return fd_.exchange(-1);
  }

  /// Closes the fd unless taken.
  void reset() noexcept {
    if (auto fd = release(); fd >= 0)
      ::close(fd);
  }

  /// The fd, or -1 (for inspection only; ownership stays here).
  int get() const noexcept {
    return fd_.load();
  }

private:
  std::atomic<int> fd_;
};

} // namespace atl
