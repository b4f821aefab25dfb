// The socket a handler uses: send, receive, sendfile, shutdown, close,
// addresses, statistics, options and TLS information of its connection.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "atoll/runtime/span.hpp"
#include "atoll/transports/endpoint.hpp"
#include "atoll/transports/output_queue.hpp"
#include "atoll/transports/proxy_protocol.hpp"
#include "atoll/transports/tcp_options.hpp"
#include "atoll/transports/transport.hpp"

namespace atl {

struct connection_config;

namespace detail {

class socket_host;
struct data_events;
class socket_access;

/// Only Atoll makes sockets: the key to `socket`'s constructor.
class socket_key {
  socket_key() = default;
  friend class socket_access;
};

} // namespace detail

/// One connection's socket, owned by its connection actor and handed to the
/// handler's callbacks. All member functions run on the connection actor
/// (never share the reference with other actors or threads).
///
/// `send` and `sendfile` never block: what the kernel does not take at once
/// is queued and written when the socket becomes writable; if queued output
/// makes no progress (no byte written) for the transport's `send_timeout`,
/// the connection ends with `errc::timeout`. Queued output is bounded by the
/// transport's `max_queued_output`: a send past it fails with
/// `errc::output_limit`. `recv` blocks the actor's thread (run connections
/// detached when handlers use it heavily).
class socket {
public:
  /// Creates a socket without a connection (closed). Made by Atoll's
  /// connection actors only (the key is internal), which keep it inline and
  /// give it its connection once it is set up.
  explicit socket(detail::socket_key) noexcept;

  socket(const socket&) = delete;
  socket& operator=(const socket&) = delete;
  ~socket();

  // -- I/O ----------------------------------------------------------------------

  /// Sends `data`. Errors: `errc::closed` (socket or peer closed),
  /// `errc::output_limit` (too much output queued already: nothing of
  /// `data` is sent), `errc::system_error`. Emits `send` (or `send_error`).
  /// Deliberately not `[[nodiscard]]` (unlike every other fallible call):
  /// as with Thousand Island's `Socket.send`, handlers may fire and forget;
  /// a broken connection ends on its own and every failure is emitted as
  /// `send_error`. Check the result where `output_limit` matters.
  caf::error send(std::string_view data);

  /// Sends several buffers in one gathered write (scatter/gather I/O).
  caf::error send(std::initializer_list<std::string_view> parts);

  /// Sends several buffers in one gathered write.
  caf::error send(const std::vector<std::string_view>& parts);

  /// Receives data synchronously, blocking the actor's thread: `length` 0
  /// returns the next available bytes; otherwise exactly `length` bytes.
  /// Waits up to `timeout` (default: the read timeout; `atl::infinite` for
  /// none). Queued output is written first. Errors: `errc::timeout` (a handler
  /// returning it as an error verdict gets `handle_timeout`), `errc::closed`
  /// (also when a stopping server gives up on the connection),
  /// `errc::system_error`. Emits `recv` (or `recv_error`).
  [[nodiscard]] caf::expected<std::string>
  recv(size_t length = 0, std::optional<std::chrono::milliseconds> timeout = {});

  /// Sends `length` bytes of the file at `path` from `offset` (`length` 0:
  /// up to the end of the file) with sendfile(2) on clear TCP. Returns the
  /// number of bytes that will be sent (written now or queued). Errors:
  /// `errc::system_error` (cannot open), `errc::invalid_option` (offset past
  /// the end), `errc::closed`. Emits `sendfile` (or `sendfile_error`).
  [[nodiscard]] caf::expected<uint64_t> sendfile(const std::string& path, uint64_t offset = 0,
                                                 uint64_t length = 0);

  /// Shuts the connection down in one or both directions; queued output is
  /// written first when shutting down writing. Emits `socket_shutdown`.
  [[nodiscard]] caf::error shutdown(shutdown_way way);

  /// Closes the socket. The connection ends after the current callback,
  /// without `handle_close`. Queued output is written first (bounded by the
  /// send timeout).
  [[nodiscard]] caf::error close();

  /// True once closed (by `close` or when the connection ends).
  bool closed() const noexcept {
    return !stream_ || stream_->fd() < 0;
  }

  // -- information -------------------------------------------------------------

  /// The remote address (taken when the connection started): on a listener
  /// with the PROXY protocol, the original client the header names (the
  /// load balancer's own address is `via`). Errors: `errc::closed`.
  [[nodiscard]] caf::expected<endpoint> peername() const;

  /// The PROXY header this connection started with (listeners with
  /// `server_options::proxy_protocol`). Errors: `errc::not_found` (the
  /// listener does not use the PROXY protocol).
  [[nodiscard]] caf::expected<proxy_header> proxy_info() const;

  /// The address the connection really comes from (the load balancer on a
  /// PROXY listener; otherwise the same as `peername`). Errors:
  /// `errc::closed`.
  [[nodiscard]] caf::expected<endpoint> via() const;

  /// The local address. Errors: `errc::closed`, `errc::system_error`.
  [[nodiscard]] caf::expected<endpoint> sockname() const;

