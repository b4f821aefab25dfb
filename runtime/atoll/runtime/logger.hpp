// Logging: a process-wide sink, and Thousand Island's logger, a telemetry
// subscriber that turns events into log lines at four cumulative levels.
// The runtime knows no event names: the layer that emits events registers
// the level of each (`register_log_levels`).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>

#include "atoll/runtime/telemetry.hpp"

namespace atl {

/// Log levels, most severe first. Enabling a level enables all more severe
/// ones.
enum class log_level : uint8_t { error, info, debug, trace };

/// Returns "error", "info", "debug" or "trace".
std::string to_string(log_level level);

/// Parses "error", "info", "debug" or "trace"; nullopt for anything else.
std::optional<log_level> parse_log_level(std::string_view text);

/// One entry for a log sink.
struct log_record {
  /// When it was logged (wall clock).
  std::chrono::system_clock::time_point time;
  /// Its level.
  log_level level;
  /// The telemetry event it reports, or nullptr for a plain message.
  const telemetry::event* event;
  /// The text without time and level: for an event, its name, then
  /// `server=ADDRESS:PORT` and `peer=ADDRESS:PORT` where known, then its
  /// measurements and metadata as `key=value` (a `data` field in hex; a
  /// string with a space, `"` or `\` in double quotes, `"` and `\` escaped).
  std::string_view text;
};

/// Receives every log record. Called on the logging thread (often an actor's
/// scheduler thread), never by two threads at once; must not block for long.
using log_sink = std::function<void(const log_record&)>;

/// Replaces the process-wide sink. The default (also restored by an empty
/// function) writes one line per record to standard error:
/// `2026-12-02T13:40:01.123456Z atoll [debug] TEXT`. Thread-safe.
void set_log_sink(log_sink sink);

/// Writes a plain message (no event) to the sink. Thread-safe.
void log(log_level level, std::string_view message);

/// Renders a record as the default sink's line (without the newline).
std::string format_log_line(const log_record& rec);

/// Renders an event as `atoll.connection.stop duration=120 ... error=...`
/// (values as in `log_record::text`).
std::string format_event(const telemetry::event& ev);

/// The level of each event a layer emits, by exact event name.
using log_level_table = std::vector<std::pair<telemetry::event_name, log_level>>;

/// Registers the levels at which the logger reports events. The layer that
/// emits events calls it before it emits any (the server layer registers
/// Thousand Island's table). A name registered again takes the new level.
/// Thread-safe.
void register_log_levels(const log_level_table& table);

/// The registered level of an event, or nullopt: the logger does not report
/// events that no layer registered. Thread-safe.
std::optional<log_level> level_of(const telemetry::event_name& name);

/// Starts logging the events of `events` at `level` and every more severe
/// level (Thousand Island's `attach_logger`); may be called on a running
/// server. Each event is logged once, at its registered level, through the
/// sink, on the emitting thread.
/// Errors: `errc::already_present` if `level` itself is attached (more severe
/// levels already attached are kept as they are).
[[nodiscard]] caf::error attach_logger(telemetry::bus& events, log_level level);

/// Stops logging at `level` and every less severe level (Thousand Island's
/// `detach_logger`). Errors: `errc::not_found` if `level` is not attached
/// (less severe levels are detached all the same).
[[nodiscard]] caf::error detach_logger(telemetry::bus& events, log_level level);

/// The levels attached to `events`, most severe first.
std::vector<log_level> attached_log_levels(const telemetry::bus& events);

} // namespace atl
