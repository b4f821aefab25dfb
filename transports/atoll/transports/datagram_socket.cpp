#include "atoll/transports/datagram_socket.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/telemetry.hpp"

namespace atl {

namespace {

bool is_ipv4_literal(const std::string& text) {
  in_addr tmp{};
  return ::inet_pton(AF_INET, text.c_str(), &tmp) == 1;
}

caf::error set_int(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0)
    return make_system_error(what, errno);
  return caf::none;
}

/// A network interface's index, from its name ("eth0") or its number.
caf::expected<unsigned> interface_index(const std::string& name) {
  if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return c >= '0' && c <= '9';
      }) && name.size() <= 9)
    return static_cast<unsigned>(std::stoul(name));
  if (auto index = ::if_nametoindex(name.c_str()); index != 0)
    return index;
  return caf::make_error(errc::invalid_address, "no such network interface", name);
}

/// A multicast group: an IPv4 one ("239.1.2.3"), or an IPv6 one with an
/// optional interface after a '%' ("ff02::fb%eth0", "ff15::9%2").
struct multicast_group {
  bool v6 = false;
  in_addr v4addr{};
  in6_addr v6addr{};
  unsigned interface = 0; // IPv6: the zone's interface (0: the kernel's choice)
};

caf::expected<multicast_group> parse_group(const std::string& text) {
  multicast_group g;
  if (::inet_pton(AF_INET, text.c_str(), &g.v4addr) == 1) {
    if (!IN_MULTICAST(ntohl(g.v4addr.s_addr)))
      return caf::make_error(errc::invalid_address, "not a multicast group", text);
    return g;
  }
  auto zone = text.find('%');
  auto addr = text.substr(0, zone);
  if (::inet_pton(AF_INET6, addr.c_str(), &g.v6addr) != 1 || !IN6_IS_ADDR_MULTICAST(&g.v6addr))
    return caf::make_error(errc::invalid_address, "not an IPv4 or IPv6 multicast group", text);
  g.v6 = true;
  if (zone != std::string::npos) {
    auto index = interface_index(text.substr(zone + 1));
    if (!index)
      return index.error();
    g.interface = *index;
  }
  return g;
}

/// Joins or leaves `group`: IPv4 on the interface with address
/// `interface` (empty: any); IPv6 on the interface named or numbered
/// `interface` (empty: the group's zone, or the kernel's choice).
caf::error change_membership(int fd, bool join, const std::string& group,
                             const std::string& interface) {
  auto g = parse_group(group);
  if (!g)
    return g.error();
  if (!g->v6) {
    ip_mreq req{};
    req.imr_multiaddr = g->v4addr;
    req.imr_interface.s_addr = htonl(INADDR_ANY);
    if (!interface.empty() && ::inet_pton(AF_INET, interface.c_str(), &req.imr_interface) != 1)
      return caf::make_error(errc::invalid_address, "not an IPv4 interface address", interface);
    if (::setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &req,
                     sizeof(req))
        != 0)
      return make_system_error(join ? "setsockopt(IP_ADD_MEMBERSHIP)"
                                    : "setsockopt(IP_DROP_MEMBERSHIP)",
                               errno);
    return caf::none;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return make_system_error("getsockname", errno);
  if (ss.ss_family != AF_INET6)
    return caf::make_error(errc::invalid_address,
                           "an IPv6 group needs a socket bound to an IPv6 address (e.g. ::)",
                           group);
  ipv6_mreq req{};
  req.ipv6mr_multiaddr = g->v6addr;
  req.ipv6mr_interface = g->interface;
  if (!interface.empty()) {
    auto index = interface_index(interface);
    if (!index)
      return index.error();
    req.ipv6mr_interface = *index;
  }
  if (::setsockopt(fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &req,
                   sizeof(req))
      != 0)
    return make_system_error(join ? "setsockopt(IPV6_JOIN_GROUP)" : "setsockopt(IPV6_LEAVE_GROUP)",
                             errno);
  return caf::none;
}

} // namespace

