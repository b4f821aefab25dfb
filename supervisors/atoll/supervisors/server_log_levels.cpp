#include "atoll/supervisors/server_log_levels.hpp"

namespace atl {

const log_level_table& server_log_levels() {
  static const log_level_table table = [] {
    log_level_table t;
    auto add = [&t](const char* span, std::initializer_list<const char*> names, log_level l) {
      for (auto name : names)
        t.emplace_back(telemetry::event_name{"atoll", span, name}, l);
    };
    add("acceptor", {"spawn_error", "econnaborted", "einval", "emfile", "accept_error"},
        log_level::error);
    add("listener", {"start", "stop"}, log_level::info);
    add("acceptor", {"start", "stop"}, log_level::debug);
    add("connection", {"start", "stop"}, log_level::debug);
    add("connection",
        {"ready", "async_recv", "recv", "recv_error", "send", "send_error", "sendfile",
         "sendfile_error", "socket_shutdown"},
        log_level::trace);
    return t;
  }();
  return table;
}

} // namespace atl
