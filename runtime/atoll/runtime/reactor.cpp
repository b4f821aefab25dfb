#include "atoll/runtime/reactor.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/execution_unit.hpp>
#include <caf/make_message.hpp>
#include <caf/message_id.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/runtime/telemetry.hpp"

namespace atl {

static_assert(io_events::readable == EPOLLIN);
static_assert(io_events::writable == EPOLLOUT);
static_assert(io_events::error == EPOLLERR);
static_assert(io_events::hangup == EPOLLHUP);
static_assert(io_events::peer_shutdown == EPOLLRDHUP);

namespace {

constexpr uint64_t wake_key = ~uint64_t{0};
constexpr int max_events = 256;

uint64_t pack(int fd, uint32_t token) {
  return (static_cast<uint64_t>(token) << 32) | static_cast<uint32_t>(fd);
}

} // namespace

/// The owners of a shared registration.
struct reactor::shared_owners {
  std::vector<caf::strong_actor_ptr> owners;
  size_t next = 0;
  caf::actor_id outstanding = 0; // got the last event, has not re-armed yet
  bool waiting = false;          // an event fired while nobody owned the fd
  uint32_t interest = 0;
};

namespace {

struct slot {
  caf::strong_actor_ptr owner;
  uint32_t token = 0;
  std::unique_ptr<reactor::shared_owners> shared;
};

/// Runs the owner of a ready fd on the poller thread. Only the actor the
/// poller just sent an event to is run here; everything else that becomes
/// ready (e.g. recipients of that actor's messages) goes to its own
/// system's scheduler.
class poller_unit final : public caf::execution_unit {
public:
  explicit poller_unit(size_t max_throughput) : max_throughput_(max_throughput) {
  }

  void exec_later(caf::resumable* ptr) override {
    auto type = ptr->subtype();
    if (type == caf::resumable::scheduled_actor || type == caf::resumable::io_actor) {
      auto* actor = static_cast<caf::scheduled_actor*>(ptr);
      if (actor->ctrl() == target_) {
        local_.push_back(ptr);
        return;
      }
      actor->home_system().scheduler().enqueue(ptr);
      return;
    }
    local_.push_back(ptr); // short tasks run here
  }

  /// Enqueues a socket event to `owner`, running it here if it was idle.
  void deliver(const caf::strong_actor_ptr& owner, caf::message msg) {
    target_ = owner.get();
    owner->enqueue(nullptr, caf::make_message_id(), std::move(msg), this);
    target_ = nullptr;
  }

  /// Runs what `deliver` queued here.
  void run() {
    for (size_t i = 0; i < local_.size(); ++i) {
      auto* job = local_[i];
      auto type = job->subtype();
      if (type == caf::resumable::scheduled_actor || type == caf::resumable::io_actor)
        system_ = &static_cast<caf::scheduled_actor*>(job)->home_system();
      switch (job->resume(this, max_throughput_)) {
        case caf::resumable::resume_later:
          // More messages: finish them on the scheduler, not here.
          exec_elsewhere(job);
          break;
        case caf::resumable::awaiting_message:
        case caf::resumable::done:
        case caf::resumable::shutdown_execution_unit:
          intrusive_ptr_release(job);
          break;
      }
    }
    local_.clear();
    system_ = nullptr;
  }

private:
  void exec_elsewhere(caf::resumable* job) {
    auto type = job->subtype();
    if (type == caf::resumable::scheduled_actor || type == caf::resumable::io_actor)
      static_cast<caf::scheduled_actor*>(job)->home_system().scheduler().enqueue(job);
    else
      local_.push_back(job);
  }

  size_t max_throughput_;
  caf::actor_control_block* target_ = nullptr;
  std::vector<caf::resumable*> local_;
};

/// The timers of one poller: a binary min-heap of timers (by due time),
/// each timer knowing its index. Guarded by `mtx`.
struct timer_heap {
  std::mutex mtx;
  std::vector<reactor_timer*> items;
};

} // namespace

/// Heap operations on timers (with access to their private fields).
struct timer_heap_access {
  using heap = std::vector<reactor_timer*>;

  static void place(heap& h, size_t i, reactor_timer* t) {
    h[i] = t;
    t->index_ = i;
  }