caf::error validate(const udp_options& opts) {
  if (opts.recbuf && *opts.recbuf <= 0)
    return caf::make_error(errc::invalid_option, "transport.recbuf must be positive");
  if (opts.sndbuf && *opts.sndbuf <= 0)
    return caf::make_error(errc::invalid_option, "transport.sndbuf must be positive");
  if (opts.multicast_if && !is_ipv4_literal(*opts.multicast_if))
    return caf::make_error(errc::invalid_option, "transport.multicast_if must be an IPv4 address",
                           *opts.multicast_if);
  if (opts.multicast_ttl && (*opts.multicast_ttl < 0 || *opts.multicast_ttl > 255))
    return caf::make_error(errc::invalid_option, "transport.multicast_ttl must be 0..255");
  for (auto& group : opts.membership)
    if (auto g = parse_group(group); !g)
      return caf::make_error(errc::invalid_option,
                             "transport.membership: " + group + ": " + describe(g.error()));
  return caf::none;
}

std::string describe(const udp_options& o) {
  auto flag = [](bool x) { return x ? std::string{"true"} : std::string{"false"}; };
  std::string out = "reuseaddr=" + flag(o.reuseaddr) + " reuseport=" + flag(o.reuseport) +
                    " broadcast=" + flag(o.broadcast);
  if (o.recbuf)
    out += " recbuf=" + std::to_string(*o.recbuf);
  if (o.sndbuf)
    out += " sndbuf=" + std::to_string(*o.sndbuf);
  if (o.multicast_if)
    out += " multicast_if=" + *o.multicast_if;
  if (o.multicast_ttl)
    out += " multicast_ttl=" + std::to_string(*o.multicast_ttl);
  if (o.multicast_loop)
    out += " multicast_loop=" + flag(*o.multicast_loop);
  for (auto& g : o.membership)
    out += " membership=" + g;
  if (o.pktinfo)
    out += " pktinfo=true";
  return out;
}

// -- udp_peer -------------------------------------------------------------------

caf::expected<endpoint> udp_peer::to_endpoint() const {
  return make_endpoint(addr, len);
}

caf::expected<udp_peer> udp_peer::from(const endpoint& ep) {
  udp_peer result;
  if (!ep.is_ip())
    return caf::make_error(errc::invalid_address, "not an IP endpoint", ep.address);
  if (ep.family == endpoint::family_type::ipv4) {
    auto& sin = reinterpret_cast<sockaddr_in&>(result.addr);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(ep.port);
    if (::inet_pton(AF_INET, ep.address.c_str(), &sin.sin_addr) != 1)
      return caf::make_error(errc::invalid_address, "not an IPv4 address", ep.address);
    result.len = sizeof(sockaddr_in);
  } else {
    auto& sin6 = reinterpret_cast<sockaddr_in6&>(result.addr);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(ep.port);
    if (::inet_pton(AF_INET6, ep.address.c_str(), &sin6.sin6_addr) != 1)
      return caf::make_error(errc::invalid_address, "not an IPv6 address", ep.address);
    result.len = sizeof(sockaddr_in6);
  }
  return result;
}

size_t udp_peer::hash() const noexcept {
  // FNV-1a over the address bytes and the port.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* p, size_t n) {
    auto bytes = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= bytes[i];
      h *= 1099511628211ull;
    }
  };
  if (addr.ss_family == AF_INET) {
    auto& sin = reinterpret_cast<const sockaddr_in&>(addr);
    mix(&sin.sin_addr, sizeof(sin.sin_addr));
    mix(&sin.sin_port, sizeof(sin.sin_port));
  } else if (addr.ss_family == AF_INET6) {
    auto& sin6 = reinterpret_cast<const sockaddr_in6&>(addr);
    mix(&sin6.sin6_addr, sizeof(sin6.sin6_addr));
    mix(&sin6.sin6_port, sizeof(sin6.sin6_port));
  }
  return static_cast<size_t>(h);
}

