// POSIX, OpenSSL and command-line helpers shared by the benchmark tools
// (atoll_loadgen and atoll_baseline_echo). Header-only; no CAF.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

namespace atl::bench {

/// Exit code for invalid command-line arguments.
inline constexpr int exit_bad_arguments = 2;

/// A resolved IPv4 or IPv6 socket address.
struct socket_address {
  sockaddr_storage storage{};
  socklen_t length = 0;

  /// The address family (AF_INET or AF_INET6).
  int family() const noexcept {
    return storage.ss_family;
  }

  /// The address as the generic type the socket calls expect.
  const sockaddr* get() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage);
  }
};

/// Returns the text for an errno value.
inline std::string errno_text(int err) {
  return std::strerror(err);
}

/// Resolves `host` (a numeric address or a name) and `port` to the first
/// matching TCP address. `passive` selects an address to bind to. On failure
/// returns nothing and stores a description in `error`.
inline std::optional<socket_address> resolve_address(const std::string& host, uint16_t port,
                                                     bool passive, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* results = nullptr;
  const auto service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &results); rc != 0) {
    error = fmt::format("cannot resolve '{}': {}", host, gai_strerror(rc));
    return std::nullopt;
  }
  socket_address result;
  std::memcpy(&result.storage, results->ai_addr, results->ai_addrlen);
  result.length = results->ai_addrlen;
  freeaddrinfo(results);
  return result;
}

/// Formats a socket address numerically as "HOST:PORT", with IPv6 hosts in
/// brackets ("[::1]:PORT").
inline std::string format_address(const sockaddr* addr, socklen_t length) {
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  if (getnameinfo(addr, length, host, sizeof host, service, sizeof service,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return "?";
  if (addr->sa_family == AF_INET6)
    return fmt::format("[{}]:{}", host, service);
  return fmt::format("{}:{}", host, service);
}

/// Raises the soft limit on open files to the hard limit (each connection
/// needs one descriptor) and returns the resulting soft limit.
inline rlim_t raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
    return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
      return raised.rlim_cur;
  }
  return limit.rlim_cur;
}

/// Disables Nagle's algorithm on a TCP socket; returns false on failure.
inline bool set_tcp_nodelay(int fd) {
  int on = 1;
  return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0;
}

/// Sets SO_LINGER to zero, so that close() resets the connection (RST) and
/// leaves no TIME_WAIT socket behind; returns false on failure.
inline bool set_reset_on_close(int fd) {
  linger option{};
  option.l_onoff = 1;
  option.l_linger = 0;
  return setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option) == 0;
}

/// Returns the oldest error in OpenSSL's error queue as text (empty if the
/// queue is empty) and clears the queue.
inline std::string openssl_error_text() {
  std::string text;
  if (unsigned long code = ERR_get_error(); code != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    text = buffer;
  }
  ERR_clear_error();
  return text;
}

/// Describes why an SSL_* call failed: `err` is what SSL_get_error()
/// returned for it, and `sys_errno` is errno right after the call (used for
/// SSL_ERROR_SYSCALL). Clears OpenSSL's error queue.
inline std::string ssl_failure_text(int err, int sys_errno) {
  switch (err) {
    case SSL_ERROR_ZERO_RETURN: return "closed by the peer (close_notify)";
    case SSL_ERROR_SYSCALL: {
      auto text = openssl_error_text();
      if (!text.empty())
        return text;
      return sys_errno != 0 ? errno_text(sys_errno) : std::string{"unexpected EOF"};
    }
    case SSL_ERROR_SSL: {
      auto text = openssl_error_text();
      return text.empty() ? std::string{"TLS protocol error"} : text;
    }
    default: ERR_clear_error(); return fmt::format("SSL_get_error() = {}", err);
  }
}

/// Parses the command line. Returns the exit code the program must end with
/// (0 after --help, `exit_bad_arguments` for invalid arguments, after CLI11
/// has printed the message), or nothing if the program should run.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : exit_bad_arguments;
  }
  return std::nullopt;
}

} // namespace atl::bench
