// The reactor and the I/O scheduler's policy: per worker a run queue, an
// epoll instance and a timer heap. See reactor.hpp and io_scheduler.hpp.
#include "atoll/runtime/reactor.hpp"
#include "atoll/runtime/detail/light_actor.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/execution_unit.hpp>
#include <caf/logger.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_id.hpp>
#include <caf/resumable.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/detail/direct_syscall.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/runtime/io_scheduler.hpp"
#include "atoll/runtime/telemetry.hpp"

namespace atl {

static_assert(io_events::readable == EPOLLIN);
static_assert(io_events::writable == EPOLLOUT);
static_assert(io_events::error == EPOLLERR);
static_assert(io_events::hangup == EPOLLHUP);
static_assert(io_events::peer_shutdown == EPOLLRDHUP);

namespace detail {

namespace {

constexpr uint64_t wake_key = ~uint64_t{0};
constexpr int max_events = 128;
/// How many more registrations than the least loaded worker a worker may
/// have and still take a new one that its own thread makes.
constexpr int64_t poller_balance_slack = 16;
/// Jobs a busy worker runs at least between two looks at its epoll
/// instance. It runs at least all the jobs queued at the last look, too:
/// epoll is level-triggered, so a look while a socket's owner still waits in
/// the queue reports that socket again, for nothing (64-byte ping-pong, 500
/// connections, 2 workers: with a look every 32 jobs, 70% of the events
/// epoll returned were such repeats).
constexpr size_t poll_interval = 32;
/// How often a worker out of work yields and polls again before it sleeps
/// (measured on 2 cores, 64-byte ping-pong, 50 connections, 2 workers: 0
/// rounds 52k req/s, 1: 77k, 2: 79k, 4: 84k, 8: 84k). How many workers may
/// do so at once is a setting (`scheduler.spinning-workers`).
constexpr int spin_rounds = 4;
/// How often a sleeping worker looks for a worker stuck in one job (whose
/// queue and sockets it then serves), while some worker is busy.
constexpr int64_t stuck_check_ns = 10'000'000;
/// The same while no other worker was busy when this one went to sleep
/// (one that gets stuck later is noticed within about this plus
/// `stuck_check_ns`).
constexpr int64_t idle_stuck_check_ns = 100'000'000;
/// Jobs the workers must have run since the last release of free heap
/// memory before the next one (counted without a time limit: timers that
/// fire now and then add up to one after 256 of them).
constexpr uint64_t release_min_runs = 256;
/// Least time between two releases of free heap memory.
constexpr int64_t release_min_interval_ns = 1'000'000'000;
/// Load compaction (see io_scheduler: scheduler.compaction): the window over
/// which the workers' busy time is measured.
constexpr int64_t balance_window_ns = 20'000'000;
/// One more worker joins once the active ones were busy (running jobs, not
/// waiting for work) this fraction of `hot_windows` windows in a row, on
/// average (one window's bursts are not enough: connection churn at 0.8 of
/// a worker brought a second one in and out 3-5 times in 5 s with one).
constexpr int64_t activate_percent = 90;
constexpr int hot_windows = 3;
/// The last active worker leaves once the others could have done the work
/// of the last `calm_windows` windows at this fraction of their time.
constexpr int64_t deactivate_percent = 80;
constexpr int calm_windows = 5;
constexpr size_t chunk_bits = 10;
constexpr size_t chunk_size = size_t{1} << chunk_bits;
/// Upper bound of the fd table (fds at or above it cannot be registered).
constexpr size_t max_table_fds = size_t{1} << 24;
constexpr size_t npos = static_cast<size_t>(-1);

uint64_t pack(int fd, uint32_t token) {
  return (static_cast<uint64_t>(token) << 32) | static_cast<uint32_t>(fd);
}

/// A lock held for a few instructions: one fd's slot (and at most one
/// epoll_ctl), contended only by the poller looking up that very fd; a
/// worker's run queue; a worker's timer heap (one heap operation, or up to
/// 32 pops of due timers, never an actor's code).
class spin_lock {
public:
  void lock() noexcept {
    for (int spins = 0; flag_.exchange(true, std::memory_order_acquire); ++spins)
      while (flag_.load(std::memory_order_relaxed))
        if (++spins > 64)
          std::this_thread::yield();
  }

  void unlock() noexcept {
    flag_.store(false, std::memory_order_release);
  }

private:
  std::atomic<bool> flag_{false};
};

} // namespace

/// The owners of a shared registration.
struct shared_owners {
  std::vector<caf::strong_actor_ptr> owners;
  size_t next = 0;
  caf::actor_id outstanding = 0; // got the last event, has not re-armed yet
  bool waiting = false;          // an event fired while nobody owned the fd
  uint32_t interest = 0;
};

namespace {

/// One fd's registration. A plain registration stays in its epoll instance,
/// level-triggered, while its owner wants events: `pending` keeps a second
/// event from being delivered before the owner acknowledged the first (by
/// `rearm`), and an fd that is reported again meanwhile to a worker with
/// nothing else to do is taken out of epoll (`in_epoll` false) until then.
/// So the owner sees one-shot interest, at no epoll_ctl per event. Shared
/// registrations (a listen socket and its acceptors) work the same way,
/// with `shared_owners::outstanding` in place of `pending`: one owner at a
/// time has the fd's event.
struct slot {
  spin_lock lock;
  uint32_t token = 0;    // 0: not registered
  uint32_t poller = 0;   // the worker whose epoll instance has the fd
  uint32_t interest = 0; // in epoll
  bool in_epoll = false;
  bool pending = false;  // plain: an event was delivered, not yet acknowledged
  io_sink* sink = nullptr; // plain: takes events by post_io (else messages)
  caf::strong_actor_ptr owner;
  std::unique_ptr<shared_owners> shared;
};

struct slot_chunk {
  std::array<slot, chunk_size> slots;
};

} // namespace

/// One worker's timers: a binary min-heap by due time, each timer knowing
/// its index. `earliest` lets the worker skip the lock while nothing is due.
struct timer_heap {
  spin_lock mtx; // held for heap operations only
  std::vector<reactor_timer*> items;
  std::atomic<int64_t> earliest{INT64_MAX};
};

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

  static void update_earliest(timer_heap& th) {
    th.earliest.store(th.items.empty() ? INT64_MAX : th.items.front()->due_,
                      std::memory_order_relaxed);
  }

  static void insert(timer_heap& th, reactor_timer* t) {
    t->heap_.store(&th, std::memory_order_release);
    th.items.push_back(t);
    t->index_ = th.items.size() - 1;
    sift_up(th.items, t->index_);
    update_earliest(th);
  }

  static void erase(timer_heap& th, reactor_timer* t) {
    auto& h = th.items;
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
    update_earliest(th);
  }

  /// Pops the earliest timer; returns its owner and tag. Takes them before
  /// `erase` marks the timer disarmed: from then on its owner may re-arm
  /// it on another worker's heap, and this one must not touch it.
  static std::pair<caf::weak_actor_ptr, uint64_t> pop(timer_heap& th) {
    auto* t = th.items.front();
    std::pair<caf::weak_actor_ptr, uint64_t> result{std::move(t->owner_), t->tag_};
    erase(th, t);
    return result;
  }

  static void setup(reactor_timer& t, caf::weak_actor_ptr owner, int64_t due, uint64_t tag) {
    t.owner_ = std::move(owner);
    t.due_ = due;
    t.tag_ = tag;
  }

  /// Disarms every timer of `th`, moving their owners to `out`.
  static void clear(timer_heap& th, std::vector<caf::weak_actor_ptr>& out) {
    for (auto* t : th.items) {
      out.push_back(std::move(t->owner_));
      t->index_ = reactor_timer::npos;
      t->heap_.store(nullptr, std::memory_order_release);
    }
    th.items.clear();
    update_earliest(th);
  }
};

/// A worker's run queue: a FIFO of jobs in a power-of-two ring that doubles
/// when full (a `std::deque`'s push and pop cost about 50 instructions per
/// ping-pong echo, this one's about 10).
class job_ring {
public:
  bool empty() const noexcept {
    return head_ == tail_;
  }

