// The transport interface of one connection (clear TCP, TLS, ...): a
// non-blocking byte stream that reports when it needs to wait.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <sys/uio.h>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace atl {

/// Which direction `shutdown` closes.
enum class shutdown_way : uint8_t { read, write, read_write };

/// Returns "read", "write" or "read_write".
std::string to_string(shutdown_way way);

/// Connection statistics as reported by `getstat`: application bytes and the
/// number of successful read/write calls ("packets") in each direction.
struct socket_stats {
  /// Bytes received.
  uint64_t recv_oct = 0;
  /// Successful receive calls.
  uint64_t recv_cnt = 0;
  /// Bytes sent.
  uint64_t send_oct = 0;
  /// Successful send calls.
  uint64_t send_cnt = 0;
  /// The most bytes one receive call got.
  uint64_t recv_max = 0;
  /// The most bytes one send call wrote.
  uint64_t send_max = 0;
  /// Bytes queued and not yet written (filled in by `socket::getstat`).
  uint64_t send_pend = 0;

  /// Average bytes per receive call (0 before the first).
  uint64_t recv_avg() const noexcept {
    return recv_cnt == 0 ? 0 : recv_oct / recv_cnt;
  }

  /// Average bytes per send call (0 before the first).
  uint64_t send_avg() const noexcept {
    return send_cnt == 0 ? 0 : send_oct / send_cnt;
  }

  /// Counts a receive call that got `n` (> 0) bytes.
  void count_recv(uint64_t n) noexcept {
    recv_oct += n;
    ++recv_cnt;
    if (n > recv_max)
      recv_max = n;
  }

  /// Counts a send call that wrote `n` (> 0) bytes.
  void count_send(uint64_t n) noexcept {
    send_oct += n;
    ++send_cnt;
    if (n > send_max)
      send_max = n;
  }
};

/// What a TLS connection negotiated (see `transport::connection_information`).
struct connection_info {
  /// Protocol version, e.g. "TLSv1.3".
  std::string protocol;
  /// Cipher suite, e.g. "TLS_AES_256_GCM_SHA384".
  std::string cipher;
  /// The server name the client asked for (SNI), empty if none.
  std::string sni_hostname;
  /// The application protocol chosen by ALPN, empty if none.
  std::string alpn;
  /// The key exchange group, e.g. "X25519" (empty if unknown).
  std::string group;
  /// The cipher's secret bits, e.g. 256.
  int cipher_bits = 0;
  /// True if the client resumed an earlier session.
  bool session_reused = false;
};

/// How a non-blocking operation ended.
enum class io_status : uint8_t {
  /// Finished (possibly partially: see `bytes`).
  done,
  /// Wait until the fd is readable, then retry.
  want_read,
  /// Wait until the fd is writable, then retry.
  want_write,
  /// The peer closed the connection.
  closed,
  /// Failed; see `error`.
  failed,
};

/// The result of a non-blocking transport operation.
struct io_result {
  /// Bytes transferred (possibly fewer than asked).
  size_t bytes = 0;
  /// How it ended.
  io_status status = io_status::done;
  /// The error when `status` is `failed`.
  caf::error error;
};

/// One connection's byte stream. Implementations do non-blocking I/O on the
/// fd they own and never block. A transport is used by one actor (or thread)
/// at a time.
class transport {
public:
  virtual ~transport();

  /// The socket fd (-1 once closed).
  virtual int fd() const noexcept = 0;

  /// "tcp", "tls", ...
  virtual const char* name() const noexcept = 0;

  /// True if the stream is encrypted.
  virtual bool secure() const noexcept = 0;

  /// Advances the connection handshake (TCP: nothing to do). `done` when it
  /// is complete; `want_read`/`want_write` to be called again when ready.
  virtual io_result handshake() = 0;

  /// Reads up to `len` bytes. `closed` on end of stream.
  virtual io_result read(char* buf, size_t len) = 0;

  /// Writes from `count` buffers, possibly partially.
  virtual io_result write(const iovec* iov, size_t count) = 0;

  /// Sends up to `count` bytes of `file_fd` from `offset`, possibly partially.
  virtual io_result sendfile(int file_fd, uint64_t offset, size_t count) = 0;

  /// True if decrypted input is buffered inside the transport (so the fd may
  /// not become readable again although data is available).
  virtual bool has_buffered_input() const noexcept;

  /// True once the peer sent a byte of the handshake (TLS), or when the
  /// transport has no handshake (TCP). A stop ends a connection whose
  /// handshake has not begun at once instead of waiting for it. A transport
  /// that wraps another must forward it (the default, true, waits).
  virtual bool handshake_begun() const noexcept;

  /// Shuts the stream down in one or both directions.
  [[nodiscard]] virtual caf::error shutdown(shutdown_way way) = 0;

  /// Closes the connection (idempotent).
  virtual void close() noexcept = 0;

  /// The ALPN protocol. Errors: `errc::protocol_not_negotiated`.
  [[nodiscard]] virtual caf::expected<std::string> negotiated_protocol() const;

  /// TLS parameters. Errors: `errc::not_secure` for clear transports.
  [[nodiscard]] virtual caf::expected<connection_info> connection_information() const;

  /// The peer's certificate in DER. Errors: `errc::not_secure`, or
  /// `errc::not_found` when the peer sent none.
  [[nodiscard]] virtual caf::expected<std::string> peercert() const;

  /// Gives up the fd without closing it (for a transport upgrade); the
  /// transport is unusable afterwards. Returns -1 if not supported.
  virtual int release() noexcept;
};

/// Wraps an accepted fd in a transport (TCP, TLS, ...): a server's
/// `transport_layer`. Takes ownership of the fd, also on failure.
using transport_factory = std::function<caf::expected<std::unique_ptr<transport>>(int fd)>;

/// A clear TCP (or Unix stream) connection.
class tcp_transport final : public transport {
public:
  /// Takes ownership of a connected, non-blocking socket.
  explicit tcp_transport(int fd) noexcept : fd_(fd) {}

  ~tcp_transport() override;

  int fd() const noexcept override {
    return fd_;
  }

  const char* name() const noexcept override {
    return "tcp";
  }

  bool secure() const noexcept override {
    return false;
  }

  io_result handshake() override;
  io_result read(char* buf, size_t len) override;
  io_result write(const iovec* iov, size_t count) override;
  io_result sendfile(int file_fd, uint64_t offset, size_t count) override;
  [[nodiscard]] caf::error shutdown(shutdown_way way) override;
  void close() noexcept override;
  int release() noexcept override;

private:
  int fd_;
};

} // namespace atl
