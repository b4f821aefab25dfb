// atoll_baseline_echo: the "raw epoll" reference echo server the benchmarks
// compare Atoll against. Single-threaded, level-triggered epoll, no CAF.
//
// TCP: each readable connection gets one recv() per wake-up into a 64 KiB
// stack buffer, and the data is written straight back. Only if that write is
// partial does the connection get state: the unsent remainder is kept in
// `pending_` and the connection waits for EPOLLOUT, without reading, until it
// is drained. An idle connection therefore costs no user-space memory at all.
//
// TLS (--tls, "raw OpenSSL on epoll"): each accepted connection gets an
// OpenSSL server session (SSL_MODE_RELEASE_BUFFERS, so an idle one keeps no
// record buffers) and a small state record. The handshake is driven by
// SSL_do_handshake() on the events it asks for. Then each wake-up reads with
// SSL_read() until it wants more from the socket, and echoes every piece with
// SSL_write(). If a write cannot complete, the bytes it did not take are kept
// and passed again, unchanged, when the socket is ready (writable, or readable
// if OpenSSL asked for that); until then the connection does not read.

#include <array>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "bench_common.hpp"

namespace {

using namespace atl::bench;

/// Size of the receive buffer (one recv() per readable event).
constexpr size_t read_buffer_size = 64 * 1024;

/// Length of the listen queue.
constexpr int listen_backlog = 1024;

/// Maximum number of events taken from one epoll_wait().
constexpr int max_events = 256;

/// State of one TLS connection.
struct tls_connection {
  SSL* ssl = nullptr;
  bool handshaking = true;
  /// The event the handshake waits for (EPOLLIN or EPOLLOUT).
  uint32_t handshake_wants = EPOLLIN;
  /// SSL_write() waits for readability; SSL_read() waits for writability.
  bool write_wants_read = false;
  bool read_wants_write = false;
  /// Events registered with epoll.
  uint32_t interest = EPOLLIN;
  /// Echo bytes SSL_write() has not taken yet; passed again unchanged.
  std::vector<char> pending;
};

/// The echo server; see the file comment.
class echo_server {
public:
  echo_server() = default;
  echo_server(const echo_server&) = delete;
  echo_server& operator=(const echo_server&) = delete;

  ~echo_server() {
    // Plain TCP connections are not tracked (idle ones have no state); the
    // kernel closes them when the process exits. TLS sessions are freed.
    for (size_t fd = 0; fd < tls_connections_.size(); ++fd)
      if (tls_connections_[fd] != nullptr)
        close_tls(static_cast<int>(fd), false);
    for (int fd : {listen_fd_, signal_fd_, epoll_fd_})
      if (fd >= 0)
        close(fd);
    SSL_CTX_free(tls_);
  }

  /// Enables TLS with the certificate chain and private key in the given
  /// PEM files. Returns an error description, empty on success.
  std::string enable_tls(const std::string& certfile, const std::string& keyfile) {
    tls_ = SSL_CTX_new(TLS_server_method());
    if (tls_ == nullptr)
      return "SSL_CTX_new: " + openssl_error_text();
    SSL_CTX_set_mode(tls_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(tls_, certfile.c_str()) != 1)
      return "certificate '" + certfile + "': " + openssl_error_text();
    if (SSL_CTX_use_PrivateKey_file(tls_, keyfile.c_str(), SSL_FILETYPE_PEM) != 1)
      return "private key '" + keyfile + "': " + openssl_error_text();
    if (SSL_CTX_check_private_key(tls_) != 1)
      return "private key '" + keyfile + "': " + openssl_error_text();
    return {};
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
        else if (tls_ != nullptr)
          on_tls_event(fd, events[i].events);
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
      if (tls_ != nullptr && !start_tls(fd)) {
        close(fd);
        continue;
      }
      if (!add(fd)) {
        if (tls_ != nullptr)
          close_tls(fd, false);
        else
          close(fd);
      }
    }
  }

  // -- TLS --------------------------------------------------------------------