  size_t size() const noexcept {
    return tail_ - head_;
  }

  void push_back(caf::resumable* job) {
    if (size() == buf_.size())
      grow();
    buf_[tail_++ & (buf_.size() - 1)] = job;
  }

  /// The oldest job (not empty).
  caf::resumable* front() const noexcept {
    return buf_[head_ & (buf_.size() - 1)];
  }

  void pop_front() noexcept {
    ++head_;
  }

private:
  void grow() {
    std::vector<caf::resumable*> bigger(buf_.empty() ? 64 : buf_.size() * 2);
    size_t n = 0;
    for (auto i = head_; i != tail_; ++i)
      bigger[n++] = buf_[i & (buf_.size() - 1)];
    buf_.swap(bigger);
    head_ = 0;
    tail_ = n;
  }

  std::vector<caf::resumable*> buf_;
  size_t head_ = 0; // counts pops
  size_t tail_ = 0; // counts pushes
};

/// One scheduler worker: its run queue, epoll instance and timers.
struct alignas(64) worker_state {
  // -- guarded by queue_lock ------------------------------------------------
  // (a spin lock: held for a queue push or pop, or a flag; a pthread mutex
  // cost about 100 of a ping-pong echo's 2,000 user-space instructions, for
  // a push and a pop per echo)
  spin_lock queue_lock;
  job_ring queue;
  bool notified = false; // wakefd written since it went to sleep
  // -- shared, lock-free ----------------------------------------------------
  std::atomic<size_t> queued{0};     // queue.size(), for thieves
  std::atomic<bool> sleeping{false}; // waiting in epoll_wait, queue empty
  std::atomic<bool> busy{false};     // running a job
  std::atomic<uint64_t> runs{0};     // jobs started (progress)
  std::atomic<int64_t> registrations{0}; // fds in this worker's epoll instance
  std::atomic<uint64_t> spin_waits{0};   // busy waits started (written by its thread)
  std::atomic<int64_t> idle_total{0};    // ns spent out of work (written by its thread)
  std::atomic<int64_t> idle_since{0};    // when it ran out of work (0: it has work)
  std::atomic<bool> long_sleep{false};   // sleeping without a stuck check soon
  size_t index = 0;
  int epfd = -1;
  int wakefd = -1;
  timer_heap timers;
  std::unique_ptr<caf::execution_unit> unit; // the worker as CAF sees it
  // -- the worker's own thread only --------------------------------------------
  size_t since_poll = 0;
  size_t poll_after = poll_interval; // jobs to run before the next look
  size_t stop_budget = static_cast<size_t>(-1); // jobs left to run once stopping
  int64_t last_stuck_check = 0;
  bool slept_in_vain = false; // the last sleep timed out with nothing to do
  int64_t rest_since = 0;     // when the workers' job count last changed (0: unknown)
  uint64_t rest_runs = 0;     // that job count
  std::vector<uint64_t> seen_runs; // per worker, at the last stuck check
  // -- the balancer only (see io_core::balance) --------------------------------
  int64_t idle_seen = 0; // idle time at the last balance
};

/// The I/O scheduler's state: its workers and the fd table.
struct io_core {
  explicit io_core(size_t num_workers);
  ~io_core();

  io_core(const io_core&) = delete;
  io_core& operator=(const io_core&) = delete;

  std::vector<std::unique_ptr<worker_state>> workers;
  std::unique_ptr<std::atomic<slot_chunk*>[]> chunks;
  size_t num_chunks = 0;
  std::mutex chunk_mtx; // only to allocate a chunk
  std::atomic<uint32_t> next_token{0};
  std::atomic<size_t> next_poller{0};
  std::atomic<size_t> next_worker{0};
  std::atomic<size_t> count{0};
  std::atomic<int> sleepers{0};
  // -- busy waiting (see io_scheduler: scheduler.spinning-workers)
  int max_spinning = INT_MAX; // workers that may spin at once
  bool spin_capped = false;   // max_spinning < workers.size()
  std::atomic<int> spinning{0}; // workers spinning now (counted if capped)

  // -- load compaction (see io_scheduler: scheduler.compaction)
  bool compaction = false;
  /// Workers [0, active) take new work; the others are parked: they run
  /// what they already have and hand everything new to an active worker.
  std::atomic<size_t> active{1};
  std::atomic<int64_t> next_balance{0};
  std::atomic<bool> balancing{false}; // a worker is in `balance`
  int64_t last_balance = 0;           // (balancer only)
  int calm = 0;                       // windows in a row with spare capacity (balancer only)
  int hot = 0;                        // windows in a row at full load (balancer only)
  size_t seen_active = 0;             // `active` after the last balance (balancer only)
  std::atomic<uint64_t> activations{0};
  std::atomic<uint64_t> deactivations{0};
  std::atomic<uint64_t> nudge_sync{0}; // orders long sleeps against nudges

  bool parked(size_t index) const noexcept {
    return index >= active.load(std::memory_order_relaxed);
  }

  size_t num_active() const noexcept {
    return std::min(active.load(std::memory_order_relaxed), workers.size());
  }

  /// An active worker to hand work to (round-robin).
  size_t pick_active() noexcept {
    return next_worker.fetch_add(1, std::memory_order_relaxed) % num_active();
  }

  /// True if the calling worker may busy-wait now (then, if capped, it
  /// counts as spinning until it gives its turn back).
  bool take_spin_turn() noexcept {
    if (!spin_capped)
      return true;
    auto now = spinning.load(std::memory_order_relaxed);
    while (now < max_spinning)
      if (spinning.compare_exchange_weak(now, now + 1, std::memory_order_relaxed))
        return true;
    return false;
  }
  std::atomic<bool> running{true};
  std::atomic<bool> stopping{false};
  std::vector<std::thread> threads;

  // -- free memory at rest (see io_scheduler: scheduler.release-memory-after)
  int64_t release_after_ns = 0;              // 0: never
  std::atomic<int64_t> last_release{INT64_MIN}; // monotonic ns
  std::atomic<uint64_t> runs_at_release{0};  // total_runs() then
  std::atomic<uint64_t> releases{0};

  /// Jobs all workers have started so far.
  uint64_t total_runs() const noexcept {
    uint64_t sum = 0;
    for (auto& w : workers)
      sum += w->runs.load(std::memory_order_relaxed);
    return sum;
  }

  /// True if enough work ran since the last release to look for a rest.
  bool release_due() const noexcept {
    return release_after_ns > 0
           && total_runs() - runs_at_release.load(std::memory_order_relaxed) >= release_min_runs;
  }

  /// Gives the heap's free pages back to the operating system (glibc's
  /// `malloc_trim`), unless another worker did so within the last
  /// `release_min_interval_ns`. Called by a worker that rested
  /// `release_after_ns` while no worker started a job or was in one.
  void release_memory() noexcept {
    auto now = telemetry::monotonic_time();
    auto last = last_release.load(std::memory_order_relaxed);
    if (last != INT64_MIN && now - last < release_min_interval_ns)
      return;
    if (!last_release.compare_exchange_strong(last, now, std::memory_order_relaxed))
      return;
    runs_at_release.store(total_runs(), std::memory_order_relaxed);
#if defined(__GLIBC__)
    ::malloc_trim(0);
#endif
    releases.fetch_add(1, std::memory_order_relaxed);
  }

  // -- scheduling (see io_scheduler) ---------------------------------------

  /// Schedules `job` (see `io_scheduler::enqueue`).
  void enqueue(caf::resumable* job);

  /// The next job of worker `index`, waiting as needed; null once stopping.
  caf::resumable* next_job(size_t index, caf::execution_unit* unit);

  /// The loop of worker `index`'s thread.
  void run_worker(caf::actor_system& sys, size_t index, size_t max_throughput);

  /// Starts one thread per worker.
  void start_workers(caf::actor_system& sys, size_t max_throughput);

