// The reactor: the epoll side of Atoll's I/O scheduler. It turns
// file-descriptor readiness and timers into messages to the owning actor,
// which then runs on the scheduler worker that saw the event.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/weak_intrusive_ptr.hpp>

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

class io_scheduler;

/// An fd owner that takes its socket events without a mailbox message: the
/// poller calls `post_io`, and the owner handles the events the next time
/// it runs (scheduling itself if it was idle). Saves a message allocation
/// and a mailbox round per event; an event-based actor implements it by
/// overriding `resume` (see the connection actor).
class io_sink {
public:
  /// `events` of the owner's registration are ready. Called on the poller's
  /// thread, with its execution unit `unit` (where an idle owner should
  /// run); must not block and must not throw.
  virtual void post_io(uint32_t events, caf::execution_unit* unit) noexcept = 0;

protected:
  ~io_sink() = default;
};

namespace detail {
struct io_core;
struct shared_owners;
struct timer_heap;
struct timer_heap_access;
} // namespace detail

/// A one-shot timer of the reactor, embedded in its owner (no allocation per
/// timer). When due, the owner gets `(reactor_timer_atom, uint64_t tag)`,
/// delivered like socket events. The owner must `cancel` it before it goes
/// away (e.g. in its cleanup); destroying an armed timer cancels it. Used by
/// one actor at a time.
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
  friend struct detail::timer_heap_access;
  static constexpr size_t npos = static_cast<size_t>(-1);

  caf::weak_actor_ptr owner_;
  int64_t due_ = 0;
  uint64_t tag_ = 0;
  size_t index_ = npos;                            // position in the heap
  std::atomic<detail::timer_heap*> heap_{nullptr}; // the heap while armed
};

/// The state of a system's scheduler and its pollers at one moment, for
/// monitoring (see `reactor::stats`). Each field is read on its own without
/// a lock, so that fields may be a few microseconds apart; counters only
/// grow. Fixed-width fields: it crosses nodes.
struct scheduler_stats {
  /// Scheduler worker threads, each with its epoll instance
  /// (`scheduler.max-threads`; by default one per core).
  uint64_t workers = 0;
  /// Workers that take new work now (see `reactor::active_workers`).
  uint64_t active_workers = 0;
  /// True if load compaction is on (`scheduler.compaction`; never with a
  /// single worker).
  bool compaction = false;
  /// Workers made active by load compaction, since the system started.
  uint64_t activations = 0;
  /// Workers parked by load compaction, since the system started.
  uint64_t deactivations = 0;
  /// Busy waits of workers that ran out of work (see `reactor::spin_waits`).
  uint64_t spin_waits = 0;
  /// Free heap memory given back after a rest (see `reactor::memory_releases`).
  uint64_t memory_releases = 0;
  /// Registered fds, in all.
  uint64_t registrations = 0;
  /// Registered fds by poller index (see `reactor::registrations_per_poller`).
  std::vector<uint64_t> registrations_per_poller;
};

/// Serializes a `scheduler_stats` (CAF inspection: the inspector sends it
/// to other nodes).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduler_stats& x) {
  return f(caf::meta::type_name("scheduler_stats"), x.workers, x.active_workers, x.compaction,
           x.activations, x.deactivations, x.spin_waits, x.memory_releases, x.registrations,
           x.registrations_per_poller);
}

/// The I/O side of an actor system that runs `atl::io_scheduler` (loaded by
/// `atl::register_types`): one epoll instance and one timer heap per
/// scheduler worker. A worker waits in `epoll_wait` when it has no actor to
/// run, and polls between actor runs when it has; for a ready fd it enqueues
/// `(socket_ready_atom, int fd, uint32_t events, uint32_t token)` to the fd's
/// owner and runs that owner itself, on the thread that saw the event.
/// Interest is one-shot: after an event the fd stays silent until its owner
/// calls `rearm`, which mirrors Erlang's `{active, once}` and gives
/// per-connection back-pressure. (Inside, a plain registration stays in
/// epoll level-triggered and is held back while its owner has an event it
/// has not acknowledged, so an unchanged `rearm` costs no system call.) New
/// registrations are spread over the workers' epoll instances, round-robin.
///
/// The reactor lives and dies with its actor system: the scheduler stops it
/// after its workers have ended, which drops every registration and timer;
/// afterwards registering fails with `errc::reactor_unavailable` and the
/// other calls do nothing.
///
/// All member functions are thread-safe and take no lock shared by all
/// registrations: each fd has its own small lock, each worker its own timer
/// heap. The reactor holds a strong reference to each owner while its fd is
/// registered; owners must call `remove` before closing the fd.
class reactor {
public:
  /// The reactor of `sys`, whose scheduler must be `atl::io_scheduler`.
  /// Errors: `errc::reactor_unavailable` (another scheduler: call
  /// `atl::register_types(cfg)` before creating the system; or the system
  /// is shutting down). Any thread.
  [[nodiscard]] static caf::expected<std::shared_ptr<reactor>> of(caf::actor_system& sys);

  ~reactor();

  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  /// Registers `fd` for `owner` with one-shot `interest`
  /// (`io_events::readable` and/or `io_events::writable`). Errors:
  /// `errc::registration_failed` (fd already registered, epoll_ctl failed),
  /// `errc::reactor_unavailable` (stopped).
  [[nodiscard]] caf::expected<fd_registration> add(int fd, caf::strong_actor_ptr owner,
                                                   uint32_t interest);

