// atoll_udp_baseline_echo: the "raw epoll" reference UDP echo server the UDP
// benchmarks compare Atoll against. Single-threaded, level-triggered epoll
// on one UDP socket, no CAF.
//
// On each readable event the server receives a batch of datagrams with
// recvmmsg() (--batch, default 64; 1 means plain recvfrom()/sendto()) and
// sends each one back to its sender with sendmmsg(), and repeats until the
// socket has nothing more to read (EAGAIN). If the socket does not take the
// whole batch back (EAGAIN on send), the rest stays in the buffers and the
// server waits for EPOLLOUT, without reading, until it is sent: like the TCP
// baseline, it applies back-pressure instead of dropping. A datagram the
// kernel refuses with any other error is dropped (and counted).
//
// On SIGINT or SIGTERM it prints its counters to stderr (datagrams echoed,
// dropped, receive calls and the mean batch they returned) and exits with 0.

#include <array>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.hpp"

namespace {

using namespace atl::bench;

/// Largest datagram the server can echo whole: the largest UDP payload over
/// IPv6 without jumbograms (65,535 - 8); over IPv4 it is 65,507.
constexpr size_t max_datagram = 65536;

/// Distance between two receive buffers. One cache line more than the
/// buffer size: with a stride of exactly 64 KiB, the first bytes of all
/// buffers (all a small datagram touches) would map to the same L1/L2 cache
/// set and evict each other within one batch.
constexpr size_t buffer_stride = max_datagram + 64;

/// Upper bound for --batch (the kernel's limit for one recvmmsg/sendmmsg,
/// UIO_MAXIOV).
constexpr size_t max_batch = 1024;

/// Default socket buffer size requested with SO_RCVBUF and SO_SNDBUF. The
/// kernel caps it at net.core.rmem_max / wmem_max (and then doubles it).
constexpr int default_socket_buffer = 4 << 20;

/// The echo server; see the file comment.
class udp_echo_server {
public:
  explicit udp_echo_server(size_t batch)
    : batch_(batch), buffers_(new char[batch * buffer_stride]), addrs_(batch), iovs_(batch),
      msgs_(batch) {
    // The buffers are left uninitialized (never read before the kernel wrote
    // them), so only the pages the datagrams actually reach become resident.
    for (size_t i = 0; i < batch_; ++i) {
      iovs_[i].iov_base = buffers_.get() + i * buffer_stride;
      msgs_[i].msg_hdr.msg_iov = &iovs_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      msgs_[i].msg_hdr.msg_name = &addrs_[i];
    }
  }

  udp_echo_server(const udp_echo_server&) = delete;
  udp_echo_server& operator=(const udp_echo_server&) = delete;

  ~udp_echo_server() {
    for (int fd : {socket_fd_, signal_fd_, epoll_fd_})
      if (fd >= 0)
        close(fd);
  }