bool operator==(const udp_peer& a, const udp_peer& b) noexcept {
  if (a.addr.ss_family != b.addr.ss_family)
    return false;
  if (a.addr.ss_family == AF_INET) {
    auto& x = reinterpret_cast<const sockaddr_in&>(a.addr);
    auto& y = reinterpret_cast<const sockaddr_in&>(b.addr);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.addr.ss_family == AF_INET6) {
    auto& x = reinterpret_cast<const sockaddr_in6&>(a.addr);
    auto& y = reinterpret_cast<const sockaddr_in6&>(b.addr);
    return x.sin6_port == y.sin6_port &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(in6_addr)) == 0;
  }
  return a.len == b.len && std::memcmp(&a.addr, &b.addr, a.len) == 0;
}

// -- datagram_batch -------------------------------------------------------------

namespace {

/// Room for IP_PKTINFO or IPV6_PKTINFO per datagram.
constexpr size_t control_size = CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo));

size_t clamp(size_t x, size_t lo, size_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

} // namespace

datagram_batch::datagram_batch(size_t count, size_t slot_size)
  : slot_size_(clamp(slot_size, 1, 65536)), buffer_(clamp(count, 1, 1024) * slot_size_),
    lengths_(clamp(count, 1, 1024)), meta_(clamp(count, 1, 1024)),
    control_(clamp(count, 1, 1024) * control_size), msgs_(clamp(count, 1, 1024)),
    iovs_(clamp(count, 1, 1024)) {}

// -- datagram_socket ------------------------------------------------------------

caf::expected<std::unique_ptr<datagram_socket>>
datagram_socket::open(const bind_address& addr, uint16_t port, const udp_options& opts) {
  if (auto err = validate(opts))
    return err;
  if (addr.which() == bind_address::kind::local)
    return caf::make_error(errc::invalid_address, "UDP servers need an IP address", addr.text());
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (auto err = addr.resolve(port, ss, len))
    return err;
  int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return make_system_error("socket", errno);
  auto fail = [fd](caf::error err) {
    ::close(fd);
    return err;
  };
  bool v6 = ss.ss_family == AF_INET6;
  if (opts.reuseaddr)
    if (auto err = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)"))
      return fail(std::move(err));
  if (opts.reuseport)
    if (auto err = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)"))
      return fail(std::move(err));
  if (opts.broadcast)
    if (auto err = set_int(fd, SOL_SOCKET, SO_BROADCAST, 1, "setsockopt(SO_BROADCAST)"))
      return fail(std::move(err));
  if (opts.recbuf)
    if (auto err = set_int(fd, SOL_SOCKET, SO_RCVBUF, *opts.recbuf, "setsockopt(SO_RCVBUF)"))
      return fail(std::move(err));
  if (opts.sndbuf)
    if (auto err = set_int(fd, SOL_SOCKET, SO_SNDBUF, *opts.sndbuf, "setsockopt(SO_SNDBUF)"))
      return fail(std::move(err));
  if (v6 && opts.ipv6_v6only)
    if (auto err = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, *opts.ipv6_v6only ? 1 : 0,
                           "setsockopt(IPV6_V6ONLY)"))
      return fail(std::move(err));
  if (opts.pktinfo) {
    if (auto err = set_int(fd, IPPROTO_IP, IP_PKTINFO, 1, "setsockopt(IP_PKTINFO)"))
      if (!v6)
        return fail(std::move(err));
    if (v6)
      if (auto err = set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "setsockopt(IPV6_RECVPKTINFO)"))
        return fail(std::move(err));
  }
  if (!v6) {
    if (opts.multicast_if) {
      in_addr ifaddr{};
      ::inet_pton(AF_INET, opts.multicast_if->c_str(), &ifaddr); // validated
      if (::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr)) != 0)
        return fail(make_system_error("setsockopt(IP_MULTICAST_IF)", errno));
    }
    if (opts.multicast_ttl)
      if (auto err = set_int(fd, IPPROTO_IP, IP_MULTICAST_TTL, *opts.multicast_ttl,
                             "setsockopt(IP_MULTICAST_TTL)"))
        return fail(std::move(err));
    if (opts.multicast_loop)
      if (auto err = set_int(fd, IPPROTO_IP, IP_MULTICAST_LOOP, *opts.multicast_loop ? 1 : 0,
                             "setsockopt(IP_MULTICAST_LOOP)"))
        return fail(std::move(err));
  } else {
    if (opts.multicast_ttl)
      if (auto err = set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, *opts.multicast_ttl,
                             "setsockopt(IPV6_MULTICAST_HOPS)"))
        return fail(std::move(err));
    if (opts.multicast_loop)
      if (auto err = set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, *opts.multicast_loop ? 1 : 0,
                             "setsockopt(IPV6_MULTICAST_LOOP)"))
        return fail(std::move(err));
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    auto bind_errno = errno;
    auto shown = make_endpoint(ss, len); // as bound, see listen_socket
    auto what = "bind "
                + (shown ? to_string(*shown) : to_string(addr) + ":" + std::to_string(port))
                + "/udp";
    return fail(make_system_error(what.c_str(), bind_errno));
  }
  for (auto& group : opts.membership) {
    // multicast_if names an IPv4 interface; an IPv6 group carries its own.
    auto v4 = group.find(':') == std::string::npos;
    if (auto err = change_membership(fd, true, group,
                                     v4 && opts.multicast_if ? *opts.multicast_if : std::string{}))
      return fail(std::move(err));
  }
  auto local = local_endpoint(fd);
  if (!local)
    return fail(local.error());
  return std::unique_ptr<datagram_socket>{new datagram_socket(fd, std::move(*local), opts.pktinfo)};
}

