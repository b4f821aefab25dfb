// Logging: a process-wide sink, and Thousand Island's logger that turns
// telemetry events into log lines at four cumulative levels.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <caf/error.hpp>

#include "atoll/runtime/telemetry.hpp"

namespace atl {

/// Log levels, most severe first. Enabling a level enables all more severe
/// ones.
enum class log_level : uint8_t { error, info, debug, trace };

/// Returns "error", "info", "debug" or "trace".
std::string to_string(log_level level);

/// Receives every log line. Called on the logging thread (often an actor's
/// scheduler thread); must be thread-safe and must not block for long.
using log_sink = std::function<void(log_level, const std::string&)>;

/// Replaces the process-wide sink (default: one line per message on stderr,
/// "atoll [level] message"). An empty function restores the default.
/// Thread-safe.
void set_log_sink(log_sink sink);

/// Writes one line to the sink. Thread-safe.
void log(log_level level, const std::string& message);

/// Renders an event as "atoll.connection.stop duration=120 ... error=..."
std::string format_event(const telemetry::event& ev);

/// The level at which the telemetry logger reports an event name
/// (Thousand Island's mapping): acceptor and I/O errors at error, listener
/// start/stop at info, acceptor and connection start/stop at debug, all other
/// connection events at trace.
log_level level_of(const telemetry::event_name& name);

/// Starts logging the events of `events` at `level` and every more severe
/// level (Thousand Island's `attach_logger`). Can be called on a running
/// server. Errors: `errc::already_present` if that level is attached.
caf::error attach_logger(telemetry::bus& events, log_level level);

/// Stops logging at `level` and every less severe level (Thousand Island's
/// `detach_logger`). Errors: `errc::not_found` if that level is not attached.
caf::error detach_logger(telemetry::bus& events, log_level level);

} // namespace atl
