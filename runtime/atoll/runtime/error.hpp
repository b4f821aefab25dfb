// Atoll's error codes, registered as the CAF error category "atoll".
#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace atl {

/// Error codes of the "atoll" CAF error category. Every fallible Atoll function
/// returns `caf::expected<T>` or `caf::error` carrying one of these codes; the
/// error's context holds details such as a child id, an option name or errno text.
enum class errc : uint8_t {
  // -- supervision -----------------------------------------------------------
  /// A child's start function failed or the child died before it was started.
  start_failed = 1,
  /// A supervisor saw more than `max_restarts` restarts within `max_seconds`.
  restart_intensity_reached,
  /// A child with this id already exists (and is not running).
  already_present,
  /// A child with this id already exists and is running.
  already_started,
  /// No child with this id or handle.
  not_found,
  /// The child is running; the operation needs a terminated child.
  running,
  /// The operation is not supported by the supervisor's strategy.
  unsupported_operation,
  /// A dynamic supervisor already runs `max_children` children.
  max_children,
  /// The supervisor is shutting down and refuses new work.
  shutting_down,
  /// Invalid supervisor flags or child specification.
  invalid_spec,

  // -- reactor ---------------------------------------------------------------
  /// The reactor was stopped or could not be created.
  reactor_unavailable,
  /// Registering or re-arming a file descriptor failed (context: errno text).
  registration_failed,

  // -- options and start-up --------------------------------------------------
  /// An option has an invalid value (context: option name and reason).
  invalid_option,
  /// A required option is missing (context: option name).
  missing_option,

  // -- sockets ---------------------------------------------------------------
  /// The address is already in use (EADDRINUSE).
  address_in_use,
  /// Permission denied while binding or connecting (EACCES).
  access_denied,
  /// The address cannot be resolved or parsed.
  invalid_address,
  /// The socket or listener is closed.
  closed,
  /// An operation did not finish in time.
  timeout,
  /// Any other operating-system error (context: the call and errno text).
  system_error,
  /// The connection is not secured with TLS.
  not_secure,
  /// No application protocol was negotiated (ALPN).
  protocol_not_negotiated,
  /// The transport cannot be upgraded as requested.
  unsupported_upgrade,
  /// A TLS operation failed (context: OpenSSL's reason).
  tls_error,
  /// The handler raised an exception (context: its what()).
  handler_exception,
  /// The handler returned an error verdict (context: its reason).
  handler_error,
  /// The peer closed the connection.
  peer_closed,
  /// Too many connections: the acceptor gave up after its retries.
  too_many_connections,
  /// The server is suspended: no listener is running.
  suspended,
  /// A send would queue more output than the connection's limit
  /// (`tcp_options::max_queued_output`).
  output_limit,
  /// A PROXY protocol header is missing, malformed or of a version the
  /// listener does not accept (context: what is wrong).
  proxy_header,
  /// The connection's source may not send PROXY headers (not trusted).
  untrusted_source,
  /// The client's address already has the most connections allowed per
  /// source.
  source_limit,
  /// A blocking call was made on a thread that the call itself would have
  /// to wait for (the only worker of the actor system's scheduler, inside an
  /// actor): use the asynchronous form (a request) instead.
  would_deadlock,
  /// The operation is not allowed to the one asking (e.g. a remote node
  /// asking to stop a server whose inspector has no control).
  not_permitted,
};

} // namespace atl

CAF_ERROR_CODE_ENUM(atl::errc, "atoll")

namespace atl {

/// True if `err` belongs to the "atoll" category and carries `code`.
/// Usable as `err == errc::timeout`.
inline bool operator==(const caf::error& err, errc code) noexcept {
  return static_cast<bool>(err) && err.category() == caf::atom("atoll") &&
         err.code() == static_cast<uint8_t>(code);
}

/// Negation of `err == code`.
inline bool operator!=(const caf::error& err, errc code) noexcept {
  return !(err == code);
}

/// Returns the name of an error code, e.g. "restart_intensity_reached".
/// Thread-safe; usable from any thread.
std::string to_string(errc code);

/// Renders any `caf::error` as readable text. Errors of the "atoll" category
/// are shown as `atoll error <code>: <context>`; other categories fall back to CAF's
/// rendering (e.g. `system_error(runtime_error)`). Thread-safe.
std::string describe(const caf::error& err);

/// The context of an error of the "atoll" category: what `describe` shows
/// after `atoll error <code>: ` (empty if there is none), e.g. to wrap it in
/// another error's text. Other errors (and none): `describe(err)`.
/// Thread-safe.
std::string error_context(const caf::error& err);

/// Builds an `errc::system_error` (or a more specific code for well-known
/// errno values such as EADDRINUSE) whose context names `what` and the errno
/// text. Thread-safe.
[[nodiscard]] caf::error make_system_error(const char* what, int errno_value);

/// Prepares `cfg` for Atoll's runtime alone (programs that use the generic
/// supervisor without servers; servers: `atl::register_types`, which calls
/// this): loads Atoll's scheduler (`atl::io_scheduler`, whose workers also
/// poll the sockets), registers the "atoll" error category (renderer) and
/// the runtime's message types (tree snapshots, scheduler stats), so that
/// `sys.render(err)` prints Atoll errors and snapshots can cross nodes. Call it once per
/// `actor_system_config`, before constructing the actor system.
void register_runtime_types(caf::actor_system_config& cfg);

} // namespace atl
