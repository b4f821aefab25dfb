// Atoll's I/O scheduler: a CAF scheduler (coordinator) whose workers also
// poll epoll, so that a socket event runs its owner on the thread that saw
// it (the BEAM's design), inside the actor system's own lifecycle.
#pragma once

#include <chrono>
#include <climits>
#include <memory>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/detail/type_list.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/timespan.hpp>

#include "atoll/runtime/detail/io_clock.hpp"
#include "atoll/runtime/reactor.hpp"

namespace atl {

/// The actor system's scheduler, loaded in place of CAF's own: a set of
/// worker threads that run actors and poll sockets. Each worker has its own
/// run queue, epoll instance and timer heap (see `reactor`): it runs the
/// actors in its queue, looks at its sockets every few actor runs and when
/// the queue is empty, enqueues a socket event to the fd's owner and runs
/// that owner itself, steals work from the others when it has none, and
/// otherwise sleeps in `epoll_wait`. A worker stuck in one long job has its
/// queue and sockets served by the others. Messages an actor sends wake
/// their receivers on the sender's worker; messages from outside go to a
/// sleeping worker.
///
/// Created and started with its actor system; stopped with it, after all
/// actors are done: its workers end, then the reactor drops every fd
/// registration and timer, before anything they refer to is destroyed. Two
/// systems in one process each have their own.
///
/// Load it with `atl::register_types(cfg)` or `atl::register_runtime_types(cfg)`
/// (which do it for you) or
/// `cfg.load<atl::io_scheduler>()`, before constructing the system.
/// Settings: `scheduler.max-threads` (default: one worker per core; 0 also
/// means one per core), `scheduler.max-throughput` (messages an actor
/// handles per run; default 100, so that sockets are polled often) and
/// `scheduler.release-memory-after` (a `caf::timespan`, default 100 ms; 0:
/// never; at most 1 h): once the workers have run at least 256 jobs since
/// the last release and then no worker has started a job for this long,
/// one of them gives the heap's free pages back to the operating system
/// (glibc's `malloc_trim(0)`, at most once a second; with another malloc it
/// finds glibc's heaps almost empty). Memory freed by a burst of work (TLS
/// handshake buffers, closed connections) then leaves the process's
/// resident set instead of waiting for the next burst. `register_types`
/// (and `register_runtime_types`) declare the setting; set it after them,
/// e.g. `cfg.set("scheduler.release-memory-after", caf::timespan{0})`. (A
/// program that declares it itself as an integer gives milliseconds.)
/// `scheduler.spinning-workers` (an integer; default, or negative: all
/// workers; 0: none):
/// how many workers may busy-wait at once when they run out of work (yield
/// the core and poll their sockets up to 4 times before they sleep, like
/// the BEAM's schedulers). A busy wait catches a client's next request
/// without a sleep and a wake-up; fewer spinning workers save the context
/// switches and polls of waits that find nothing, while the others sleep
/// until the kernel wakes them. (On 2 cores beside the load generator the
/// saving was not dependable: see docs/architecture.md, "Busy waiting".)
/// Declared like the setting above.
/// `scheduler.compaction` (a bool, default true; with one worker it does
/// nothing): load compaction, as the BEAM's schedulers do it. At most every
/// 20 ms one worker measures how much of the last window the active workers
/// spent running jobs (not waiting for work). Busy 90% of three windows in a
/// row: one more worker becomes active. Five windows in a row in which one
/// worker fewer could have done the work at 80% of its time: the last active
/// worker is parked. A parked worker steals nothing, does not busy-wait and
/// gets no new registrations, actors or timers; it still runs the jobs it
/// has and polls its sockets, but hands the owners it finds ready to an
/// active worker, where they re-arm: a registration moves to the poller of
/// the active worker that re-arms it (and, while several are active, to the
/// re-arming worker when its poller has more than 16 registrations more than
/// that worker's). A parked worker that finds another stuck in a job becomes
/// active at once (within about 20 ms: it sleeps at most 10 ms while an
/// active worker is awake, and is nudged out of a longer sleep). So a light
/// load runs on few threads (fewer context switches and wake-ups), and more
/// join as it grows. `reactor::active_workers()` shows how many are active.
/// Declared like the settings above (the examples take
/// `--scheduler.compaction=false`).
class io_scheduler final : public caf::scheduler::abstract_coordinator {
public:
  /// CAF's coordinator interface this scheduler implements.
  using super = caf::scheduler::abstract_coordinator;

  /// Made by CAF (`cfg.load<atl::io_scheduler>()`) for `sys`; the workers
  /// and the reactor start with the system.
  explicit io_scheduler(caf::actor_system& sys);

  ~io_scheduler() override;

  /// The module factory `actor_system_config::load` calls.
  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>);

  /// Reads the settings (see the class comment).
  void init(caf::actor_system_config& cfg) override;

  /// Starts the workers and the clock thread.
  void start() override;

  /// Ends the workers (after the jobs queued so far), the clock thread and
  /// the reactor.
  void stop() override;

  /// Schedules `job`: on the calling worker's queue if called on one of
  /// this scheduler's workers, else on a sleeping worker's (or the next
  /// one's, round-robin).
  void enqueue(caf::resumable* job) override;

  /// Defers `fn(arg)` to the end of the calling worker's current run of
  /// jobs: it runs on this thread once the worker's queue is empty (before
  /// it steals work, spins or sleeps), after every 32 further jobs at the
  /// latest, and before the worker ends. Lets the actors that run
  /// back-to-back on one worker share a system call (the UDP handlers'
  /// replies go out in one `sendmmsg`). Deferring the same `fn` and `arg`
  /// again before it ran runs it once. `fn` must not throw or block; it may
  /// defer again (it then runs in the same flush).
  /// Returns false, deferring nothing, if the caller is not one of an
  /// `io_scheduler`'s workers (a detached actor, another thread) or 8
  /// distinct items are already waiting: the caller does the work now.
  [[nodiscard]] static bool defer_to_batch_end(void (*fn)(void*), void* arg) noexcept;

  /// CAF's timer service (delayed messages, request timeouts).
  caf::detail::thread_safe_actor_clock& clock() noexcept override;

  /// The reactor (null before the system started it).
  const std::shared_ptr<reactor>& io() const noexcept {
    return io_;
  }

private:
  caf::timespan release_after_ = std::chrono::milliseconds{100};
  int spinning_workers_ = INT_MAX;
  bool compaction_ = true;
  detail::io_clock clock_;
  std::thread clock_thread_;
  std::shared_ptr<reactor> io_;
};

} // namespace atl