  /// Creates the epoll instance, the SIGINT/SIGTERM signalfd and the UDP
  /// socket bound to `addr` with SO_RCVBUF/SO_SNDBUF of `buffer_bytes`.
  /// Returns an error description, empty on success.
  std::string open(const socket_address& addr, int buffer_bytes) {
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
    socket_fd_ = socket(addr.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (socket_fd_ < 0)
      return "socket: " + errno_text(errno);
    int on = 1;
    if (setsockopt(socket_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0)
      return "setsockopt(SO_REUSEADDR): " + errno_text(errno);
    // Large buffers, so that a burst from many clients is queued rather than
    // dropped. Plain SO_RCVBUF (not SO_RCVBUFFORCE): the sysctl limits apply,
    // as they would to any unprivileged server; a capped size is reported.
    for (auto [option, name] :
         {std::pair{SO_RCVBUF, "SO_RCVBUF"}, std::pair{SO_SNDBUF, "SO_SNDBUF"}}) {
      if (setsockopt(socket_fd_, SOL_SOCKET, option, &buffer_bytes, sizeof buffer_bytes) != 0)
        return fmt::format("setsockopt({}): {}", name, errno_text(errno));
      int actual = 0;
      socklen_t length = sizeof actual;
      // The kernel reports twice the usable size (it adds room for its own
      // bookkeeping), so less than `buffer_bytes` * 2 means it was capped.
      if (getsockopt(socket_fd_, SOL_SOCKET, option, &actual, &length) == 0 &&
          actual < 2 * buffer_bytes)
        fmt::print(stderr,
                   "atoll_udp_baseline_echo: warning: {} is {} bytes, not the {} asked for "
                   "(see net.core.rmem_max / wmem_max)\n",
                   name, actual / 2, buffer_bytes);
    }
    if (bind(socket_fd_, addr.get(), addr.length) != 0)
      return "bind: " + errno_text(errno);
    for (int fd : {socket_fd_, signal_fd_}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
        return "epoll_ctl(ADD): " + errno_text(errno);
    }
    return {};
  }

  /// Returns the address the socket is bound to, as "HOST:PORT".
  std::string local_address() const {
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (getsockname(socket_fd_, reinterpret_cast<sockaddr*>(&bound), &length) != 0)
      return "?";
    return format_address(reinterpret_cast<const sockaddr*>(&bound), length);
  }

  /// Echoes datagrams until SIGINT or SIGTERM arrives. Returns false if
  /// epoll_wait() fails.
  bool run() {
    std::array<epoll_event, 4> events;
    for (;;) {
      int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        fmt::print(stderr, "atoll_udp_baseline_echo: epoll_wait: {}\n", errno_text(errno));
        return false;
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].data.fd == signal_fd_)
          return true;
        if (pending_ > 0) {
          // Waiting for EPOLLOUT: finish the batch first, then read again.
          if (send_pending())
            set_interest(EPOLLIN);
        } else {
          on_readable();
        }
      }
    }
  }

  /// Prints the counters to stderr.
  void print_stats() const {
    fmt::print(stderr,
               "atoll_udp_baseline_echo: {} datagrams echoed, {} dropped (send errors), {} "
               "receive calls, {:.2f} datagrams per call (batch {})\n",
               echoed_, dropped_, receive_calls_,
               receive_calls_ > 0 ? double(received_) / double(receive_calls_) : 0.0, batch_);
  }

private:
  /// Receives and echoes batches until the socket has nothing more to read
  /// or a batch could not be sent completely.
  void on_readable() {
    for (;;) {
      size_t n = receive_batch();
      if (n == 0)
        return; // EAGAIN (or an error, already reported)
      first_pending_ = 0;
      pending_ = n;
      if (!send_pending()) {
        set_interest(EPOLLOUT); // the socket's send buffer is full
        return;
      }
      // Fewer datagrams than the batch holds: the queue is most likely empty
      // now. Level-triggered epoll reports the socket again if it is not, and
      // this saves the recvmmsg() call that would only return EAGAIN.
      if (n < batch_)
        return;
    }
  }

  /// Receives up to `batch_` datagrams into the buffers; returns how many.
  size_t receive_batch() {
    for (;;) {
      if (batch_ == 1) {
        auto& hdr = msgs_[0].msg_hdr;
        hdr.msg_namelen = sizeof(sockaddr_storage);
        ssize_t n = recvfrom(socket_fd_, iovs_[0].iov_base, max_datagram, MSG_DONTWAIT,
                             static_cast<sockaddr*>(hdr.msg_name), &hdr.msg_namelen);
        if (n >= 0) {
          iovs_[0].iov_len = static_cast<size_t>(n);
          ++receive_calls_;
          ++received_;
          return 1;
        }
      } else {
        // The kernel overwrites msg_namelen and msg_len, and the previous
        // send shortened iov_len: reset them for every call.
        for (size_t i = 0; i < batch_; ++i) {
          iovs_[i].iov_len = max_datagram;
          msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        }
        int n = recvmmsg(socket_fd_, msgs_.data(), static_cast<unsigned>(batch_), MSG_DONTWAIT,
                         nullptr);
        if (n > 0) {
          for (int i = 0; i < n; ++i)
            iovs_[static_cast<size_t>(i)].iov_len = msgs_[static_cast<size_t>(i)].msg_len;
          ++receive_calls_;
          received_ += static_cast<uint64_t>(n);
          return static_cast<size_t>(n);
        }
        if (n == 0)
          return 0;
      }
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        report_error("receive", errno);
      return 0;
    }
  }