  /// Lets each worker run what is queued and end; joins them.
  void stop_workers();

  /// Hands every job still queued to `f`.
  void drain_queues(void (*f)(caf::resumable*));

  /// The slot of `fd`, or null if `fd` is out of range or its chunk does
  /// not exist. Inlined: every event and every re-arm looks a slot up.
  __attribute__((always_inline)) slot* find_slot(int fd) noexcept {
    auto ufd = static_cast<size_t>(fd);
    auto index = ufd >> chunk_bits;
    if (fd < 0 || index >= num_chunks)
      return nullptr;
    auto* chunk = chunks[index].load(std::memory_order_acquire);
    return chunk != nullptr ? &chunk->slots[ufd & (chunk_size - 1)] : nullptr;
  }

  /// The slot of `fd`, allocating its chunk if needed. Null if `fd` is out
  /// of range.
  slot* make_slot(int fd) {
    if (auto* s = find_slot(fd))
      return s;
    auto ufd = static_cast<size_t>(fd);
    auto index = ufd >> chunk_bits;
    if (fd < 0 || index >= num_chunks)
      return nullptr;
    std::lock_guard<std::mutex> guard{chunk_mtx};
    auto* chunk = chunks[index].load(std::memory_order_acquire);
    if (chunk == nullptr) {
      chunk = new slot_chunk;
      chunks[index].store(chunk, std::memory_order_release);
    }
    return &chunk->slots[ufd & (chunk_size - 1)];
  }

  /// The worker whose epoll instance takes a new registration made by
  /// worker `caller` (`npos`: another thread): the caller itself, where the
  /// owner runs now (so its events find the owner's state in that core's
  /// cache), unless it has `poller_balance_slack` more registrations than the
  /// least loaded worker, which then takes it (as any other thread's).
  uint32_t pick_poller(size_t caller) const {
    size_t least = 0;
    auto least_n = INT64_MAX;
    auto act = num_active();
    for (size_t k = 0; k < act; ++k) {
      auto n = workers[k]->registrations.load(std::memory_order_relaxed);
      if (n < least_n) {
        least = k;
        least_n = n;
      }
    }
    if (caller < act
        && workers[caller]->registrations.load(std::memory_order_relaxed)
             <= least_n + poller_balance_slack)
      return static_cast<uint32_t>(caller);
    return static_cast<uint32_t>(least);
  }

  uint32_t make_token() {
    uint32_t t;
    do {
      t = ++next_token;
    } while (t == 0);
    return t;
  }

  /// The owner of the next event of (fd, token), if still registered and
  /// not still busy with the last one. With `park`, an fd reported while its
  /// owner is busy leaves epoll until the owner acknowledges (the caller
  /// would otherwise see it again at once, in a loop).
  caf::strong_actor_ptr owner_of(int fd, uint32_t token, bool park, io_sink** sink) {
    auto* s = find_slot(fd);
    if (s == nullptr)
      return nullptr;
    std::lock_guard<spin_lock> guard{s->lock};
    *sink = s->sink;
    if (s->token != token)
      return nullptr;
    if (!s->shared) {
      if (s->pending) {
        if (park && s->in_epoll) {
          epoll_ctl(workers[s->poller]->epfd, EPOLL_CTL_DEL, fd, nullptr);
          s->in_epoll = false;
        }
        return nullptr;
      }
      s->pending = true;
      return s->owner;
    }
    auto& sh = *s->shared;
    if (sh.outstanding != 0 || sh.owners.empty()) {
      // An owner is still busy with the last event, or nobody owns the fd
      // (it is handed on when one joins): as for a plain registration.
      if (sh.owners.empty())
        sh.waiting = true;
      if (park && s->in_epoll) {
        epoll_ctl(workers[s->poller]->epfd, EPOLL_CTL_DEL, fd, nullptr);
        s->in_epoll = false;
      }
      return nullptr;
    }
    auto& owner = sh.owners[sh.next++ % sh.owners.size()];
    sh.outstanding = owner->id();
    return owner;
  }

  /// Puts a registration into epoll with `interest` (level-triggered), or
  /// takes it out for none (slot lock held). Calls epoll_ctl only if
  /// epoll's view changes.
  int set_interest(slot& s, int fd, uint32_t interest) {
    auto epfd = workers[s.poller]->epfd;
    if (interest == 0) {
      // Nothing wanted: out of epoll, where errors and hang-ups would still
      // be reported.
      if (s.in_epoll && epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr) != 0)
        return -1;
      s.in_epoll = false;
      return 0;
    }
    if (s.in_epoll && s.interest == interest)
      return 0;
    epoll_event ev{};
    ev.events = interest | EPOLLRDHUP;
    ev.data.u64 = pack(fd, s.token);
    if (epoll_ctl(epfd, s.in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0)
      return -1;
    s.in_epoll = true;
    s.interest = interest;
    return 0;
  }

