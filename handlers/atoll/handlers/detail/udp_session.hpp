// The UDP handler actor: drives one `udp_handler` with datagrams and mailbox
// messages, per datagram or per peer. Internal to the UDP server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include "atoll/handlers/detail/handler_host.hpp"
#include "atoll/handlers/detail/session_slots.hpp"
#include "atoll/handlers/detail/sharded_map.hpp"
#include "atoll/handlers/udp_handler.hpp"
#include "atoll/runtime/span.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/transports/datagram_socket.hpp"
#include "atoll/transports/tcp_options.hpp" // default_read_timeout

namespace atl {

/// `(udp_datagram_atom, udp_payload)`: another datagram for a per-peer actor.
using udp_datagram_atom = caf::atom_constant<caf::atom("udpdgram")>;

namespace detail {

class udp_peer_table;

/// Settings shared by all handler actors of one UDP server.
struct udp_session_config {
  /// Creates each actor's handler. Required.
  udp_handler_factory factory;
  /// The handler's name in telemetry and logs.
  std::string handler_name;
  /// Where telemetry goes. Required.
  std::shared_ptr<telemetry::bus> events;
  /// The span prefix {"atoll", "udp", "connection"}.
  std::shared_ptr<const telemetry::event_name> span_prefix;
  /// `recv` and `send` events (built only for their subscribers).
  std::shared_ptr<const telemetry::interest> recv_event;
  /// See above.
  std::shared_ptr<const telemetry::interest> send_event;
  /// The periodic traffic report (`progress`) of long sessions (per peer):
  /// totals so far, at most once a second, for its subscribers.
  std::shared_ptr<const telemetry::interest> progress_event;
  /// Per datagram or per peer.
  udp_lifetime lifetime = udp_lifetime::per_datagram;
  /// Silence before `handle_timeout` (per peer; `atl::infinite`: none).
  std::chrono::milliseconds read_timeout = default_read_timeout;
  /// Do not log error verdicts (exceptions are always logged).
  bool silent_terminate_on_error = false;
  /// Run each handler actor on its own thread (`caf::detached`), for
  /// handlers that block.
  bool detached = false;
  /// The per-peer routing table (per_peer only).
  std::shared_ptr<udp_peer_table> peers;
  /// The handlers running at once (in actors or, per datagram, in their
  /// listeners), against `num_connections`. Required.
  std::shared_ptr<session_slots> slots;
  /// Counts the server's stops (incremented when one begins). A per-peer
  /// actor started before the latest stop drops the datagrams still
  /// waiting in its mailbox (its stop comes after them, and a handler that
  /// blocks would hold the stop for each one); a count, not a flag, so that
  /// a restarted server's new actors do not revive an old one's queue.
  /// Required.
  std::shared_ptr<std::atomic<uint64_t>> stops = std::make_shared<std::atomic<uint64_t>>(0);
};

/// One datagram travelling to a handler actor.
struct udp_payload {
  /// The bytes.
  std::string data;
  /// When the listener received it (monotonic ns).
  int64_t received_at = 0;
  /// With `udp_options::pktinfo`: where it was sent to, and the interface.
  std::optional<std::string> destination;
  /// See above.
  int interface_index = 0;
};

/// What a listener hands to a new handler actor (Abyss's
/// `{:abyss_received, ...}`).
struct udp_hand_off {
  /// The socket to reply through.
  std::shared_ptr<datagram_socket> sock;
  /// The sender.
  udp_peer peer;
  /// The first datagram.
  udp_payload first;
  /// The acceptor span's context (the connection span's parent).
  uint64_t parent_span = 0;
  /// The spawner took one of `udp_session_config::slots` for this actor,
  /// which gives it back when it ends.
  bool holds_slot = false;
  /// Per peer: the number of datagrams sent to the actor and not yet taken
  /// from its mailbox (`udp_peer_table`'s bound), which the actor counts
  /// down.
  std::shared_ptr<std::atomic<uint32_t>> queued;
  /// If set, the supervisor the actor asks to adopt it
  /// (`adopt_children_atom`) once it outlives its first run (detached:
  /// before it); if that supervisor is gone, the actor ends as in a stop.
  /// Unset: spawned by its supervisor.
  caf::actor adopter;
};

/// Per-peer routing: which handler actor serves which peer, and the
/// datagrams that arrive while a peer's actor is being started. Sharded;
/// thread-safe.
class udp_peer_table {
public:
  /// The most datagrams held for a peer whose actor is starting.
  static constexpr size_t max_pending = 64;
  /// The most datagrams waiting in a peer's actor's mailbox: a peer that
  /// sends faster than its handler keeps up loses the excess instead of
  /// growing the mailbox without bound.
  static constexpr uint32_t max_queued = 256;

