// Helpers for server tests: a blocking TCP test client with deadlines, a
// telemetry recorder, a scriptable probe handler, and a server fixture.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>

#include "atoll/all.hpp"
#include "support/test_support.hpp"

namespace atl::test {

/// Captures the lines of Atoll's process-wide log sink while alive (the
/// default sink again after).
struct log_capture {
  std::shared_ptr<event_log> lines = std::make_shared<event_log>();

  log_capture() {
    set_log_sink([l{lines}](const log_record& rec) { l->add(std::string{rec.text}); });
  }

  ~log_capture() {
    set_log_sink({});
  }

  bool contains(const std::string& part) const {
    for (auto& line : lines->entries())
      if (line.find(part) != std::string::npos)
        return true;
    return false;
  }
};

/// Whether the test program's command line (after `--`) has `arg`.
inline bool has_test_argument(const std::string& arg) {
  auto& suite = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < suite.argc; ++i)
    if (suite.argv[i] == arg)
      return true;
  return false;
}

/// True when the tests run over TLS (`-- --transport=tls` on the command
/// line): the same test bodies then serve TLS and connect with TLS clients.
inline bool tls_mode() {
  static const bool tls = has_test_argument("--transport=tls");
  return tls;
}

/// True when connections run in lightweight actors (`-- --connection-actor=light`
/// on the command line): `server_fixture::start` then sets
/// `server_options::lightweight_connections` wherever it applies, and the
/// same test bodies run against the light shell.
inline bool light_mode() {
  static const bool light = has_test_argument("--connection-actor=light");
  return light;
}

/// In `light_mode`, gives `opts` lightweight connection actors wherever
/// they apply (a handler, not detached, no connection process).
/// A test that made such options detached afterwards gets event-based
/// connection actors again (`server_fixture::start` calls this once more).
inline server_options& apply_connection_actor_mode(server_options& opts) {
  if (light_mode())
    opts.lightweight_connections =
      opts.handler && !opts.connection_process && !opts.detached_connections;
  return opts;
}

/// The directory with the test certificates (made by the build).
inline std::string certs_dir() {
  return ATOLL_TEST_CERTS_DIR;
}

/// The server side TLS options of the tests: the RSA test certificate.
inline tls_options test_tls_options() {
  tls_options opts;
  opts.certificates.push_back({certs_dir() + "/server-chain.pem", certs_dir() + "/server.key", {}});
  return opts;
}

/// How a test client speaks TLS.
struct tls_client_options {
  /// Server name sent (SNI); empty: none.
  std::string sni = "localhost";
  /// ALPN protocols offered.
  std::vector<std::string> alpn;
  /// Client certificate and key (empty: none).
  std::string certfile;
  std::string keyfile;
  /// Verify the server against this CA (empty: no verification).
  std::string cafile;
  /// OpenSSL version bounds (0: library default).
  int min_version = 0;
  int max_version = 0;
};

/// A blocking client socket for tests. Every wait has a deadline; a missed
/// deadline fails the test instead of hanging it.
class test_client {
public:
  test_client() = default;

  /// Connects to `ep` (0.0.0.0 and :: mean the loopback address), over TLS
  /// in TLS mode.
  static test_client connect(const endpoint& ep) {
    test_client c;
    if (tls_mode()) {
      BOOST_REQUIRE_MESSAGE(c.try_connect_tls(ep, {}),
                            "cannot connect to " << to_string(ep) << ": " << c.tls_error());
      return c;
    }
    BOOST_REQUIRE_MESSAGE(c.try_connect(ep), "cannot connect to " << to_string(ep));
    return c;
  }

  /// Connects and runs a TLS handshake; false (see `tls_error`) if refused
  /// or if the handshake fails.
  bool try_connect_tls(const endpoint& ep, const tls_client_options& opts) {
    if (!try_connect(ep))
      return false;
    return start_tls(opts);
  }

  /// Runs a TLS handshake on the connected socket (e.g. after STARTTLS);
  /// false (see `tls_error`) if it fails.
  bool start_tls(const tls_client_options& opts) {
    set_up_tls(opts);
    return finish_tls();
  }