datagram_socket::datagram_socket(int fd, endpoint local, bool pktinfo)
  : fd_(fd), local_(std::move(local)), pktinfo_(pktinfo) {}

datagram_socket::~datagram_socket() {
  close();
}

int datagram_socket::fd() const noexcept {
  std::shared_lock guard{mtx_};
  return fd_;
}

bool datagram_socket::closed() const noexcept {
  return fd() < 0;
}

void datagram_socket::close() noexcept {
  flush_queued();
  std::unique_lock guard{mtx_};
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  std::lock_guard<std::mutex> queue_guard{queue_mtx_};
  queued_.clear(); // queued after the flush: too late
}

caf::error datagram_socket::queue_send(const udp_peer& to, std::string_view data) {
  std::shared_lock guard{mtx_};
  if (fd_ < 0)
    return caf::make_error(errc::closed, "the UDP socket is closed");
  std::lock_guard<std::mutex> queue_guard{queue_mtx_};
  queued_.emplace_back(to, std::string{data});
  return caf::none;
}

size_t datagram_socket::flush_queued() noexcept {
  // Two threads flushing at once must not send a later batch before an
  // earlier one (one handler's replies would arrive out of order).
  std::lock_guard<std::mutex> flush_guard{flush_mtx_};
  return drain_queue();
}

size_t datagram_socket::try_flush_queued() noexcept {
  size_t total = 0;
  for (;;) {
    std::unique_lock<std::mutex> flush_guard{flush_mtx_, std::try_to_lock};
    if (!flush_guard.owns_lock())
      return total; // the holder sends ours: it looks again after unlocking
    total += drain_queue();
    flush_guard.unlock();
    // A datagram queued after drain_queue saw an empty queue, by a thread
    // whose try_lock failed before the unlock, would stay queued: look
    // again. Queued after this look, its own thread's try_lock succeeds.
    std::lock_guard<std::mutex> queue_guard{queue_mtx_};
    if (queued_.empty())
      return total;
  }
}

size_t datagram_socket::drain_queue() noexcept {
  size_t total = 0;
  std::vector<std::pair<udp_peer, std::string>> batch;
  for (;;) {
    {
      std::lock_guard<std::mutex> queue_guard{queue_mtx_};
      if (!batch.empty()) {
        // Hands the storage back for the next batch if nothing was queued
        // meanwhile (no allocation per flush).
        batch.clear();
        if (queued_.empty())
          queued_.swap(batch);
      }
      if (queued_.empty())
        return total;
      batch.swap(queued_);
    }
    auto sent = send_many(batch);
    total += sent ? *sent : 0;
  }
}