  static void sift_up(heap& h, size_t i) {
    auto* t = h[i];
    while (i > 0) {
      auto parent = (i - 1) / 2;
      if (h[parent]->due_ <= t->due_)
        break;
      place(h, i, h[parent]);
      i = parent;
    }
    place(h, i, t);
  }

  static void sift_down(heap& h, size_t i) {
    auto* t = h[i];
    for (;;) {
      auto child = 2 * i + 1;
      if (child >= h.size())
        break;
      if (child + 1 < h.size() && h[child + 1]->due_ < h[child]->due_)
        ++child;
      if (t->due_ <= h[child]->due_)
        break;
      place(h, i, h[child]);
      i = child;
    }
    place(h, i, t);
  }

  static void insert(heap& h, reactor_timer* t, void* owner_heap) {
    t->heap_.store(owner_heap, std::memory_order_release);
    h.push_back(t);
    t->index_ = h.size() - 1;
    sift_up(h, t->index_);
  }

  static void erase(heap& h, reactor_timer* t) {
    auto i = t->index_;
    auto* last = h.back();
    h.pop_back();
    if (i < h.size() && last != t) {
      place(h, i, last);
      sift_down(h, i);
      sift_up(h, last->index_);
    }
    t->index_ = reactor_timer::npos;
    t->heap_.store(nullptr, std::memory_order_release);
  }

  static int64_t due(const reactor_timer* t) {
    return t->due_;
  }

  /// Pops the earliest timer; returns its owner and tag.
  static std::pair<caf::weak_actor_ptr, uint64_t> pop(heap& h) {
    auto* t = h.front();
    erase(h, t);
    auto owner = std::move(t->owner_);
    return {std::move(owner), t->tag_};
  }

  static void setup(reactor_timer& t, caf::weak_actor_ptr owner, int64_t due, uint64_t tag) {
    t.owner_ = std::move(owner);
    t.due_ = due;
    t.tag_ = tag;
  }

  static void* heap_of(const reactor_timer& t) {
    return t.heap_.load(std::memory_order_acquire);
  }
};

namespace {

struct poller {
  int epfd = -1;
  int wakefd = -1;
  std::thread thread;
  std::unique_ptr<timer_heap> timers = std::make_unique<timer_heap>();
};

} // namespace

struct reactor::core {
  std::vector<poller> pollers;
  mutable std::mutex mtx;
  std::vector<slot> table; // indexed by fd
  size_t count = 0;
  std::atomic<uint32_t> next_token{0};
  std::atomic<bool> stopping{false};
  bool run_inline = true;
  size_t max_throughput = 64;

  ~core() {
    for (auto& p : pollers) {
      if (p.epfd >= 0)
        ::close(p.epfd);
      if (p.wakefd >= 0)
        ::close(p.wakefd);
    }
  }

  poller& poller_for(int fd) {
    return pollers[static_cast<size_t>(fd) % pollers.size()];
  }

  uint32_t make_token() {
    uint32_t t;
    do {
      t = ++next_token;
    } while (t == 0);
    return t;
  }

  /// Milliseconds until the earliest timer of `p` (-1: none).
  static int next_timeout(poller& p) {
    std::lock_guard<std::mutex> guard{p.timers->mtx};
    auto& h = p.timers->items;
    if (h.empty())
      return -1;
    auto left = timer_heap_access::due(h.front()) - telemetry::monotonic_time();
    if (left <= 0)
      return 0;
    return static_cast<int>(std::min<int64_t>((left + 999999) / 1000000, 60000));
  }

  /// Sends the due timers' messages.
  void fire_timers(poller& p, poller_unit& unit) {
    std::vector<std::pair<caf::weak_actor_ptr, uint64_t>> due;
    {
      std::lock_guard<std::mutex> guard{p.timers->mtx};
      auto& h = p.timers->items;
      auto now = telemetry::monotonic_time();
      while (!h.empty() && timer_heap_access::due(h.front()) <= now)
        due.push_back(timer_heap_access::pop(h));
    }
    for (auto& [weak, tag] : due) {
      auto owner = caf::actor_cast<caf::strong_actor_ptr>(weak);
      if (!owner)
        continue;
      auto msg = caf::make_message(reactor_timer_atom::value, tag);
      if (run_inline)
        unit.deliver(owner, std::move(msg));
      else
        owner->enqueue(nullptr, caf::make_message_id(), std::move(msg), nullptr);
    }
  }