  /// Begins a TLS handshake on the connected socket: sends the ClientHello
  /// and waits (up to 5 s) until the server's answer arrives, so the server
  /// has read it; `finish_tls` completes it. False (see `tls_error`) if
  /// sending fails or no answer comes.
  bool begin_tls(const tls_client_options& opts) {
    set_up_tls(opts);
    // OpenSSL reads from an empty memory BIO meanwhile, so the ClientHello
    // goes out but nothing of the server's answer is read: the handshake
    // cannot finish here, however fast the server answers.
    auto* nothing = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(nothing, -1); // empty: "try again", not the end
    SSL_set0_rbio(ssl_, nothing);
    ERR_clear_error();
    auto ret = SSL_connect(ssl_);
    if (ret == 1 || SSL_get_error(ssl_, ret) != SSL_ERROR_WANT_READ) {
      tls_error_ = ret == 1 ? "the handshake finished at once" : error_text();
      return false;
    }
    SSL_set0_rbio(ssl_, BIO_new_socket(fd_, BIO_NOCLOSE));
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 5000) != 1) {
      tls_error_ = "no answer to the ClientHello within 5 s";
      return false;
    }
    return true;
  }

  /// Completes a handshake that `begin_tls` began (blocking, up to 5 s per
  /// read); false (see `tls_error`) if it fails.
  bool finish_tls() {
    ERR_clear_error();
    if (SSL_connect(ssl_) != 1) {
      tls_error_ = error_text();
      close();
      return false;
    }
    // TLS 1.3: a rejected client certificate shows after the handshake, when
    // the server's alert arrives; reading once surfaces it.
    return true;
  }

