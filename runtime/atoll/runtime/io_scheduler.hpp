// Atoll's I/O scheduler: CAF's coordinator with a policy whose workers also
// poll epoll, so that a socket event runs its owner on the thread that saw
// it (the BEAM's design), inside the actor system's own lifecycle.
#pragma once

#include <cstddef>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/detail/type_list.hpp>
#include <caf/policy/unprofiled.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/coordinator.hpp>

#include "atoll/runtime/reactor.hpp"

namespace atl {

namespace detail {

/// The scheduler's state: per worker a run queue, an epoll instance and a
/// timer heap (defined in reactor.cpp).
struct io_core;

/// The policy's entry points (reactor.cpp). `worker` is the worker's index,
/// `unit` the worker itself (the execution unit its actors run on).
void io_central_enqueue(io_core& core, caf::resumable* job);
void io_external_enqueue(io_core& core, size_t worker, caf::resumable* job);
void io_internal_enqueue(io_core& core, size_t worker, caf::resumable* job);
void io_resume_later(io_core& core, size_t worker, caf::resumable* job);
caf::resumable* io_dequeue(io_core& core, size_t worker, caf::execution_unit* unit);
caf::resumable* io_take(io_core& core, size_t worker);

/// The scheduling policy of `io_scheduler` for `caf::scheduler::coordinator`:
/// every worker has its own run queue and epoll instance; an idle worker
/// steals jobs from the others, then sleeps in `epoll_wait`.
class io_policy : public caf::policy::unprofiled {
public:
  /// The coordinator's part: the shared state (set when it starts).
  struct coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator*) {
    }
    std::shared_ptr<io_core> core;
  };

  /// A worker's part: nothing (its state is in the core, by index).
  struct worker_data {
    explicit worker_data(caf::scheduler::abstract_coordinator*) {
    }
  };

  template <class Coordinator>
  void central_enqueue(Coordinator* self, caf::resumable* job) {
    io_central_enqueue(*d(self).core, job);
  }

  template <class Worker>
  void external_enqueue(Worker* self, caf::resumable* job) {
    io_external_enqueue(core_of(self), self->id(), job);
  }

  template <class Worker>
  void internal_enqueue(Worker* self, caf::resumable* job) {
    io_internal_enqueue(core_of(self), self->id(), job);
  }

  template <class Worker>
  void resume_job_later(Worker* self, caf::resumable* job) {
    io_resume_later(core_of(self), self->id(), job);
  }

  template <class Worker>
  caf::resumable* dequeue(Worker* self) {
    return io_dequeue(core_of(self), self->id(), self);
  }

  template <class Worker, class UnaryFunction>
  void foreach_resumable(Worker* self, UnaryFunction f) {
    for (auto* job = io_take(core_of(self), self->id()); job != nullptr;
         job = io_take(core_of(self), self->id()))
      f(job);
  }

  template <class Coordinator, class UnaryFunction>
  void foreach_central_resumable(Coordinator*, UnaryFunction) {
    // Nothing central: every job sits in a worker's queue.
  }

private:
  template <class Worker>
  static io_core& core_of(Worker* self) {
    return *self->parent()->data().core;
  }
};

} // namespace detail

/// CAF's scheduler (`caf::scheduler::coordinator`) with Atoll's I/O policy:
/// the workers run actors and poll epoll, and the system's reactor
/// (`reactor::of`) belongs to it. Created and started with its actor system;
/// stopped with it: its workers end, then the reactor drops every fd
/// registration and timer, before anything they refer to is destroyed. Two
/// systems in one process each have their own.
///
/// Load it with `atl::register_types(cfg)` (which does it for you) or
/// `cfg.load<atl::io_scheduler>()`, before constructing the system.
/// Settings: `scheduler.max-threads` (default: one worker per core; 0 also
/// means one per core) and `scheduler.max-throughput` (messages an actor
/// handles per run; default 100, so that sockets are polled often).
class io_scheduler final : public caf::scheduler::coordinator<detail::io_policy> {
public:
  using super = caf::scheduler::coordinator<detail::io_policy>;

  explicit io_scheduler(caf::actor_system& sys);

  /// The module factory `actor_system_config::load` calls.
  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>);

  /// Reads the settings (see the class comment).
  void init(caf::actor_system_config& cfg) override;

  /// The reactor (null before the system started it).
  const std::shared_ptr<reactor>& io() const noexcept {
    return io_;
  }

protected:
  void start() override;
  void stop() override;

private:
  std::shared_ptr<reactor> io_;
};

} // namespace atl