caf::expected<size_t> datagram_socket::receive(datagram_batch& batch) {
  batch.filled_ = 0;
  auto n = batch.capacity();
  auto& msgs = batch.msgs_;
  auto& iovs = batch.iovs_;
  for (size_t i = 0; i < n; ++i) {
    iovs[i].iov_base = batch.buffer_.data() + i * batch.slot_size_;
    iovs[i].iov_len = batch.slot_size_;
    auto& hdr = msgs[i].msg_hdr;
    hdr.msg_flags = 0;
    hdr.msg_name = &batch.meta_[i].peer.addr;
    hdr.msg_namelen = sizeof(sockaddr_storage);
    hdr.msg_iov = &iovs[i];
    hdr.msg_iovlen = 1;
    if (pktinfo_) {
      hdr.msg_control = batch.control_.data() + i * control_size;
      hdr.msg_controllen = control_size;
    } else {
      hdr.msg_control = nullptr;
      hdr.msg_controllen = 0;
    }
  }
  int got;
  {
    std::shared_lock guard{mtx_};
    if (fd_ < 0)
      return caf::make_error(errc::closed, "the UDP socket is closed");
    do {
      got =
          ::recvmmsg(fd_, msgs.data(), static_cast<unsigned>(n), MSG_DONTWAIT | MSG_TRUNC, nullptr);
    } while (got < 0 && errno == EINTR);
  }
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return size_t{0};
    // ICMP errors of earlier sends (ECONNREFUSED...) surface here on some
    // kernels; they are not the socket's failure.
    if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)
      return size_t{0};
    return make_system_error("recvmmsg", errno);
  }
  uint64_t octets = 0;
  for (size_t i = 0; i < static_cast<size_t>(got); ++i) {
    auto& meta = batch.meta_[i];
    auto& hdr = msgs[i].msg_hdr;
    meta.peer.len = hdr.msg_namelen;
    meta.size = msgs[i].msg_len;
    meta.truncated = (hdr.msg_flags & MSG_TRUNC) != 0 || meta.size > batch.slot_size_;
    batch.lengths_[i] = meta.size < batch.slot_size_ ? meta.size : batch.slot_size_;
    octets += meta.size;
    meta.destination.reset();
    meta.interface_index = 0;
    if (pktinfo_) {
      for (auto* c = CMSG_FIRSTHDR(&hdr); c != nullptr; c = CMSG_NXTHDR(&hdr, c)) {
        char text[INET6_ADDRSTRLEN] = {};
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          in_pktinfo info{};
          std::memcpy(&info, CMSG_DATA(c), sizeof(info));
          if (::inet_ntop(AF_INET, &info.ipi_addr, text, sizeof(text)))
            meta.destination = text;
          meta.interface_index = info.ipi_ifindex;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
          in6_pktinfo info{};
          std::memcpy(&info, CMSG_DATA(c), sizeof(info));
          if (::inet_ntop(AF_INET6, &info.ipi6_addr, text, sizeof(text)))
            meta.destination = text;
          meta.interface_index = static_cast<int>(info.ipi6_ifindex);
        }
      }
    }
  }
  batch.filled_ = static_cast<size_t>(got);
  recv_cnt_.fetch_add(static_cast<uint64_t>(got), std::memory_order_relaxed);
  recv_oct_.fetch_add(octets, std::memory_order_relaxed);
  return batch.filled_;
}

caf::error datagram_socket::send_to(const udp_peer& to, std::string_view data) {
  ssize_t res;
  {
    std::shared_lock guard{mtx_};
    if (fd_ < 0)
      return caf::make_error(errc::closed, "the UDP socket is closed");
    do {
      res = ::sendto(fd_, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                     reinterpret_cast<const sockaddr*>(&to.addr), to.len);
    } while (res < 0 && errno == EINTR);
  }
  if (res < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
      return caf::make_error(errc::timeout, "the UDP send buffer is full: datagram dropped");
    return make_system_error("sendto", errno);
  }
  send_cnt_.fetch_add(1, std::memory_order_relaxed);
  send_oct_.fetch_add(static_cast<uint64_t>(res), std::memory_order_relaxed);
  return caf::none;
}