  void run(size_t index) {
    auto& p = pollers[index];
    epoll_event events[max_events];
    poller_unit unit{max_throughput};
    for (;;) {
      auto n = epoll_wait(p.epfd, events, max_events, next_timeout(p));
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return;
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == wake_key) {
          if (stopping.load())
            return;
          uint64_t drained = 0;
          [[maybe_unused]] auto res = ::read(p.wakefd, &drained, sizeof(drained));
          continue;
        }
        auto fd = static_cast<int>(events[i].data.u64 & 0xFFFFFFFFu);
        auto token = static_cast<uint32_t>(events[i].data.u64 >> 32);
        caf::strong_actor_ptr owner;
        {
          std::lock_guard<std::mutex> guard{mtx};
          auto ufd = static_cast<size_t>(fd);
          if (ufd < table.size() && table[ufd].token == token)
            owner = pick_owner(table[ufd]);
        }
        if (!owner)
          continue;
        auto msg = caf::make_message(socket_ready_atom::value, fd,
                                     static_cast<uint32_t>(events[i].events), token);
        if (run_inline)
          unit.deliver(owner, std::move(msg));
        else
          owner->enqueue(nullptr, caf::make_message_id(), std::move(msg), nullptr);
      }
      fire_timers(p, unit);
      if (run_inline)
        unit.run();
    }
  }

  /// The owner of the next event (call with `mtx` held).
  static caf::strong_actor_ptr pick_owner(slot& s) {
    if (!s.shared)
      return s.owner;
    auto& sh = *s.shared;
    if (sh.owners.empty()) {
      sh.waiting = true;
      return nullptr;
    }
    auto& owner = sh.owners[sh.next++ % sh.owners.size()];
    sh.outstanding = owner->id();
    return owner;
  }

  /// Re-arms a registration's one-shot interest (no locking).
  int arm(int fd, uint32_t token, uint32_t interest) {
    epoll_event ev{};
    ev.events = interest | EPOLLONESHOT | EPOLLRDHUP;
    ev.data.u64 = pack(fd, token);
    return epoll_ctl(poller_for(fd).epfd, EPOLL_CTL_MOD, fd, &ev);
  }

  void stop_threads() {
    if (stopping.exchange(true))
      return;
    for (auto& p : pollers) {
      uint64_t one = 1;
      [[maybe_unused]] auto res = ::write(p.wakefd, &one, sizeof(one));
    }
  }
};

reactor::reactor(std::shared_ptr<core> impl) : core_(std::move(impl)) {
}

caf::expected<std::shared_ptr<reactor>> reactor::make(options opts) {
  // Writing to a socket whose peer is gone must not kill the process; OpenSSL
  // writes through plain write(2), so SIGPIPE is ignored process-wide.
  std::signal(SIGPIPE, SIG_IGN);
  if (opts.num_pollers == 0)
    return caf::make_error(errc::invalid_option, "num_pollers must be at least 1");
  auto impl = std::make_shared<core>();
  impl->run_inline = opts.run_owners_inline;
  impl->max_throughput = std::max<size_t>(opts.max_throughput, 1);
  impl->pollers.resize(opts.num_pollers);
  for (auto& p : impl->pollers) {
    p.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p.epfd < 0)
      return caf::make_error(errc::reactor_unavailable, "epoll_create1", std::string{std::strerror(errno)});
    p.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p.wakefd < 0)
      return caf::make_error(errc::reactor_unavailable, "eventfd", std::string{std::strerror(errno)});
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_key;
    if (epoll_ctl(p.epfd, EPOLL_CTL_ADD, p.wakefd, &ev) != 0)
      return caf::make_error(errc::reactor_unavailable, "epoll_ctl(wakefd)",
                             std::string{std::strerror(errno)});
  }
  for (size_t i = 0; i < impl->pollers.size(); ++i) {
    try {
      // Each thread co-owns the core, so the last reference may safely be
      // dropped on a poller thread.
      impl->pollers[i].thread = std::thread{[impl, i] { impl->run(i); }};
    } catch (const std::system_error& ex) {
      impl->stop_threads();
      for (auto& p : impl->pollers)
        if (p.thread.joinable())
          p.thread.join();
      return caf::make_error(errc::reactor_unavailable, ex.what());
    }
  }
  return std::shared_ptr<reactor>{new reactor(std::move(impl))};
}