private:
  void set_up_tls(const tls_client_options& opts) {
    timeval tv{5, 0}; // blocking TLS calls give up after 5 s
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (opts.min_version != 0)
      SSL_CTX_set_min_proto_version(ctx_, opts.min_version);
    if (opts.max_version != 0)
      SSL_CTX_set_max_proto_version(ctx_, opts.max_version);
    if (!opts.certfile.empty()) {
      SSL_CTX_use_certificate_chain_file(ctx_, opts.certfile.c_str());
      SSL_CTX_use_PrivateKey_file(ctx_, opts.keyfile.c_str(), SSL_FILETYPE_PEM);
    }
    if (!opts.cafile.empty()) {
      SSL_CTX_load_verify_locations(ctx_, opts.cafile.c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    if (!opts.alpn.empty()) {
      std::string wire;
      for (auto& p : opts.alpn) {
        wire += static_cast<char>(p.size());
        wire += p;
      }
      SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned>(wire.size()));
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    if (!opts.sni.empty())
      SSL_set_tlsext_host_name(ssl_, opts.sni.c_str());
  }

public:

  /// The last TLS error (after a failed handshake or read).
  const std::string& tls_error() const noexcept {
    return tls_error_;
  }

  /// True once a read found the connection reset (ECONNRESET) rather than
  /// closed in order.
  bool was_reset() const noexcept {
    return reset_;
  }

  /// The TLS session (nullptr for clear TCP).
  SSL* ssl() const noexcept {
    return ssl_;
  }

  /// Connects, returning false when refused.
  bool try_connect(const endpoint& ep) {
    close();
    sockaddr_storage ss{};
    socklen_t len = 0;
    switch (ep.family) {
      case endpoint::family_type::ipv4: {
        auto& in = reinterpret_cast<sockaddr_in&>(ss);
        in.sin_family = AF_INET;
        in.sin_port = htons(ep.port);
        inet_pton(AF_INET, ep.address == "0.0.0.0" ? "127.0.0.1" : ep.address.c_str(),
                  &in.sin_addr);
        len = sizeof(in);
        break;
      }
      case endpoint::family_type::ipv6: {
        auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(ep.port);
        inet_pton(AF_INET6, ep.address == "::" ? "::1" : ep.address.c_str(), &in6.sin6_addr);
        len = sizeof(in6);
        break;
      }
      case endpoint::family_type::local: {
        auto& un = reinterpret_cast<sockaddr_un&>(ss);
        un.sun_family = AF_UNIX;
        std::snprintf(un.sun_path, sizeof(un.sun_path), "%s", ep.address.c_str());
        len = sizeof(un);
        break;
      }
    }
    fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      return false; // no Boost.Test assertion: this runs on client threads too
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      close();
      return false;
    }
    if (ep.family != endpoint::family_type::local) {
      int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return true;
  }

  test_client(test_client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      ctx_(std::exchange(other.ctx_, nullptr)),
      ssl_(std::exchange(other.ssl_, nullptr)),
      tls_error_(std::move(other.tls_error_)),
      reset_(other.reset_) {
  }

  test_client& operator=(test_client&& other) noexcept {
    close();
    fd_ = std::exchange(other.fd_, -1);
    ctx_ = std::exchange(other.ctx_, nullptr);
    ssl_ = std::exchange(other.ssl_, nullptr);
    tls_error_ = std::move(other.tls_error_);
    reset_ = other.reset_;
    return *this;
  }

  ~test_client() {
    close();
  }

  int fd() const noexcept {
    return fd_;
  }

  /// Sends without failing the test; false if the connection is broken.
  bool try_send(std::string_view data) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) > 0;
    }
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }

  void send(std::string_view data) {
    size_t off = 0;
    while (off < data.size()) {
      if (ssl_ != nullptr) {
        ERR_clear_error();
        auto n = SSL_write(ssl_, data.data() + off, static_cast<int>(data.size() - off));
        BOOST_REQUIRE_MESSAGE(n > 0, "TLS send failed: " << error_text());
        off += static_cast<size_t>(n);
        continue;
      }
      auto n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      BOOST_REQUIRE_MESSAGE(n > 0, "send failed: " << std::strerror(errno));
      off += static_cast<size_t>(n);
    }
  }

  /// Receives exactly `n` bytes; fails the test on timeout or close.
  std::string recv_exact(size_t n, std::chrono::milliseconds timeout = 5000ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < n) {
      auto chunk = recv_chunk(deadline, n - out.size());
      BOOST_REQUIRE_MESSAGE(chunk && !chunk->empty(),
                            "expected " << n << " bytes, got " << out.size() << ": " << out);
      out += *chunk;
    }
    return out;
  }

  /// Everything until the peer closes (fails on timeout).
  std::string recv_until_closed(std::chrono::milliseconds timeout = 5000ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto chunk = recv_chunk(deadline, 65536);
      BOOST_REQUIRE_MESSAGE(chunk, "connection not closed in time; got: " << out);
      if (chunk->empty())
        return out;
      out += *chunk;
    }
  }

  /// The next bytes: "" when the peer closed (see `was_reset`), nullopt when
  /// nothing arrives within `timeout`.
  std::optional<std::string> recv_some(std::chrono::milliseconds timeout = 5000ms) {
    return recv_chunk(std::chrono::steady_clock::now() + timeout, 65536);
  }

  /// True if the peer closes (or resets) within `timeout` without sending.
  bool closed_within(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto chunk = recv_chunk(deadline, 65536);
    return chunk && chunk->empty();
  }

  /// True if nothing arrives and the connection stays open for `window`
  /// (a negative check: it needs a short wait).
  bool silent_for(std::chrono::milliseconds window) {
    if (ssl_ != nullptr && SSL_pending(ssl_) > 0)
      return false;
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(window.count())) == 0)
      return true;
    if (ssl_ == nullptr)
      return false;
    // Readable, but maybe only a TLS record without application data (e.g.
    // session tickets): peek.
    char c;
    ERR_clear_error();
    auto n = SSL_peek(ssl_, &c, 1);
    return n <= 0 && SSL_get_error(ssl_, n) == SSL_ERROR_WANT_READ;
  }

  void shutdown_write() {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      SSL_shutdown(ssl_); // close_notify
    }
    ::shutdown(fd_, SHUT_WR);
  }

  void close() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (ctx_ != nullptr) {
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  /// Closes with RST instead of FIN.
  void reset() {
    linger lg{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close();
  }

private:
  /// A chunk; "" on orderly close or reset; nullopt on timeout.
  std::optional<std::string> recv_chunk(std::chrono::steady_clock::time_point deadline,
                                        size_t max) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return std::nullopt;
      if (ssl_ == nullptr || SSL_pending(ssl_) == 0) {
        pollfd pfd{fd_, POLLIN, 0};
        auto r = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (r == 0)
          return std::nullopt;
        if (r < 0 && errno == EINTR)
          continue;
      }
      std::string buf(std::min<size_t>(max, 65536), '\0');
      if (ssl_ != nullptr) {
        ERR_clear_error();
        auto n = SSL_read(ssl_, buf.data(), static_cast<int>(buf.size()));
        if (n > 0) {
          buf.resize(static_cast<size_t>(n));
          return buf;
        }
        auto err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
          continue; // e.g. a session ticket, no application data yet
        if (err == SSL_ERROR_SYSCALL && errno == ECONNRESET)
          reset_ = true;
        if (err != SSL_ERROR_ZERO_RETURN && err != SSL_ERROR_SYSCALL)
          tls_error_ = error_text();
        return std::string{}; // closed (close_notify, EOF, reset or an alert)
      }
      auto n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == ECONNRESET)
        reset_ = true;
      if (n <= 0)
        return std::string{};
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
  }

  static std::string error_text() {
    std::string out;
    while (auto code = ERR_get_error()) {
      if (!out.empty())
        out += "; ";
      const char* reason = ERR_reason_error_string(code);
      out += reason != nullptr ? reason : std::to_string(code);
    }
    return out;
  }

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string tls_error_;
  bool reset_ = false;
};

