// Helpers for server tests: a blocking TCP test client with deadlines, a
// telemetry recorder, a scriptable probe handler, and a server fixture.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
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

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>

#include "atoll/all.hpp"
#include "support/test_support.hpp"

namespace atl::test {

/// A blocking client socket for tests. Every wait has a deadline; a missed
/// deadline fails the test instead of hanging it.
class test_client {
public:
  test_client() = default;

  /// Connects to `ep` (0.0.0.0 and :: mean the loopback address).
  static test_client connect(const endpoint& ep) {
    test_client c;
    BOOST_REQUIRE_MESSAGE(c.try_connect(ep), "cannot connect to " << to_string(ep));
    return c;
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
    BOOST_REQUIRE(fd_ >= 0);
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

  test_client(test_client&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {
  }

  test_client& operator=(test_client&& other) noexcept {
    close();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }

  ~test_client() {
    close();
  }

  int fd() const noexcept {
    return fd_;
  }

  void send(std::string_view data) {
    size_t off = 0;
    while (off < data.size()) {
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

  /// True if the peer closes (or resets) within `timeout` without sending.
  bool closed_within(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto chunk = recv_chunk(deadline, 65536);
    return chunk && chunk->empty();
  }

  /// True if nothing arrives and the connection stays open for `window`
  /// (a negative check: it needs a short wait).
  bool silent_for(std::chrono::milliseconds window) {
    pollfd pfd{fd_, POLLIN, 0};
    return ::poll(&pfd, 1, static_cast<int>(window.count())) == 0;
  }

  void shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
  }

  void close() {
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
      pollfd pfd{fd_, POLLIN, 0};
      auto r = ::poll(&pfd, 1, static_cast<int>(left.count()));
      if (r == 0)
        return std::nullopt;
      if (r < 0 && errno == EINTR)
        continue;
      std::string buf(std::min<size_t>(max, 65536), '\0');
      auto n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return std::string{};
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
  }

  int fd_ = -1;
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

  caf::event_based_actor* actor() const noexcept {
    return self();
  }

private:
  std::shared_ptr<probe_script> script_;
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
    return opts;
  }

  /// Starts a server (fails the test if it cannot start).
  server& start(server_options opts) {
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
};

} // namespace atl::test
