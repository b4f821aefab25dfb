// libFuzzer target for Atoll's address handling (transports/atoll/transports/
// endpoint.hpp): `bind_address::parse`, `bind_address::resolve` with the
// named factories, `to_string`, and `make_endpoint` on a socket address as
// the kernel could return it.
//
// The first byte of the input picks the mode; the rest is its argument.
//
// parse(text):
// - fails only with errc::invalid_address;
// - a parsed address renders (to_string) as text that parses again to the
//   same kind and text;
// - it resolves for any port, to the family its kind says, with the port in
//   network order and the exact socket address length; an IP literal resolves
//   to the address that its canonical form (inet_ntop) resolves to;
// - its text is the input (IP literal), the input after "unix:" (path), or
//   the input is one of the documented names; it holds no NUL byte (C APIs
//   would see a shorter string than the one shown).
// ip(text) / local(text) factories: if they resolve, to_string of them
//   parses and resolves to the same socket address.
// make_endpoint(storage, len) for any bytes and length:
// - reads nothing outside the sockaddr_storage (ASan: it lives alone on the
//   heap), fails only for other families, with errc::invalid_address;
// - IPv4/IPv6: to_string is "A:P" / "[A]:P", and A parses back (as
//   bind_address) to the same address bytes and port;
// - Unix: the path is the stored sun_path up to its NUL, never longer than
//   sun_path nor than `len` allows, and resolves back to the same sun_path.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "atoll/runtime/error.hpp"
#include "atoll/transports/endpoint.hpp"

#include "fuzz_check.hpp"

namespace {

/// A resolved socket address.
struct resolved {
  sockaddr_storage addr{};
  socklen_t len = 0;