/// Records telemetry events of a bus while it lives.
class telemetry_recorder {
public:
  explicit telemetry_recorder(std::shared_ptr<telemetry::bus> events,
                              telemetry::event_name prefix = {"atoll"})
    : events_(std::move(events)) {
    sub_ = events_->attach(std::move(prefix), [this](const telemetry::event& ev) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        recorded_.push_back(ev);
      }
      cv_.notify_all();
    });
  }

  ~telemetry_recorder() {
    events_->detach(sub_);
  }

  /// Events named `name` ("atoll.connection.stop").
  std::vector<telemetry::event> named(const std::string& name) const {
    std::lock_guard<std::mutex> guard{mtx_};
    std::vector<telemetry::event> out;
    for (auto& ev : recorded_)
      if (telemetry::to_string(ev.name) == name)
        out.push_back(ev);
    return out;
  }

  size_t count(const std::string& name) const {
    return named(name).size();
  }

  /// Waits until `n` events named `name` were recorded.
  bool wait_for(const std::string& name, size_t n = 1,
                std::chrono::milliseconds timeout = 5000ms) const {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] {
      size_t c = 0;
      for (auto& ev : recorded_)
        if (telemetry::to_string(ev.name) == name)
          ++c;
      return c >= n;
    });
  }

  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> guard{mtx_};
    std::vector<std::string> out;
    for (auto& ev : recorded_)
      out.push_back(telemetry::to_string(ev.name));
    return out;
  }

private:
  std::shared_ptr<telemetry::bus> events_;
  telemetry::subscription sub_ = 0;
  mutable std::mutex mtx_;
  mutable std::condition_variable cv_;
  std::vector<telemetry::event> recorded_;
};

/// The single connection actor of `srv` (waits for it to appear).
inline caf::actor only_connection(server& srv) {
  caf::actor result;
  BOOST_REQUIRE(wait_until([&] {
    auto conns = srv.connections();
    if (!conns || conns->size() != 1)
      return false;
    result = conns->front().handle;
    return true;
  }));
  return result;
}

/// Finds a node by role path in a snapshot ("acceptor_pool/acceptor-1/acceptor").
inline const tree_node* find_node(const tree_node& root, const std::string& path) {
  const tree_node* node = &root;
  std::stringstream parts{path};
  std::string part;
  while (std::getline(parts, part, '/')) {
    const tree_node* next = nullptr;
    for (auto& child : node->children)
      if (child.role == part)
        next = &child;
    if (next == nullptr)
      return nullptr;
    node = next;
  }
  return node;
}

/// Checks that `srv`, while it stops, still shows its one connection `conn`
/// (which drains): in `connections()` as draining, in `info()`'s count and in
/// the tree under its acceptor's connection supervisor.
inline void check_shown_while_draining(server& srv, const caf::actor& conn) {
  auto listed = srv.connections();
  BOOST_REQUIRE(listed);
  BOOST_REQUIRE_EQUAL(listed->size(), 1u);
  BOOST_CHECK(listed->front().handle == conn);
  BOOST_CHECK(listed->front().state == connection_state::draining);
  auto info = srv.info();
  BOOST_REQUIRE(info);
  BOOST_CHECK_EQUAL(info->active_connections, 1u);
  auto tree = srv.tree();
  BOOST_REQUIRE(tree);
  auto* pool = find_node(*tree, "acceptor_pool");
  BOOST_REQUIRE(pool != nullptr);
  std::vector<caf::actor_id> shown;
  for (auto& group : pool->children)
    if (auto* sup = find_node(group, "connection_sup"))
      for (auto& node : sup->children)
        shown.push_back(node.id);
  BOOST_CHECK((shown == std::vector<caf::actor_id>{conn.id()}));
}

