#include "atoll/transports/endpoint.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "atoll/runtime/error.hpp"

namespace atl {

std::string to_string(const endpoint& ep) {
  switch (ep.family) {
    case endpoint::family_type::ipv4:
      return ep.address + ":" + std::to_string(ep.port);
    case endpoint::family_type::ipv6:
      return "[" + ep.address + "]:" + std::to_string(ep.port);
    case endpoint::family_type::local:
      return ep.address;
  }
  return "?";
}

bool operator==(const endpoint& a, const endpoint& b) {
  return a.family == b.family && a.address == b.address && a.port == b.port;
}

namespace {

/// The dotted-quad text of an IPv4 address, as inet_ntop writes it (which
/// formats through sprintf: about 1,800 instructions, 8% of the user-space
/// work of a short connection, where this takes a few dozen).
std::string ipv4_text(const in_addr& addr) {
  const auto* octets = reinterpret_cast<const unsigned char*>(&addr.s_addr);
  char out[16];
  size_t n = 0;
  for (size_t i = 0; i < 4; ++i) {
    unsigned v = octets[i];
    if (v >= 100)
      out[n++] = static_cast<char>('0' + v / 100);
    if (v >= 10)
      out[n++] = static_cast<char>('0' + v / 10 % 10);
    out[n++] = static_cast<char>('0' + v % 10);
    if (i < 3)
      out[n++] = '.';
  }
  return std::string(out, n);
}

} // namespace

peer_address::peer_address(endpoint ep) : text_(std::make_unique<endpoint>(std::move(ep))) {
}

caf::expected<peer_address> peer_address::from(const sockaddr_storage& addr, socklen_t len) {
  peer_address out;
  if (addr.ss_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&out.raw_.v4, &addr, sizeof(sockaddr_in));
    out.raw_len_ = sizeof(sockaddr_in);
    return out;
  }
  if (addr.ss_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&out.raw_.v6, &addr, sizeof(sockaddr_in6));
    out.raw_len_ = sizeof(sockaddr_in6);
    return out;
  }
  auto ep = make_endpoint(addr, len);
  if (!ep)
    return std::move(ep.error());
  return peer_address{std::move(*ep)};
}

static_assert(sizeof(peer_address) <= sizeof(endpoint));

endpoint peer_address::to_endpoint() const {
  if (text_)
    return *text_;
  if (raw_len_ == 0)
    return {};
  sockaddr_storage ss{};
  std::memcpy(&ss, &raw_, raw_len_);
  auto ep = make_endpoint(ss, raw_len_);
  return ep ? std::move(*ep) : endpoint{}; // IPv4 and IPv6 always convert
}

caf::expected<endpoint> make_endpoint(const sockaddr_storage& addr, socklen_t len) {
  endpoint ep;
  char buf[INET6_ADDRSTRLEN] = {};
  switch (addr.ss_family) {
    case AF_INET: {
      auto& in = reinterpret_cast<const sockaddr_in&>(addr);
      ep.family = endpoint::family_type::ipv4;
      ep.address = ipv4_text(in.sin_addr);
      ep.port = ntohs(in.sin_port);
      return ep;
    }
    case AF_INET6: {
      auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
      inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof(buf));
      ep.family = endpoint::family_type::ipv6;
      ep.address = buf;
      ep.port = ntohs(in6.sin6_port);
      return ep;
    }
    case AF_UNIX: {
      auto& un = reinterpret_cast<const sockaddr_un&>(addr);
      ep.family = endpoint::family_type::local;
      // The path ends at its NUL, where `len` says, or at the end of
      // sun_path (a 108-byte path has no NUL); never beyond.
      auto offset = offsetof(sockaddr_un, sun_path);
      if (len > static_cast<socklen_t>(offset)) {
        auto max = std::min(static_cast<size_t>(len) - offset, sizeof(un.sun_path));
        ep.address.assign(un.sun_path, strnlen(un.sun_path, max));
      }
      return ep;
    }
    default:
      return caf::make_error(errc::invalid_address, "unsupported address family",
                             std::to_string(addr.ss_family));
  }
}

namespace {

template <class Fn>
caf::expected<endpoint> query_endpoint(int fd, Fn fn, const char* what) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (fn(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return make_system_error(what, errno);
  return make_endpoint(addr, len);
}

} // namespace

caf::expected<endpoint> local_endpoint(int fd) {
  return query_endpoint(fd, ::getsockname, "getsockname");
}

caf::expected<endpoint> remote_endpoint(int fd) {
  return query_endpoint(fd, ::getpeername, "getpeername");
}

caf::expected<bind_address> bind_address::parse(const std::string& text) {
  if (text == "any" || text == "0.0.0.0")
    return any();
  if (text == "any6" || text == "::")
    return any6();
  if (text == "loopback" || text == "localhost" || text == "127.0.0.1")
    return loopback();
  if (text == "loopback6" || text == "::1")
    return loopback6();
  // An IP literal or a path: accepted only if it resolves (a path that is
  // empty, too long or holds a NUL byte fails here, not when listening).
  auto result = text.rfind("unix:", 0) == 0 ? local(text.substr(5)) : ip(text);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (auto err = result.resolve(0, ss, len))
    return err;
  return result;
}

caf::error bind_address::resolve(uint16_t port, sockaddr_storage& out, socklen_t& len) const {
  out = sockaddr_storage{};
  auto v4 = [&](const char* text) -> caf::error {
    auto& in = reinterpret_cast<sockaddr_in&>(out);
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    if (inet_pton(AF_INET, text, &in.sin_addr) != 1)
      return caf::make_error(errc::invalid_address, "not an IPv4 address", std::string{text});
    len = sizeof(sockaddr_in);
    return caf::none;
  };
  auto v6 = [&](const char* text) -> caf::error {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(out);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    if (inet_pton(AF_INET6, text, &in6.sin6_addr) != 1)
      return caf::make_error(errc::invalid_address, "not an IPv6 address", std::string{text});
    len = sizeof(sockaddr_in6);
    return caf::none;
  };
  // A NUL byte would end the text early for inet_pton, and in a Unix socket
  // path it names another socket (a leading one: Linux's abstract namespace).
  if (text_.find('\0') != std::string::npos)
    return caf::make_error(errc::invalid_address, "NUL byte in address");
  switch (kind_) {
    case kind::any: return v4("0.0.0.0");
    case kind::any6: return v6("::");
    case kind::loopback: return v4("127.0.0.1");
    case kind::loopback6: return v6("::1");
    case kind::ip:
      if (text_.find(':') != std::string::npos)
        return v6(text_.c_str());
      return v4(text_.c_str());
    case kind::local: {
      auto& un = reinterpret_cast<sockaddr_un&>(out);
      un.sun_family = AF_UNIX;
      if (text_.empty())
        return caf::make_error(errc::invalid_address, "empty Unix socket path");
      if (text_.size() >= sizeof(un.sun_path))
        return caf::make_error(errc::invalid_address, "Unix socket path too long", text_);
      std::memcpy(un.sun_path, text_.data(), text_.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + text_.size() + 1);
      return caf::none;
    }
  }
  return caf::make_error(errc::invalid_address);
}

std::string to_string(const bind_address& x) {
  switch (x.which()) {
    case bind_address::kind::any: return "any";
    case bind_address::kind::any6: return "any6";
    case bind_address::kind::loopback: return "loopback";
    case bind_address::kind::loopback6: return "loopback6";
    case bind_address::kind::ip: return x.text();
    case bind_address::kind::local: return "unix:" + x.text();
  }
  return "?";
}

} // namespace atl
