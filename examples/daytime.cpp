// daytime: the Daytime protocol (RFC 867): sends the current date and time
// as a line, then closes.
//
// Usage: daytime [--port=N] [--host=ADDR] [--utc | --local-time] ...
//   nc 127.0.0.1 PORT   # e.g. "Saturday, November 21, 2026 10:15:02 UTC"
#include <ctime>

#include "example_common.hpp"

namespace {

class daytime_config : public example::server_config {
public:
  bool utc = false;
  bool local_time = false;

  daytime_config() {
    opt_group{custom_options_, "global"}
      .add(utc, "utc", "report UTC (the default)")
      .add(local_time, "local-time", "report local time (zone from TZ) instead of UTC");
  }

protected:
  std::optional<std::string> check_options() const override {
    if (auto problem = example::server_config::check_options())
      return problem;
    if (utc && local_time)
      return std::string{"--utc and --local-time exclude each other"};
    return std::nullopt;
  }
};

/// The current time as "Weekday, Month D, YYYY HH:MM:SS ZONE".
std::string daytime(bool utc) {
  std::time_t now = std::time(nullptr);
  std::tm parts{};
  if (utc)
    gmtime_r(&now, &parts);
  else
    localtime_r(&now, &parts);
  char buf[128];
  auto n = std::strftime(buf, sizeof(buf), utc ? "%A, %B %e, %Y %H:%M:%S UTC" : "%A, %B %e, %Y %H:%M:%S %Z",
                         &parts);
  return std::string{buf, n} + "\r\n";
}

class daytime_handler : public atl::handler {
public:
  explicit daytime_handler(bool utc) : utc_(utc) {
  }

  atl::verdict handle_connection(socket& sock) override {
    sock.send(daytime(utc_));
    return atl::verdict::close();
  }

private:
  bool utc_;
};

} // namespace

int main(int argc, char** argv) {
  return example::main_of<daytime_config>(
    argc, argv, [](caf::actor_system&, const daytime_config& cfg, atl::server_options& opts) {
      opts.set_handler<daytime_handler>(!cfg.local_time);
      opts.name = "daytime";
      return true;
    });
}