  /// Like `add`, but events go to `sink` (which must be `owner` itself, and
  /// live as long as `owner`) by `io_sink::post_io` instead of a message.
  /// Timer messages still arrive as messages.
  [[nodiscard]] caf::expected<fd_registration> add(int fd, caf::strong_actor_ptr owner,
                                                   io_sink* sink, uint32_t interest);

  /// Registers `fd` to be shared by several owners (e.g. the acceptors of one
  /// listen socket): each one-shot event goes to one owner, round-robin, and
  /// only that owner re-arms. Owners come and go with `join` and `leave`;
  /// while there is none, an event waits (disarmed) for the next to join.
  /// Errors as `add`.
  [[nodiscard]] caf::expected<fd_registration> add_shared(int fd, uint32_t interest);

  /// Adds an owner to a shared registration and arms it if an event is
  /// waiting. Errors: `errc::registration_failed` (stale or not shared).
  [[nodiscard]] caf::error join(const fd_registration& reg, caf::strong_actor_ptr owner);

  /// Removes an owner from a shared registration. If the last event went to
  /// this owner and it did not re-arm, the fd is re-armed so that another
  /// owner gets it: an event is never lost with an owner that died.
  void leave(const fd_registration& reg, const caf::actor_addr& owner);

  /// Re-enables the one-shot interest of a registration. Errors:
  /// `errc::registration_failed` (stale registration or epoll_ctl failed).
  [[nodiscard]] caf::error rearm(const fd_registration& reg, uint32_t interest);

  /// Removes a registration (no-op if it is stale). After it returns, no new
  /// event for it is sent; one already in the owner's mailbox may remain and
  /// is recognized by its token. Call it before closing the fd. With
  /// `closing_next` the caller promises to close the fd right away (and to
  /// hold no duplicate of it): the close takes it out of epoll, which saves
  /// a system call.
  void remove(const fd_registration& reg, bool closing_next = false);

  /// Arms `timer` to send `(reactor_timer_atom, tag)` to `owner` at `due`
  /// (monotonic ns, see `telemetry::monotonic_time`); re-arms it if armed.
  /// Called on a worker, the timer goes to that worker's heap; elsewhere to
  /// one chosen round-robin. Does nothing once the reactor stopped.
  void schedule(reactor_timer& timer, caf::strong_actor_ptr owner, int64_t due, uint64_t tag);

  /// Disarms `timer` (no-op if not armed). After it returns the reactor no
  /// longer touches `timer`; a message already on its way may still arrive
  /// (tell it by its tag).
  static void cancel(reactor_timer& timer);

  /// Number of currently registered fds.
  size_t size() const noexcept;

  /// Number of pollers (= scheduler workers).
  size_t num_pollers() const noexcept;

  /// How often the workers have given free heap memory back to the
  /// operating system after a rest (see `io_scheduler`,
  /// `scheduler.release-memory-after`). Any thread.
  uint64_t memory_releases() const noexcept;

  /// How often a worker that ran out of work has busy-waited (yielded and
  /// polled its sockets a few times) before sleeping; at most
  /// `scheduler.spinning-workers` do so at once (see `io_scheduler`). Any
  /// thread.
  uint64_t spin_waits() const noexcept;

  /// Workers that take new work now: all of them, or with load compaction
  /// (`scheduler.compaction`, see `io_scheduler`) as many as the load needs,
  /// at least one. Any thread.
  size_t active_workers() const noexcept;

  /// How often load compaction let one more worker take work, and how often
  /// it parked one (see `io_scheduler`). Any thread.
  uint64_t worker_activations() const noexcept;

  /// See `worker_activations`.
  uint64_t worker_deactivations() const noexcept;

  /// Registered fds per poller, by poller index. A registration goes to the
  /// poller of the worker that makes it (where its owner runs), unless that
  /// poller has 16 more than the least loaded one, which then takes it (as
  /// it takes those made by other threads); with load compaction, only
  /// active workers' pollers take new ones, and registrations move to the
  /// active worker that re-arms them (see `io_scheduler`). Any thread.
  std::vector<size_t> registrations_per_poller() const;

  /// True if load compaction is on (`scheduler.compaction`, see
  /// `io_scheduler`; never with a single worker). Any thread.
  bool compaction() const noexcept;

  /// All of the above in one value (see `scheduler_stats`). Any thread.
  [[nodiscard]] scheduler_stats stats() const;

  /// True until the scheduler stopped the reactor.
  bool running() const noexcept;

  /// True if the calling thread is one of this reactor's workers (it runs
  /// actors of this system: a blocking call there holds a worker).
  bool on_worker() const noexcept;

private:
  friend class io_scheduler;

  explicit reactor(std::shared_ptr<detail::io_core> core);

  [[nodiscard]] caf::expected<fd_registration>
  add_impl(int fd, caf::strong_actor_ptr owner, io_sink* sink,
           std::unique_ptr<detail::shared_owners> shared, uint32_t interest);

  std::shared_ptr<detail::io_core> core_;
};

} // namespace atl