  /// Bytes and calls each way so far (application data; TLS records not
  /// counted), the largest call each way, the averages (`recv_avg()`,
  /// `send_avg()`) and the bytes queued (`send_pend`): Thousand Island's
  /// `getstat` but `recv_dvi`.
  socket_stats getstat() const noexcept {
    auto out = stats_;
    out.send_pend = out_.pending_bytes();
    return out;
  }

  /// Reads a socket option. Errors: `errc::closed`, `errc::system_error`.
  [[nodiscard]] caf::expected<int> getopt(socket_option opt) const;

  /// Sets a socket option. Errors: `errc::closed`, `errc::invalid_option`,
  /// `errc::system_error`.
  [[nodiscard]] caf::error setopt(socket_option opt, int value);

  /// Reads several options (Thousand Island's `getopts`), in order. Errors:
  /// `errc::closed`, or the first option that cannot be read
  /// (`errc::system_error` naming it).
  [[nodiscard]] caf::expected<std::vector<socket_option_value>>
  getopts(const std::vector<socket_option>& opts) const;

  /// Sets several options (`setopts`), in order. Every value is checked
  /// first: one out of range fails with `errc::invalid_option` and nothing
  /// is set; a setsockopt failure stops there (`errc::system_error`; the
  /// options before it stay set). Errors also: `errc::closed`.
  [[nodiscard]] caf::error setopts(const std::vector<socket_option_value>& opts);

  /// Reads any integer option by level and name, as getsockopt(2) (e.g.
  /// `SOL_SOCKET`, `SO_ERROR`). Errors: `errc::closed`, `errc::system_error`.
  [[nodiscard]] caf::expected<int> getopt_raw(int level, int name) const;

  /// Sets any integer option by level and name, as setsockopt(2). Errors:
  /// `errc::closed`, `errc::system_error`.
  [[nodiscard]] caf::error setopt_raw(int level, int name, int value);

  /// True on TLS connections.
  bool secure() const noexcept;

  /// The ALPN protocol. Errors: `errc::protocol_not_negotiated`.
  [[nodiscard]] caf::expected<std::string> negotiated_protocol() const;

  /// TLS protocol, cipher and SNI name. Errors: `errc::not_secure`.
  [[nodiscard]] caf::expected<connection_info> connection_information() const;

  /// The peer certificate (DER). Errors: `errc::not_secure`, `errc::not_found`.
  [[nodiscard]] caf::expected<std::string> peercert() const;

  /// The connection's telemetry span.
  const telemetry::span& telemetry_span() const noexcept {
    return span_;
  }

  /// The current read timeout (`atl::infinite` for none).
  std::chrono::milliseconds read_timeout() const noexcept {
    return read_timeout_;
  }

private:
  friend class detail::socket_access;

  // -- used by the connection actors (through detail::socket_access) ------------

  /// The connection's span (the actor starts and stops it).
  telemetry::span& span() noexcept {
    return span_;
  }

  /// Replaces the read timeout (persistent verdicts).
  void set_read_timeout(std::chrono::milliseconds timeout) noexcept {
    read_timeout_ = timeout;
  }

  /// The transport.
  transport& stream() noexcept {
    return *stream_;
  }

  /// Swaps in another transport (upgrades).
  void replace_stream(std::unique_ptr<transport> next) noexcept {
    stream_ = std::move(next);
  }

  /// The transport's owner (for upgrades).
  std::unique_ptr<transport>& stream_ptr() noexcept {
    return stream_;
  }

  /// Counters, updated by the actor's reads.
  socket_stats& stats() noexcept {
    return stats_;
  }

  /// Pending output.
  output_queue& pending() noexcept {
    return out_;
  }

  /// Pending output.
  const output_queue& pending() const noexcept {
    return out_;
  }

  /// Writes queued output now, waiting for writability up to the send
  /// timeout (blocking). Used before blocking reads and when closing.
  [[nodiscard]] caf::error flush_blocking();

  /// Closes the transport without flushing (idempotent).
  void close_now() noexcept;

  /// Emits `event` (`send_error`, ...) with `error` and `monotonic_time`
  /// added to `m` (also for failed queued writes).
  void emit_error(const char* event, const caf::error& err, telemetry::fields m = {});

  /// Records the connection's PROXY header: `peername` becomes the client
  /// it names (if it names one).
  void set_proxy(proxy_header header);

  /// True once `set_proxy` ran.
  bool has_proxy_header() const noexcept {
    return proxy_ != nullptr;
  }

  /// True if `close` was called by the handler.
  bool closed_by_handler() const noexcept {
    return closed_by_handler_;
  }

  [[nodiscard]] caf::error send_iov(const iovec* iov, size_t count, size_t total);
  bool wait_ready(io_status status,
                  const std::optional<std::chrono::steady_clock::time_point>& deadline,
                  caf::error& why);
  [[nodiscard]] caf::error closed_error() const;

  std::unique_ptr<transport> stream_;
  output_queue out_;
  socket_stats stats_;
  telemetry::span span_;
  peer_address peer_; // as accept(2) gave it; text on demand
  std::unique_ptr<std::pair<proxy_header, endpoint>> proxy_; // the header, the real peer
  const connection_config* conf_; // one pointer: the socket's size counts per connection
  std::chrono::milliseconds read_timeout_;
  detail::socket_host* host_;
  bool closed_by_handler_ = false;
};

} // namespace atl