  /// With load compaction, moves a registration to the epoll instance of
  /// worker `k` that re-arms it (where its owner runs now), if `k` is active
  /// and the registration's worker is parked, or (plain registrations) has
  /// `poller_balance_slack` more registrations than `k` (slot lock held).
  /// So registrations follow their owners to the active workers, and spread
  /// again when more become active. Left in place if epoll refuses.
  void follow_owner(slot& s, int fd, size_t k) {
    if (!compaction || k == s.poller || k >= workers.size() || parked(k))
      return;
    auto& from = *workers[s.poller];
    auto& to = *workers[k];
    auto move = parked(s.poller)
                || (!s.shared
                    && from.registrations.load(std::memory_order_relaxed)
                         > to.registrations.load(std::memory_order_relaxed) + poller_balance_slack);
    if (!move)
      return;
    if (s.in_epoll) {
      epoll_event ev{};
      ev.events = s.interest | EPOLLRDHUP;
      ev.data.u64 = pack(fd, s.token);
      if (epoll_ctl(to.epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return;
      epoll_ctl(from.epfd, EPOLL_CTL_DEL, fd, nullptr);
    }
    from.registrations.fetch_sub(1, std::memory_order_relaxed);
    to.registrations.fetch_add(1, std::memory_order_relaxed);
    s.poller = static_cast<uint32_t>(k);
  }

  /// Acknowledges the last event of a plain registration and sets its
  /// interest (slot lock held). Calls epoll_ctl only if epoll's view
  /// changes.
  int acknowledge(slot& s, int fd, uint32_t interest) {
    s.pending = false;
    return set_interest(s, fd, interest);
  }

  /// Wakes `w` if it sleeps (and nobody woke it yet).
  static void wake(worker_state& w) {
    bool write_it = false;
    {
      std::lock_guard<spin_lock> guard{w.queue_lock};
      if (w.sleeping.load(std::memory_order_relaxed) && !w.notified) {
        w.notified = true;
        write_it = true;
      }
    }
    if (write_it) {
      uint64_t one = 1;
      [[maybe_unused]] auto res = ::write(w.wakefd, &one, sizeof(one));
    }
  }

  /// Wakes one sleeping worker other than `self` (to share surplus work).
  void wake_one_other(size_t self) {
    auto n = num_active();
    auto start = next_worker.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < n; ++i) {
      auto k = (start + i) % n;
      if (k != self && workers[k]->sleeping.load(std::memory_order_relaxed)) {
        wake(*workers[k]);
        return;
      }
    }
    nudge_parked(self);
  }

  /// Wakes a parked worker in a long sleep (if any but `self`): it then
  /// looks for a worker stuck in a job every `stuck_check_ns` while others
  /// are busy, and becomes active when it finds one. Called when work
  /// waits for a busy worker and no active one sleeps.
  void nudge_parked(size_t self) {
    if (!compaction)
      return;
    // (Pairs with the sleeper's announcement: of the two read-modify-writes
    // on `nudge_sync`, the later one sees what came before the earlier one,
    // so either the sleeper sees what this caller changed, or this caller
    // sees its flag. A fence would do, but ThreadSanitizer does not model
    // fences.)
    nudge_sync.fetch_add(1, std::memory_order_acq_rel);
    for (auto k = num_active(); k < workers.size(); ++k)
      if (k != self && workers[k]->long_sleep.load(std::memory_order_relaxed)) {
        wake(*workers[k]);
        return;
      }
  }

  void push(size_t index, caf::resumable* job, bool may_share) {
    auto& w = *workers[index];
    size_t depth;
    {
      std::lock_guard<spin_lock> guard{w.queue_lock};
      w.queue.push_back(job);
      depth = w.queue.size();
      w.queued.store(depth, std::memory_order_relaxed);
    }
    // More than the next job waits here while others sleep: let one of
    // them steal.
    if (may_share && depth >= 2 && sleepers.load(std::memory_order_relaxed) > 0)
      wake_one_other(index);
  }

  caf::resumable* pop(worker_state& w) {
    if (w.queued.load(std::memory_order_relaxed) == 0)
      return nullptr;
    std::lock_guard<spin_lock> guard{w.queue_lock};
    if (w.queue.empty())
      return nullptr;
    auto* job = w.queue.front();
    w.queue.pop_front();
    w.queued.store(w.queue.size(), std::memory_order_relaxed);
    return job;
  }

  /// Takes a job from another worker's queue (the oldest).
  caf::resumable* steal(size_t self) {
    auto n = workers.size();
    for (size_t i = 1; i < n; ++i) {
      auto& victim = *workers[(self + i) % n];
      if (victim.queued.load(std::memory_order_relaxed) == 0)
        continue;
      if (auto* job = pop(victim))
        return job;
    }
    return nullptr;
  }

  /// Delivers the events of `events` (harvested from `w`'s epoll instance)
  /// and the due timers of `w`, with `unit` as execution unit: an owner
  /// that was idle joins `unit`'s queue. Returns the number delivered.
  size_t deliver(worker_state& w, const epoll_event* events, int n, caf::execution_unit* unit,
                 bool own, bool park) {
    size_t delivered = 0;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == wake_key) {
        if (own) {
          uint64_t drained = 0;
          [[maybe_unused]] auto res = ::read(w.wakefd, &drained, sizeof(drained));
        }
        continue;
      }
      auto fd = static_cast<int>(events[i].data.u64 & 0xFFFFFFFFu);
      auto token = static_cast<uint32_t>(events[i].data.u64 >> 32);
      io_sink* sink = nullptr;
      auto owner = owner_of(fd, token, park, &sink);
      if (!owner)
        continue;
      ++delivered;
      if (sink != nullptr) {
        sink->post_io(static_cast<uint32_t>(events[i].events), unit);
        continue;
      }
      owner->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                               socket_ready_atom::value, fd,
                                               static_cast<uint32_t>(events[i].events), token),
                     unit);
    }
    return delivered + fire_timers(w, unit);
  }

  /// Sends the due timers' messages.
  static size_t fire_timers(worker_state& w, caf::execution_unit* unit) {
    auto& th = w.timers;
    if (th.earliest.load(std::memory_order_relaxed) == INT64_MAX)
      return 0;
    auto now = telemetry::monotonic_time();
    if (th.earliest.load(std::memory_order_relaxed) > now)
      return 0;
    std::array<std::pair<caf::weak_actor_ptr, uint64_t>, 32> due;
    size_t n = 0;
    size_t total = 0;
    do {
      n = 0;
      {
        std::lock_guard<spin_lock> guard{th.mtx};
        while (n < due.size() && !th.items.empty() && th.items.front()->due() <= now)
          due[n++] = timer_heap_access::pop(th);
      }
      for (size_t i = 0; i < n; ++i) {
        auto owner = caf::actor_cast<caf::strong_actor_ptr>(due[i].first);
        due[i].first = nullptr;
        if (!owner)
          continue;
        owner->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                                 reactor_timer_atom::value, due[i].second),
                       unit);
        ++total;
      }
    } while (n == due.size());
    return total;
  }

  /// Milliseconds until `w`'s earliest timer (-1: none).
  static int next_timeout(worker_state& w) {
    auto earliest = w.timers.earliest.load(std::memory_order_relaxed);
    if (earliest == INT64_MAX)
      return -1;
    auto left = earliest - telemetry::monotonic_time();
    if (left <= 0)
      return 0;
    return static_cast<int>(std::min<int64_t>((left + 999'999) / 1'000'000, 60'000));
  }

  /// Polls `w`'s epoll instance without waiting.
  size_t poll_now(worker_state& w, caf::execution_unit* unit, bool own) {
    epoll_event events[max_events];
    auto n = sys_epoll_wait(w.epfd, events, max_events, 0);
    if (n <= 0)
      return deliver(w, events, 0, unit, own, false);
    size_t target = w.index;
    auto* to = own ? delivery_unit(w.index, unit, target) : unit;
    auto delivered = deliver(w, events, n, to, own, false);
    if (target != w.index)
      wake(*workers[target]);
    return delivered;
  }

  /// The execution unit whose queue takes the owners that worker `self`
  /// finds ready (`own_unit`, its own), and that worker's index in
  /// `target`: a parked worker hands them to an active one (which the
  /// caller wakes), so that they re-arm there and their registrations move
  /// (see `reactor::rearm`).
  caf::execution_unit* delivery_unit(size_t self, caf::execution_unit* own_unit, size_t& target) {
    target = self;
    if (!compaction || !parked(self))
      return own_unit;
    target = pick_active();
    return workers[target]->unit.get();
  }

  /// Load compaction, run by one worker at a time, at most once per
  /// `balance_window_ns`: from the workers' idle time in the last window,
  /// lets one more worker take work if the active ones were nearly always
  /// busy, or parks the last active one if the others had room for its work
  /// for `calm_windows` windows in a row (the BEAM's scheduler compaction:
  /// a light load runs on few threads, with fewer context switches, wake-ups
  /// and cache misses, and more cores join as the load grows).
  void balance(int64_t now) {
    if (now < next_balance.load(std::memory_order_relaxed)
        || balancing.exchange(true, std::memory_order_acquire))
      return;
    if (now < next_balance.load(std::memory_order_relaxed)) {
      balancing.store(false, std::memory_order_release);
      return;
    }
    next_balance.store(now + balance_window_ns, std::memory_order_relaxed);
    auto window = now - last_balance;
    auto first = last_balance == 0;
    last_balance = now;
    auto act = num_active();
    if (act != seen_active)
      calm = hot = 0; // changed by `unpark` meanwhile: start counting again
    int64_t busy = 0;
    for (size_t k = 0; k < workers.size(); ++k) {
      auto& w = *workers[k];
      // The total before the start of the current rest (`end_idle` clears
      // the start, then adds to the total): a total that already has the
      // rest comes with a cleared start, so a rest is never counted twice
      // (at worst one that just ended counts in the next window).
      auto total = w.idle_total.load();
      auto since = w.idle_since.load();
      auto idle = total + (since != 0 && since < now ? now - since : 0);
      auto spent = idle - w.idle_seen;
      w.idle_seen = idle;
      if (k < act)
        busy += std::clamp<int64_t>(window - spent, 0, window);
    }
    if (!first && window > 0) {
      // (A change fails if `unpark` changed `active` meanwhile.)
      if (act < workers.size() && busy * 100 >= window * static_cast<int64_t>(act) * activate_percent) {
        calm = 0;
        if (++hot >= hot_windows) {
          hot = 0;
          if (active.compare_exchange_strong(act, act + 1, std::memory_order_relaxed)) {
            activations.fetch_add(1, std::memory_order_relaxed);
            wake(*workers[act]);
            // It may have been awake (running what it had), so nobody
            // nudged the parked ones meanwhile.
            nudge_parked(act);
          }
        }
      } else if (act > 1
                 && busy * 100
                      <= window * static_cast<int64_t>(act - 1) * deactivate_percent) {
        hot = 0;
        if (++calm >= calm_windows) {
          calm = 0;
          if (active.compare_exchange_strong(act, act - 1, std::memory_order_relaxed)) {
            deactivations.fetch_add(1, std::memory_order_relaxed);
            // It may sleep long as an active worker: it then sleeps anew
            // as a parked one (and can be nudged).
            wake(*workers[act - 1]);
          }
        }
      } else {
        calm = hot = 0;
      }
    }
    seen_active = num_active();
    balancing.store(false, std::memory_order_release);
  }

  /// Makes worker `self` (and every worker before it) active.
  void unpark(size_t self) noexcept {
    auto act = active.load(std::memory_order_relaxed);
    while (act <= self)
      if (active.compare_exchange_weak(act, self + 1, std::memory_order_relaxed)) {
        activations.fetch_add(1, std::memory_order_relaxed);
        nudge_parked(self); // (see `balance`)
        break;
      }
  }

  /// Worker `w` ran out of work at `now` (for the balancer).
  static void begin_idle(worker_state& w, int64_t now) {
    if (w.idle_since.load(std::memory_order_relaxed) == 0)
      w.idle_since.store(now);
  }

  /// Worker `w` has work again.
  static void end_idle(worker_state& w) {
    auto since = w.idle_since.load(std::memory_order_relaxed);
    if (since == 0)
      return;
    auto now = telemetry::monotonic_time();
    // The start is cleared before the total grows (see `balance`).
    w.idle_since.store(0);
    w.idle_total.store(w.idle_total.load(std::memory_order_relaxed)
                       + std::max<int64_t>(now - since, 0));
  }

  /// True if an active worker other than `self` is not asleep.
  bool others_awake(size_t self) const {
    auto act = num_active();
    for (size_t k = 0; k < act; ++k)
      if (k != self && !workers[k]->sleeping.load(std::memory_order_seq_cst))
        return true;
    return false;
  }

  /// True if a worker other than `self` has jobs queued.
  bool others_queued(size_t self) const {
    for (size_t k = 0; k < workers.size(); ++k)
      if (k != self && workers[k]->queued.load(std::memory_order_seq_cst) > 0)
        return true;
    return false;
  }

  bool others_busy(size_t self) const {
    for (size_t k = 0; k < workers.size(); ++k)
      if (k != self && workers[k]->busy.load(std::memory_order_relaxed))
        return true;
    return false;
  }

  /// Serves the queue and sockets of workers that made no progress since
  /// the last check (a long or blocking job): their connections must not
  /// wait for it.
  void check_stuck(size_t self, caf::execution_unit* unit) {
    auto& me = *workers[self];
    auto now = telemetry::monotonic_time();
    if (now - me.last_stuck_check < stuck_check_ns)
      return;
    me.last_stuck_check = now;
    for (size_t k = 0; k < workers.size(); ++k) {
      if (k == self)
        continue;
      auto& other = *workers[k];
      auto runs = other.runs.load(std::memory_order_relaxed);
      auto stuck = other.busy.load(std::memory_order_relaxed) && runs == me.seen_runs[k];
      me.seen_runs[k] = runs;
      if (stuck) {
        // A parked worker that finds one stuck takes work again (else what
        // it finds would be handed to an active worker, maybe this one).
        if (compaction)
          unpark(self);
        poll_now(other, unit, false);
      }
    }
  }

  /// After a worker looked at its own epoll instance: the next look comes
  /// once the jobs now queued have run (and after `poll_interval` at least).
  static void looked(worker_state& me) {
    me.poll_after = std::max(poll_interval, me.queued.load(std::memory_order_relaxed));
  }

  /// Waits in `epoll_wait` until an event, a timer, or a wake-up.
  void sleep(size_t self, caf::execution_unit* unit) {
    auto& me = *workers[self];
    {
      std::lock_guard<spin_lock> guard{me.queue_lock};
      // (A wake-up already consumed by a poll must not be slept through:
      // the queue and the stop flag are checked here, after any poll.)
      if (!me.queue.empty() || stopping.load(std::memory_order_acquire))
        return;
      me.sleeping.store(true, std::memory_order_relaxed);
      me.notified = false;
    }
    sleepers.fetch_add(1, std::memory_order_relaxed);
    auto timeout = next_timeout(me);
    // With other workers, never sleep unbounded: one may get stuck in a job
    // while this one sleeps, with sockets in its epoll instance that only
    // this one can then serve. Checked often while another is busy, seldom
    // while all were idle.
    auto checking = workers.size() > 1;
    if (checking) {
      // (A parked worker also while an active one has work queued: that one
      // may start a long job next, and nobody would take its queue.)
      bool soon;
      if (compaction && parked(self)) {
        // Parked: checks soon while an active worker is awake (it may get
        // stuck in a job, with every socket in its epoll instance) or work
        // is queued. Else a long sleep, announced before the look, so that
        // whoever makes the look stale afterwards (an active worker that
        // wakes up, work queued for a busy one) sees it and nudges this one
        // (`nudge_parked`).
        me.long_sleep.store(true, std::memory_order_relaxed);
        nudge_sync.fetch_add(1, std::memory_order_acq_rel);
        soon = others_awake(self) || others_queued(self);
        if (soon)
          me.long_sleep.store(false);
      } else {
        soon = others_busy(self);
      }
      auto check_ms = static_cast<int>((soon ? stuck_check_ns : idle_stuck_check_ns) / 1'000'000);
      timeout = timeout < 0 ? check_ms : std::min(timeout, check_ms);
    }
    // After enough work, a rest of `release_after_ns` gives free heap memory
    // back (a handshake's buffers, closed connections): wake up for it. The
    // rest counts from the last change of the workers' job count, across
    // sleeps (each of which may end early for a stuck check or a timer).
    auto due = release_due();
    if (due) {
      auto now = telemetry::monotonic_time();
      auto runs = total_runs();
      if (me.rest_since == 0 || runs != me.rest_runs) {
        me.rest_since = now;
        me.rest_runs = runs;
      }
      auto left = me.rest_since + release_after_ns - now;
      auto last = last_release.load(std::memory_order_relaxed);
      if (last != INT64_MIN)
        left = std::max(left, last + release_min_interval_ns - now);
      left = std::clamp<int64_t>(left, 1'000'000, 60'000'000'000);
      auto rest_ms = static_cast<int>((left + 999'999) / 1'000'000);
      timeout = timeout < 0 ? rest_ms : std::min(timeout, rest_ms);
    }
    epoll_event events[max_events];
    auto n = sys_epoll_wait(me.epfd, events, max_events, timeout);
    me.long_sleep.store(false, std::memory_order_relaxed);
    {
      std::lock_guard<spin_lock> guard{me.queue_lock};
      me.sleeping.store(false, std::memory_order_relaxed);
    }
    // An active worker awake again: a parked one in a long sleep must now
    // look for it getting stuck.
    if (compaction && !parked(self))
      nudge_parked(self);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
    // Nothing queued here: an fd whose owner is still busy elsewhere is
    // parked, or the next epoll_wait would return it again at once.
    size_t target = self;
    auto* to = n > 0 ? delivery_unit(self, unit, target) : unit;
    auto delivered = deliver(me, events, std::max(n, 0), to, true, true);
    if (target != self)
      wake(*workers[target]);
    looked(me);
    if (checking)
      check_stuck(self, unit);
    me.slept_in_vain = n == 0 && delivered == 0;
    // Only if every worker rested: none started a job during the rest, and
    // none is still in one.
    if (due && me.slept_in_vain && me.queued.load(std::memory_order_relaxed) == 0
        && total_runs() == me.rest_runs
        && telemetry::monotonic_time() - me.rest_since >= release_after_ns
        && !others_busy(self))
      release_memory();
  }

  /// Drops every registration and timer (the workers have ended).
  void shut_down() {
    running.store(false);
    std::vector<caf::strong_actor_ptr> owners;
    std::vector<std::unique_ptr<shared_owners>> shared;
    for (size_t c = 0; c < num_chunks; ++c) {
      auto* chunk = chunks[c].load(std::memory_order_acquire);
      if (chunk == nullptr)
        continue;
      for (auto& s : chunk->slots) {
        std::lock_guard<spin_lock> guard{s.lock};
        if (s.token == 0)
          continue;
        s.token = 0;
        workers[s.poller]->registrations.fetch_sub(1, std::memory_order_relaxed);
        s.sink = nullptr;
        owners.push_back(std::move(s.owner));
        shared.push_back(std::move(s.shared));
      }
    }
    count.store(0);
    std::vector<caf::weak_actor_ptr> timer_owners;
    for (auto& w : workers) {
      std::lock_guard<spin_lock> guard{w->timers.mtx};
      timer_heap_access::clear(w->timers, timer_owners);
    }
    // Released here, outside every lock: an owner's cleanup may call back.
  }
};

io_core::io_core(size_t num_workers) {
  rlimit lim{};
  size_t max_fds = max_table_fds;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_max != RLIM_INFINITY)
    max_fds = std::min<size_t>(max_fds, static_cast<size_t>(lim.rlim_max));
  num_chunks = (max_fds + chunk_size - 1) / chunk_size;
  chunks.reset(new std::atomic<slot_chunk*>[num_chunks]);
  for (size_t i = 0; i < num_chunks; ++i)
    chunks[i].store(nullptr, std::memory_order_relaxed);
  workers.reserve(num_workers);
  for (size_t i = 0; i < num_workers; ++i) {
    auto w = std::make_unique<worker_state>();
    w->seen_runs.resize(num_workers);
    w->index = i;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
      throw std::runtime_error(std::string{"atoll: io_scheduler: epoll_create1: "}
                               + std::strerror(errno));
    w->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->wakefd < 0) {
      ::close(w->epfd);
      throw std::runtime_error(std::string{"atoll: io_scheduler: eventfd: "}
                               + std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_key;
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev);
    workers.push_back(std::move(w));
  }
}

io_core::~io_core() {
  for (auto& w : workers) {
    ::close(w->epfd);
    ::close(w->wakefd);
  }
  for (size_t c = 0; c < num_chunks; ++c)
    delete chunks[c].load(std::memory_order_relaxed);
}

namespace {

/// The worker this thread is, if it is one.
thread_local io_core* this_core = nullptr;
thread_local size_t this_worker = 0;

/// Work deferred to the end of this worker's run of jobs
/// (`io_scheduler::defer_to_batch_end`).
struct deferred_work {
  static constexpr size_t capacity = 8;
  std::pair<void (*)(void*), void*> items[capacity];
  size_t size = 0;
};
thread_local deferred_work deferred;

/// Runs the work deferred on this thread (and what it defers in turn).
void run_deferred() noexcept {
  while (deferred.size > 0) {
    deferred_work now = deferred;
    deferred.size = 0;
    for (size_t i = 0; i < now.size; ++i)
      now.items[i].first(now.items[i].second);
  }
}

} // namespace

// -- workers -----------------------------------------------------------------------

/// A worker as CAF sees it: the execution unit its actors run on. Whatever
/// an actor running here wakes up (the receiver of its message, an actor it
/// spawns) joins this worker's queue.
class io_worker final : public caf::execution_unit {
public:
  io_worker(caf::actor_system* sys, io_core& core, size_t index)
    : caf::execution_unit(sys), core_(core), index_(index) {
  }

  void exec_later(caf::resumable* job) override {
    if (core_.compaction && core_.parked(index_)) {
      // Parked: new work goes to an active worker.
      auto target = core_.pick_active();
      core_.push(target, job, true);
      io_core::wake(*core_.workers[target]);
      return;
    }
    core_.push(index_, job, true);
  }

private:
  io_core& core_;
  size_t index_;
};

void io_core::enqueue(caf::resumable* job) {
  if (this_core == this && !(compaction && parked(this_worker))) {
    push(this_worker, job, true);
    return;
  }
  // From outside: a sleeping (active) worker if there is one, else
  // round-robin.
  auto n = num_active();
  auto start = next_worker.fetch_add(1, std::memory_order_relaxed);
  auto target = start % n;
  for (size_t i = 0; i < n; ++i) {
    auto k = (start + i) % n;
    if (workers[k]->sleeping.load(std::memory_order_relaxed)) {
      target = k;
      break;
    }
  }
  push(target, job, false);
  wake(*workers[target]);
  // (Busy: maybe in a long job, with this one queued behind it.)
  if (!workers[target]->sleeping.load(std::memory_order_relaxed))
    nudge_parked(target);
}

caf::resumable* io_core::next_job(size_t index, caf::execution_unit* unit) {
  auto& me = *workers[index];
  me.busy.store(false, std::memory_order_relaxed);
  for (;;) {
    if (stopping.load(std::memory_order_acquire)) {
      // Run what was queued when the stop began, nothing after.
      if (me.stop_budget == npos)
        me.stop_budget = me.queued.load();
      if (me.stop_budget == 0)
        return nullptr;
      --me.stop_budget;
      return pop(me);
    }
    // A busy worker still looks at its sockets every so many jobs.
    if (++me.since_poll >= me.poll_after) {
      me.since_poll = 0;
      run_deferred();
      poll_now(me, unit, true);
      looked(me);
      if (workers.size() > 1)
        check_stuck(index, unit);
      if (compaction)
        balance(telemetry::monotonic_time());
    }
    auto* job = pop(me);
    if (job == nullptr) {
      // The run of jobs ends here: what they deferred goes out before
      // this worker looks elsewhere or sleeps. (A parked worker takes no
      // work from others.)
      run_deferred();
      if (!compaction || !parked(index))
        job = steal(index);
    }
    if (job != nullptr) {
      if (compaction)
        end_idle(me);
      me.slept_in_vain = false;
      me.busy.store(true, std::memory_order_relaxed);
      me.runs.fetch_add(1, std::memory_order_relaxed);
      return job;
    }
    me.since_poll = 0;
    // Out of work: give the CPU away a few times and look again before
    // sleeping (the BEAM's short busy wait). A client that was about to
    // answer usually has by then, and the sleep and wake-up it saves cost
    // more; an idle worker still sleeps after a few microseconds.
    // (Not after a sleep that ended with nothing to do: the periodic check
    // for stuck workers need not spin.)
    // At most `max_spinning` workers spin at once: the others sleep at once
    // (fewer context switches and polls for nothing, at the price of the
    // sleepers' wake-up latency). Without a cap (the default), no shared
    // counter is touched.
    bool found = false;
    auto may_spin = true;
    if (compaction) {
      auto now = telemetry::monotonic_time();
      begin_idle(me, now);
      balance(now);
      may_spin = !parked(index);
    }
    if (may_spin && !me.slept_in_vain && spin_rounds > 0 && take_spin_turn()) {
      me.spin_waits.store(me.spin_waits.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
      for (int i = 0; i < spin_rounds && !found; ++i) {
        sched_yield();
        found = poll_now(me, unit, true) > 0 || me.queued.load(std::memory_order_relaxed) > 0;
      }
      if (spin_capped)
        spinning.fetch_sub(1, std::memory_order_relaxed);
    }
    looked(me);
    if (!found)
      sleep(index, unit);
  }
}

void io_core::run_worker(caf::actor_system& sys, size_t index, size_t max_throughput) {
  auto name = "atoll.worker." + std::to_string(index);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  sys.thread_started();
  this_core = this;
  this_worker = index;
  auto* unit = workers[index]->unit.get();
  [[maybe_unused]] unsigned jobs = 0;
  while (auto* job = next_job(index, unit)) {
#if CAF_LOG_LEVEL == CAF_LOG_LEVEL_QUIET
    // With logging compiled out, CAF still records the running actor's id
    // per thread when the thread has a logger (a `spawn` sets one): a locked
    // hash-map lookup at each start and end of an actor run, for log lines
    // that are never written. Without a logger, it skips that. Looked at
    // every 16 jobs: the look itself (a call into CAF and a thread-local
    // lookup, about 35 instructions) was 1.7% of a ping-pong echo's, and
    // Atoll's own connection spawns no longer set a logger.
    if (++jobs % 16 == 0 && caf::logger::current_logger() != nullptr)
      caf::logger::set_current_actor_system(nullptr);
#endif
    switch (job->resume(unit, max_throughput)) {
      case caf::resumable::resume_later:
        // It keeps its reference: it runs again (on an active worker if
        // this one is parked: an actor whose mailbox never empties must not
        // stay where the balancer does not count the load).
        if (compaction && parked(index)) {
          auto target = pick_active();
          push(target, job, true);
          wake(*workers[target]);
        } else {
          push(index, job, true);
        }
        break;
      case caf::resumable::done:
      case caf::resumable::awaiting_message:
        intrusive_ptr_release(job);
        break;
      case caf::resumable::shutdown_execution_unit:
        break;
    }
  }
  run_deferred();
  this_core = nullptr;
  sys.thread_terminates();
}

void io_core::start_workers(caf::actor_system& sys, size_t max_throughput) {
  // The units outlive the threads: an actor may keep a pointer to the last
  // one it ran on.
  for (size_t i = 0; i < workers.size(); ++i)
    workers[i]->unit = std::make_unique<io_worker>(&sys, *this, i);
  for (size_t i = 0; i < workers.size(); ++i)
    threads.emplace_back([this, &sys, i, max_throughput] { run_worker(sys, i, max_throughput); });
}

void io_core::stop_workers() {
  stopping.store(true, std::memory_order_release);
  for (auto& w : workers) {
    uint64_t one = 1;
    [[maybe_unused]] auto res = ::write(w->wakefd, &one, sizeof(one));
  }
  for (auto& t : threads)
    if (t.joinable())
      t.join();
  threads.clear();
}

void io_core::drain_queues(void (*f)(caf::resumable*)) {
  for (auto& w : workers)
    while (auto* job = pop(*w))
      f(job);
}

} // namespace detail

// -- reactor ----------------------------------------------------------------------

using detail::io_core;
using detail::slot;
using detail::spin_lock;

reactor::reactor(std::shared_ptr<io_core> core) : core_(std::move(core)) {
}

reactor::~reactor() = default;

caf::expected<std::shared_ptr<reactor>> reactor::of(caf::actor_system& sys) {
  auto* sched = dynamic_cast<io_scheduler*>(&sys.scheduler());
  if (sched == nullptr || !sched->io())
    return caf::make_error(errc::reactor_unavailable,
                           "the actor system does not run atl::io_scheduler; call "
                           "atl::register_types(cfg) before creating it");
  if (!sched->io()->running())
    return caf::make_error(errc::reactor_unavailable, "the actor system is shutting down");
  return sched->io();
}

bool reactor::running() const noexcept {
  return core_->running.load();
}

bool reactor::on_worker() const noexcept {
  return detail::this_core == core_.get();
}

namespace {

caf::error system_error(errc code, const char* what, int err) {
  return caf::make_error(code, what, std::string{std::strerror(err)});
}

} // namespace

caf::expected<fd_registration> reactor::add(int fd, caf::strong_actor_ptr owner,
                                            uint32_t interest) {
  if (!owner)
    return caf::make_error(errc::registration_failed, "invalid owner");
  return add_impl(fd, std::move(owner), nullptr, nullptr, interest);
}

caf::expected<fd_registration> reactor::add(int fd, caf::strong_actor_ptr owner, io_sink* sink,
                                            uint32_t interest) {
  if (!owner)
    return caf::make_error(errc::registration_failed, "invalid owner");
  return add_impl(fd, std::move(owner), sink, nullptr, interest);
}

caf::expected<fd_registration> reactor::add_shared(int fd, uint32_t interest) {
  auto sh = std::make_unique<detail::shared_owners>();
  sh->interest = interest;
  return add_impl(fd, nullptr, nullptr, std::move(sh), interest);
}

caf::expected<fd_registration>
reactor::add_impl(int fd, caf::strong_actor_ptr owner, io_sink* sink,
                  std::unique_ptr<detail::shared_owners> shared, uint32_t interest) {
  auto& core = *core_;
  if (!core.running.load())
    return caf::make_error(errc::reactor_unavailable, "reactor stopped");
  auto* s = core.make_slot(fd);
  if (s == nullptr)
    return caf::make_error(errc::registration_failed, "invalid fd", std::to_string(fd));
  auto token = core.make_token();
  auto poller = core.pick_poller(detail::this_core == &core ? detail::this_worker : detail::npos);
  std::lock_guard<spin_lock> guard{s->lock};
  if (s->token != 0)
    return caf::make_error(errc::registration_failed, "fd already registered",
                           std::to_string(fd));
  epoll_event ev{};
  ev.events = interest | EPOLLRDHUP;
  ev.data.u64 = detail::pack(fd, token);
  if (interest != 0 && epoll_ctl(core.workers[poller]->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
    return system_error(errc::registration_failed, "epoll_ctl(ADD)", errno);
  s->interest = interest;
  s->in_epoll = interest != 0;
  s->pending = false;
  s->sink = sink;
  s->token = token;
  s->poller = poller;
  core.workers[poller]->registrations.fetch_add(1, std::memory_order_relaxed);
  s->owner = std::move(owner);
  s->shared = std::move(shared);
  core.count.fetch_add(1, std::memory_order_relaxed);
  return fd_registration{fd, token};
}

caf::error reactor::join(const fd_registration& reg, caf::strong_actor_ptr owner) {
  if (!reg || !owner)
    return caf::make_error(errc::registration_failed, "invalid registration or owner");
  auto* s = core_->find_slot(reg.fd);
  if (s == nullptr)
    return caf::make_error(errc::registration_failed, "stale registration");
  std::lock_guard<spin_lock> guard{s->lock};
  if (s->token != reg.token || !s->shared)
    return caf::make_error(errc::registration_failed, "stale or not a shared registration");
  auto& sh = *s->shared;
  sh.owners.push_back(std::move(owner));
  if (sh.waiting) {
    sh.waiting = false;
    if (core_->set_interest(*s, reg.fd, sh.interest) != 0)
      return system_error(errc::registration_failed, "epoll_ctl", errno);
  }
  return caf::none;
}

void reactor::leave(const fd_registration& reg, const caf::actor_addr& owner) {
  caf::strong_actor_ptr released; // dropped outside the lock
  auto* s = core_->find_slot(reg.fd);
  if (!reg || s == nullptr)
    return;
  std::lock_guard<spin_lock> guard{s->lock};
  if (s->token != reg.token || !s->shared)
    return;
  auto& sh = *s->shared;
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
      core_->set_interest(*s, reg.fd, sh.interest);
  }
}

caf::error reactor::rearm(const fd_registration& reg, uint32_t interest) {
  if (!reg)
    return caf::make_error(errc::registration_failed, "invalid registration");
  auto* s = core_->find_slot(reg.fd);
  if (s == nullptr)
    return caf::make_error(errc::registration_failed, "stale registration");
  // Under the fd's lock: re-arming a stale registration would arm the fd of
  // someone else.
  std::lock_guard<spin_lock> guard{s->lock};
  if (s->token != reg.token)
    return caf::make_error(errc::registration_failed, "stale registration");
  if (detail::this_core == core_.get())
    core_->follow_owner(*s, reg.fd, detail::this_worker);
  if (auto& sh = s->shared) {
    sh->outstanding = 0;
    sh->interest = interest;
    if (core_->set_interest(*s, reg.fd, interest) != 0)
      return system_error(errc::registration_failed, "epoll_ctl", errno);
    return caf::none;
  }
  if (core_->acknowledge(*s, reg.fd, interest) != 0)
    return system_error(errc::registration_failed, "epoll_ctl", errno);
  return caf::none;
}

void reactor::remove(const fd_registration& reg, bool closing_next) {
  if (!reg)
    return;
  auto* s = core_->find_slot(reg.fd);
  if (s == nullptr)
    return;
  caf::strong_actor_ptr owner; // dropped outside the lock
  std::unique_ptr<detail::shared_owners> shared;
  {
    std::lock_guard<spin_lock> guard{s->lock};
    if (s->token != reg.token)
      return;
    // DEL under the lock: a later add of the same fd number must come after
    // the kernel forgot this registration.
    // (A closed fd leaves epoll by itself; an event it still gets before
    // that carries a stale token.)
    if (s->shared || (s->in_epoll && !closing_next))
      epoll_ctl(core_->workers[s->poller]->epfd, EPOLL_CTL_DEL, reg.fd, nullptr);
    s->in_epoll = false;
    s->token = 0;
    s->sink = nullptr;
    core_->workers[s->poller]->registrations.fetch_sub(1, std::memory_order_relaxed);
    owner = std::move(s->owner);
    shared = std::move(s->shared);
  }
  // Release: whoever reads the smaller size() (acquire) sees the removal
  // done, so it may close the fd (an epoll_ctl on a closed fd number could
  // hit the next file that gets it).
  core_->count.fetch_sub(1, std::memory_order_release);
}

reactor_timer::~reactor_timer() {
  reactor::cancel(*this);
}

void reactor::schedule(reactor_timer& timer, caf::strong_actor_ptr owner, int64_t due,
                       uint64_t tag) {
  cancel(timer);
  auto& core = *core_;
  if (!core.running.load())
    return;
  auto index = detail::this_core == &core && !(core.compaction && core.parked(detail::this_worker))
                 ? detail::this_worker
                 : core.next_poller.fetch_add(1, std::memory_order_relaxed) % core.num_active();
  auto& w = *core.workers[index];
  bool earliest = false;
  {
    std::lock_guard<spin_lock> guard{w.timers.mtx};
    detail::timer_heap_access::setup(timer, caf::actor_cast<caf::weak_actor_ptr>(owner), due,
                                     tag);
    detail::timer_heap_access::insert(w.timers, &timer);
    earliest = w.timers.items.front() == &timer;
  }
  // A sleeping worker waits until its earliest timer: wake it to look again.
  if (earliest && !(detail::this_core == &core && detail::this_worker == index))
    io_core::wake(w);
}

void reactor::cancel(reactor_timer& timer) {
  auto* h = timer.heap_.load(std::memory_order_acquire);
  if (h == nullptr)
    return;
  caf::weak_actor_ptr released; // dropped outside the lock
  std::lock_guard<spin_lock> guard{h->mtx};
  if (timer.index_ != reactor_timer::npos && timer.heap_.load() == h) {
    detail::timer_heap_access::erase(*h, &timer);
    released = std::move(timer.owner_);
  }
}

size_t reactor::size() const noexcept {
  return core_->count.load(std::memory_order_acquire);
}

uint64_t reactor::memory_releases() const noexcept {
  return core_->releases.load(std::memory_order_relaxed);
}

uint64_t reactor::spin_waits() const noexcept {
  uint64_t sum = 0;
  for (auto& w : core_->workers)
    sum += w->spin_waits.load(std::memory_order_relaxed);
  return sum;
}

size_t reactor::active_workers() const noexcept {
  return core_->num_active();
}

uint64_t reactor::worker_activations() const noexcept {
  return core_->activations.load(std::memory_order_relaxed);
}

uint64_t reactor::worker_deactivations() const noexcept {
  return core_->deactivations.load(std::memory_order_relaxed);
}

size_t reactor::num_pollers() const noexcept {
  return core_->workers.size();
}

std::vector<size_t> reactor::registrations_per_poller() const {
  std::vector<size_t> result;
  result.reserve(core_->workers.size());
  for (auto& w : core_->workers)
    result.push_back(static_cast<size_t>(
      std::max<int64_t>(w->registrations.load(std::memory_order_relaxed), 0)));
  return result;
}

bool reactor::compaction() const noexcept {
  return core_->compaction;
}

scheduler_stats reactor::stats() const {
  scheduler_stats result;
  result.workers = num_pollers();
  result.active_workers = active_workers();
  result.compaction = compaction();
  result.activations = worker_activations();
  result.deactivations = worker_deactivations();
  result.spin_waits = spin_waits();
  result.memory_releases = memory_releases();
  result.registrations = size();
  for (auto n : registrations_per_poller())
    result.registrations_per_poller.push_back(n);
  return result;
}

// -- io_scheduler ---------------------------------------------------------------------

io_scheduler::io_scheduler(caf::actor_system& sys) : super(sys) {
}

io_scheduler::~io_scheduler() = default;

caf::actor_system::module* io_scheduler::make(caf::actor_system& sys, caf::detail::type_list<>) {
  return new io_scheduler(sys);
}

void io_scheduler::init(caf::actor_system_config& cfg) {
  super::init(cfg);
  auto threads = caf::get_if<size_t>(&cfg, "scheduler.max-threads");
  if (!threads || *threads == 0)
    num_workers_ = std::max<size_t>(std::thread::hardware_concurrency(), 1);
  if (!caf::get_if<size_t>(&cfg, "scheduler.max-throughput"))
    max_throughput_ = 100;
  // At most an hour (also keeps the arithmetic on it far from overflow).
  constexpr int64_t max_ms = 3'600'000;
  if (auto rest = caf::get_if<caf::timespan>(&cfg, "scheduler.release-memory-after"))
    release_after_ = std::clamp(*rest, caf::timespan{0}, caf::timespan{std::chrono::hours{1}});
  else if (auto ms = caf::get_if<int64_t>(&cfg, "scheduler.release-memory-after"))
    release_after_ = std::chrono::milliseconds{std::clamp<int64_t>(*ms, 0, max_ms)};
  // Unset, negative or not an integer: every worker may spin (the default).
  if (auto n = caf::get_if<int64_t>(&cfg, "scheduler.spinning-workers"); n && *n >= 0)
    spinning_workers_ = static_cast<int>(std::min<int64_t>(*n, INT_MAX));
  if (auto on = caf::get_if<bool>(&cfg, "scheduler.compaction"))
    compaction_ = *on;
}

void io_scheduler::start() {
  // Writing to a socket whose peer is gone must not kill the process;
  // OpenSSL writes through plain write(2), so SIGPIPE is ignored
  // process-wide.
  std::signal(SIGPIPE, SIG_IGN);
  auto core = std::make_shared<io_core>(num_workers());
  core->release_after_ns = release_after_.count();
  core->max_spinning = spinning_workers_;
  core->spin_capped = static_cast<size_t>(spinning_workers_) < core->workers.size();
  core->compaction = compaction_ && core->workers.size() > 1;
  core->active.store(core->workers.size());
  core->start_workers(system(), max_throughput());
  io_.reset(new reactor(std::move(core)));
  clock_thread_ = std::thread{[this] {
    pthread_setname_np(pthread_self(), "atoll.clock");
    system().thread_started();
    clock_.run_dispatch_loop();
    system().thread_terminates();
  }};
  super::start();
}

void io_scheduler::stop() {
  auto& core = *io_->core_;
  core.stop_workers();
  stop_actors();
  clock_.cancel_dispatch_loop();
  clock_thread_.join();
  // Light actors are not CAF scheduled actors: CAF's clean-up would only
  // release them (and they would end later, as unreachable).
  core.drain_queues(&detail::light_actor::cleanup_and_release);
  core.shut_down();
}

void io_scheduler::enqueue(caf::resumable* job) {
  io_->core_->enqueue(job);
}

bool io_scheduler::defer_to_batch_end(void (*fn)(void*), void* arg) noexcept {
  if (detail::this_core == nullptr)
    return false;
  auto& d = detail::deferred;
  for (size_t i = 0; i < d.size; ++i)
    if (d.items[i].first == fn && d.items[i].second == arg)
      return true;
  if (d.size == detail::deferred_work::capacity)
    return false;
  d.items[d.size++] = {fn, arg};
  return true;
}

caf::detail::thread_safe_actor_clock& io_scheduler::clock() noexcept {
  return clock_;
}

} // namespace atl