/// Waits (at most 5 s) until the connection actor `conn` reports `state` in
/// its record (`connection_info_atom`).
inline bool wait_for_connection_state(caf::actor_system& sys, const caf::actor& conn,
                                      connection_state state) {
  return wait_until([&] {
    caf::scoped_actor self{sys};
    bool reached = false;
    self->request(conn, std::chrono::seconds{5}, connection_info_atom::value)
      .receive([&](connection_record& r) { reached = r.state == state; }, [](caf::error&) {});
    return reached;
  });
}

/// A data script that sends the data back (an echo server).
inline verdict echo(std::string_view data, socket& sock) {
  sock.send(data);
  return verdict::proceed();
}

/// A handler that logs every callback to an event_log ("connection",
/// "data:<bytes>", "close", "error:<reason>", "shutdown", "timeout",
/// "continue:<arg>") and otherwise does what its optional scripts say.
struct probe_script {
  std::shared_ptr<event_log> log = std::make_shared<event_log>();
  std::function<verdict(socket&)> on_connection;
  std::function<verdict(std::string_view, socket&)> on_data;
  std::function<void(socket&)> on_shutdown;
  std::function<void(socket&)> on_close;
  std::function<void(socket&)> on_timeout;
  std::function<verdict(const caf::message&, socket&)> on_continue;
  std::function<caf::message_handler(handler&, socket&)> messages;
};

/// A probe script that echoes what it receives.
inline std::shared_ptr<probe_script> echo_script() {
  auto script = std::make_shared<probe_script>();
  script->on_data = echo;
  return script;
}

class probe_handler : public handler {
public:
  explicit probe_handler(std::shared_ptr<probe_script> script) : script_(std::move(script)) {
  }

  verdict handle_connection(socket& sock) override {
    script_->log->add("connection");
    return script_->on_connection ? script_->on_connection(sock) : verdict::proceed();
  }

  verdict handle_data(std::string_view data, socket& sock) override {
    script_->log->add("data:" + std::string{data});
    return script_->on_data ? script_->on_data(data, sock) : verdict::proceed();
  }

  void handle_close(socket& sock) override {
    script_->log->add("close");
    if (script_->on_close)
      script_->on_close(sock);
  }

  void handle_error(const caf::error& reason, socket&) override {
    script_->log->add("error:" + describe(reason));
  }

  void handle_shutdown(socket& sock) override {
    script_->log->add("shutdown");
    if (script_->on_shutdown)
      script_->on_shutdown(sock);
  }

  void handle_timeout(socket& sock) override {
    script_->log->add("timeout");
    if (script_->on_timeout)
      script_->on_timeout(sock);
  }

  verdict handle_continue(const caf::message& arg, socket& sock) override {
    script_->log->add("continue:" + caf::to_string(arg));
    return script_->on_continue ? script_->on_continue(arg, sock) : verdict::proceed();
  }

  caf::message_handler message_handlers(socket& sock) override {
    return script_->messages ? script_->messages(*this, sock) : caf::message_handler{};
  }

  /// Exposes the protected `apply` to scripts.
  void apply_now(verdict v) {
    apply(std::move(v));
  }

  /// The connection actor (throws on a lightweight connection).
  caf::event_based_actor* actor() const {
    return self();
  }

private:
  std::shared_ptr<probe_script> script_;
};

/// Clients doing ping-pong with a server, each on its own thread, checking
/// every answer byte for byte. A client ends when the server closes its
/// connection, or after its current request once `stop` is called.
class pingpong_load {
public:
  /// What one client saw.
  struct outcome {
    std::atomic<size_t> answered{0};
    std::atomic<size_t> sent{0};
    std::atomic<bool> bad_answer{false}; // wrong or partial answer
    std::atomic<bool> timed_out{false};  // no answer within 5 s
    std::atomic<bool> closed{false};     // the server closed the connection
    std::atomic<bool> reset{false};      // ... with a reset
    std::atomic<bool> connect_failed{false};
  };

  pingpong_load(const endpoint& ep, size_t clients) : results_(clients) {
    for (size_t i = 0; i < clients; ++i)
      threads_.emplace_back([this, ep, i] { run(ep, i); });
  }

  ~pingpong_load() {
    stop();
  }

  /// Lets every client finish its current request, then joins them.
  void stop() {
    stopping_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }

  /// Waits until every client has `n` answers (false on timeout).
  bool wait_answered(size_t n, std::chrono::milliseconds timeout = 5000ms) {
    return wait_until(
      [&] {
        return std::all_of(results_.begin(), results_.end(),
                           [n](const outcome& r) { return r.answered.load() >= n; });
      },
      timeout);
  }

