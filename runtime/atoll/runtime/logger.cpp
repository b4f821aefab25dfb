#include "atoll/runtime/logger.hpp"

#include <array>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

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

std::optional<log_level> parse_log_level(std::string_view text) {
  for (auto l : {log_level::error, log_level::info, log_level::debug, log_level::trace})
    if (text == to_string(l))
      return l;
  return std::nullopt;
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

void write(const log_record& rec) {
  auto& h = sinks();
  std::lock_guard<std::mutex> guard{h.mtx};
  if (h.sink) {
    h.sink(rec);
    return;
  }
  auto line = format_log_line(rec);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

/// Appends `text` in double quotes, with `"` and `\` escaped by a `\`.
void append_quoted(std::string& out, const std::string& text) {
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '"';
}

/// Appends ` key=value` for each field; a `data` field in hex, a string
/// with a space, quote or backslash in quotes.
void append_fields(std::string& out, const telemetry::fields& fs) {
  for (const auto& [key, val] : fs.items()) {
    out += ' ';
    out += key;
    out += '=';
    auto text = std::get_if<std::string>(&val);
    if (text == nullptr)
      out += telemetry::to_string(val);
    else if (key == "data")
      out += telemetry::to_hex(*text);
    else if (text->find_first_of(" \"\\") == std::string::npos)
      out += *text;
    else
      append_quoted(out, *text);
  }
}

} // namespace

void set_log_sink(log_sink sink) {
  auto& h = sinks();
  std::lock_guard<std::mutex> guard{h.mtx};
  h.sink = std::move(sink);
}

void log(log_level level, std::string_view message) {
  write(log_record{std::chrono::system_clock::now(), level, nullptr, message});
}

std::string format_log_line(const log_record& rec) {
  using namespace std::chrono;
  auto since_epoch = rec.time.time_since_epoch();
  auto secs = duration_cast<seconds>(since_epoch);
  auto micros = duration_cast<microseconds>(since_epoch - secs).count();
  std::time_t t = secs.count();
  std::tm utc{};
  gmtime_r(&t, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:06d}Z atoll [{}] {}", stamp, micros, to_string(rec.level), rec.text);
}

std::string format_event(const telemetry::event& ev) {
  auto out = telemetry::to_string(ev.name);
  append_fields(out, ev.measurements);
  append_fields(out, ev.metadata);
  return out;
}

// -- level table ---------------------------------------------------------------

namespace {

struct level_registry {
  std::mutex mtx;
  std::map<telemetry::event_name, log_level> levels;
};

level_registry& levels() {
  static level_registry instance;
  return instance;
}

} // namespace

namespace {

/// Every registered event and its level.
std::map<telemetry::event_name, log_level> registered_levels() {
  auto& reg = levels();
  std::lock_guard<std::mutex> guard{reg.mtx};
  return reg.levels;
}

void resubscribe_loggers();

} // namespace

void register_log_levels(const log_level_table& table) {
  {
    auto& reg = levels();
    std::lock_guard<std::mutex> guard{reg.mtx};
    for (const auto& [name, level] : table)
      reg.levels[name] = level;
  }
  // Loggers attached before subscribe to the new names too.
  resubscribe_loggers();
}

std::optional<log_level> level_of(const telemetry::event_name& name) {
  auto& reg = levels();
  std::lock_guard<std::mutex> guard{reg.mtx};
  if (auto i = reg.levels.find(name); i != reg.levels.end())
    return i->second;
  return std::nullopt;
}

// -- the telemetry logger ------------------------------------------------------

namespace {

constexpr std::array<log_level, 4> all_levels{log_level::error, log_level::info,
                                              log_level::debug, log_level::trace};

constexpr uint8_t bit(log_level l) {
  return static_cast<uint8_t>(1u << static_cast<unsigned>(l));
}

/// One bus's logger: one subscription per event it needs (the registered
/// events of its levels, and every registered start and stop, to learn the
/// server address of listener spans and their descendants and the peer of
/// connection spans, named on every line). It does not subscribe to what
/// it would not log: connections then build no data events for it below
/// level trace.
struct bus_logger {
  explicit bus_logger(telemetry::bus* bus) : events(bus) {
  }

  struct labels {
    std::string server;
    std::string peer;
  };

  telemetry::bus* events;
  std::atomic<uint8_t> mask{0};
  // Its subscriptions by event name (guarded by the logger registry's lock).
  std::map<telemetry::event_name, telemetry::subscription> subs;
  std::mutex mtx;
  std::unordered_map<uint64_t, labels> spans;

  static std::string address_of(const telemetry::fields& md, const char* addr_key,
                                const char* port_key) {
    auto addr = md.find(addr_key);
    if (addr == nullptr)
      return {};
    auto text = telemetry::to_string(*addr);
    auto port = md.find(port_key);
    if (port == nullptr || text.rfind("unix:", 0) == 0 || text.empty())
      return text;
    if (text.find(':') != std::string::npos)
      text = "[" + text + "]";
    return text + ":" + telemetry::to_string(*port);
  }

  /// Learns from a start event, returns the labels of the event's span.
  labels track(const telemetry::event& ev) {
    auto ctx = ev.metadata.get_or<uint64_t>("telemetry_span_context", 0);
    if (ctx == 0)
      return {};
    std::lock_guard<std::mutex> guard{mtx};
    if (ev.name.empty() || ev.name.back() != "start") {
      auto i = spans.find(ctx);
      if (i == spans.end())
        return {};
      auto result = i->second;
      if (ev.name.back() == "stop")
        spans.erase(i);
      return result;
    }
    labels l;
    auto parent = ev.metadata.get_or<uint64_t>("parent_telemetry_span_context", 0);
    if (auto i = spans.find(parent); parent != 0 && i != spans.end())
      l.server = i->second.server;
    if (auto local = address_of(ev.metadata, "local_address", "local_port"); !local.empty())
      l.server = std::move(local);
    l.peer = address_of(ev.metadata, "remote_address", "remote_port");
    if (!l.server.empty() || !l.peer.empty())
      spans[ctx] = l;
    return l;
  }

  void on_event(const telemetry::event& ev) {
    auto l = track(ev);
    auto level = level_of(ev.name);
    if (!level || (mask.load(std::memory_order_relaxed) & bit(*level)) == 0)
      return;
    auto text = telemetry::to_string(ev.name);
    if (!l.server.empty())
      text += " server=" + l.server;
    if (!l.peer.empty())
      text += " peer=" + l.peer;
    append_fields(text, ev.measurements);
    append_fields(text, ev.metadata);
    write(log_record{std::chrono::system_clock::now(), *level, &ev, text});
  }

  /// Subscribes to what the mask and the registered levels ask for, and to
  /// nothing else (all of it when the mask is empty). Called with the
  /// logger registry's lock held.
  void resubscribe() {
    auto m = mask.load();
    std::set<telemetry::event_name> wanted;
    if (m != 0)
      for (const auto& [name, level] : registered_levels())
        if ((m & bit(level)) != 0 || name.back() == "start" || name.back() == "stop")
          wanted.insert(name);
    for (auto i = subs.begin(); i != subs.end();) {
      if (wanted.count(i->first) == 0) {
        events->detach(i->second);
        i = subs.erase(i);
      } else {
        ++i;
      }
    }
    for (const auto& name : wanted)
      if (subs.count(name) == 0)
        subs.emplace(name, events->attach(name, [this](const telemetry::event& ev) {
                       on_event(ev);
                     }));
  }
};

struct logger_registry {
  std::mutex mtx;
  std::map<const telemetry::bus*, std::shared_ptr<bus_logger>> attached;
};

logger_registry& registry() {
  // Never destroyed: a bus that outlives it (the default bus, a static)
  // still reaches it from its destructor at exit.
  static auto* instance = new logger_registry;
  return *instance;
}

void resubscribe_loggers() {
  auto& reg = registry();
  std::lock_guard<std::mutex> guard{reg.mtx};
  for (auto& [bus, lg] : reg.attached)
    lg->resubscribe();
}

} // namespace

caf::error attach_logger(telemetry::bus& events, log_level level) {
  auto& reg = registry();
  std::lock_guard<std::mutex> guard{reg.mtx};
  auto i = reg.attached.find(&events);
  if (i == reg.attached.end()) {
    // Forgotten with the bus (whose subscriptions go with it): a bus made
    // later at the same address has no logger, and nothing resubscribes
    // on a bus that is gone. Registered first, so that no entry exists
    // without it.
    events.on_destroy([&reg, key = &events] {
      std::lock_guard<std::mutex> lock{reg.mtx};
      reg.attached.erase(key);
    });
    i = reg.attached.emplace(&events, std::make_shared<bus_logger>(&events)).first;
  }
  auto& lg = i->second;
  auto mask = lg->mask.load();
  if ((mask & bit(level)) != 0)
    return caf::make_error(errc::already_present, "logger level " + to_string(level));
  for (auto l : all_levels)
    if (l <= level)
      mask |= bit(l);
  lg->mask = mask;
  lg->resubscribe();
  return caf::none;
}

caf::error detach_logger(telemetry::bus& events, log_level level) {
  caf::error result;
  auto& reg = registry();
  std::lock_guard<std::mutex> guard{reg.mtx};
  auto i = reg.attached.find(&events);
  if (i == reg.attached.end())
    return caf::make_error(errc::not_found, "logger level " + to_string(level));
  auto mask = i->second->mask.load();
  if ((mask & bit(level)) == 0)
    result = caf::make_error(errc::not_found, "logger level " + to_string(level));
  for (auto l : all_levels)
    if (l >= level)
      mask &= static_cast<uint8_t>(~bit(l));
  i->second->mask = mask;
  // Detaching waits for handlers that run now (they take no lock of ours
  // but the sink's and the level table's).
  i->second->resubscribe(); // with mask 0: no subscription left
  return result;
}

std::vector<log_level> attached_log_levels(const telemetry::bus& events) {
  auto& reg = registry();
  std::lock_guard<std::mutex> guard{reg.mtx};
  std::vector<log_level> result;
  auto i = reg.attached.find(&events);
  if (i == reg.attached.end())
    return result;
  for (auto l : all_levels)
    if ((i->second->mask.load() & bit(l)) != 0)
      result.push_back(l);
  return result;
}

} // namespace atl
