// UDP sockets: options (Abyss's transport_options), opening and binding,
// batched non-blocking receive with the sender's address, sending to any
// address, multicast group membership, and a blocking request/response
// helper (Abyss's send_recv).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "atoll/transports/endpoint.hpp"

namespace atl {

/// Options of a UDP socket. Every socket is non-blocking whatever is set here.
struct udp_options {
  /// SO_REUSEADDR. Off by default, unlike Abyss: on Linux it lets a second
  /// UDP socket bind the same address and port silently (the datagrams then
  /// go to one of them), so a port in use would not be reported. UDP has no
  /// TIME_WAIT, so restarts do not need it; multicast listeners sharing a
  /// port with other programs do.
  bool reuseaddr = false;
  /// SO_REUSEPORT: several sockets bind the same port and the kernel spreads
  /// datagrams over them by source address (one per listener).
  bool reuseport = false;
  /// SO_RCVBUF in bytes (unset: the kernel's default).
  std::optional<int> recbuf;
  /// SO_SNDBUF in bytes (unset: the kernel's default).
  std::optional<int> sndbuf;
  /// SO_BROADCAST: may send to (and receive) broadcast addresses.
  bool broadcast = false;
  /// IP_MULTICAST_IF: the IPv4 address of the interface multicast goes out of
  /// (unset: the kernel's choice).
  std::optional<std::string> multicast_if;
  /// IP_MULTICAST_TTL (IPv6 sockets: IPV6_MULTICAST_HOPS), 0..255 (unset: 1,
  /// the kernel's default).
  std::optional<int> multicast_ttl;
  /// IP_MULTICAST_LOOP (IPv6: IPV6_MULTICAST_LOOP): multicast sent here is
  /// looped back to local members (unset: the kernel's default, on).
  std::optional<bool> multicast_loop;
  /// Multicast groups to join when the socket opens: IPv4 ones (e.g.
  /// "224.0.0.251" for mDNS) on `multicast_if` or any interface; IPv6 ones
  /// (the socket bound to an IPv6 address such as "::") with the interface
  /// after a '%', by name or index (e.g. "ff02::fb%eth0"), or without one
  /// on the kernel's choice.
  std::vector<std::string> membership;
  /// IPV6_V6ONLY on IPv6 sockets (unset: the kernel's default).
  std::optional<bool> ipv6_v6only;
  /// IP_PKTINFO / IPV6_RECVPKTINFO: each datagram tells the address it was
  /// sent to and the interface it came in on (see `datagram_meta`).
  bool pktinfo = false;
};

/// Checks the options. Errors: `errc::invalid_option` naming the option
/// (`transport.recbuf`, `transport.multicast_if`, ...).
[[nodiscard]] caf::error validate(const udp_options& opts);

/// Renders the options as "reuseaddr=true reuseport=false ..." (telemetry's
/// `transport_options`).
std::string describe(const udp_options& opts);

/// A datagram's sender (or destination) as the kernel gives it: cheap to copy,
/// compare and hash; convert with `to_endpoint` when text is needed.
struct udp_peer {
  /// The socket address.
  sockaddr_storage addr{};
  /// Its length (0: none).
  socklen_t len = 0;

  /// The address as text and port. Errors: `errc::invalid_address`.
  [[nodiscard]] caf::expected<endpoint> to_endpoint() const;

  /// Builds a peer from an IP endpoint. Errors: `errc::invalid_address`.
  [[nodiscard]] static caf::expected<udp_peer> from(const endpoint& ep);