  /// Sends the datagrams [first_pending_, first_pending_ + pending_) back to
  /// their senders. Returns true once all are sent (or dropped after an
  /// error), false if the socket's send buffer is full (EAGAIN).
  bool send_pending() {
    while (pending_ > 0) {
      int sent = 0;
      if (batch_ == 1) {
        const auto& hdr = msgs_[0].msg_hdr;
        ssize_t n = sendto(socket_fd_, iovs_[0].iov_base, iovs_[0].iov_len, MSG_DONTWAIT,
                           static_cast<const sockaddr*>(hdr.msg_name), hdr.msg_namelen);
        sent = n >= 0 ? 1 : -1;
      } else {
        sent = sendmmsg(socket_fd_, msgs_.data() + first_pending_, static_cast<unsigned>(pending_),
                        MSG_DONTWAIT);
      }
      if (sent > 0) {
        echoed_ += static_cast<uint64_t>(sent);
        first_pending_ += static_cast<size_t>(sent);
        pending_ -= static_cast<size_t>(sent);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return false;
      } else if (errno != EINTR) {
        // sendmmsg() reports an error only for the first datagram it could
        // not send: drop that one and go on with the rest.
        report_error("send", errno);
        ++dropped_;
        ++first_pending_;
        --pending_;
      }
    }
    return true;
  }

  /// Changes the events the socket is registered for.
  void set_interest(uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = socket_fd_;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, socket_fd_, &ev) != 0)
      report_error("epoll_ctl(MOD)", errno);
  }

  /// Prints the first few errors to stderr; the rest are only counted.
  void report_error(const char* what, int err) {
    if (++errors_ <= 5)
      fmt::print(stderr, "atoll_udp_baseline_echo: {}: {}\n", what, errno_text(err));
    if (errors_ == 5)
      fmt::print(stderr, "atoll_udp_baseline_echo: further errors are not printed\n");
  }

  size_t batch_;
  /// `batch_` receive buffers, `buffer_stride` bytes apart.
  std::unique_ptr<char[]> buffers_;
  /// The senders' addresses, one per buffer.
  std::vector<sockaddr_storage> addrs_;
  std::vector<iovec> iovs_;
  std::vector<mmsghdr> msgs_;
  /// The part of the last batch that still has to be sent back.
  size_t first_pending_ = 0;
  size_t pending_ = 0;
  int epoll_fd_ = -1;
  int socket_fd_ = -1;
  int signal_fd_ = -1;
  uint64_t received_ = 0;
  uint64_t echoed_ = 0;
  uint64_t dropped_ = 0;
  uint64_t receive_calls_ = 0;
  uint64_t errors_ = 0;
};

} // namespace

/// Parses --host/--port/--batch, binds, prints "listening on HOST:PORT" and
/// echoes until SIGINT/SIGTERM. Exit codes: 0 stopped by a signal, 1 set-up
/// or runtime failure, 2 invalid arguments.
int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  size_t batch = 64;
  int buffer_bytes = default_socket_buffer;
  CLI::App app{"Raw epoll UDP echo server (recvmmsg/sendmmsg): the reference the Atoll UDP "
               "benchmarks compare against."};
  app.add_option("--host", host, "Address to bind to")->capture_default_str();
  app.add_option("--port", port, "Port to bind to (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--batch", batch,
                 "Datagrams per recvmmsg()/sendmmsg() call (1: recvfrom()/sendto())")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, max_batch));
  app.add_option("--socket-buffer", buffer_bytes, "SO_RCVBUF and SO_SNDBUF to ask for, in bytes")
      ->capture_default_str()
      ->check(CLI::Range(4096, 1 << 30));
  if (auto rc = parse_command_line(app, argc, argv))
    return *rc;

  std::string error;
  // resolve_address() asks for a stream socket; the address it returns is
  // the same for a datagram socket.
  auto addr = resolve_address(host, static_cast<uint16_t>(port), true, error);
  if (!addr) {
    fmt::print(stderr, "atoll_udp_baseline_echo: {}\n", error);
    return 1;
  }
  udp_echo_server server{batch};
  if (error = server.open(*addr, buffer_bytes); !error.empty()) {
    fmt::print(stderr, "atoll_udp_baseline_echo: {}\n", error);
    return 1;
  }
  fmt::print("listening on {}\n", server.local_address());
  std::fflush(stdout);
  bool ok = server.run();
  server.print_stats();
  return ok ? 0 : 1;
}