  bool operator==(const resolved& other) const {
    return len == other.len && std::memcmp(&addr, &other.addr, sizeof(addr)) == 0;
  }
};

resolved must_resolve(const atl::bind_address& x, uint16_t port) {
  resolved r;
  auto err = x.resolve(port, r.addr, r.len);
  FUZZ_CHECK(!err);
  return r;
}

bool is_name(const std::string& text) {
  for (auto name : {"any", "0.0.0.0", "any6", "::", "loopback", "localhost", "127.0.0.1",
                    "loopback6", "::1"})
    if (text == name)
      return true;
  return false;
}

/// The checks every successfully resolved address passes.
void check_resolved(const atl::bind_address& x, const resolved& r, uint16_t port) {
  using kind = atl::bind_address::kind;
  FUZZ_CHECK(x.text().find('\0') == std::string::npos);
  switch (x.which()) {
    case kind::any:
    case kind::loopback:
    case kind::any6:
    case kind::loopback6:
      FUZZ_CHECK(x.text().empty());
      [[fallthrough]];
    case kind::ip: {
      bool v6 = x.which() == kind::any6 || x.which() == kind::loopback6
                || (x.which() == kind::ip && x.text().find(':') != std::string::npos);
      char canonical[INET6_ADDRSTRLEN] = {};
      if (v6) {
        auto& in6 = reinterpret_cast<const sockaddr_in6&>(r.addr);
        FUZZ_CHECK(r.len == sizeof(sockaddr_in6));
        FUZZ_CHECK(in6.sin6_family == AF_INET6);
        FUZZ_CHECK(ntohs(in6.sin6_port) == port);
        FUZZ_CHECK(inet_ntop(AF_INET6, &in6.sin6_addr, canonical, sizeof(canonical)));
      } else {
        auto& in = reinterpret_cast<const sockaddr_in&>(r.addr);
        FUZZ_CHECK(r.len == sizeof(sockaddr_in));
        FUZZ_CHECK(in.sin_family == AF_INET);
        FUZZ_CHECK(ntohs(in.sin_port) == port);
        FUZZ_CHECK(inet_ntop(AF_INET, &in.sin_addr, canonical, sizeof(canonical)));
      }
      // The canonical form of the address parses to the same address.
      auto again = atl::bind_address::parse(canonical);
      FUZZ_CHECK(again);
      FUZZ_CHECK(must_resolve(*again, port) == r);
      break;
    }
    case kind::local: {
      auto& un = reinterpret_cast<const sockaddr_un&>(r.addr);
      FUZZ_CHECK(un.sun_family == AF_UNIX);
      FUZZ_CHECK(!x.text().empty() && x.text().size() < sizeof(un.sun_path));
      FUZZ_CHECK(r.len == offsetof(sockaddr_un, sun_path) + x.text().size() + 1);
      FUZZ_CHECK(std::memcmp(un.sun_path, x.text().data(), x.text().size()) == 0);
      FUZZ_CHECK(un.sun_path[x.text().size()] == '\0');
      break;
    }
  }
}

void fuzz_parse(const std::string& text, uint16_t port) {
  using kind = atl::bind_address::kind;
  auto x = atl::bind_address::parse(text);
  if (!x) {
    FUZZ_CHECK(x.error() == atl::errc::invalid_address);
    return;
  }
  switch (x->which()) {
    case kind::ip: FUZZ_CHECK(x->text() == text); break;
    case kind::local: FUZZ_CHECK("unix:" + x->text() == text); break;
    default: FUZZ_CHECK(is_name(text));
  }
  // Rendered, it parses again to the same value.
  auto again = atl::bind_address::parse(to_string(*x));
  FUZZ_CHECK(again);
  FUZZ_CHECK(again->which() == x->which());
  FUZZ_CHECK(again->text() == x->text());
  // A parsed address resolves, for any port.
  auto r = must_resolve(*x, port);
  check_resolved(*x, r, port);
  FUZZ_CHECK(must_resolve(*again, port) == r);
}

void fuzz_factory(const std::string& text, bool local, uint16_t port) {
  auto x = local ? atl::bind_address::local(text) : atl::bind_address::ip(text);
  resolved r;
  if (auto err = x.resolve(port, r.addr, r.len)) {
    FUZZ_CHECK(err == atl::errc::invalid_address);
    return;
  }
  check_resolved(x, r, port);
  auto again = atl::bind_address::parse(to_string(x));
  FUZZ_CHECK(again);
  FUZZ_CHECK(must_resolve(*again, port) == r);
}

void fuzz_make_endpoint(FuzzedDataProvider& input) {
  // The storage lives alone on the heap: ASan sees any read beyond it.
  auto storage = std::make_unique<sockaddr_storage>();
  auto family_choice = input.ConsumeIntegralInRange<int>(0, 3);
  auto len = input.ConsumeIntegral<socklen_t>();
  if (input.ConsumeBool()) // mostly lengths the kernel could return
    len %= sizeof(sockaddr_storage) + 1;
  auto bytes = input.ConsumeRemainingBytes<uint8_t>();
  if (!bytes.empty())
    std::memcpy(storage.get(), bytes.data(), std::min(bytes.size(), sizeof(sockaddr_storage)));
  switch (family_choice) {
    case 0: storage->ss_family = AF_INET; break;
    case 1: storage->ss_family = AF_INET6; break;
    case 2: storage->ss_family = AF_UNIX; break;
    default: break; // whatever the bytes say
  }
  auto ep = atl::make_endpoint(*storage, len);
  auto family = storage->ss_family;
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX) {
    FUZZ_CHECK(!ep);
    FUZZ_CHECK(ep.error() == atl::errc::invalid_address);
    return;
  }
  FUZZ_CHECK(ep);
  FUZZ_CHECK(*ep == *ep);
  auto other = *ep;
  other.port = static_cast<uint16_t>(other.port + 1);
  FUZZ_CHECK(!(other == *ep));
  auto text = to_string(*ep);
  if (family == AF_UNIX) {
    auto& un = reinterpret_cast<const sockaddr_un&>(*storage);
    auto offset = offsetof(sockaddr_un, sun_path);
    FUZZ_CHECK(ep->family == atl::endpoint::family_type::local);
    FUZZ_CHECK(!ep->is_ip());
    FUZZ_CHECK(ep->port == 0);
    FUZZ_CHECK(text == ep->address);
    const auto& path = ep->address;
    FUZZ_CHECK(path.find('\0') == std::string::npos);
    FUZZ_CHECK(path.size() <= sizeof(un.sun_path));
    FUZZ_CHECK(len <= offset ? path.empty() : path.size() <= len - offset);
    FUZZ_CHECK(std::memcmp(un.sun_path, path.data(), path.size()) == 0);
    // The path ends at a NUL, at the end of sun_path, or where `len` ends.
    FUZZ_CHECK(path.size() == sizeof(un.sun_path) || un.sun_path[path.size()] == '\0'
               || path.size() + offset >= len);
    if (!path.empty() && path.size() < sizeof(un.sun_path)) {
      auto r = must_resolve(atl::bind_address::local(path), 0);
      FUZZ_CHECK(std::memcmp(reinterpret_cast<const sockaddr_un&>(r.addr).sun_path, path.c_str(),
                             path.size() + 1)
                 == 0);
    }
    return;
  }
  FUZZ_CHECK(ep->is_ip());
  auto port = std::to_string(ep->port);
  auto parsed = atl::bind_address::parse(ep->address);
  FUZZ_CHECK(parsed);
  auto r = must_resolve(*parsed, ep->port);
  if (family == AF_INET) {
    auto& in = reinterpret_cast<const sockaddr_in&>(*storage);
    FUZZ_CHECK(ep->family == atl::endpoint::family_type::ipv4);
    char canonical[INET_ADDRSTRLEN] = {};
    FUZZ_CHECK(inet_ntop(AF_INET, &in.sin_addr, canonical, sizeof(canonical)));
    FUZZ_CHECK(ep->address == canonical);
    FUZZ_CHECK(text == ep->address + ":" + port);
    FUZZ_CHECK(ep->port == ntohs(in.sin_port));
    auto& back = reinterpret_cast<const sockaddr_in&>(r.addr);
    FUZZ_CHECK(back.sin_family == AF_INET && back.sin_port == in.sin_port);
    FUZZ_CHECK(std::memcmp(&back.sin_addr, &in.sin_addr, sizeof(in.sin_addr)) == 0);
  } else {
    auto& in6 = reinterpret_cast<const sockaddr_in6&>(*storage);
    FUZZ_CHECK(ep->family == atl::endpoint::family_type::ipv6);
    FUZZ_CHECK(text == "[" + ep->address + "]:" + port);
    FUZZ_CHECK(ep->port == ntohs(in6.sin6_port));
    auto& back = reinterpret_cast<const sockaddr_in6&>(r.addr);
    FUZZ_CHECK(back.sin6_family == AF_INET6 && back.sin6_port == in6.sin6_port);
    FUZZ_CHECK(std::memcmp(&back.sin6_addr, &in6.sin6_addr, sizeof(in6.sin6_addr)) == 0);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  // Text modes: the rest of the input is the text, whole (NUL bytes included).
  auto text = [&] { return std::string(reinterpret_cast<const char*>(data + 1), size - 1); };
  // A port derived from the input, so that resolving sees more than one.
  uint16_t port = static_cast<uint16_t>(size * 257u + data[0]);
  switch (data[0] % 4) {
    case 0: fuzz_parse(text(), port); break;
    case 1: fuzz_factory(text(), false, port); break;
    case 2: fuzz_factory(text(), true, port); break;
    default: {
      FuzzedDataProvider input{data + 1, size - 1};
      fuzz_make_endpoint(input);
    }
  }
  return 0;
}
