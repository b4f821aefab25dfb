// atoll_baseline_echo: the "raw epoll" reference echo server the benchmarks
// compare Atoll against. Single-threaded, level-triggered epoll, no CAF.
//
// Each readable connection gets one recv() per wake-up into a 64 KiB stack
// buffer, and the data is written straight back. Only if that write is
// partial does the connection get state: the unsent remainder is kept in
// `pending_` and the connection waits for EPOLLOUT, without reading, until it
// is drained. An idle connection therefore costs no user-space memory at all.

#include <array>
#include <csignal>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "bench_common.hpp"

namespace {

using namespace atl::bench;

/// Size of the receive buffer (one recv() per readable event).
constexpr size_t read_buffer_size = 64 * 1024;

/// Length of the listen queue.
constexpr int listen_backlog = 1024;

/// Maximum number of events taken from one epoll_wait().
constexpr int max_events = 256;

/// The echo server; see the file comment.
class echo_server {
public:
  echo_server() = default;
  echo_server(const echo_server&) = delete;
  echo_server& operator=(const echo_server&) = delete;

  ~echo_server() {
    // Accepted connections are not tracked (idle ones have no state); the
    // kernel closes them when the process exits.
    for (int fd : {listen_fd_, signal_fd_, epoll_fd_})
      if (fd >= 0)
        close(fd);
  }

  /// Creates the epoll instance, the SIGINT/SIGTERM signalfd and the listen
  /// socket bound to `addr`. Returns an error description, empty on success.
  std::string open(const socket_address& addr) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0)
      return "epoll_create1: " + errno_text(errno);
    // The signals are blocked and read through a signalfd, so a stop request
    // can never be lost between two epoll_wait() calls.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0)
      return "sigprocmask: " + errno_text(errno);
    signal_fd_ = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0)
      return "signalfd: " + errno_text(errno);
    listen_fd_ = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0)
      return "socket: " + errno_text(errno);
    int on = 1;
    if (setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0)
      return "setsockopt(SO_REUSEADDR): " + errno_text(errno);
    if (bind(listen_fd_, addr.get(), addr.length) != 0)
      return "bind: " + errno_text(errno);
    if (listen(listen_fd_, listen_backlog) != 0)
      return "listen: " + errno_text(errno);
    for (int fd : {listen_fd_, signal_fd_})
      if (!add(fd))
        return "epoll_ctl(ADD): " + errno_text(errno);
    return {};
  }

  /// Returns the address the listen socket is bound to, as "HOST:PORT".
  std::string local_address() const {
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length) != 0)
      return "?";
    return format_address(reinterpret_cast<const sockaddr*>(&bound), length);
  }

  /// Serves connections until SIGINT or SIGTERM arrives. Returns false if
  /// epoll_wait() fails.
  bool run() {
    std::array<epoll_event, max_events> events;
    for (;;) {
      int n = epoll_wait(epoll_fd_, events.data(), max_events, -1);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        fmt::print(stderr, "epoll_wait: {}\n", errno_text(errno));
        return false;
      }
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == signal_fd_)
          return true;
        if (fd == listen_fd_)
          accept_all();
        else if (pending_.count(fd) != 0)
          on_writable(fd);
        else
          on_readable(fd);
      }
    }
  }

private:
  /// Registers a new fd for reading.
  bool add(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }

  /// Switches a connection between reading (EPOLLIN) and draining
  /// (EPOLLOUT); closes it if that fails.
  void set_interest(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0)
      close_connection(fd);
  }

  /// Accepts every pending connection.
  void accept_all() {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
          continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
          fmt::print(stderr, "accept4: {}\n", errno_text(errno));
        return;
      }
      set_tcp_nodelay(fd);
      if (!add(fd))
        close(fd);
    }
  }

  /// Reads once from a connection and echoes what arrived.
  void on_readable(int fd) {
    std::array<char, read_buffer_size> buffer; // deliberately uninitialized
    ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
    if (n > 0) {
      echo(fd, buffer.data(), static_cast<size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      close_connection(fd); // orderly shutdown by the peer, or an error
    }
  }

  /// Sends `data` back; keeps an unsent remainder and waits for EPOLLOUT.
  void echo(int fd, const char* data, size_t size) {
    size_t sent = send_some(fd, data, size);
    if (sent == failed) {
      close_connection(fd);
    } else if (sent < size) {
      pending_[fd].assign(data + sent, data + size);
      set_interest(fd, EPOLLOUT);
    }
  }

  /// Sends more of a connection's remainder; resumes reading once drained.
  void on_writable(int fd) {
    auto& rest = pending_[fd];
    size_t sent = send_some(fd, rest.data(), rest.size());
    if (sent == failed) {
      close_connection(fd);
    } else if (sent == rest.size()) {
      pending_.erase(fd);
      set_interest(fd, EPOLLIN);
    } else {
      rest.erase(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(sent));
    }
  }

  /// Result of `send_some` for a connection that must be closed.
  static constexpr size_t failed = static_cast<size_t>(-1);

  /// Sends as much of `data` as the socket takes; returns the number of
  /// bytes sent, or `failed` on an error.
  static size_t send_some(int fd, const char* data, size_t size) {
    size_t sent = 0;
    while (sent < size) {
      ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n >= 0)
        sent += static_cast<size_t>(n);
      else if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      else if (errno != EINTR)
        return failed;
    }
    return sent;
  }

  /// Closes a connection (which also removes it from the epoll set).
  void close_connection(int fd) {
    pending_.erase(fd);
    close(fd);
  }

  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int signal_fd_ = -1;
  /// Unsent data of the connections waiting for EPOLLOUT, by fd.
  std::unordered_map<int, std::vector<char>> pending_;
};

} // namespace

/// Parses --host/--port, listens, prints "listening on HOST:PORT" and echoes
/// until SIGINT/SIGTERM. Exit codes: 0 stopped by a signal, 1 set-up or
/// runtime failure, 2 invalid arguments.
int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  CLI::App app{"Raw epoll echo server: the reference the Atoll benchmarks compare against."};
  app.add_option("--host", host, "Address to bind to")->capture_default_str();
  app.add_option("--port", port, "Port to bind to (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  if (auto rc = parse_command_line(app, argc, argv))
    return *rc;

  std::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  std::string error;
  auto addr = resolve_address(host, static_cast<uint16_t>(port), true, error);
  if (!addr) {
    fmt::print(stderr, "atoll_baseline_echo: {}\n", error);
    return 1;
  }
  echo_server server;
  if (error = server.open(*addr); !error.empty()) {
    fmt::print(stderr, "atoll_baseline_echo: {}\n", error);
    return 1;
  }
  fmt::print("listening on {}\n", server.local_address());
  std::fflush(stdout);
  return server.run() ? 0 : 1;
}