  /// Answers received by all clients so far.
  size_t total_answered() const {
    size_t sum = 0;
    for (auto& r : results_)
      sum += r.answered.load();
    return sum;
  }

  /// Per client; read after `stop` (or once the clients ended).
  const std::deque<outcome>& results() const {
    return results_;
  }

private:
  void run(const endpoint& ep, size_t index) {
    auto& out = results_[index];
    // No Boost.Test assertions here: they are not thread-safe.
    test_client c;
    if (!(tls_mode() ? c.try_connect_tls(ep, {}) : c.try_connect(ep))) {
      out.connect_failed = true;
      return;
    }
    const std::string request = "request " + std::to_string(index) + " of a ping-pong client\n";
    while (!stopping_) {
      if (!c.try_send(request)) {
        out.closed = true;
        break;
      }
      ++out.sent;
      std::string got;
      while (got.size() < request.size()) {
        auto chunk = c.recv_some(5000ms);
        if (!chunk) {
          out.timed_out = true;
          return;
        }
        if (chunk->empty())
          break;
        got += *chunk;
      }
      if (got.size() < request.size()) {
        out.closed = true;
        out.bad_answer = !got.empty();
        break;
      }
      if (got != request) {
        out.bad_answer = true;
        break;
      }
      ++out.answered;
    }
    out.reset = c.was_reset();
  }

  std::deque<outcome> results_; // atomics: not movable
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
};

/// An actor system, a private telemetry bus and helpers to run servers.
struct server_fixture : system_fixture {
  std::shared_ptr<telemetry::bus> bus = std::make_shared<telemetry::bus>();
  std::deque<server> servers; // stable references across start()

  ~server_fixture() {
    for (auto& srv : servers)
      static_cast<void>(srv.stop(10000ms));
  }

  /// Options for a loopback server on port 0 with a probe handler.
  server_options probe_options(std::shared_ptr<probe_script> script) {
    server_options opts;
    opts.handler = [script]() -> std::unique_ptr<handler> {
      return std::make_unique<probe_handler>(script);
    };
    opts.handler_name = "probe";
    opts.port = 0;
    opts.address = bind_address::loopback();
    opts.num_acceptors = 4;
    opts.telemetry = bus;
    if (tls_mode())
      opts.tls = test_tls_options();
    return apply_connection_actor_mode(opts);
  }

  /// Starts a server (fails the test if it cannot start).
  server& start(server_options opts) {
    apply_connection_actor_mode(opts);
    auto srv = start_server(sys, std::move(opts));
    BOOST_REQUIRE_MESSAGE(srv, "start_server: " << (srv ? "" : describe(srv.error())));
    servers.push_back(*srv);
    return servers.back();
  }

  endpoint address_of(const server& srv) {
    auto ep = srv.listener_info();
    BOOST_REQUIRE(ep);
    return *ep;
  }

  test_client connect(const server& srv) {
    return test_client::connect(address_of(srv));
  }

  /// Connects over TCP only, in either mode: a client that the server may
  /// hold (at its connection limit) or close before any TLS handshake.
  test_client connect_tcp(const server& srv) {
    test_client c;
    BOOST_REQUIRE_MESSAGE(c.try_connect(address_of(srv)),
                          "cannot connect to " << to_string(address_of(srv)));
    return c;
  }

  /// The rest of `connect` after `connect_tcp`, started now on another
  /// thread: the TLS handshake in TLS mode (true at once in TCP mode). The
  /// client must not be used until the future is ready.
  static std::future<bool> finish_connect_async(test_client& c) {
    if (!tls_mode()) {
      std::promise<bool> done;
      done.set_value(true);
      return done.get_future();
    }
    return std::async(std::launch::async, [&c] { return c.start_tls({}); });
  }

  /// Connects a client that sends nothing (on a TLS port: no ClientHello)
  /// as the server's only connection, stops the server, and checks that the
  /// stop closes that client and ends without an error within 5 s.
  void check_stop_closes_a_silent_client(server& srv) {
    auto silent = connect_tcp(srv);
    only_connection(srv);
    auto stopping = std::async(std::launch::async, [&] { return srv.stop(); });
    BOOST_CHECK(silent.closed_within(5000ms));
    BOOST_REQUIRE(stopping.wait_for(5s) == std::future_status::ready);
    BOOST_CHECK(!stopping.get());
  }
};

} // namespace atl::test
