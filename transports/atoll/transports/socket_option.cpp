#include "atoll/transports/socket_option.hpp"

#include <cerrno>
#include <climits>

#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "atoll/runtime/error.hpp"

namespace atl {

namespace {

/// How an option maps to setsockopt(2), and its range.
struct option_spec {
  socket_option opt;
  const char* name;
  int level;
  int optname;
  int min;
  int max;
};

// clang-format off
constexpr option_spec specs[] = {
  {socket_option::nodelay,      "nodelay",      IPPROTO_TCP,  TCP_NODELAY,      0, 1},
  {socket_option::keepalive,    "keepalive",    SOL_SOCKET,   SO_KEEPALIVE,     0, 1},
  {socket_option::recbuf,       "recbuf",       SOL_SOCKET,   SO_RCVBUF,        1, INT_MAX},
  {socket_option::sndbuf,       "sndbuf",       SOL_SOCKET,   SO_SNDBUF,        1, INT_MAX},
  {socket_option::linger,       "linger",       SOL_SOCKET,   SO_LINGER,       -1, INT_MAX},
  {socket_option::tos,          "tos",          IPPROTO_IP,   IP_TOS,           0, 255},
  {socket_option::tclass,       "tclass",       IPPROTO_IPV6, IPV6_TCLASS,      0, 255},
  {socket_option::ttl,          "ttl",          IPPROTO_IP,   IP_TTL,           1, 255},
  {socket_option::priority,     "priority",     SOL_SOCKET,   SO_PRIORITY,      0, 6},
  {socket_option::dontroute,    "dontroute",    SOL_SOCKET,   SO_DONTROUTE,     0, 1},
  {socket_option::reuseaddr,    "reuseaddr",    SOL_SOCKET,   SO_REUSEADDR,     0, 1},
  {socket_option::reuseport,    "reuseport",    SOL_SOCKET,   SO_REUSEPORT,     0, 1},
  {socket_option::ipv6_v6only,  "ipv6_v6only",  IPPROTO_IPV6, IPV6_V6ONLY,      0, 1},
  {socket_option::keepidle,     "keepidle",     IPPROTO_TCP,  TCP_KEEPIDLE,     1, 32767},
  {socket_option::keepintvl,    "keepintvl",    IPPROTO_TCP,  TCP_KEEPINTVL,    1, 32767},
  {socket_option::keepcnt,      "keepcnt",      IPPROTO_TCP,  TCP_KEEPCNT,      1, 127},
  {socket_option::user_timeout, "user_timeout", IPPROTO_TCP,  TCP_USER_TIMEOUT, 0, INT_MAX},
  {socket_option::cork,         "cork",         IPPROTO_TCP,  TCP_CORK,         0, 1},
  {socket_option::quickack,     "quickack",     IPPROTO_TCP,  TCP_QUICKACK,     0, 1},
  {socket_option::rcvlowat,     "rcvlowat",     SOL_SOCKET,   SO_RCVLOWAT,      1, INT_MAX},
};
// clang-format on

const option_spec& spec_of(socket_option opt) {
  // The table is in declaration order.
  return specs[static_cast<size_t>(opt)];
}

std::string known_names() {
  std::string out;
  for (auto& s : specs) {
    if (!out.empty())
      out += ", ";
    out += s.name;
  }
  return out;
}

std::string call_name(const char* call, socket_option opt) {
  return std::string{call} + "(" + spec_of(opt).name + ")";
}

} // namespace

const std::vector<socket_option>& all_socket_options() {
  static const std::vector<socket_option> all = [] {
    std::vector<socket_option> out;
    for (auto& s : specs)
      out.push_back(s.opt);
    return out;
  }();
  return all;
}

std::string to_string(socket_option opt) {
  auto i = static_cast<size_t>(opt);
  return i < std::size(specs) ? specs[i].name : "?";
}

caf::expected<socket_option> parse_socket_option(std::string_view name) {
  for (auto& s : specs)
    if (name == s.name)
      return s.opt;
  return caf::make_error(errc::invalid_option, "unknown socket option '" + std::string{name}
                                                 + "' (known: " + known_names() + ")");
}

caf::error check_socket_option(socket_option opt, int value) {
  auto i = static_cast<size_t>(opt);
  if (i >= std::size(specs))
    return caf::make_error(errc::invalid_option, "unknown socket option");
  auto& s = specs[i];
  if (value >= s.min && value <= s.max)
    return caf::none;
  std::string range;
  if (s.min == 0 && s.max == 1)
    range = "0 or 1";
  else if (s.opt == socket_option::linger)
    range = "-1 (off) or >= 0";
  else if (s.max == INT_MAX)
    range = ">= " + std::to_string(s.min);
  else
    range = "within " + std::to_string(s.min) + ".." + std::to_string(s.max);
  return caf::make_error(errc::invalid_option, std::string{s.name} + " must be " + range + ", got "
                                                 + std::to_string(value));
}

caf::expected<int> get_socket_option(int fd, socket_option opt) {
  auto i = static_cast<size_t>(opt);
  if (i >= std::size(specs))
    return caf::make_error(errc::invalid_option, "unknown socket option");
  auto& s = specs[i];
  if (opt == socket_option::linger) {
    linger lg{};
    socklen_t len = sizeof(lg);
    if (::getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len) != 0)
      return make_system_error("getsockopt(linger)", errno);
    return lg.l_onoff ? lg.l_linger : -1;
  }
  int value = 0;
  socklen_t len = sizeof(value);
  if (::getsockopt(fd, s.level, s.optname, &value, &len) != 0)
    return make_system_error(call_name("getsockopt", opt).c_str(), errno);
  return value;
}

caf::error set_socket_option(int fd, socket_option opt, int value) {
  if (auto err = check_socket_option(opt, value))
    return err;
  if (opt == socket_option::linger) {
    linger lg{};
    lg.l_onoff = value >= 0 ? 1 : 0;
    lg.l_linger = value >= 0 ? value : 0;
    if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
      return make_system_error("setsockopt(linger)", errno);
    return caf::none;
  }
  auto& s = spec_of(opt);
  if (::setsockopt(fd, s.level, s.optname, &value, sizeof(value)) != 0)
    return make_system_error(call_name("setsockopt", opt).c_str(), errno);
  return caf::none;
}

caf::expected<std::vector<socket_option_value>>
get_socket_options(int fd, const std::vector<socket_option>& opts) {
  std::vector<socket_option_value> out;
  out.reserve(opts.size());
  for (auto opt : opts) {
    auto value = get_socket_option(fd, opt);
    if (!value)
      return value.error();
    out.emplace_back(opt, *value);
  }
  return out;
}

caf::error set_socket_options(int fd, const std::vector<socket_option_value>& opts) {
  for (auto& [opt, value] : opts)
    if (auto err = check_socket_option(opt, value))
      return err;
  for (auto& [opt, value] : opts)
    if (auto err = set_socket_option(fd, opt, value))
      return err;
  return caf::none;
}

caf::expected<int> get_raw_socket_option(int fd, int level, int name) {
  int value = 0;
  socklen_t len = sizeof(value);
  if (::getsockopt(fd, level, name, &value, &len) != 0)
    return make_system_error(("getsockopt(level " + std::to_string(level) + ", option "
                              + std::to_string(name) + ")")
                               .c_str(),
                             errno);
  return value;
}

caf::error set_raw_socket_option(int fd, int level, int name, int value) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0)
    return make_system_error(("setsockopt(level " + std::to_string(level) + ", option "
                              + std::to_string(name) + ")")
                               .c_str(),
                             errno);
  return caf::none;
}

} // namespace atl