  /// The IP address bytes (4 or 16) and the port, for hashing and equality.
  size_t hash() const noexcept;
};

/// Same family, address and port.
bool operator==(const udp_peer& a, const udp_peer& b) noexcept;

/// Hashes a peer (for per-peer tables).
struct udp_peer_hash {
  /// `x.hash()`.
  size_t operator()(const udp_peer& x) const noexcept {
    return x.hash();
  }
};

/// What came with one received datagram besides its bytes.
struct datagram_meta {
  /// The sender.
  udp_peer peer;
  /// The datagram's real size (larger than what was stored when truncated).
  size_t size = 0;
  /// True if the datagram was larger than the buffer and was cut.
  bool truncated = false;
  /// With `udp_options::pktinfo`: the address the datagram was sent to
  /// (e.g. a broadcast or multicast address) and the interface index.
  std::optional<std::string> destination;
  /// With `udp_options::pktinfo`: the receiving interface's index (0: unknown).
  int interface_index = 0;
};

/// Receive buffers for `datagram_socket::receive`: `count` slots of
/// `slot_size` bytes each, reused across calls (no allocation per datagram).
class datagram_batch {
public:
  /// `count` slots (1..1024) of `slot_size` bytes (1..65536).
  datagram_batch(size_t count, size_t slot_size);

  /// Number of slots.
  size_t capacity() const noexcept {
    return meta_.size();
  }

  /// Datagrams received by the last `receive`.
  size_t size() const noexcept {
    return filled_;
  }

  /// The stored bytes of datagram `i` (at most `slot_size`).
  std::string_view data(size_t i) const noexcept {
    return {buffer_.data() + i * slot_size_, lengths_[i]};
  }

  /// The sender, real size and ancillary data of datagram `i`.
  const datagram_meta& meta(size_t i) const noexcept {
    return meta_[i];
  }

  /// The size of each slot.
  size_t slot_size() const noexcept {
    return slot_size_;
  }

private:
  friend class datagram_socket;
  size_t slot_size_;
  size_t filled_ = 0;
  std::vector<char> buffer_;
  std::vector<size_t> lengths_;
  std::vector<datagram_meta> meta_;
  std::vector<char> control_;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iovs_;
};

/// Socket statistics (Abyss's getstat): datagrams and octets each way.
struct datagram_stats {
  /// Datagrams received.
  uint64_t recv_cnt = 0;
  /// Octets received.
  uint64_t recv_oct = 0;
  /// Datagrams sent.
  uint64_t send_cnt = 0;
  /// Octets sent.
  uint64_t send_oct = 0;
};

/// A bound, non-blocking UDP socket. Thread-safe: several threads may send
/// and one may receive at the same time; `close` waits for calls in
/// progress, after which every call fails with `errc::closed` (the fd number
/// is never used after its close, so a reused number is never written to).
class datagram_socket {
public:
  /// Opens a socket bound to `addr`:`port` (0: a free port) with `opts`.
  /// Errors: `errc::invalid_option`, `errc::address_in_use`,
  /// `errc::access_denied`, `errc::invalid_address` (also a Unix path),
  /// `errc::system_error` naming the failing call.
  [[nodiscard]] static caf::expected<std::unique_ptr<datagram_socket>>
  open(const bind_address& addr, uint16_t port, const udp_options& opts);

  datagram_socket(const datagram_socket&) = delete;
  datagram_socket& operator=(const datagram_socket&) = delete;
  ~datagram_socket();

  /// The fd (-1 once closed). For registering with a reactor; do not close it.
  int fd() const noexcept;

  /// The bound address (the real port when bound to port 0).
  const endpoint& local() const noexcept {
    return local_;
  }

  /// Receives up to `batch.capacity()` waiting datagrams without blocking
  /// (recvmmsg). Returns how many (0: none waiting). Datagrams larger than
  /// the slot size are cut and marked `truncated` with their real size.
  /// Errors: `errc::closed`, `errc::system_error`.
  [[nodiscard]] caf::expected<size_t> receive(datagram_batch& batch);

  /// Sends one datagram to `to` without blocking. Errors: `errc::closed`,
  /// `errc::timeout` (the send buffer is full: EAGAIN, the datagram is
  /// dropped), `errc::system_error` (e.g. EMSGSIZE, ENETUNREACH, EACCES for
  /// broadcast without `udp_options::broadcast`).
  [[nodiscard]] caf::error send_to(const udp_peer& to, std::string_view data);

