// An adapter from Atoll's log sink to spdlog (Debian's libspdlog-dev).
// Header-only and not in the umbrella header: include it where spdlog is
// available and link spdlog::spdlog.
#pragma once

#include <memory>
#include <utility>

#include <spdlog/spdlog.h>

#include "atoll/runtime/logger.hpp"

namespace atl {

/// The spdlog level of an Atoll log level: error -> err, info -> info,
/// debug -> debug, trace -> trace.
inline spdlog::level::level_enum to_spdlog_level(log_level level) {
  switch (level) {
    case log_level::error: return spdlog::level::err;
    case log_level::info: return spdlog::level::info;
    case log_level::debug: return spdlog::level::debug;
    case log_level::trace: return spdlog::level::trace;
  }
  return spdlog::level::info;
}

/// A log sink that hands every record's text to `logger` at the matching
/// level, with the record's time (spdlog's own pattern, filters and sinks
/// apply; its level filter comes on top of the attached Atoll levels).
/// Install it with `set_log_sink(spdlog_log_sink(logger))`. Runs on the
/// logging thread, like any sink.
inline log_sink spdlog_log_sink(std::shared_ptr<spdlog::logger> logger) {
  return [logger{std::move(logger)}](const log_record& rec) {
    logger->log(rec.time, spdlog::source_loc{}, to_spdlog_level(rec.level), rec.text);
  };
}

} // namespace atl