caf::expected<size_t>
datagram_socket::send_many(const std::vector<std::pair<udp_peer, std::string>>& msgs) {
  constexpr size_t chunk = 64;
  mmsghdr hdrs[chunk];
  iovec iovs[chunk];
  size_t sent = 0;
  uint64_t octets = 0;
  std::shared_lock guard{mtx_};
  if (fd_ < 0)
    return caf::make_error(errc::closed, "the UDP socket is closed");
  size_t next = 0;
  while (next < msgs.size()) {
    auto n = std::min(chunk, msgs.size() - next);
    for (size_t i = 0; i < n; ++i) {
      auto& [peer, data] = msgs[next + i];
      iovs[i].iov_base = const_cast<char*>(data.data());
      iovs[i].iov_len = data.size();
      hdrs[i] = mmsghdr{};
      hdrs[i].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&peer.addr);
      hdrs[i].msg_hdr.msg_namelen = peer.len;
      hdrs[i].msg_hdr.msg_iov = &iovs[i];
      hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    int res;
    do {
      res = ::sendmmsg(fd_, hdrs, static_cast<unsigned>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (res < 0 && errno == EINTR);
    if (res < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
        break; // the send buffer is full: the rest is dropped, as UDP does
      ++next;  // this one cannot go (e.g. unreachable): skip it
      continue;
    }
    for (int i = 0; i < res; ++i)
      octets += msgs[next + static_cast<size_t>(i)].second.size();
    sent += static_cast<size_t>(res);
    next += static_cast<size_t>(res);
  }
  send_cnt_.fetch_add(sent, std::memory_order_relaxed);
  send_oct_.fetch_add(octets, std::memory_order_relaxed);
  return sent;
}

caf::error datagram_socket::join_group(const std::string& group,
                                       const std::string& interface_address) {
  std::shared_lock guard{mtx_};
  if (fd_ < 0)
    return caf::make_error(errc::closed, "the UDP socket is closed");
  return change_membership(fd_, true, group, interface_address);
}

caf::error datagram_socket::leave_group(const std::string& group,
                                        const std::string& interface_address) {
  std::shared_lock guard{mtx_};
  if (fd_ < 0)
    return caf::make_error(errc::closed, "the UDP socket is closed");
  return change_membership(fd_, false, group, interface_address);
}

datagram_stats datagram_socket::stats() const noexcept {
  datagram_stats s;
  s.recv_cnt = recv_cnt_.load(std::memory_order_relaxed);
  s.recv_oct = recv_oct_.load(std::memory_order_relaxed);
  s.send_cnt = send_cnt_.load(std::memory_order_relaxed);
  s.send_oct = send_oct_.load(std::memory_order_relaxed);
  return s;
}

// -- send_recv ------------------------------------------------------------------

caf::expected<std::string> send_recv(const endpoint& to, std::string_view request,
                                     std::chrono::milliseconds timeout, size_t max_size) {
  auto peer = udp_peer::from(to);
  if (!peer)
    return peer.error();
  int fd = ::socket(peer->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return make_system_error("socket", errno);
  struct closer {
    int fd;
    ~closer() {
      ::close(fd);
    }
  } guard{fd};
  // Connected: the kernel drops datagrams from anyone but `to`.
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&peer->addr), peer->len) != 0)
    return make_system_error("connect", errno);
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0)
    return make_system_error("send", errno);
  auto deadline =
      telemetry::monotonic_time() + (timeout == std::chrono::milliseconds::max()
                                         ? int64_t{0}
                                         : static_cast<int64_t>(timeout.count()) * 1000000);
  std::string buf(max_size == 0 ? 1 : max_size, '\0');
  for (;;) {
    int wait_ms = -1;
    if (timeout != std::chrono::milliseconds::max()) {
      auto left = deadline - telemetry::monotonic_time();
      if (left <= 0)
        return caf::make_error(errc::timeout, "no answer from " + to_string(to));
      wait_ms = static_cast<int>((left + 999999) / 1000000);
    }
    pollfd p{fd, POLLIN, 0};
    auto ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno != EINTR)
      return make_system_error("poll", errno);
    if (ready <= 0)
      continue;
    auto n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n >= 0) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    if (errno == EAGAIN || errno == EINTR)
      continue;
    return make_system_error("recv", errno);
  }
}

} // namespace atl
