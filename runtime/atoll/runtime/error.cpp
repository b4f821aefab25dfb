#include "atoll/runtime/error.hpp"

#include <cerrno>
#include <cstring>

#include <caf/actor_system_config.hpp>
#include <caf/config_option_adder.hpp>
#include <caf/config_option_set.hpp>
#include <caf/timespan.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/message.hpp>

#include "atoll/runtime/io_scheduler.hpp"
#include "atoll/runtime/types.hpp"

namespace atl {

std::string to_string(errc code) {
  switch (code) {
    case errc::start_failed: return "start_failed";
    case errc::restart_intensity_reached: return "restart_intensity_reached";
    case errc::already_present: return "already_present";
    case errc::already_started: return "already_started";
    case errc::not_found: return "not_found";
    case errc::running: return "running";
    case errc::unsupported_operation: return "unsupported_operation";
    case errc::max_children: return "max_children";
    case errc::shutting_down: return "shutting_down";
    case errc::invalid_spec: return "invalid_spec";
    case errc::reactor_unavailable: return "reactor_unavailable";
    case errc::registration_failed: return "registration_failed";
    case errc::invalid_option: return "invalid_option";
    case errc::missing_option: return "missing_option";
    case errc::address_in_use: return "address_in_use";
    case errc::access_denied: return "access_denied";
    case errc::invalid_address: return "invalid_address";
    case errc::closed: return "closed";
    case errc::timeout: return "timeout";
    case errc::system_error: return "system_error";
    case errc::not_secure: return "not_secure";
    case errc::protocol_not_negotiated: return "protocol_not_negotiated";
    case errc::unsupported_upgrade: return "unsupported_upgrade";
    case errc::tls_error: return "tls_error";
    case errc::handler_exception: return "handler_exception";
    case errc::handler_error: return "handler_error";
    case errc::peer_closed: return "peer_closed";
    case errc::too_many_connections: return "too_many_connections";
    case errc::suspended: return "suspended";
    case errc::output_limit: return "output_limit";
    case errc::proxy_header: return "proxy_header";
    case errc::untrusted_source: return "untrusted_source";
    case errc::source_limit: return "source_limit";
    case errc::would_deadlock: return "would_deadlock";
    case errc::not_permitted: return "not_permitted";
  }
  return "unknown_error(" + std::to_string(static_cast<int>(code)) + ")";
}

namespace {

// Joins the context message's elements: strings verbatim, anything else through
// CAF's deep_to_string.
std::string render_context(const caf::message& ctx) {
  std::string out;
  for (size_t i = 0; i < ctx.size(); ++i) {
    if (!out.empty())
      out += ": ";
    if (ctx.match_element<std::string>(i))
      out += ctx.get_as<std::string>(i);
    else
      out += ctx.stringify(i);
  }
  return out;
}

std::string render_atoll(uint8_t code, const caf::message& ctx) {
  std::string out = "atoll error " + to_string(static_cast<errc>(code));
  auto details = render_context(ctx);
  if (!details.empty()) {
    out += ": ";
    out += details;
  }
  return out;
}

} // namespace

std::string describe(const caf::error& err) {
  if (!err)
    return "none";
  if (err.category() == caf::atom("atoll"))
    return render_atoll(err.code(), err.context());
  return caf::to_string(err);
}

std::string error_context(const caf::error& err) {
  if (err && err.category() == caf::atom("atoll"))
    return render_context(err.context());
  return describe(err);
}

caf::error make_system_error(const char* what, int errno_value) {
  std::string text = std::string{what} + ": " + std::strerror(errno_value);
  switch (errno_value) {
    case EADDRINUSE:
      return caf::make_error(errc::address_in_use, std::move(text));
    case EACCES:
    case EPERM:
      return caf::make_error(errc::access_denied, std::move(text));
    case EADDRNOTAVAIL:
      return caf::make_error(errc::invalid_address, std::move(text));
    case ETIMEDOUT:
      return caf::make_error(errc::timeout, std::move(text));
    default:
      return caf::make_error(errc::system_error, std::move(text));
  }
}

namespace {

/// Reaches `actor_system_config::custom_options_` (protected; CAF 0.17 has
/// no public way to declare an option on a config it did not make).
struct option_access : caf::actor_system_config {
  static caf::config_option_set& options(caf::actor_system_config& cfg) {
    return cfg.*(&option_access::custom_options_);
  }
};

/// Declares the io_scheduler's own settings (so that `cfg.set`, config
/// files and the command line take them), unless the program already did.
void declare_scheduler_options(caf::actor_system_config& cfg) {
  auto& opts = option_access::options(cfg);
  if (opts.qualified_name_lookup("scheduler.release-memory-after") == nullptr)
    caf::config_option_adder{opts, "scheduler"}.add<caf::timespan>(
      "release-memory-after",
      "give free heap memory back to the OS once the workers rested this long after work "
      "(default: 100ms; 0s: never)");
  if (opts.qualified_name_lookup("scheduler.spinning-workers") == nullptr)
    caf::config_option_adder{opts, "scheduler"}.add<int64_t>(
      "spinning-workers",
      "workers that may busy-wait at once when out of work, before they sleep "
      "(default: all; 0: none)");
  if (opts.qualified_name_lookup("scheduler.compaction") == nullptr)
    caf::config_option_adder{opts, "scheduler"}.add<bool>(
      "compaction",
      "run a light load on fewer workers, adding workers as the load grows "
      "(default: true)");
}

} // namespace

void register_runtime_types(caf::actor_system_config& cfg) {
  declare_scheduler_options(cfg);
  cfg.add_error_category(caf::atom("atoll"),
                         [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                           return render_atoll(code, ctx);
                         });
  detail::add_runtime_message_types(cfg);
  cfg.load<io_scheduler>();
}

} // namespace atl
