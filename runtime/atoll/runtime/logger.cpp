#include "atoll/runtime/logger.hpp"

#include <array>
#include <iostream>
#include <map>
#include <mutex>

#include "atoll/runtime/error.hpp"

namespace atl {

std::string to_string(log_level level) {
  switch (level) {
    case log_level::error: return "error";
    case log_level::info: return "info";
    case log_level::debug: return "debug";
    case log_level::trace: return "trace";
  }
  return "?";
}

namespace {

struct sink_holder {
  std::mutex mtx;
  log_sink sink;
};

sink_holder& sinks() {
  static sink_holder instance;
  return instance;
}

void default_sink(log_level level, const std::string& message) {
  std::cerr << "atoll [" << to_string(level) << "] " << message << '\n';
}

} // namespace

void set_log_sink(log_sink sink) {
  auto& h = sinks();
  std::lock_guard<std::mutex> guard{h.mtx};
  h.sink = std::move(sink);
}

void log(log_level level, const std::string& message) {
  auto& h = sinks();
  std::lock_guard<std::mutex> guard{h.mtx};
  if (h.sink)
    h.sink(level, message);
  else
    default_sink(level, message);
}

std::string format_event(const telemetry::event& ev) {
  auto out = telemetry::to_string(ev.name);
  auto add = [&](const telemetry::fields& fs) {
    for (const auto& [key, val] : fs.items()) {
      out += ' ';
      out += key;
      out += '=';
      out += telemetry::to_string(val);
    }
  };
  add(ev.measurements);
  add(ev.metadata);
  return out;
}

log_level level_of(const telemetry::event_name& name) {
  if (name.size() < 3)
    return log_level::trace;
  const auto& span = name[name.size() - 2];
  const auto& what = name.back();
  auto is_error = what.find("error") != std::string::npos || what == "econnaborted"
                  || what == "einval" || what == "emfile" || what == "exception"
                  || what == "rate_limit_exceeded" || what == "packet_too_large";
  if (is_error)
    return log_level::error;
  if (span == "listener")
    return log_level::info;
  if (what == "start" || what == "stop")
    return log_level::debug;
  return log_level::trace;
}

namespace {

struct logger_registry {
  std::mutex mtx;
  // bus -> level -> subscription
  std::map<const telemetry::bus*, std::map<log_level, telemetry::subscription>> attached;
};

logger_registry& registry() {
  static logger_registry instance;
  return instance;
}

constexpr std::array<log_level, 4> all_levels{log_level::error, log_level::info,
                                              log_level::debug, log_level::trace};

} // namespace

caf::error attach_logger(telemetry::bus& events, log_level level) {
  auto& reg = registry();
  std::lock_guard<std::mutex> guard{reg.mtx};
  auto& levels = reg.attached[&events];
  if (levels.count(level) > 0)
    return caf::make_error(errc::already_present, "logger level " + to_string(level));
  // Cumulative: attaching a level attaches every more severe one too. Each
  // subscription logs exactly the events of its own level.
  for (auto l : all_levels) {
    if (l > level)
      break;
    if (levels.count(l) > 0)
      continue;
    levels[l] = events.attach({"atoll"}, [l](const telemetry::event& ev) {
      if (level_of(ev.name) == l)
        log(l, format_event(ev));
    });
  }
  return caf::none;
}

caf::error detach_logger(telemetry::bus& events, log_level level) {
  auto& reg = registry();
  std::lock_guard<std::mutex> guard{reg.mtx};
  auto i = reg.attached.find(&events);
  if (i == reg.attached.end() || i->second.count(level) == 0)
    return caf::make_error(errc::not_found, "logger level " + to_string(level));
  for (auto l : all_levels) {
    if (l < level)
      continue;
    if (auto j = i->second.find(l); j != i->second.end()) {
      events.detach(j->second);
      i->second.erase(j);
    }
  }
  if (i->second.empty())
    reg.attached.erase(i);
  return caf::none;
}

} // namespace atl
