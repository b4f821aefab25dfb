// The reactor: epoll poller threads that turn file-descriptor readiness into
// `socket_ready` messages to the owning actor.
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>

#include <caf/actor_addr.hpp>
#include <caf/weak_intrusive_ptr.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace atl {

/// Interest and event bits (numerically equal to epoll's).
namespace io_events {
/// The fd is readable (or a listen socket has a pending connection).
inline constexpr uint32_t readable = 0x001;
/// The fd is writable.
inline constexpr uint32_t writable = 0x004;
/// An error condition is pending (always reported).
inline constexpr uint32_t error = 0x008;
/// The peer hung up (always reported).
inline constexpr uint32_t hangup = 0x010;
/// The peer shut down its writing half.
inline constexpr uint32_t peer_shutdown = 0x2000;
} // namespace io_events

/// Identifies one registration of an fd: the fd and a generation token that
/// is unique for the reactor's lifetime. Events carry both; an event whose
/// token no longer matches the fd's current registration is dropped, so a
/// stale event never reaches the owner of a reused fd number.
struct fd_registration {
  /// The registered file descriptor, -1 if none.
  int fd = -1;
  /// The registration's generation token, 0 if none.
  uint32_t token = 0;

  /// True if this denotes a registration.
  explicit operator bool() const noexcept {
    return fd >= 0 && token != 0;
  }
};

class reactor;

/// A one-shot timer of the reactor, embedded in its owner (no allocation per
/// timer). When due, the owner gets `(reactor_timer_atom, uint64_t tag)`
/// (run inline like socket events). The owner must `cancel` it before it
/// goes away (e.g. in its cleanup); destroying an armed timer cancels it.
/// Used by one actor at a time.
class reactor_timer {
public:
  reactor_timer() = default;
  reactor_timer(const reactor_timer&) = delete;
  reactor_timer& operator=(const reactor_timer&) = delete;
  ~reactor_timer();

  /// True while scheduled (false once due, even before its message is
  /// handled).
  bool armed() const noexcept {
    return heap_.load(std::memory_order_acquire) != nullptr;
  }

  /// When it fires (monotonic ns), if armed.
  int64_t due() const noexcept {
    return due_;
  }

private:
  friend class reactor;
  friend struct timer_heap_access;
  static constexpr size_t npos = static_cast<size_t>(-1);

  caf::weak_actor_ptr owner_;
  int64_t due_ = 0;
  uint64_t tag_ = 0;
  size_t index_ = npos;              // position in the poller's heap
  std::atomic<void*> heap_{nullptr}; // the poller's timer heap while armed
};

/// A set of epoll poller threads. For a ready fd a poller sends
/// `(socket_ready_atom, int fd, uint32_t events, uint32_t token)` to the fd's
/// owner with normal priority, and (by default, see
/// `options::run_owners_inline`) runs that owner right away on its own thread. Interest is one-shot: after an
/// event the fd stays silent until its owner calls `rearm`, which mirrors
/// Erlang's `{active, once}` and gives per-connection back-pressure.
///
/// All member functions are thread-safe. The reactor holds a strong
/// reference to each owner only while the fd is registered; owners must call
/// `remove` before closing the fd. Destroying the last `shared_ptr` stops the
/// pollers (joining them unless it happens on a poller thread itself).
class reactor {
public:
  /// Construction options.
  struct options {
    /// Number of poller threads (each with its own epoll instance); fds are
    /// spread over them by fd number.
    size_t num_pollers = 1;
    /// Run the owner of a ready fd on the poller thread itself (the poller is
    /// a CAF execution unit for that one actor), instead of waking a
    /// scheduler worker: no thread hop per socket event. Anything else that
    /// becomes ready meanwhile (recipients of its messages, actors it spawns)
    /// still goes to the CAF scheduler, and detached actors keep their own
    /// threads. An owner that blocks stalls its poller: run blocking
    /// handlers detached.
    bool run_owners_inline = true;
    /// Messages an inline owner may process per run before yielding.
    size_t max_throughput = 64;
  };

  /// Creates a reactor and starts its pollers. Errors:
  /// `errc::reactor_unavailable` (epoll_create1 / eventfd / thread failure).
  static caf::expected<std::shared_ptr<reactor>> make(options opts);

  /// Creates a reactor with default options.
  static caf::expected<std::shared_ptr<reactor>> make();

  /// Returns the process-wide shared reactor, creating it on first use; it
  /// lives as long as someone holds it. Errors as `make`.
  static caf::expected<std::shared_ptr<reactor>> shared();

  ~reactor();

  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  /// Registers `fd` for `owner` with one-shot `interest`
  /// (`io_events::readable` and/or `io_events::writable`). Errors:
  /// `errc::registration_failed` (fd already registered, epoll_ctl failed),
  /// `errc::reactor_unavailable` (stopped).
  caf::expected<fd_registration> add(int fd, caf::strong_actor_ptr owner, uint32_t interest);

  /// Registers `fd` to be shared by several owners (e.g. the acceptors of one
  /// listen socket): each one-shot event goes to one owner, round-robin, and
  /// only that owner re-arms. Owners come and go with `join` and `leave`;
  /// while there is none, an event waits (disarmed) for the next to join.
  /// Errors as `add`.
  caf::expected<fd_registration> add_shared(int fd, uint32_t interest);

  /// Adds an owner to a shared registration and arms it if an event is
  /// waiting. Errors: `errc::registration_failed` (stale or not shared).
  caf::error join(const fd_registration& reg, caf::strong_actor_ptr owner);

  /// Removes an owner from a shared registration. If the last event went to
  /// this owner and it did not re-arm, the fd is re-armed so that another
  /// owner gets it: an event is never lost with an owner that died.
  void leave(const fd_registration& reg, const caf::actor_addr& owner);

  /// Re-enables the one-shot interest of a registration. Errors:
  /// `errc::registration_failed` (stale registration or epoll_ctl failed).
  caf::error rearm(const fd_registration& reg, uint32_t interest);

  /// Removes a registration (no-op if it is stale). After it returns, no new
  /// event for it is sent; one already in the owner's mailbox may remain and
  /// is recognized by its token. Call it before closing the fd.
  void remove(const fd_registration& reg);

  /// Arms `timer` to send `(reactor_timer_atom, tag)` to `owner` at `due`
  /// (monotonic ns, see `telemetry::monotonic_time`); re-arms it if armed.
  /// The poller of `owner`'s fds (by `affinity`, e.g. its fd) serves it.
  void schedule(reactor_timer& timer, caf::strong_actor_ptr owner, int64_t due, uint64_t tag,
                int affinity);

  /// Disarms `timer` (no-op if not armed). After it returns the reactor no
  /// longer touches `timer`; a message already on its way may still arrive
  /// (tell it by its tag).
  static void cancel(reactor_timer& timer);

  /// Number of currently registered fds.
  size_t size() const;

  /// Number of poller threads.
  size_t num_pollers() const noexcept;

  /// Stops the pollers and drops all registrations. Idempotent.
  void stop();

  /// Opaque implementation shared with the poller threads.
  struct core;

  /// Opaque owner list of a shared registration.
  struct shared_owners;

private:
  explicit reactor(std::shared_ptr<core> impl);

  caf::expected<fd_registration> add_impl(int fd, caf::strong_actor_ptr owner,
                                           std::unique_ptr<shared_owners> shared,
                                           uint32_t interest);

  std::shared_ptr<core> core_;
};

} // namespace atl
