// Internal: what Atoll's connection actors need of an `atl::socket` beyond
// the handler-facing API (its transport, output queue, counters and span),
// and what the socket needs of them. Not part of the public API.
#pragma once

#include <chrono>
#include <memory>
#include <utility>

#include <caf/error.hpp>

#include "atoll/handlers/socket.hpp"
#include "atoll/runtime/telemetry.hpp"

namespace atl::detail {

/// What the socket needs from the connection actor that owns it.
class socket_host {
public:
  virtual ~socket_host();

  /// Output is queued: watch for writability. `started` is true when the
  /// queue was empty before (the send timeout counts from then on; only
  /// bytes written later count as progress).
  virtual void output_pending(bool started) = 0;

  /// The handler closes the socket (`socket::close`): the fd is about to
  /// be closed, so its reactor registration must go first (else another
  /// connection could get the same fd number while it is still registered).
  virtual void releasing_fd() noexcept = 0;

  /// A send, sendfile, blocking flush or blocking `recv` moved bytes at
  /// once (outside the owner's socket events, e.g. from a message handler):
  /// a traffic report may be due (see `traffic_reports`). Called only when
  /// the connection's span has a subscriber.
  virtual void wrote() = 0;
};

/// The connection events that carry data (`async_recv`, `recv`, `send`)
/// and the periodic traffic report (`progress`), one `interest` each,
/// shared by all connections of a server: they are built only when a
/// subscriber wants them, not whenever the bus has any.
struct data_events {
  /// Watches `prefix + {"async_recv"}`, ... on `events`.
  data_events(const telemetry::bus* events, const telemetry::event_name& prefix)
    : async_recv(events, telemetry::join(prefix, "async_recv")),
      recv(events, telemetry::join(prefix, "recv")), send(events, telemetry::join(prefix, "send")),
      progress(events, telemetry::join(prefix, "progress")) {
  }

  telemetry::interest async_recv;
  telemetry::interest recv;
  telemetry::interest send;
  telemetry::interest progress;
};

/// The connection actors' access to a socket's internals. Runs on the
/// socket's connection actor, as every socket call.
class socket_access {
public:
  /// The key to `socket`'s constructor.
  static socket_key key() noexcept {
    return {};
  }

  /// Gives a socket made without a connection (`socket(socket_key)`) its
  /// connection. `conf`, the server's connection settings (socket options,
  /// data events, when a stopping server gives up), must outlive the socket;
  /// `host` is the connection actor driving it.
  static void open(socket& sock, std::unique_ptr<transport> stream, peer_address peer,
                   const connection_config& conf, std::chrono::milliseconds read_timeout,
                   socket_host* host) noexcept {
    sock.stream_ = std::move(stream);
    sock.peer_ = std::move(peer);
    sock.conf_ = &conf;
    sock.read_timeout_ = read_timeout;
    sock.host_ = host;
  }

  /// The connection's span (the actor starts and stops it).
  static telemetry::span& span(socket& sock) noexcept {
    return sock.span();
  }

  /// Replaces the read timeout (persistent verdicts).
  static void set_read_timeout(socket& sock, std::chrono::milliseconds timeout) noexcept {
    sock.set_read_timeout(timeout);
  }

  /// The transport.
  static transport& stream(socket& sock) noexcept {
    return sock.stream();
  }

  /// Swaps in another transport (upgrades).
  static void replace_stream(socket& sock, std::unique_ptr<transport> next) noexcept {
    sock.replace_stream(std::move(next));
  }

  /// The transport's owner (for upgrades).
  static std::unique_ptr<transport>& stream_ptr(socket& sock) noexcept {
    return sock.stream_ptr();
  }

  /// Counters, updated by the actor's reads.
  static socket_stats& stats(socket& sock) noexcept {
    return sock.stats();
  }

  /// Pending output.
  static output_queue& pending(socket& sock) noexcept {
    return sock.pending();
  }

  /// Pending output.
  static const output_queue& pending(const socket& sock) noexcept {
    return sock.pending();
  }

  /// Writes queued output now, waiting for writability up to the send
  /// timeout (blocking).
  [[nodiscard]] static caf::error flush_blocking(socket& sock) {
    return sock.flush_blocking();
  }

  /// Closes the transport without flushing (idempotent).
  static void close_now(socket& sock) noexcept {
    sock.close_now();
  }

  /// Emits `event` (`send_error`, ...) with `error` and `monotonic_time`
  /// added to `m`.
  static void emit_error(socket& sock, const char* event, const caf::error& err,
                         telemetry::fields m = {}) {
    sock.emit_error(event, err, std::move(m));
  }

  /// Records the connection's PROXY header.
  static void set_proxy(socket& sock, proxy_header header) {
    sock.set_proxy(std::move(header));
  }

  /// True once `set_proxy` ran.
  static bool has_proxy_header(const socket& sock) noexcept {
    return sock.has_proxy_header();
  }

  /// True if the handler called `socket::close`.
  static bool closed_by_handler(const socket& sock) noexcept {
    return sock.closed_by_handler();
  }
};

} // namespace atl::detail