  /// Sends `msgs` (destination and bytes) without blocking, in as few
  /// system calls as the kernel allows (sendmmsg, up to 64 per call).
  /// Returns how many were sent; the rest are dropped (full send buffer) or
  /// failed (each failure is skipped, e.g. an unreachable address). Errors:
  /// `errc::closed`.
  [[nodiscard]] caf::expected<size_t>
  send_many(const std::vector<std::pair<udp_peer, std::string>>& msgs);

  /// Queues one datagram for `to`: it goes out with everything else queued
  /// on this socket at the next `flush_queued` (one `sendmmsg` for many), or
  /// at `close` at the latest. Any thread. Errors: `errc::closed` (later
  /// failures drop the datagram, as `send_many` does).
  [[nodiscard]] caf::error queue_send(const udp_peer& to, std::string_view data);

  /// Sends what `queue_send` queued so far (see `send_many`), after waiting
  /// for a flush in progress on another thread, so that whatever is sent
  /// next leaves after it. Returns how many went out. Any thread.
  size_t flush_queued() noexcept;

  /// Like `flush_queued`, but never waits: if another thread is flushing
  /// this socket, returns 0 at once and that thread sends what is queued
  /// (also what was queued while it sent) before it stops. Batches leave in
  /// the order they were queued. Any thread.
  size_t try_flush_queued() noexcept;

  /// Joins a multicast group: an IPv4 one on the interface with address
  /// `interface_address` (empty: any); an IPv6 one (this socket bound to an
  /// IPv6 address) on the interface named or numbered `interface_address`
  /// (empty: the group's "%zone", or the kernel's choice). Errors:
  /// `errc::invalid_address` (not a group, an unknown interface, an IPv6
  /// group on an IPv4 socket), `errc::system_error`.
  [[nodiscard]] caf::error join_group(const std::string& group,
                                      const std::string& interface_address = {});

  /// Leaves a group joined with `join_group`. Errors as `join_group`.
  [[nodiscard]] caf::error leave_group(const std::string& group,
                                       const std::string& interface_address = {});

  /// Datagrams and octets received and sent so far.
  datagram_stats stats() const noexcept;

  /// Sends what is queued, then closes the socket (idempotent); waits for
  /// calls in progress.
  void close() noexcept;

  /// True once closed.
  bool closed() const noexcept;

private:
  datagram_socket(int fd, endpoint local, bool pktinfo);

  mutable std::shared_mutex mtx_; // shared: calls using the fd; unique: close
  int fd_;
  endpoint local_;
  bool pktinfo_;
  std::atomic<uint64_t> recv_cnt_{0};
  std::atomic<uint64_t> recv_oct_{0};
  std::atomic<uint64_t> send_cnt_{0};
  std::atomic<uint64_t> send_oct_{0};
  /// Sends batches until the queue is empty; the caller holds flush_mtx_.
  size_t drain_queue() noexcept;

  std::mutex flush_mtx_; // one flush at a time: batches leave in the order they were queued
  std::mutex queue_mtx_; // guards queued_
  std::vector<std::pair<udp_peer, std::string>> queued_;
};

/// Sends `request` to `to` from a fresh ephemeral socket and waits up to
/// `timeout` for the first datagram coming back from `to` (Abyss's
/// send_recv): for clients and for handlers that relay (e.g. a DNS
/// forwarder). Blocks the calling thread: inside an actor, prefer a detached
/// actor. Errors: `errc::timeout`, `errc::invalid_address`,
/// `errc::system_error`.
[[nodiscard]] caf::expected<std::string> send_recv(const endpoint& to, std::string_view request,
                                                   std::chrono::milliseconds timeout,
                                                   size_t max_size = 65536);

} // namespace atl