  /// Creates the server session of an accepted connection.
  bool start_tls(int fd) {
    SSL* ssl = SSL_new(tls_);
    if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
      fmt::print(stderr, "SSL_new: {}\n", openssl_error_text());
      SSL_free(ssl);
      return false;
    }
    SSL_set_accept_state(ssl);
    auto index = static_cast<size_t>(fd);
    if (index >= tls_connections_.size())
      tls_connections_.resize(index + 1);
    tls_connections_[index] = std::make_unique<tls_connection>();
    tls_connections_[index]->ssl = ssl;
    return true;
  }

  /// Handles an event of a TLS connection: advances the handshake, or
  /// retries a pending write, then reads and echoes.
  void on_tls_event(int fd, uint32_t events) {
    auto* slot = static_cast<size_t>(fd) < tls_connections_.size()
                     ? tls_connections_[static_cast<size_t>(fd)].get()
                     : nullptr;
    if (slot == nullptr)
      return; // stale event
    auto& conn = *slot;
    bool readable = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0;
    const bool writable = (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0;
    if (conn.handshaking) {
      if (!tls_handshake(fd, conn))
        return;        // closed, or waiting for the socket
      readable = true; // the client's first data may have come with its Finished
    } else if (!conn.pending.empty()) {
      if (!(conn.write_wants_read ? readable : writable))
        return;
      if (!tls_write(fd, conn, conn.pending.data(), conn.pending.size()))
        return; // closed
      if (!conn.pending.empty()) {
        update_tls_interest(fd, conn);
        return;
      }
      // Drained. Records are read one at a time, so OpenSSL holds no
      // unread data unless it says so; otherwise wait for EPOLLIN.
      readable = SSL_has_pending(conn.ssl) == 1;
    }
    if (readable || (conn.read_wants_write && writable))
      tls_read(fd, conn);
    else
      update_tls_interest(fd, conn);
  }

  /// Advances the handshake; returns true once it is complete, false if it
  /// waits for the socket or failed (the connection is then closed).
  bool tls_handshake(int fd, tls_connection& conn) {
    ERR_clear_error();
    int rc = SSL_do_handshake(conn.ssl);
    if (rc == 1) {
      conn.handshaking = false;
      return true;
    }
    switch (SSL_get_error(conn.ssl, rc)) {
      case SSL_ERROR_WANT_READ: conn.handshake_wants = EPOLLIN; break;
      case SSL_ERROR_WANT_WRITE: conn.handshake_wants = EPOLLOUT; break;
      default: close_tls(fd, false); return false;
    }
    update_tls_interest(fd, conn);
    return false;
  }

  /// Reads with SSL_read() until OpenSSL wants more from the socket (or an
  /// echo could not be written completely), echoing each piece.
  void tls_read(int fd, tls_connection& conn) {
    std::array<char, read_buffer_size> buffer; // deliberately uninitialized
    conn.read_wants_write = false;
    for (;;) {
      size_t n = 0;
      ERR_clear_error();
      int rc = SSL_read_ex(conn.ssl, buffer.data(), buffer.size(), &n);
      if (rc == 1) {
        if (!tls_write(fd, conn, buffer.data(), n))
          return; // closed
        if (!conn.pending.empty())
          break; // stop reading until the echo is drained
        continue;
      }
      int err = SSL_get_error(conn.ssl, rc);
      if (err == SSL_ERROR_WANT_READ)
        break;
      if (err == SSL_ERROR_WANT_WRITE) {
        conn.read_wants_write = true;
        break;
      }
      // close_notify from the client is answered; anything else (EOF,
      // reset, protocol error) just closes.
      close_tls(fd, err == SSL_ERROR_ZERO_RETURN);
      return;
    }
    update_tls_interest(fd, conn);
  }

  /// Writes `data` with SSL_write(). `data` may be the connection's own
  /// `pending` buffer. When a write cannot complete, `pending` becomes
  /// exactly the bytes that call did not take, and the next attempt passes
  /// them unchanged. Returns false if the connection was closed.
  bool tls_write(int fd, tls_connection& conn, const char* data, size_t size) {
    conn.write_wants_read = false;
    size_t done = 0;
    while (done < size) {
      size_t written = 0;
      ERR_clear_error();
      int rc = SSL_write_ex(conn.ssl, data + done, size - done, &written);
      if (rc == 1) {
        done += written;
        continue;
      }
      int err = SSL_get_error(conn.ssl, rc);
      if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) {
        close_tls(fd, false);
        return false;
      }
      conn.write_wants_read = err == SSL_ERROR_WANT_READ;
      if (data == conn.pending.data())
        conn.pending.erase(conn.pending.begin(),
                           conn.pending.begin() + static_cast<std::ptrdiff_t>(done));
      else
        conn.pending.assign(data + done, data + size);
      return true;
    }
    std::vector<char>().swap(conn.pending); // drained: release the memory
    return true;
  }

  /// Registers the events a TLS connection waits for: those the handshake
  /// asked for; while an echo is pending, EPOLLOUT (EPOLLIN if SSL_write()
  /// wants to read), without reading further; otherwise EPOLLIN, plus
  /// EPOLLOUT if SSL_read() wants to write. Closes the connection if that
  /// fails.
  void update_tls_interest(int fd, tls_connection& conn) {
    uint32_t wanted = EPOLLIN;
    if (conn.handshaking)
      wanted = conn.handshake_wants;
    else if (!conn.pending.empty())
      wanted = conn.write_wants_read ? EPOLLIN : EPOLLOUT;
    else if (conn.read_wants_write)
      wanted |= EPOLLOUT;
    if (wanted == conn.interest)
      return;
    epoll_event ev{};
    ev.events = wanted;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
      close_tls(fd, false);
      return;
    }
    conn.interest = wanted;
  }

  /// Frees a TLS connection's session and closes its socket. With
  /// `send_close_notify`, answers the client's close_notify first (best
  /// effort, without waiting).
  void close_tls(int fd, bool send_close_notify) {
    auto& slot = tls_connections_[static_cast<size_t>(fd)];
    if (send_close_notify)
      SSL_shutdown(slot->ssl);
    ERR_clear_error();
    SSL_free(slot->ssl); // does not close the socket
    slot.reset();
    close(fd);
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
  /// Unsent data of the connections waiting for EPOLLOUT, by fd (TCP).
  std::unordered_map<int, std::vector<char>> pending_;
  /// The TLS server context (--tls), or null.
  SSL_CTX* tls_ = nullptr;
  /// TLS connections, by fd (null for fds that are not TLS connections).
  std::vector<std::unique_ptr<tls_connection>> tls_connections_;
};

} // namespace

