// System calls on the I/O hot paths without glibc's cancellation-point
// bookkeeping (internal).
#pragma once

#include <csignal>
#include <cstddef>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

namespace atl::detail {

// recv, send, sendmsg, accept4, close and epoll_wait are cancellation
// points: in a process with more than one thread, glibc switches the calling
// thread to asynchronous cancellation and back around each of them (two
// atomic compare-exchanges, about 35 instructions per call: on every echo
// and every connection). Atoll never cancels a thread, so these wrappers make
// the system call directly; results and errno are the same. Sanitizer builds
// keep glibc's functions: their interceptors check the buffers, and
// ThreadSanitizer orders threads by socket calls. Building with
// -DATL_DIRECT_SYSCALLS=0 keeps them too (for a library that interposes them
// with LD_PRELOAD, such as a kernel-bypass stack or a fault injector).
#ifndef ATL_DIRECT_SYSCALLS
#  if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) \
    || defined(__SANITIZE_HWADDRESS__)
#    define ATL_DIRECT_SYSCALLS 0
#  elif defined(__has_feature)
#    if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) \
      || __has_feature(memory_sanitizer) || __has_feature(hwaddress_sanitizer)
#      define ATL_DIRECT_SYSCALLS 0
#    endif
#  endif
#endif
#ifndef ATL_DIRECT_SYSCALLS
#  define ATL_DIRECT_SYSCALLS 1
#endif

/// `::recv(fd, buf, len, flags)`. Any thread.
inline ssize_t sys_recv(int fd, void* buf, size_t len, int flags) noexcept {
#if ATL_DIRECT_SYSCALLS
  return ::syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr);
#else
  return ::recv(fd, buf, len, flags);
#endif
}

/// `::send(fd, buf, len, flags)`. Any thread.
inline ssize_t sys_send(int fd, const void* buf, size_t len, int flags) noexcept {
#if ATL_DIRECT_SYSCALLS
  return ::syscall(SYS_sendto, fd, buf, len, flags, nullptr, 0);
#else
  return ::send(fd, buf, len, flags);
#endif
}

/// `::sendmsg(fd, msg, flags)`. Any thread.
inline ssize_t sys_sendmsg(int fd, const msghdr* msg, int flags) noexcept {
#if ATL_DIRECT_SYSCALLS
  return ::syscall(SYS_sendmsg, fd, msg, flags);
#else
  return ::sendmsg(fd, msg, flags);
#endif
}

/// `::accept4(fd, addr, len, flags)`. Any thread.
inline int sys_accept4(int fd, sockaddr* addr, socklen_t* len, int flags) noexcept {
#if ATL_DIRECT_SYSCALLS
  return static_cast<int>(::syscall(SYS_accept4, fd, addr, len, flags));
#else
  return ::accept4(fd, addr, len, flags);
#endif
}

/// `::close(fd)`. Any thread.
inline int sys_close(int fd) noexcept {
#if ATL_DIRECT_SYSCALLS
  return static_cast<int>(::syscall(SYS_close, fd));
#else
  return ::close(fd);
#endif
}

/// `::epoll_wait(epfd, events, max, timeout_ms)`. Any thread.
inline int sys_epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms) noexcept {
#if ATL_DIRECT_SYSCALLS && defined(SYS_epoll_wait)
  return static_cast<int>(::syscall(SYS_epoll_wait, epfd, events, max, timeout_ms));
#elif ATL_DIRECT_SYSCALLS
  // Newer architectures (aarch64) only have epoll_pwait: with no signal
  // mask it is epoll_wait (the mask size as glibc passes it).
  return static_cast<int>(::syscall(SYS_epoll_pwait, epfd, events, max, timeout_ms, nullptr,
                                    static_cast<size_t>(_NSIG / 8)));
#else
  return ::epoll_wait(epfd, events, max, timeout_ms);
#endif
}

} // namespace atl::detail
