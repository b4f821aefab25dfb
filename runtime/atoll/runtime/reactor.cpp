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

#include <caf/make_message.hpp>
#include <caf/message_id.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/error.hpp"

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

struct poller {
  int epfd = -1;
  int wakefd = -1;
  std::thread thread;
};

} // namespace

struct reactor::core {
  std::vector<poller> pollers;
  mutable std::mutex mtx;
  std::vector<slot> table; // indexed by fd
  size_t count = 0;
  std::atomic<uint32_t> next_token{0};
  std::atomic<bool> stopping{false};

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

  void run(size_t index) {
    auto& p = pollers[index];
    epoll_event events[max_events];
    for (;;) {
      auto n = epoll_wait(p.epfd, events, max_events, -1);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return;
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == wake_key) {
          if (stopping.load())
            return;
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
        if (owner)
          owner->enqueue(nullptr, caf::make_message_id(),
                         caf::make_message(socket_ready_atom::value, fd,
                                           static_cast<uint32_t>(events[i].events), token),
                         nullptr);
      }
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

size_t reactor::size() const {
  std::lock_guard<std::mutex> guard{core_->mtx};
  return core_->count;
}

size_t reactor::num_pollers() const noexcept {
  return core_->pollers.size();
}

} // namespace atl