caf::expected<std::shared_ptr<reactor>> reactor::make() {
  return make(options{});
}

caf::expected<std::shared_ptr<reactor>> reactor::shared() {
  static std::mutex mtx;
  static std::weak_ptr<reactor> instance;
  std::lock_guard<std::mutex> guard{mtx};
  if (auto ptr = instance.lock())
    return ptr;
  auto res = make();
  if (res)
    instance = *res;
  return res;
}

reactor::~reactor() {
  stop();
}

void reactor::stop() {
  if (!core_)
    return;
  core_->stop_threads();
  for (auto& p : core_->pollers) {
    if (!p.thread.joinable())
      continue;
    if (p.thread.get_id() == std::this_thread::get_id())
      p.thread.detach(); // it returns on its own after this event
    else
      p.thread.join();
  }
  std::vector<slot> dropped;
  {
    std::lock_guard<std::mutex> guard{core_->mtx};
    dropped.swap(core_->table);
    core_->count = 0;
  }
}

caf::expected<fd_registration> reactor::add(int fd, caf::strong_actor_ptr owner,
                                            uint32_t interest) {
  if (!owner)
    return caf::make_error(errc::registration_failed, "invalid owner");
  return add_impl(fd, std::move(owner), nullptr, interest);
}

caf::expected<fd_registration> reactor::add_shared(int fd, uint32_t interest) {
  auto sh = std::make_unique<shared_owners>();
  sh->interest = interest;
  return add_impl(fd, nullptr, std::move(sh), interest);
}

