#include "atoll/transports/tls.hpp"

#include <cerrno>
#include <cstring>
#include <mutex>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <poll.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509err.h>
#include <sys/socket.h>
#include <unistd.h>

#include "atoll/runtime/error.hpp"

namespace atl {

std::string to_string(tls_version v) {
  return v == tls_version::tls1_2 ? "TLSv1.2" : "TLSv1.3";
}

namespace {

/// Everything OpenSSL queued for this thread, as text (and clears it).
std::string openssl_errors() {
  std::string out;
  while (auto code = ERR_get_error()) {
    if (!out.empty())
      out += "; ";
    const char* reason = ERR_reason_error_string(code);
    out += reason != nullptr ? reason : "error " + std::to_string(code);
  }
  return out.empty() ? std::string{"unknown OpenSSL error"} : out;
}

caf::error invalid(const std::string& what) {
  return caf::make_error(errc::invalid_option, what);
}

int version_code(tls_version v) {
  return v == tls_version::tls1_2 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

int password_callback(char* buf, int size, int, void* userdata) {
  auto* password = static_cast<const std::string*>(userdata);
  if (password == nullptr || password->empty())
    return 0;
  auto n = std::min<int>(size - 1, static_cast<int>(password->size()));
  std::memcpy(buf, password->data(), static_cast<size_t>(n));
  buf[n] = '\0';
  return n;
}

} // namespace

struct tls_context::impl {
  tls_options opts;
  SSL_CTX* main = nullptr;
  std::map<std::string, SSL_CTX*> by_host;   // sni_hosts
  std::mutex mtx;                            // guards `from_callback`
  std::map<std::string, SSL_CTX*> from_callback; // sni_callback results (nullptr: none)

  ~impl() {
    SSL_CTX_free(main);
    for (auto& kv : by_host)
      SSL_CTX_free(kv.second);
    for (auto& kv : from_callback)
      SSL_CTX_free(kv.second);
  }

