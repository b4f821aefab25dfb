// TLS on OpenSSL 3: options, the server context (certificates, SNI, ALPN,
// client verification, versions, ciphers), and the non-blocking TLS
// transport.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "atoll/transports/transport.hpp"

namespace atl {

/// A certificate chain and its private key, both PEM files. The certificate
/// file holds the server certificate first, then its chain.
struct tls_certificate {
  /// PEM certificate (with chain).
  std::string certfile;
  /// PEM private key (unencrypted, or encrypted with `password`).
  std::string keyfile;
  /// Password of an encrypted key file (empty: none).
  std::string password;
};

/// TLS protocol versions.
enum class tls_version : uint8_t { tls1_2, tls1_3 };

/// Returns "TLSv1.2" or "TLSv1.3".
std::string to_string(tls_version v);

/// Whether and how client certificates are checked.
enum class tls_verify : uint8_t {
  /// Do not ask for a client certificate.
  none,
  /// Ask; verify it if the client sends one.
  optional,
  /// Ask and fail the handshake without a valid one.
  required,
};

/// The TLS settings of a server (Thousand Island's SSL transport options).
struct tls_options {
  /// Certificate/key pairs, e.g. one RSA and one ECDSA pair (OpenSSL picks
  /// what the client supports). At least one pair, `sni_hosts` or
  /// `sni_callback` is required.
  std::vector<tls_certificate> certificates;
  /// Certificates per server name (SNI): a client asking for a name gets
  /// that name's certificates.
  std::map<std::string, std::vector<tls_certificate>> sni_hosts;
  /// Called for a server name not in `sni_hosts` (on the connection's
  /// thread, during the handshake; must not block for long): the
  /// certificates for that name, or nullopt for the default ones. Results
  /// are cached per name.
  std::function<std::optional<std::vector<tls_certificate>>(const std::string& host)> sni_callback;
  /// Application protocols (ALPN) in the server's order of preference; the
  /// first one the client also offers is chosen. A client that offers ALPN
  /// but none of these fails its handshake with a `no_application_protocol`
  /// alert (RFC 7301); one that offers no ALPN proceeds without a protocol.
  std::vector<std::string> alpn;
  /// Client certificate verification.
  tls_verify verify = tls_verify::none;
  /// Trusted CAs (PEM) for client certificates; required unless `verify` is
  /// `none`.
  std::string cafile;
  /// Lowest protocol version accepted (default: TLS 1.2).
  std::optional<tls_version> min_version;
  /// Highest protocol version accepted (default: TLS 1.3).
  std::optional<tls_version> max_version;
  /// OpenSSL cipher list for TLS 1.2 (empty: OpenSSL's default).
  std::string ciphers;
  /// OpenSSL cipher suites for TLS 1.3 (empty: OpenSSL's default).
  std::string ciphersuites;
};

/// A ready-to-use server TLS configuration. Build it once per server; it is
/// shared by all connections (thread-safe).
class tls_context {
public:
  /// Loads and checks everything. Errors (`errc::invalid_option` naming the
  /// problem): no certificate at all, a missing or unreadable file, a key that
  /// does not match its certificate, a bad cipher list, min above max,
  /// verification without a CA file; `errc::tls_error` for other OpenSSL
  /// failures.
  [[nodiscard]] static caf::expected<std::shared_ptr<tls_context>> make(tls_options opts);

  ~tls_context();

  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  /// The options it was made from.
  const tls_options& options() const noexcept;

  /// Opaque implementation.
  struct impl;

private:
  friend class tls_transport; // makes its SSL objects from the context

  impl& internals() noexcept {
    return *impl_;
  }

  explicit tls_context(std::unique_ptr<impl> ptr);

  std::unique_ptr<impl> impl_;
};

/// A server-side TLS connection over a non-blocking socket. The handshake is
/// driven by `handshake()`; reads and writes carry application data
/// (statistics count application bytes); `shutdown(write)` and `close` send
/// close_notify.
class tls_transport final : public transport {
public:
  /// Wraps a connected non-blocking socket (takes ownership of `fd`).
  [[nodiscard]] static caf::expected<std::unique_ptr<transport>>
  make(int fd, std::shared_ptr<tls_context> ctx);

  ~tls_transport() override;

  int fd() const noexcept override {
    return fd_;
  }

  const char* name() const noexcept override {
    return "tls";
  }

  bool secure() const noexcept override {
    return true;
  }

  io_result handshake() override;
  io_result read(char* buf, size_t len) override;
  io_result write(const iovec* iov, size_t count) override;
  io_result sendfile(int file_fd, uint64_t offset, size_t count) override;
  bool has_buffered_input() const noexcept override;
  bool handshake_begun() const noexcept override;
  [[nodiscard]] caf::error shutdown(shutdown_way way) override;
  void close() noexcept override;
  [[nodiscard]] caf::expected<std::string> negotiated_protocol() const override;
  [[nodiscard]] caf::expected<connection_info> connection_information() const override;
  [[nodiscard]] caf::expected<std::string> peercert() const override;

private:
  tls_transport(int fd, void* ssl, std::shared_ptr<tls_context> ctx) noexcept
    : fd_(fd), ssl_(ssl), ctx_(std::move(ctx)) {}

  io_result result_of(int ret, const char* what);

  /// Sends close_notify completely, waiting up to `timeout_ms` for the socket
  /// to take it (a half-sent alert followed by a TCP shutdown would leave the
  /// peer with a truncated record). Returns false if it did not go out.
  bool send_close_notify(int timeout_ms) noexcept;

  int fd_;
  void* ssl_; // SSL*
  std::shared_ptr<tls_context> ctx_;
  bool handshake_done_ = false;
};

/// Makes each accepted socket a TLS connection (a server's `transport_layer`).
transport_factory tls_transport_factory(std::shared_ptr<tls_context> ctx);

/// The upgrade of a clear connection to TLS (STARTTLS), for
/// `verdict::switch_transport`. Upgrading a connection that is already
/// secure fails with `errc::unsupported_upgrade`.
std::function<caf::expected<std::unique_ptr<transport>>(std::unique_ptr<transport>&)>
tls_upgrade(std::shared_ptr<tls_context> ctx);

/// The "upgrade" to clear TCP (Thousand Island's TCP transport upgrade):
/// always fails with `errc::unsupported_upgrade`, e.g. when a TLS connection
/// asks to drop to clear text.
std::function<caf::expected<std::unique_ptr<transport>>(std::unique_ptr<transport>&)> tcp_upgrade();

} // namespace atl