caf::expected<fd_registration> reactor::add_impl(int fd, caf::strong_actor_ptr owner,
                                                 std::unique_ptr<shared_owners> shared,
                                                 uint32_t interest) {
  if (fd < 0)
    return caf::make_error(errc::registration_failed, "invalid fd");
  if (core_->stopping.load())
    return caf::make_error(errc::reactor_unavailable, "reactor stopped");
  auto token = core_->make_token();
  auto ufd = static_cast<size_t>(fd);
  {
    std::lock_guard<std::mutex> guard{core_->mtx};
    if (ufd >= core_->table.size())
      core_->table.resize(std::max(ufd + 1, core_->table.size() * 2));
    if (core_->table[ufd].token != 0)
      return caf::make_error(errc::registration_failed, "fd already registered",
                             std::to_string(fd));
    core_->table[ufd].owner = std::move(owner);
    core_->table[ufd].shared = std::move(shared);
    core_->table[ufd].token = token;
    ++core_->count;
  }
  epoll_event ev{};
  ev.events = interest | EPOLLONESHOT | EPOLLRDHUP;
  ev.data.u64 = pack(fd, token);
  if (epoll_ctl(core_->poller_for(fd).epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    auto err = errno;
    std::lock_guard<std::mutex> guard{core_->mtx};
    core_->table[ufd] = slot{};
    --core_->count;
    return caf::make_error(errc::registration_failed, "epoll_ctl(ADD)",
                           std::string{std::strerror(err)});
  }
  return fd_registration{fd, token};
}

caf::error reactor::join(const fd_registration& reg, caf::strong_actor_ptr owner) {
  if (!reg || !owner)
    return caf::make_error(errc::registration_failed, "invalid registration or owner");
  std::lock_guard<std::mutex> guard{core_->mtx};
  auto ufd = static_cast<size_t>(reg.fd);
  if (ufd >= core_->table.size() || core_->table[ufd].token != reg.token
      || !core_->table[ufd].shared)
    return caf::make_error(errc::registration_failed, "stale or not a shared registration");
  auto& sh = *core_->table[ufd].shared;
  sh.owners.push_back(std::move(owner));
  if (sh.waiting) {
    sh.waiting = false;
    if (core_->arm(reg.fd, reg.token, sh.interest) != 0)
      return caf::make_error(errc::registration_failed, "epoll_ctl(MOD)",
                             std::string{std::strerror(errno)});
  }
  return caf::none;
}

void reactor::leave(const fd_registration& reg, const caf::actor_addr& owner) {
  caf::strong_actor_ptr released; // dropped outside the lock
  std::lock_guard<std::mutex> guard{core_->mtx};
  auto ufd = static_cast<size_t>(reg.fd);
  if (!reg || ufd >= core_->table.size() || core_->table[ufd].token != reg.token
      || !core_->table[ufd].shared)
    return;
  auto& sh = *core_->table[ufd].shared;
  auto id = owner.id();
  auto i = std::find_if(sh.owners.begin(), sh.owners.end(),
                        [id](const caf::strong_actor_ptr& p) { return p->id() == id; });
  if (i == sh.owners.end())
    return;
  released = std::move(*i);
  sh.owners.erase(i);
  if (sh.outstanding == id) {
    // Its event is lost with it: hand the readiness to the others.
    sh.outstanding = 0;
    if (sh.owners.empty())
      sh.waiting = true;
    else
      core_->arm(reg.fd, reg.token, sh.interest);
  }
}

caf::error reactor::rearm(const fd_registration& reg, uint32_t interest) {
  if (!reg)
    return caf::make_error(errc::registration_failed, "invalid registration");
  epoll_event ev{};
  ev.events = interest | EPOLLONESHOT | EPOLLRDHUP;
  ev.data.u64 = pack(reg.fd, reg.token);
  {
    // Re-arming a stale registration would arm someone else's fd.
    std::lock_guard<std::mutex> guard{core_->mtx};
    auto ufd = static_cast<size_t>(reg.fd);
    if (ufd >= core_->table.size() || core_->table[ufd].token != reg.token)
      return caf::make_error(errc::registration_failed, "stale registration");
    if (auto& sh = core_->table[ufd].shared) {
      sh->outstanding = 0;
      sh->interest = interest;
    }
  }
  if (epoll_ctl(core_->poller_for(reg.fd).epfd, EPOLL_CTL_MOD, reg.fd, &ev) != 0)
    return caf::make_error(errc::registration_failed, "epoll_ctl(MOD)",
                           std::string{std::strerror(errno)});
  return caf::none;
}

void reactor::remove(const fd_registration& reg) {
  if (!reg)
    return;
  slot released; // dropped outside the lock
  {
    std::lock_guard<std::mutex> guard{core_->mtx};
    auto ufd = static_cast<size_t>(reg.fd);
    if (ufd >= core_->table.size() || core_->table[ufd].token != reg.token)
      return;
    released = std::move(core_->table[ufd]);
    core_->table[ufd] = slot{};
    --core_->count;
    // DEL under the lock: a concurrent add of the same fd number must come
    // after the kernel forgot this registration.
    epoll_ctl(core_->poller_for(reg.fd).epfd, EPOLL_CTL_DEL, reg.fd, nullptr);
  }
}

reactor_timer::~reactor_timer() {
  reactor::cancel(*this);
}

void reactor::schedule(reactor_timer& timer, caf::strong_actor_ptr owner, int64_t due,
                       uint64_t tag, int affinity) {
  cancel(timer);
  auto& p = core_->poller_for(std::max(affinity, 0));
  bool earliest = false;
  {
    std::lock_guard<std::mutex> guard{p.timers->mtx};
    timer_heap_access::setup(timer, caf::actor_cast<caf::weak_actor_ptr>(owner), due, tag);
    timer_heap_access::insert(p.timers->items, &timer, p.timers.get());
    earliest = p.timers->items.front() == &timer;
  }
  if (earliest) {
    // The poller sleeps until its earliest timer: wake it to look again.
    uint64_t one = 1;
    [[maybe_unused]] auto res = ::write(p.wakefd, &one, sizeof(one));
  }
}

void reactor::cancel(reactor_timer& timer) {
  auto* h = static_cast<timer_heap*>(timer_heap_access::heap_of(timer));
  if (h == nullptr)
    return;
  caf::weak_actor_ptr released; // dropped outside the lock
  std::lock_guard<std::mutex> guard{h->mtx};
  if (timer.index_ != reactor_timer::npos) {
    timer_heap_access::erase(h->items, &timer);
    released = std::move(timer.owner_);
  }
}

size_t reactor::size() const {
  std::lock_guard<std::mutex> guard{core_->mtx};
  return core_->count;
}

size_t reactor::num_pollers() const noexcept {
  return core_->pollers.size();
}

} // namespace atl