  /// Loads one certificate/key pair into `ctx` and checks that they match.
  caf::error load_pair(SSL_CTX* ctx, const tls_certificate& pair) {
    if (pair.certfile.empty() || pair.keyfile.empty())
      return invalid("tls: a certificate needs both certfile and keyfile");
    for (auto* file : {&pair.certfile, &pair.keyfile})
      if (::access(file->c_str(), R_OK) != 0)
        return invalid("tls: cannot read " + *file + ": " + std::strerror(errno));
    SSL_CTX_set_default_passwd_cb(ctx, password_callback);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, const_cast<std::string*>(&pair.password));
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, pair.certfile.c_str()) != 1)
      return invalid("tls: certfile " + pair.certfile + ": " + openssl_errors());
    if (SSL_CTX_use_PrivateKey_file(ctx, pair.keyfile.c_str(), SSL_FILETYPE_PEM) != 1) {
      if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
        ERR_clear_error();
        return invalid("tls: keyfile " + pair.keyfile + " does not match certfile "
                       + pair.certfile);
      }
      return invalid("tls: keyfile " + pair.keyfile + " (for " + pair.certfile
                     + "): " + openssl_errors());
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
      return invalid("tls: keyfile " + pair.keyfile + " does not match certfile "
                     + pair.certfile + ": " + openssl_errors());
    return caf::none;
  }

  /// A server context with the shared settings and `certs`.
  caf::expected<SSL_CTX*> make_ctx(const std::vector<tls_certificate>& certs) {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr)
      return caf::make_error(errc::tls_error, "SSL_CTX_new: " + openssl_errors());
    auto fail = [&](caf::error err) -> caf::expected<SSL_CTX*> {
      SSL_CTX_free(ctx);
      return err;
    };
    SSL_CTX_set_min_proto_version(ctx, version_code(opts.min_version.value_or(tls_version::tls1_2)));
    SSL_CTX_set_max_proto_version(ctx, version_code(opts.max_version.value_or(tls_version::tls1_3)));
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                            | SSL_MODE_RELEASE_BUFFERS);
    // A peer closing without close_notify is a close, not an error (OpenSSL 3
    // would report it as "unexpected eof").
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE
                               | SSL_OP_IGNORE_UNEXPECTED_EOF);
    static const unsigned char sid_ctx[] = "atoll";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (!opts.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, opts.ciphers.c_str()) != 1)
      return fail(invalid("tls: ciphers '" + opts.ciphers + "': " + openssl_errors()));
    if (!opts.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, opts.ciphersuites.c_str()) != 1)
      return fail(invalid("tls: ciphersuites '" + opts.ciphersuites + "': " + openssl_errors()));
    for (auto& pair : certs)
      if (auto err = load_pair(ctx, pair))
        return fail(std::move(err));
    if (opts.verify != tls_verify::none) {
      if (SSL_CTX_load_verify_locations(ctx, opts.cafile.c_str(), nullptr) != 1)
        return fail(invalid("tls: cafile " + opts.cafile + ": " + openssl_errors()));
      if (auto* names = SSL_load_client_CA_file(opts.cafile.c_str()))
        SSL_CTX_set_client_CA_list(ctx, names);
      int mode = SSL_VERIFY_PEER;
      if (opts.verify == tls_verify::required)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_CTX_set_verify(ctx, mode, nullptr);
    }
    if (!opts.alpn.empty())
      SSL_CTX_set_alpn_select_cb(ctx, alpn_select, this);
    SSL_CTX_set_tlsext_servername_callback(ctx, server_name);
    SSL_CTX_set_tlsext_servername_arg(ctx, this);
    return ctx;
  }

  /// The context for a server name, or nullptr for the default one.
  SSL_CTX* for_host(const std::string& host) {
    if (auto i = by_host.find(host); i != by_host.end())
      return i->second;
    if (!opts.sni_callback)
      return nullptr;
    std::lock_guard<std::mutex> guard{mtx};
    if (auto i = from_callback.find(host); i != from_callback.end())
      return i->second;
    SSL_CTX* ctx = nullptr;
    try {
      if (auto certs = opts.sni_callback(host)) {
        if (auto made = make_ctx(*certs))
          ctx = *made;
      }
    } catch (...) {
      ctx = nullptr; // a failing callback means "the default certificates"
    }
    from_callback.emplace(host, ctx);
    return ctx;
  }

  static int server_name(SSL* ssl, int*, void* arg) {
    auto* self = static_cast<impl*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == nullptr)
      return SSL_TLSEXT_ERR_OK;
    if (auto* ctx = self->for_host(name))
      SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;
  }

  /// ALPN: the first of our protocols (in our order) the client offers.
  static int alpn_select(SSL*, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned int inlen, void* arg) {
    auto* self = static_cast<impl*>(arg);
    for (auto& proto : self->opts.alpn) {
      for (unsigned int i = 0; i < inlen;) {
        unsigned int len = in[i];
        if (i + 1 + len > inlen)
          break;
        if (len == proto.size() && std::memcmp(in + i + 1, proto.data(), len) == 0) {
          *out = in + i + 1;
          *outlen = static_cast<unsigned char>(len);
          return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
      }
    }
    // No protocol in common: RFC 7301 §3.2 has the server end the handshake
    // with a no_application_protocol alert (which OpenSSL sends for this
    // return), as Erlang's ssl does. A client that offers no ALPN at all
    // never gets here and proceeds without a protocol.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
};

tls_context::tls_context(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

tls_context::~tls_context() = default;

const tls_options& tls_context::options() const noexcept {
  return impl_->opts;
}

caf::expected<std::shared_ptr<tls_context>> tls_context::make(tls_options opts) {
  if (opts.certificates.empty() && opts.sni_hosts.empty() && !opts.sni_callback)
    return invalid("tls: no certificate (set certificates, sni_hosts or sni_callback)");
  if (opts.min_version && opts.max_version && *opts.min_version > *opts.max_version)
    return invalid("tls: min_version is above max_version");
  if (opts.verify != tls_verify::none && opts.cafile.empty())
    return invalid("tls: verifying client certificates needs a cafile");
  for (auto& proto : opts.alpn)
    if (proto.empty() || proto.size() > 255)
      return invalid("tls: an ALPN protocol name must have 1 to 255 bytes");
  auto state = std::make_unique<impl>();
  state->opts = std::move(opts);
  auto main = state->make_ctx(state->opts.certificates);
  if (!main)
    return main.error();
  state->main = *main;
  for (auto& [host, certs] : state->opts.sni_hosts) {
    auto ctx = state->make_ctx(certs);
    if (!ctx)
      return caf::make_error(errc::invalid_option, "tls: sni_hosts[" + host + "]",
                             describe(ctx.error()));
    state->by_host.emplace(host, *ctx);
  }
  return std::shared_ptr<tls_context>{new tls_context(std::move(state))};
}

// -- tls_transport ------------------------------------------------------------------

namespace {

SSL* as_ssl(void* ptr) {
  return static_cast<SSL*>(ptr);
}

/// Scratch space for gathering writes and reading files (TLS records are at
/// most 16 KiB).
constexpr size_t scratch_size = 16384;

char* scratch() {
  static thread_local char buf[scratch_size];
  return buf;
}

} // namespace

caf::expected<std::unique_ptr<transport>> tls_transport::make(int fd,
                                                             std::shared_ptr<tls_context> ctx) {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx->internals().main);
  if (ssl == nullptr) {
    ::close(fd);
    return caf::make_error(errc::tls_error, "SSL_new: " + openssl_errors());
  }
  SSL_set_fd(ssl, fd);
  SSL_set_accept_state(ssl);
  return std::unique_ptr<transport>{new tls_transport(fd, ssl, std::move(ctx))};
}

tls_transport::~tls_transport() {
  close();
}

io_result tls_transport::result_of(int ret, const char* what) {
  io_result res;
  auto err = SSL_get_error(as_ssl(ssl_), ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      res.status = io_status::want_read;
      return res;
    case SSL_ERROR_WANT_WRITE:
      res.status = io_status::want_write;
      return res;
    case SSL_ERROR_ZERO_RETURN:
      res.status = io_status::closed;
      return res;
    case SSL_ERROR_SYSCALL: {
      auto sys = errno;
      if (sys == ECONNRESET || sys == EPIPE || (ERR_peek_error() == 0 && (ret == 0 || sys == 0))) {
        ERR_clear_error();
        res.status = io_status::closed; // the peer went away without close_notify
        return res;
      }
      if (sys == EAGAIN) {
        res.status = io_status::want_read;
        return res;
      }
      res.status = io_status::failed;
      res.error = caf::make_error(errc::tls_error, std::string{what} + ": "
                                                      + (ERR_peek_error() != 0 ? openssl_errors()
                                                                               : std::strerror(sys)));
      return res;
    }
    default:
      res.status = io_status::failed;
      res.error = caf::make_error(errc::tls_error, std::string{what} + ": " + openssl_errors());
      return res;
  }
}

io_result tls_transport::handshake() {
  ERR_clear_error();
  auto ret = SSL_do_handshake(as_ssl(ssl_));
  if (ret == 1) {
    handshake_done_ = true;
    return {};
  }
  return result_of(ret, "TLS handshake");
}

io_result tls_transport::read(char* buf, size_t len) {
  ERR_clear_error();
  size_t n = 0;
  auto ret = SSL_read_ex(as_ssl(ssl_), buf, len, &n);
  if (ret == 1)
    return {n, io_status::done, {}};
  return result_of(ret, "TLS read");
}

io_result tls_transport::write(const iovec* iov, size_t count) {
  const char* data;
  size_t len;
  if (count == 1) {
    data = static_cast<const char*>(iov[0].iov_base);
    len = iov[0].iov_len;
  } else {
    // Gather up to one record; a retry after WANT_WRITE gathers the same
    // leading bytes again, as OpenSSL requires.
    auto* buf = scratch();
    len = 0;
    for (size_t i = 0; i < count && len < scratch_size; ++i) {
      auto take = std::min(iov[i].iov_len, scratch_size - len);
      std::memcpy(buf + len, iov[i].iov_base, take);
      len += take;
    }
    data = buf;
  }
  if (len == 0)
    return {};
  if (SSL_get_shutdown(as_ssl(ssl_)) & SSL_SENT_SHUTDOWN) {
    io_result res; // after our close_notify: like a write after shutdown(2)
    res.status = io_status::closed;
    return res;
  }
  ERR_clear_error();
  size_t n = 0;
  auto ret = SSL_write_ex(as_ssl(ssl_), data, len, &n);
  if (ret == 1)
    return {n, io_status::done, {}};
  return result_of(ret, "TLS write");
}

io_result tls_transport::sendfile(int file_fd, uint64_t offset, size_t count) {
  // No kernel sendfile over TLS: read and write one record at a time.
  auto* buf = scratch();
  auto want = std::min(count, scratch_size);
  auto got = ::pread(file_fd, buf, want, static_cast<off_t>(offset));
  if (got < 0) {
    io_result res;
    res.status = io_status::failed;
    res.error = make_system_error("pread", errno);
    return res;
  }
  if (got == 0)
    return {}; // end of file: the caller drops the rest
  ERR_clear_error();
  size_t n = 0;
  auto ret = SSL_write_ex(as_ssl(ssl_), buf, static_cast<size_t>(got), &n);
  if (ret == 1)
    return {n, io_status::done, {}};
  return result_of(ret, "TLS sendfile");
}

bool tls_transport::has_buffered_input() const noexcept {
  return ssl_ != nullptr && SSL_has_pending(as_ssl(ssl_)) == 1;
}

bool tls_transport::handshake_begun() const noexcept {
  // The socket BIO counts what OpenSSL read from the fd: any byte at all, a
  // partial ClientHello included, means the client has begun; so does a
  // byte that waits in the socket, not read yet (its readiness event may be
  // queued behind the stop).
  if (handshake_done_ || ssl_ == nullptr || BIO_number_read(SSL_get_rbio(as_ssl(ssl_))) > 0)
    return true;
  char byte = 0;
  return fd_ >= 0 && ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

caf::error tls_transport::shutdown(shutdown_way way) {
  if (ssl_ == nullptr || fd_ < 0)
    return caf::make_error(errc::closed);
  if (way != shutdown_way::read && handshake_done_ && !send_close_notify(1000))
    return caf::make_error(errc::timeout, "TLS close_notify could not be sent");
  int how = way == shutdown_way::read ? SHUT_RD
                                      : (way == shutdown_way::write ? SHUT_WR : SHUT_RDWR);
  if (::shutdown(fd_, how) != 0)
    return make_system_error("shutdown", errno);
  return caf::none;
}

bool tls_transport::send_close_notify(int timeout_ms) noexcept {
  auto* ssl = as_ssl(ssl_);
  for (int waited = 0;;) {
    ERR_clear_error();
    auto ret = SSL_shutdown(ssl);
    if (ret >= 0) // 0: sent, the peer's has not arrived yet; 1: both done
      return true;
    auto err = SSL_get_error(ssl, ret);
    ERR_clear_error();
    if (err == SSL_ERROR_WANT_READ)
      return true; // ours is out; OpenSSL waits for the peer's
    if (err != SSL_ERROR_WANT_WRITE || waited >= timeout_ms)
      return false;
    pollfd pfd{fd_, POLLOUT, 0};
    auto slice = std::min(50, timeout_ms - waited);
    ::poll(&pfd, 1, slice);
    waited += slice;
  }
}

void tls_transport::close() noexcept {
  if (ssl_ != nullptr) {
    if (handshake_done_ && fd_ >= 0 && (SSL_get_shutdown(as_ssl(ssl_)) & SSL_SENT_SHUTDOWN) == 0)
      send_close_notify(100); // best effort, briefly: the socket closes anyway
    ERR_clear_error();
    SSL_free(as_ssl(ssl_));
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

caf::expected<std::string> tls_transport::negotiated_protocol() const {
  if (ssl_ == nullptr)
    return caf::make_error(errc::closed);
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(as_ssl(ssl_), &proto, &len);
  if (proto == nullptr || len == 0)
    return caf::make_error(errc::protocol_not_negotiated);
  return std::string{reinterpret_cast<const char*>(proto), len};
}

caf::expected<connection_info> tls_transport::connection_information() const {
  if (ssl_ == nullptr)
    return caf::make_error(errc::closed);
  connection_info info;
  info.protocol = SSL_get_version(as_ssl(ssl_));
  if (const char* cipher = SSL_get_cipher_name(as_ssl(ssl_)))
    info.cipher = cipher;
  if (const char* host = SSL_get_servername(as_ssl(ssl_), TLSEXT_NAMETYPE_host_name))
    info.sni_hostname = host;
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(as_ssl(ssl_), &alpn, &alpn_len);
  if (alpn != nullptr)
    info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (auto nid = SSL_get_negotiated_group(as_ssl(ssl_)); nid != 0 && nid != NID_undef)
    if (const char* group = OBJ_nid2sn(nid & ~TLSEXT_nid_unknown))
      info.group = group;
  info.session_reused = SSL_session_reused(as_ssl(ssl_)) == 1;
  info.cipher_bits = SSL_get_cipher_bits(as_ssl(ssl_), nullptr);
  return info;
}

caf::expected<std::string> tls_transport::peercert() const {
  if (ssl_ == nullptr)
    return caf::make_error(errc::closed);
  X509* cert = SSL_get1_peer_certificate(as_ssl(ssl_));
  if (cert == nullptr)
    return caf::make_error(errc::not_found, "the peer sent no certificate");
  unsigned char* der = nullptr;
  auto len = i2d_X509(cert, &der);
  X509_free(cert);
  if (len <= 0)
    return caf::make_error(errc::tls_error, "cannot encode the peer certificate");
  std::string out{reinterpret_cast<char*>(der), static_cast<size_t>(len)};
  OPENSSL_free(der);
  return out;
}

transport_factory tls_transport_factory(std::shared_ptr<tls_context> ctx) {
  return [ctx](int fd) { return tls_transport::make(fd, ctx); };
}

std::function<caf::expected<std::unique_ptr<transport>>(std::unique_ptr<transport>&)>
tls_upgrade(std::shared_ptr<tls_context> ctx) {
  return [ctx](std::unique_ptr<transport>& current) -> caf::expected<std::unique_ptr<transport>> {
    if (!current || current->secure())
      return caf::make_error(errc::unsupported_upgrade, "the connection is already secure");
    auto fd = current->release();
    if (fd < 0)
      return caf::make_error(errc::unsupported_upgrade, "the transport cannot be upgraded");
    return tls_transport::make(fd, ctx);
  };
}

std::function<caf::expected<std::unique_ptr<transport>>(std::unique_ptr<transport>&)>
tcp_upgrade() {
  return [](std::unique_ptr<transport>& current) -> caf::expected<std::unique_ptr<transport>> {
    return caf::make_error(errc::unsupported_upgrade,
                           current && current->secure() ? "cannot switch a TLS connection to clear TCP"
                                                        : "the connection is already clear TCP");
  };
}

} // namespace atl
