// What a handler callback tells the connection to do next (Thousand Island's
// handler results: continue, close, error, switch transport).
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>

#include "atoll/transports/tcp_options.hpp"
#include "atoll/transports/transport.hpp"

namespace atl {

/// A timeout that replaces the connection's read timeout from now on
/// (Thousand Island's `{:persistent, timeout}`).
struct persistent {
  /// The new read timeout (`atl::infinite` for none).
  std::chrono::milliseconds timeout;
};

/// Asks for `handler::handle_continue(arg)` right after the callback, before
/// any other message (Thousand Island's `{:continue, arg}`).
struct continue_step {
  /// Passed to `handle_continue`.
  caf::message arg;
};

/// Turns the connection's clear transport into another one in place (e.g.
/// STARTTLS). Receives the current transport; returns the new one, whose
/// `handshake` the connection then drives, or an error.
using transport_upgrade =
  std::function<caf::expected<std::unique_ptr<transport>>(std::unique_ptr<transport>& current)>;

/// The result of `handle_connection`, `handle_data` and `handle_continue`.
/// Cheap to copy. Build it with the static factories.
class verdict {
public:
  /// What to do.
  enum class kind : uint8_t {
    /// Keep the connection and wait for data (`{:continue, state}`).
    proceed,
    /// Close and call `handle_close` (`{:close, state}`).
    close,
    /// Close and call `handle_error` (`{:error, reason, state}`); a reason
    /// equal to `errc::timeout` calls `handle_timeout` instead.
    error,
    /// Upgrade the transport, then proceed (`{:switch_transport, ...}`).
    switch_transport,
    /// Keep the connection but read nothing until the handler applies
    /// another verdict (flow control; see `verdict::hold`).
    hold,
  };

  /// How the read timeout changes when proceeding.
  enum class timeout_kind : uint8_t {
    /// Use the connection's read timeout.
    standard,
    /// Use `timeout()` once; the next verdict reverts to the read timeout.
    once,
    /// Replace the read timeout with `timeout()`.
    persistent,
  };

  /// Keep the connection, waiting up to the read timeout for data.
  static verdict proceed() {
    return verdict{kind::proceed};
  }

  /// Keep the connection, waiting up to `once` for the next data
  /// (`atl::infinite`: no timeout); later waits use the read timeout again.
  static verdict proceed(std::chrono::milliseconds once) {
    verdict v{kind::proceed};
    v.timeout_kind_ = timeout_kind::once;
    v.timeout_ = once;
    return v;
  }

  /// Keep the connection and replace its read timeout.
  static verdict proceed(persistent p) {
    verdict v{kind::proceed};
    v.timeout_kind_ = timeout_kind::persistent;
    v.timeout_ = p.timeout;
    return v;
  }

  /// Keep the connection and call `handle_continue(step.arg)` first.
  static verdict proceed(continue_step step) {
    verdict v{kind::proceed};
    v.step_ = std::make_shared<caf::message>(std::move(step.arg));
    return v;
  }

  /// Close the connection; `handle_close` runs.
  static verdict close() {
    return verdict{kind::close};
  }

  /// End the connection with `reason`; `handle_error` (or `handle_timeout`
  /// for `errc::timeout`) runs.
  static verdict error(caf::error reason) {
    verdict v{kind::error};
    v.error_ = std::move(reason);
    return v;
  }

  /// Keep the connection but read nothing more from the client until the
  /// handler applies another verdict with `handler::apply` (from one of its
  /// message handlers): flow control, e.g. while another actor works through
  /// what was read, so that a fast client cannot queue unbounded work in
  /// other actors' mailboxes. While held there is no read timeout (the client
  /// is not being asked for anything); output, the send timeout, mailbox
  /// messages and a stop (which then reads nothing more) go on as usual.
  /// Client bytes wait in the kernel's socket buffer, and TCP's flow control
  /// slows the client. TCP connections only: a UDP handler that returns it
  /// ends with `errc::unsupported_operation`.
  static verdict hold() {
    return verdict{kind::hold};
  }

  /// Upgrade the transport in place, then proceed as `then` says (its kind
  /// must be `proceed`; default: with the read timeout). A failed upgrade
  /// calls `handle_error`.
  static verdict switch_transport(transport_upgrade upgrade, verdict then = proceed()) {
    then.kind_ = kind::switch_transport;
    then.upgrade_ = std::make_shared<transport_upgrade>(std::move(upgrade));
    return then;
  }

  /// The kind.
  kind which() const noexcept {
    return kind_;
  }

  /// The timeout variant.
  timeout_kind timeout_variant() const noexcept {
    return timeout_kind_;
  }

  /// The timeout of the `once` and `persistent` variants.
  std::chrono::milliseconds timeout() const noexcept {
    return timeout_;
  }

  /// The continue step's argument, or nullptr.
  const caf::message* step() const noexcept {
    return step_.get();
  }

  /// The error reason (kind `error`).
  const caf::error& reason() const noexcept {
    return error_;
  }

  /// The upgrade (kind `switch_transport`), or nullptr.
  const transport_upgrade* upgrade() const noexcept {
    return upgrade_.get();
  }

private:
  explicit verdict(kind k) noexcept : kind_(k) {
  }

  kind kind_;
  timeout_kind timeout_kind_ = timeout_kind::standard;
  std::chrono::milliseconds timeout_{0};
  std::shared_ptr<caf::message> step_;
  caf::error error_;
  std::shared_ptr<transport_upgrade> upgrade_;
};

} // namespace atl