/// Parses --host/--port (and --tls --certfile --keyfile), listens, prints
/// "listening on HOST:PORT" and echoes until SIGINT/SIGTERM. Exit codes:
/// 0 stopped by a signal, 1 set-up or runtime failure, 2 invalid arguments.
int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  bool tls = false;
  std::string certfile;
  std::string keyfile;
  CLI::App app{"Raw epoll echo server (TCP, or TLS with OpenSSL): the reference the Atoll "
               "benchmarks compare against."};
  app.add_option("--host", host, "Address to bind to")->capture_default_str();
  app.add_option("--port", port, "Port to bind to (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  auto* tls_flag = app.add_flag("--tls", tls, "Serve TLS (needs --certfile and --keyfile)");
  auto* cert_opt = app.add_option("--certfile", certfile, "Certificate chain (PEM) for --tls")
                       ->check(CLI::ExistingFile);
  auto* key_opt =
      app.add_option("--keyfile", keyfile, "Private key (PEM) for --tls")->check(CLI::ExistingFile);
  tls_flag->needs(cert_opt)->needs(key_opt);
  cert_opt->needs(tls_flag);
  key_opt->needs(tls_flag);
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
  if (tls) {
    if (error = server.enable_tls(certfile, keyfile); !error.empty()) {
      fmt::print(stderr, "atoll_baseline_echo: {}\n", error);
      return 1;
    }
  }
  if (error = server.open(*addr); !error.empty()) {
    fmt::print(stderr, "atoll_baseline_echo: {}\n", error);
    return 1;
  }
  fmt::print("listening on {}\n", server.local_address());
  std::fflush(stdout);
  return server.run() ? 0 : 1;
}