  /// What `route` decided.
  enum class outcome : uint8_t {
    /// Sent to the peer's actor.
    delivered,
    /// Held until the peer's actor runs.
    held,
    /// No actor for this peer: the caller starts one and calls `started`.
    start,
    /// Too many datagrams held for a starting actor, or waiting for a
    /// running one: dropped.
    dropped,
  };

  /// Delivers `payload` to `peer`'s actor, holds it, or asks the caller to
  /// start one (then `payload` stays with the caller, and `queued` is the
  /// counter the new actor counts down: `udp_hand_off::queued`).
  outcome route(const udp_peer& peer, udp_payload& payload,
                std::shared_ptr<std::atomic<uint32_t>>& queued);

  /// The actor for `peer` runs: held datagrams go to it.
  void started(const udp_peer& peer, const caf::actor& actor);

  /// Starting `peer`'s actor failed: held datagrams are dropped. Returns
  /// how many.
  size_t failed(const udp_peer& peer);

  /// `actor` ends: forgets it (if it still serves `peer`).
  void ended(const udp_peer& peer, const caf::actor_addr& actor);

  /// Number of peers with an actor (or one starting).
  size_t size() const;

private:
  struct entry {
    caf::actor actor;
    std::vector<udp_payload> pending;
    std::shared_ptr<std::atomic<uint32_t>> queued; // in the actor's mailbox
  };
  sharded_map<udp_peer, entry, udp_peer_hash> peers_;
};

} // namespace detail

namespace detail {

/// What the UDP server's actors set on a handler's socket.
struct udp_socket_access {
  /// Where the socket's `send` events go.
  static void wire(udp_socket& sock, const telemetry::span* span,
                   const telemetry::interest* send_event) {
    sock.span_ = span;
    sock.send_event_ = send_event;
  }
  /// The current datagram's destination (pktinfo).
  static void set_destination(udp_socket& sock, const std::optional<std::string>& destination,
                              int interface_index) {
    sock.destination_ = destination;
    sock.interface_index_ = interface_index;
  }
  /// Counts a received datagram.
  static void received(udp_socket& sock, size_t octets) {
    ++sock.stats_.recv_cnt;
    sock.stats_.recv_oct += octets;
  }
  /// The peer replies go to (in_listener: each datagram's sender).
  static void set_peer(udp_socket& sock, const udp_peer& peer) {
    sock.peer_ = peer;
  }
  /// Defers sends to the end of the scheduler worker's run of jobs (handler
  /// actors), where the replies of all handlers that ran go out together.
  static void set_batched(udp_socket& sock, bool batched) {
    sock.batched_ = batched;
  }
  /// Defers sends into `outbox` (in_listener).
  static void set_outbox(udp_socket& sock, std::vector<std::pair<udp_peer, std::string>>* outbox) {
    sock.outbox_ = outbox;
  }
};

/// Starts the connection span of a handler serving `peer` (metadata: its
/// address and port, the handler's name), a child of the span `parent`,
/// started at `start_time` (monotonic ns).
telemetry::span start_udp_connection_span(const udp_session_config& conf, const udp_peer& peer,
                                          uint64_t parent, int64_t start_time);

/// Stops a UDP connection span with the datagrams and octets each way,
/// the `reason` and the error (none: no `error` field).
void stop_udp_connection_span(telemetry::span& span, const datagram_stats& stats,
                              const char* reason, const caf::error& error);

} // namespace detail

/// Spawns a UDP handler actor from inside `parent` (a listener, or the
/// connection supervisor's start function). Runs on `parent`'s thread.
caf::actor spawn_udp_session(caf::event_based_actor* parent,
                             std::shared_ptr<const detail::udp_session_config> config,
                             detail::udp_hand_off hand_off);

/// Runs a per-datagram handler's first datagram (`first`, the bytes of
/// `hand_off.first`) right here, on `parent`'s thread (a listener), and
/// gives the handler an actor only if it needs one: when it calls `self()`
/// or outlives the datagram (then the actor continues the session, as one
/// from `spawn_udp_session` would). Takes `hand_off`'s socket, slot and
/// adopter. Not for detached handlers.
void run_udp_session(caf::event_based_actor* parent,
                     std::shared_ptr<const detail::udp_session_config> config,
                     detail::udp_hand_off& hand_off, std::string_view first);

} // namespace atl

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(atl::detail::udp_hand_off)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(atl::detail::udp_payload)
