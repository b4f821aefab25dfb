// Tests of the reactor (the epoll side of atl::io_scheduler) with
// socketpairs: readiness delivered as messages, one-shot re-arm, removal,
// 1,000 fds, fd reuse, timers, a blocked worker, and the reactor's lifetime
// bound to its actor system.
#include <boost/test/unit_test.hpp>

#include <future>
#include <optional>
#include <set>

#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "atoll/runtime/all.hpp"
#include "support/test_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

struct socket_pair {
  int fds[2] = {-1, -1};

  socket_pair() {
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds)
                  == 0);
  }

  ~socket_pair() {
    close_both();
  }

  void close_both() {
    for (auto& fd : fds)
      if (fd >= 0) {
        ::close(fd);
        fd = -1;
      }
  }

  int reader() const {
    return fds[0];
  }

  void poke() const {
    char c = 'x';
    BOOST_REQUIRE_EQUAL(::write(fds[1], &c, 1), 1);
  }

  void drain() const {
    char buf[256];
    while (::read(fds[0], buf, sizeof(buf)) > 0) {
    }
  }
};

struct ready_event {
  int fd = -1;
  uint32_t events = 0;
  uint32_t token = 0;
};

/// Receives one socket_ready message, or nothing within `timeout`.
std::optional<ready_event> next_ready(caf::scoped_actor& self,
                                      std::chrono::milliseconds timeout) {
  std::optional<ready_event> result;
  self->receive(
    [&](socket_ready_atom, int fd, uint32_t events, uint32_t token) {
      result = ready_event{fd, events, token};
    },
    caf::after(timeout) >> [] {});
  return result;
}

caf::strong_actor_ptr owner_of(caf::scoped_actor& self) {
  return caf::actor_cast<caf::strong_actor_ptr>(self);
}

// A negative check needs a window; this one is short and only used to show
// that something does NOT happen, right before showing that it then does.
constexpr auto quiet_window = 150ms;

/// A reactor, an owner and a socketpair whose reading end is registered.
struct registered_pair {
  std::shared_ptr<atl::reactor> r;
  caf::scoped_actor self;
  socket_pair sp;
  fd_registration reg;

  registered_pair(caf::actor_system& sys, uint32_t interest) : self(sys) {
    auto made = atl::reactor::of(sys);
    BOOST_REQUIRE(made);
    r = *made;
    auto added = r->add(sp.reader(), owner_of(self), interest);
    BOOST_REQUIRE(added);
    reg = *added;
  }

  ~registered_pair() {
    r->remove(reg);
  }

  std::optional<ready_event> next(std::chrono::milliseconds timeout = 5000ms) {
    return next_ready(self, timeout);
  }
};

/// A socketpair whose reading end is a shared registration with two owners,
/// `a` (first in the rotation) and `b`.
struct shared_pair {
  std::shared_ptr<atl::reactor> r;
  socket_pair pair;
  fd_registration reg;
  caf::scoped_actor a;
  caf::scoped_actor b;

  explicit shared_pair(caf::actor_system& sys) : a(sys), b(sys) {
    auto made = atl::reactor::of(sys);
    BOOST_REQUIRE(made);
    r = *made;
    auto added = r->add_shared(pair.reader(), io_events::readable);
    BOOST_REQUIRE(added);
    reg = *added;
    BOOST_REQUIRE(!r->join(reg, owner_of(a)));
    BOOST_REQUIRE(!r->join(reg, owner_of(b)));
  }

  ~shared_pair() {
    r->leave(reg, a->address());
    r->leave(reg, b->address());
    r->remove(reg);
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(reactor, system_fixture)

BOOST_AUTO_TEST_CASE(readiness_is_delivered_to_the_owner) {
  registered_pair rp{sys, io_events::readable};
  BOOST_CHECK_EQUAL(rp.r->size(), 1u);
  rp.sp.poke();
  auto ev = rp.next();
  BOOST_REQUIRE(ev);
  BOOST_CHECK_EQUAL(ev->fd, rp.sp.reader());
  BOOST_CHECK_EQUAL(ev->token, rp.reg.token);
  BOOST_CHECK(ev->events & io_events::readable);
  rp.r->remove(rp.reg);
  BOOST_CHECK_EQUAL(rp.r->size(), 0u);
}

BOOST_AUTO_TEST_CASE(interest_is_one_shot_until_rearmed) {
  registered_pair rp{sys, io_events::readable};
  rp.sp.poke();
  BOOST_REQUIRE(rp.next());
  rp.sp.drain();
  rp.sp.poke();
  BOOST_CHECK(!rp.next(quiet_window)); // not re-armed: silent
  BOOST_REQUIRE(!rp.r->rearm(rp.reg, io_events::readable));
  auto ev = rp.next(); // data already pending: fires at once
  BOOST_REQUIRE(ev);
  BOOST_CHECK_EQUAL(ev->token, rp.reg.token);
}

BOOST_AUTO_TEST_CASE(writable_interest_reports_a_writable_socket) {
  registered_pair rp{sys, io_events::writable};
  auto ev = rp.next();
  BOOST_REQUIRE(ev);
  BOOST_CHECK(ev->events & io_events::writable);
}

BOOST_AUTO_TEST_CASE(peer_close_is_reported_as_hangup) {
  registered_pair rp{sys, io_events::readable};
  ::close(rp.sp.fds[1]);
  rp.sp.fds[1] = -1;
  auto ev = rp.next();
  BOOST_REQUIRE(ev);
  BOOST_CHECK(ev->events & (io_events::peer_shutdown | io_events::hangup));
}

BOOST_AUTO_TEST_CASE(removal_stops_delivery) {
  registered_pair rp{sys, io_events::readable};
  rp.r->remove(rp.reg);
  rp.sp.poke();
  BOOST_CHECK(!rp.next(quiet_window));
  // A removed registration cannot be re-armed.
  BOOST_CHECK(rp.r->rearm(rp.reg, io_events::readable) == errc::registration_failed);
  // The fd can be registered again, with a new token, and then delivers.
  auto again = rp.r->add(rp.sp.reader(), owner_of(rp.self), io_events::readable);
  BOOST_REQUIRE(again);
  BOOST_CHECK_NE(again->token, rp.reg.token);
  auto ev = rp.next();
  BOOST_REQUIRE(ev);
  BOOST_CHECK_EQUAL(ev->token, again->token);
  rp.r->remove(*again);
}

BOOST_AUTO_TEST_CASE(a_registered_fd_cannot_be_registered_twice) {
  registered_pair rp{sys, io_events::readable};
  auto dup = rp.r->add(rp.sp.reader(), owner_of(rp.self), io_events::readable);
  BOOST_REQUIRE(!dup);
  BOOST_CHECK(dup.error() == errc::registration_failed);
  auto bad = rp.r->add(-1, owner_of(rp.self), io_events::readable);
  BOOST_CHECK(!bad && bad.error() == errc::registration_failed);
}

BOOST_AUTO_TEST_CASE(a_thousand_fds_each_deliver_once) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  BOOST_CHECK_EQUAL((*r)->num_pollers(), 2u);
  caf::scoped_actor self{sys};
  std::vector<std::unique_ptr<socket_pair>> pairs;
  std::vector<fd_registration> regs;
  for (int i = 0; i < 1000; ++i) {
    pairs.push_back(std::make_unique<socket_pair>());
    auto reg = (*r)->add(pairs.back()->reader(), owner_of(self), io_events::readable);
    BOOST_REQUIRE(reg);
    regs.push_back(*reg);
  }
  BOOST_CHECK_EQUAL((*r)->size(), 1000u);
  for (auto& p : pairs)
    p->poke();
  std::set<int> seen;
  for (int i = 0; i < 1000; ++i) {
    auto ev = next_ready(self, 5000ms);
    BOOST_REQUIRE_MESSAGE(ev, "only " << seen.size() << " events");
    BOOST_CHECK(seen.insert(ev->fd).second);
  }
  BOOST_CHECK_EQUAL(seen.size(), 1000u);
  BOOST_CHECK(!next_ready(self, quiet_window)); // one-shot: no duplicates
  for (auto& reg : regs)
    (*r)->remove(reg);
  BOOST_CHECK_EQUAL((*r)->size(), 0u);
}

BOOST_AUTO_TEST_CASE(a_reused_fd_number_never_reaches_the_old_owner) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  caf::scoped_actor old_owner{sys};
  caf::scoped_actor new_owner{sys};
  auto first = std::make_unique<socket_pair>();
  int fd = first->reader();
  auto old_reg = (*r)->add(fd, owner_of(old_owner), io_events::readable);
  BOOST_REQUIRE(old_reg);
  // The old owner gets an event, leaves it unread, removes and closes.
  first->poke();
  auto stale = next_ready(old_owner, 5000ms);
  BOOST_REQUIRE(stale);
  (*r)->remove(*old_reg);
  first.reset();
  // The kernel hands out the lowest free numbers, so the new pair reuses fd.
  socket_pair second;
  BOOST_REQUIRE_EQUAL(second.reader(), fd);
  auto new_reg = (*r)->add(second.reader(), owner_of(new_owner), io_events::readable);
  BOOST_REQUIRE(new_reg);
  BOOST_CHECK_NE(new_reg->token, old_reg->token);
  // The stale registration cannot arm the new owner's fd.
  BOOST_CHECK((*r)->rearm(*old_reg, io_events::readable) == errc::registration_failed);
  second.poke();
  auto fresh = next_ready(new_owner, 5000ms);
  BOOST_REQUIRE(fresh);
  BOOST_CHECK_EQUAL(fresh->token, new_reg->token);
  BOOST_CHECK(!next_ready(old_owner, quiet_window));
  // An owner tells a stale event by its token.
  BOOST_CHECK_NE(stale->token, new_reg->token);
  (*r)->remove(*new_reg);
}

BOOST_AUTO_TEST_CASE(shared_registrations_rotate_events_over_their_owners) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  socket_pair sp;
  auto reg = (*r)->add_shared(sp.reader(), io_events::readable);
  BOOST_REQUIRE(reg);
  std::vector<std::unique_ptr<caf::scoped_actor>> owners;
  for (int i = 0; i < 3; ++i) {
    owners.push_back(std::make_unique<caf::scoped_actor>(sys));
    BOOST_REQUIRE(!(*r)->join(*reg, owner_of(*owners.back())));
  }
  sp.poke(); // stays readable: every re-arm fires again
  for (int round = 0; round < 2; ++round) {
    for (auto& owner : owners) {
      auto ev = next_ready(*owner, 5000ms);
      BOOST_REQUIRE_MESSAGE(ev, "round " << round);
      BOOST_CHECK_EQUAL(ev->token, reg->token);
      BOOST_REQUIRE(!(*r)->rearm(*reg, io_events::readable));
    }
  }
  for (auto& owner : owners)
    (*r)->leave(*reg, (*owner)->address());
  (*r)->remove(*reg);
}

BOOST_AUTO_TEST_CASE(a_shared_registration_holds_its_next_event_until_the_owner_rearms) {
  // Level-triggered in epoll: while the owner that has the event has not
  // re-armed, nobody gets another, however long the fd stays readable (the
  // idle workers take it out of epoll meanwhile); the re-arm hands the next
  // event to the next owner.
  shared_pair sp{sys};
  sp.pair.poke();
  BOOST_REQUIRE(next_ready(sp.a, 5000ms));
  sp.pair.poke(); // more input, no re-arm: silent for both
  BOOST_CHECK(!next_ready(sp.b, quiet_window));
  BOOST_CHECK(!next_ready(sp.a, quiet_window));
  BOOST_REQUIRE(!sp.r->rearm(sp.reg, io_events::readable));
  auto ev = next_ready(sp.b, 5000ms);
  BOOST_REQUIRE(ev);
  BOOST_CHECK_EQUAL(ev->token, sp.reg.token);
  BOOST_CHECK(!next_ready(sp.a, quiet_window)); // one event per re-arm
}

BOOST_AUTO_TEST_CASE(an_owner_leaving_with_an_unhandled_event_passes_it_on) {
  shared_pair sp{sys};
  sp.pair.poke();
  BOOST_REQUIRE(next_ready(sp.a, 5000ms)); // a got it and "dies" without re-arming
  sp.r->leave(sp.reg, sp.a->address());
  auto ev = next_ready(sp.b, 5000ms);
  BOOST_REQUIRE(ev);
  BOOST_CHECK_EQUAL(ev->token, sp.reg.token);
}

BOOST_AUTO_TEST_CASE(an_event_waits_for_the_first_owner_of_a_shared_registration) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  socket_pair sp;
  auto reg = (*r)->add_shared(sp.reader(), io_events::readable);
  BOOST_REQUIRE(reg);
  sp.poke(); // fires with no owner: the event waits, disarmed
  caf::scoped_actor late{sys};
  BOOST_REQUIRE(!(*r)->join(*reg, owner_of(late)));
  BOOST_CHECK(next_ready(late, 5000ms));
  // join is for shared registrations only.
  caf::scoped_actor other{sys};
  socket_pair plain_pair;
  auto plain = (*r)->add(plain_pair.reader(), owner_of(other), io_events::readable);
  BOOST_REQUIRE(plain);
  BOOST_CHECK((*r)->join(*plain, owner_of(other)) == errc::registration_failed);
  (*r)->remove(*plain);
  (*r)->leave(*reg, late->address());
  (*r)->remove(*reg);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// An actor owning a registered socketpair end; it removes the registration
/// and closes the fds when it terminates, whatever the reason.
caf::behavior fd_owner(caf::event_based_actor* self, std::shared_ptr<atl::reactor> r,
                       std::shared_ptr<event_log> log) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
    return {};
  auto reg = r->add(fds[0], caf::actor_cast<caf::strong_actor_ptr>(self), io_events::readable);
  if (!reg) {
    ::close(fds[0]);
    ::close(fds[1]);
    return {};
  }
  self->attach_functor([r, reg{*reg}, a{fds[0]}, b{fds[1]}] {
    r->remove(reg);
    ::close(a);
    ::close(b);
  });
  char c = 'x';
  [[maybe_unused]] auto n = ::write(fds[1], &c, 1);
  return {
    [self, log](socket_ready_atom, int, uint32_t, uint32_t) {
      log->add("ready");
      self->quit();
    },
  };
}

} // namespace

BOOST_AUTO_TEST_SUITE(reactor)

BOOST_AUTO_TEST_CASE(the_actor_system_shuts_down_without_hanging) {
  std::shared_ptr<atl::reactor> kept; // outlives its system
  auto log = std::make_shared<event_log>();
  socket_pair leftover;
  auto done = std::async(std::launch::async, [&] {
    caf::actor_system_config own_cfg;
    auto own_sys = system_fixture::make_system(own_cfg);
    auto r = atl::reactor::of(*own_sys);
    BOOST_REQUIRE(r);
    kept = *r;
    for (int i = 0; i < 50; ++i)
      own_sys->spawn(fd_owner, *r, log);
    // Some actors stay registered and blocked: killed at shutdown.
    std::vector<caf::actor> idle;
    for (int i = 0; i < 50; ++i)
      idle.push_back(own_sys->spawn([r{*r}](caf::event_based_actor* self) -> caf::behavior {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0)
          return {};
        auto reg = r->add(fds[0], caf::actor_cast<caf::strong_actor_ptr>(self),
                          io_events::readable);
        self->attach_functor([r, reg, a{fds[0]}, b{fds[1]}] {
          if (reg)
            r->remove(*reg);
          ::close(a);
          ::close(b);
        });
        return {[](int) {}};
      }));
    BOOST_CHECK(log->wait_for("ready", 50));
    for (auto& a : idle)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    idle.clear();
    // ~actor_system waits for every actor; it must return.
  });
  BOOST_REQUIRE(done.wait_for(10s) == std::future_status::ready);
  // The system stopped its reactor: nothing registered, nothing accepted.
  BOOST_CHECK(!kept->running());
  BOOST_CHECK_EQUAL(kept->size(), 0u);
  caf::scoped_actor self{sys};
  auto late = kept->add(leftover.reader(), caf::actor_cast<caf::strong_actor_ptr>(self),
                        io_events::readable);
  BOOST_CHECK(!late && late.error() == errc::reactor_unavailable);
  kept->remove(fd_registration{leftover.reader(), 1}); // a no-op, not a crash
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// An actor that owns one end of a socketpair (registered for reading) and
/// logs "<name>:ready" for each event, re-arming after reading.
caf::behavior logging_owner(caf::event_based_actor* self, std::shared_ptr<atl::reactor> r,
                            int fd, std::string name, std::shared_ptr<event_log> log) {
  auto reg = r->add(fd, caf::actor_cast<caf::strong_actor_ptr>(self), io_events::readable);
  if (!reg)
    return {};
  self->attach_functor([r, reg{*reg}] { r->remove(reg); });
  return {
    [r, reg{*reg}, fd, name, log](socket_ready_atom, int, uint32_t, uint32_t) {
      char buf[64];
      while (::read(fd, buf, sizeof(buf)) > 0) {
      }
      log->add(name + ":ready");
      static_cast<void>(r->rearm(reg, io_events::readable));
    },
  };
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(reactor_lifetime, system_fixture)

BOOST_AUTO_TEST_CASE(a_system_without_the_io_scheduler_has_no_reactor) {
  caf::actor_system_config plain_cfg;
  plain_cfg.set("scheduler.max-threads", 1);
  caf::actor_system plain{plain_cfg};
  auto r = atl::reactor::of(plain);
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error() == errc::reactor_unavailable);
}

BOOST_AUTO_TEST_CASE(the_io_scheduler_has_one_poller_per_worker) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  BOOST_CHECK_EQUAL((*r)->num_pollers(), 2u); // scheduler.max-threads = 2
  BOOST_CHECK((*r)->running());
}

BOOST_AUTO_TEST_CASE(registrations_stay_balanced_over_the_pollers_whoever_makes_them) {
  // Without load compaction: a parked worker's poller would take none.
  caf::actor_system_config own_cfg;
  atl::register_runtime_types(own_cfg);
  own_cfg.set("scheduler.max-threads", 2);
  own_cfg.set("scheduler.compaction", false);
  caf::actor_system own{own_cfg};
  auto r = atl::reactor::of(own);
  BOOST_REQUIRE(r);
  auto io = *r;
  std::vector<std::unique_ptr<socket_pair>> pairs;
  std::vector<fd_registration> regs;
  caf::scoped_actor self{own};
  auto spread = [&] {
    auto loads = io->registrations_per_poller();
    BOOST_REQUIRE_EQUAL(loads.size(), 2u);
    return std::make_pair(loads[0] + loads[1],
                          std::max(loads[0], loads[1]) - std::min(loads[0], loads[1]));
  };
  // From a thread that is no worker: the least loaded poller each time.
  for (int i = 0; i < 100; ++i) {
    pairs.push_back(std::make_unique<socket_pair>());
    auto reg = io->add(pairs.back()->reader(), owner_of(self), io_events::readable);
    BOOST_REQUIRE(reg);
    regs.push_back(*reg);
  }
  BOOST_CHECK(spread() == std::make_pair(size_t{100}, size_t{0}));
  // From one worker, 200 in one actor run: its own poller first, but never
  // more than 16 ahead of the other.
  auto made = std::make_shared<std::vector<std::pair<int, fd_registration>>>();
  auto maker = own.spawn([io, made, owner{owner_of(self)}](caf::event_based_actor* me) {
    for (int i = 0; i < 200; ++i) {
      int fds[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        break;
      ::close(fds[1]);
      auto reg = io->add(fds[0], owner, io_events::readable);
      if (!reg) {
        ::close(fds[0]);
        break;
      }
      made->emplace_back(fds[0], *reg);
    }
    me->quit();
  });
  self->wait_for(maker);
  BOOST_REQUIRE_EQUAL(made->size(), 200u);
  auto [total, gap] = spread();
  BOOST_CHECK_EQUAL(total, 300u);
  BOOST_CHECK_LE(gap, 17u);
  for (auto& [fd, reg] : *made) {
    io->remove(reg);
    ::close(fd);
  }
  for (auto& reg : regs)
    io->remove(reg);
  BOOST_CHECK(spread() == std::make_pair(size_t{0}, size_t{0}));
}

BOOST_AUTO_TEST_CASE(two_systems_at_once_each_have_their_own_reactor) {
  caf::actor_system_config other_cfg;
  auto other = system_fixture::make_system(other_cfg);
  auto r1 = atl::reactor::of(sys);
  auto r2 = atl::reactor::of(*other);
  BOOST_REQUIRE(r1 && r2);
  BOOST_CHECK(r1->get() != r2->get());
  auto log = std::make_shared<event_log>();
  socket_pair a;
  socket_pair b;
  auto owner_a = sys.spawn(logging_owner, *r1, a.reader(), "a", log);
  auto owner_b = other->spawn(logging_owner, *r2, b.reader(), "b", log);
  BOOST_REQUIRE(wait_until([&] { return (*r1)->size() == 1 && (*r2)->size() == 1; }));
  for (int i = 0; i < 3; ++i) {
    a.poke();
    b.poke();
    BOOST_REQUIRE(log->wait_for("a:ready", static_cast<size_t>(i + 1)));
    BOOST_REQUIRE(log->wait_for("b:ready", static_cast<size_t>(i + 1)));
  }
  caf::anon_send_exit(owner_a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(owner_b, caf::exit_reason::user_shutdown);
  BOOST_CHECK(wait_until([&] { return (*r1)->size() == 0 && (*r2)->size() == 0; }));
}

BOOST_AUTO_TEST_CASE(systems_come_and_go_while_their_sockets_are_busy) {
  for (int round = 0; round < 20; ++round) {
    caf::actor_system_config own_cfg;
    auto own = system_fixture::make_system(own_cfg);
    auto r = atl::reactor::of(*own);
    BOOST_REQUIRE(r);
    auto log = std::make_shared<event_log>();
    std::vector<std::unique_ptr<socket_pair>> pairs;
    std::vector<caf::actor> owners;
    for (int i = 0; i < 20; ++i) {
      pairs.push_back(std::make_unique<socket_pair>());
      owners.push_back(own->spawn(logging_owner, *r, pairs.back()->reader(), "x", log));
    }
    BOOST_REQUIRE(wait_until([&] { return (*r)->size() == 20; }));
    for (auto& p : pairs)
      p->poke();
    BOOST_REQUIRE(log->wait_for("x:ready", 20));
    // More input on the way while the owners are told to stop and the
    // system ends: its workers first, then the registrations.
    for (auto& p : pairs)
      p->poke();
    for (auto& owner : owners)
      caf::anon_send_exit(owner, caf::exit_reason::user_shutdown);
    owners.clear();
    own.reset();
    BOOST_CHECK(!(*r)->running());
    BOOST_CHECK_EQUAL((*r)->size(), 0u);
  }
}

BOOST_AUTO_TEST_CASE(timers_fire_in_order_and_cancelled_ones_never) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  caf::scoped_actor self{sys};
  reactor_timer early, late, cancelled;
  auto now = telemetry::monotonic_time();
  auto owner = caf::actor_cast<caf::strong_actor_ptr>(self);
  (*r)->schedule(late, owner, now + 60'000'000, 2);
  (*r)->schedule(cancelled, owner, now + 30'000'000, 3);
  (*r)->schedule(early, owner, now + 20'000'000, 1);
  BOOST_CHECK(early.armed() && late.armed() && cancelled.armed());
  atl::reactor::cancel(cancelled);
  BOOST_CHECK(!cancelled.armed());
  std::vector<uint64_t> tags;
  for (int i = 0; i < 2; ++i)
    self->receive([&](reactor_timer_atom, uint64_t tag) { tags.push_back(tag); },
                  caf::after(5s) >> [] {});
  BOOST_CHECK_EQUAL(tags.size(), 2u);
  BOOST_CHECK(tags == (std::vector<uint64_t>{1, 2}));
  BOOST_CHECK(telemetry::monotonic_time() >= now + 60'000'000);
  bool extra = false;
  self->receive([&](reactor_timer_atom, uint64_t) { extra = true; },
                caf::after(quiet_window) >> [] {});
  BOOST_CHECK(!extra);
}

namespace {

/// What a deferred function records: where, when (on a shared sequence)
/// and how often it ran, and how far its actor had got by then. Its last
/// access is `runs`: once the test sees it, the worker is done with it.
struct deferred_probe {
  std::atomic<int>* sequence = nullptr;
  const std::atomic<int>* progress = nullptr;
  std::atomic<std::thread::id> thread{};
  std::atomic<int> ran_at{-1};
  std::atomic<int> progress_at_run{-1};
  std::atomic<int> runs{0};

  static void run(void* arg) {
    auto& self = *static_cast<deferred_probe*>(arg);
    self.thread.store(std::this_thread::get_id());
    self.ran_at.store(self.sequence != nullptr ? self.sequence->fetch_add(1) : -1);
    self.progress_at_run.store(self.progress != nullptr ? self.progress->load() : -1);
    self.runs.fetch_add(1);
  }
};

/// An actor that holds the worker it runs on (a job that does not end)
/// from `hold` until `release` (or 10 s); released when destroyed.
struct worker_holder {
  std::promise<void> released_promise;
  std::shared_future<void> released = released_promise.get_future().share();
  std::shared_ptr<std::promise<void>> blocked = std::make_shared<std::promise<void>>();
  caf::actor actor;
  bool done = false;

  explicit worker_holder(caf::actor_system& system)
    : actor(system.spawn([r{released}, b{blocked}](caf::event_based_actor*) -> caf::behavior {
        return {[r, b](int) {
          b->set_value();
          r.wait_for(10s);
        }};
      })) {
  }

  /// Starts the job; true once it holds its worker (within 5 s). Once.
  [[nodiscard]] bool hold() {
    caf::anon_send(actor, 1);
    return blocked->get_future().wait_for(5s) == std::future_status::ready;
  }

  /// Ends the job.
  void release() {
    if (!done)
      released_promise.set_value();
    done = true;
  }

  ~worker_holder() {
    release();
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  }
};

} // namespace

BOOST_AUTO_TEST_CASE(work_deferred_to_the_end_of_a_run_runs_once_after_it_on_its_thread) {
  std::atomic<int> sequence{0};
  deferred_probe a;
  deferred_probe b;
  a.sequence = b.sequence = &sequence;
  // Outside a worker thread nothing is deferred: the caller does the work.
  BOOST_CHECK(!io_scheduler::defer_to_batch_end(&deferred_probe::run, &a));
  std::atomic<std::thread::id> actor_thread{};
  std::atomic<int> handled_at{-1};
  std::atomic<bool> accepted{false};
  auto deferring = sys.spawn([&](caf::event_based_actor*) -> caf::behavior {
    return {[&](int) {
      actor_thread.store(std::this_thread::get_id());
      // a, b, and a again: a runs once.
      auto first = io_scheduler::defer_to_batch_end(&deferred_probe::run, &a);
      auto second = io_scheduler::defer_to_batch_end(&deferred_probe::run, &b);
      auto repeated = io_scheduler::defer_to_batch_end(&deferred_probe::run, &a);
      accepted.store(first && second && repeated);
      handled_at.store(sequence.fetch_add(1));
    }};
  });
  caf::anon_send(deferring, 1);
  BOOST_REQUIRE(wait_until([&] { return a.runs.load() >= 1 && b.runs.load() >= 1; }));
  BOOST_CHECK(!wait_until([&] { return a.runs.load() > 1 || b.runs.load() > 1; }, quiet_window));
  BOOST_CHECK(accepted.load());
  BOOST_CHECK_EQUAL(a.runs.load(), 1);
  BOOST_CHECK_EQUAL(b.runs.load(), 1);
  // After the handler, never inside it, and in the order deferred.
  BOOST_CHECK_EQUAL(handled_at.load(), 0);
  BOOST_CHECK_EQUAL(a.ran_at.load(), 1);
  BOOST_CHECK_EQUAL(b.ran_at.load(), 2);
  BOOST_CHECK(a.thread.load() == actor_thread.load());
  BOOST_CHECK(b.thread.load() == actor_thread.load());
  caf::anon_send_exit(deferring, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(deferred_work_runs_while_its_worker_stays_busy) {
  // An actor that keeps its worker's queue full (it sends itself the next
  // number, 100 messages per run) defers work at its first message: the
  // work runs within 32 runs (3,200 messages) although the queue never
  // empties, not when the actor is done.
  std::atomic<int> progress{0};
  std::atomic<bool> done{false};
  deferred_probe probe;
  probe.progress = &progress;
  constexpr int total = 20'000;
  auto busy = sys.spawn([&](caf::event_based_actor* self) -> caf::behavior {
    return {[&, self](int n) {
      progress.store(n);
      if (n == 0)
        static_cast<void>(io_scheduler::defer_to_batch_end(&deferred_probe::run, &probe));
      if (n < total)
        self->send(self, n + 1);
      else
        done.store(true);
    }};
  });
  caf::anon_send(busy, 0);
  BOOST_REQUIRE(wait_until([&] { return done.load(); }, 10s));
  BOOST_REQUIRE_EQUAL(probe.runs.load(), 1);
  BOOST_CHECK_MESSAGE(probe.progress_at_run.load() <= 3'300,
                      "ran at message " << probe.progress_at_run.load());
  caf::anon_send_exit(busy, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_worker_stuck_in_one_job_does_not_stall_the_sockets) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  auto log = std::make_shared<event_log>();
  // Two owners, each registered on the poller of the worker it first ran on
  // (or the other's, for balance): one or both may be on the poller of the
  // worker that gets stuck below, which the other must then serve, although
  // it went to sleep while nobody was busy.
  socket_pair a;
  socket_pair b;
  auto owner_a = sys.spawn(logging_owner, *r, a.reader(), "a", log);
  auto owner_b = sys.spawn(logging_owner, *r, b.reader(), "b", log);
  BOOST_REQUIRE(wait_until([&] { return (*r)->size() == 2; }));
  // The blocker holds its worker until the test saw both events (or 10 s):
  // the other worker must serve the stuck one's sockets meanwhile.
  worker_holder holder{sys};
  BOOST_REQUIRE(holder.hold());
  a.poke();
  b.poke();
  auto served = log->wait_for("a:ready") && log->wait_for("b:ready");
  holder.release();
  BOOST_CHECK_MESSAGE(served, "a socket event waited for a blocked worker");
  for (auto& x : {owner_a, owner_b})
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  // The owners remove their registrations before the test closes the fds.
  BOOST_CHECK(wait_until([&] { return (*r)->size() == 0; }));
}

namespace {

/// Gives the workers `n` jobs at once: one actor starts `n` actors that end
/// after their first run (from inside one run, so the burst has no gap in
/// which the workers could rest).
void run_short_jobs(caf::actor_system& system, int n) {
  system.spawn([n](caf::event_based_actor* self) {
    for (int i = 0; i < n; ++i)
      self->spawn([](caf::event_based_actor*) {});
  });
}

/// Declares `scheduler.release-memory-after` as an integer (milliseconds),
/// as the examples' command line does, before Atoll's own declaration.
struct ms_option_config : caf::actor_system_config {
  ms_option_config() {
    opt_group{custom_options_, "scheduler"}.add<int64_t>("release-memory-after", "in ms");
  }
};

/// A system with 2 workers for `own_cfg`, with `setting` set to `value`
/// (`register_runtime_types` declares Atoll's scheduler settings first
/// unless the config did; make_system would call it a second time).
template <class Value>
std::unique_ptr<caf::actor_system> make_two_worker_system(caf::actor_system_config& own_cfg,
                                                          const char* setting, Value value) {
  atl::register_runtime_types(own_cfg);
  own_cfg.set("scheduler.max-threads", 2);
  own_cfg.set(setting, value);
  return std::make_unique<caf::actor_system>(own_cfg);
}

/// A system with 2 workers that rest `rest` before a release.
template <class Rest>
std::unique_ptr<caf::actor_system> make_resting_system(caf::actor_system_config& own_cfg,
                                                       Rest rest) {
  return make_two_worker_system(own_cfg, "scheduler.release-memory-after", rest);
}

/// Waits (at most 10 s) until the release count of `r` stayed the same for
/// 1.3 s (longer than a rest of 100 ms plus the least interval of 1 s);
/// returns that count, or nothing if it kept changing.
std::optional<uint64_t> settled_releases(const atl::reactor& r) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  auto last = r.memory_releases();
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1300ms);
    auto now = r.memory_releases();
    if (now == last)
      return now;
    last = now;
  }
  return std::nullopt;
}

/// A system with 2 workers of which at most `n` may busy-wait at once.
std::unique_ptr<caf::actor_system> make_spinning_system(caf::actor_system_config& own_cfg,
                                                        int64_t n) {
  return make_two_worker_system(own_cfg, "scheduler.spinning-workers", n);
}

/// Runs up to `bursts` bursts of short jobs on `system`, one at a time,
/// each followed by up to 250 ms for the workers to finish it and go idle;
/// true as soon as `r` counts more busy waits than `before`.
bool busy_waited_after_bursts(caf::actor_system& system, const atl::reactor& r,
                              uint64_t before, int bursts) {
  for (int i = 0; i < bursts; ++i) {
    run_short_jobs(system, 200);
    if (wait_until([&] { return r.spin_waits() > before; }, 250ms))
      return true;
  }
  return false;
}

} // namespace

BOOST_AUTO_TEST_CASE(how_many_workers_busy_wait_is_a_setting) {
  caf::actor_system_config none_cfg;
  auto none = make_spinning_system(none_cfg, 0);
  caf::actor_system_config one_cfg;
  auto one = make_spinning_system(one_cfg, 1);
  auto r_all = atl::reactor::of(sys); // the default: every worker may
  auto r_one = atl::reactor::of(*one);
  auto r_none = atl::reactor::of(*none);
  BOOST_REQUIRE(r_all && r_one && r_none);
  auto all_before = (*r_all)->spin_waits();
  auto one_before = (*r_one)->spin_waits();
  // Workers that ran out of work busy-waited before sleeping... (A burst
  // at a time, each given time to end: with a cap of 1, a worker already in
  // a busy wait when the work came may hold the only turn while the one
  // that ran the work goes to sleep, so one burst need not show a wait.)
  BOOST_CHECK(busy_waited_after_bursts(sys, **r_all, all_before, 20));
  BOOST_CHECK(busy_waited_after_bursts(*one, **r_one, one_before, 20));
  // ... except where none may: they go to sleep at once, ever since the
  // start.
  BOOST_CHECK(!busy_waited_after_bursts(*none, **r_none, 0, 2));
}

namespace {

/// An actor that keeps one worker busy: each message is 20 ms of work and
/// sends the next, until `stop` is set.
caf::behavior busy_loop(caf::event_based_actor* self, std::shared_ptr<std::atomic<bool>> stop) {
  self->send(self, 0);
  return {[self, stop](int) {
    auto until = std::chrono::steady_clock::now() + 20ms;
    while (std::chrono::steady_clock::now() < until) {
    }
    if (stop->load())
      self->quit();
    else
      self->send(self, 0);
  }};
}

/// Starts `busy_loop`; stops it when destroyed.
struct busy_worker {
  std::shared_ptr<std::atomic<bool>> stop = std::make_shared<std::atomic<bool>>(false);
  caf::actor actor;

  explicit busy_worker(caf::actor_system& system) : actor(system.spawn(busy_loop, stop)) {
  }

  ~busy_worker() {
    stop->store(true);
  }
};

/// An owner registered from the test thread (so the least loaded active
/// worker's poller takes it): it reads, logs "ready" and re-arms.
struct outside_owner {
  caf::actor_system& system;
  socket_pair pair;
  std::shared_ptr<fd_registration> reg = std::make_shared<fd_registration>();
  std::shared_ptr<std::atomic<bool>> removed = std::make_shared<std::atomic<bool>>(false);
  caf::actor actor;

  outside_owner(caf::actor_system& sys, std::shared_ptr<atl::reactor> r,
                std::shared_ptr<event_log> log)
    : system(sys) {
    actor = system.spawn([r, reg{reg}, removed{removed}, fd{pair.reader()},
                          log](caf::event_based_actor* self) {
      self->attach_functor([r, reg, removed] {
        r->remove(*reg);
        removed->store(true, std::memory_order_release);
      });
      return caf::behavior{[r, reg, fd, log](socket_ready_atom, int, uint32_t, uint32_t) {
        char buf[64];
        while (::read(fd, buf, sizeof(buf)) > 0) {
        }
        log->add("ready");
        static_cast<void>(r->rearm(*reg, io_events::readable));
      }};
    });
    auto added = r->add(pair.reader(), caf::actor_cast<caf::strong_actor_ptr>(actor),
                        io_events::readable);
    BOOST_REQUIRE(added);
    *reg = *added;
  }

  /// Ends the owner (which removes the registration) before the fds close.
  /// Waits for the removal itself: CAF may tell `wait_for` that the actor
  /// ended before the actor's clean-up ran the functor that removes it
  /// (TSan saw the fd closed while that removal's epoll_ctl ran).
  ~outside_owner() {
    caf::scoped_actor self{system};
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    self->wait_for(actor);
    BOOST_CHECK(wait_until([&] { return removed->load(std::memory_order_acquire); }));
  }
};

} // namespace

BOOST_AUTO_TEST_CASE(a_light_load_runs_on_one_worker_and_a_heavy_one_on_both) {
  // The fixture's system: 2 workers, compaction on (the default).
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  auto io = *r;
  // Idle: one worker is enough.
  BOOST_REQUIRE(wait_until([&] { return io->active_workers() == 1; }));
  auto activations = io->worker_activations();
  auto deactivations = io->worker_deactivations();
  BOOST_CHECK_GE(deactivations, 1u);
  {
    // A worker busy all the time: the other one joins, and stays while the
    // load lasts.
    busy_worker busy{sys};
    BOOST_CHECK(wait_until([&] { return io->active_workers() == 2; }));
    BOOST_CHECK_GT(io->worker_activations(), activations);
    std::this_thread::sleep_for(300ms);
    BOOST_CHECK_EQUAL(io->active_workers(), 2u);
  }
  // The load is gone: back to one.
  BOOST_CHECK(wait_until([&] { return io->active_workers() == 1; }));
  BOOST_CHECK_GT(io->worker_deactivations(), deactivations);
}

BOOST_AUTO_TEST_CASE(load_compaction_is_a_setting) {
  caf::actor_system_config off_cfg;
  auto off = make_two_worker_system(off_cfg, "scheduler.compaction", false);
  auto r_on = atl::reactor::of(sys);
  auto r_off = atl::reactor::of(*off);
  BOOST_REQUIRE(r_on && r_off);
  // Both idle since their start; the default one has parked a worker by now,
  // the other one never does.
  BOOST_REQUIRE(wait_until([&] { return (*r_on)->active_workers() == 1; }));
  std::this_thread::sleep_for(600ms); // > 5 windows with every worker asleep
  BOOST_CHECK_EQUAL((*r_off)->active_workers(), 2u);
  BOOST_CHECK_EQUAL((*r_off)->worker_deactivations(), 0u);
  // It still serves sockets on both workers' pollers.
  auto log = std::make_shared<event_log>();
  std::vector<std::unique_ptr<outside_owner>> owners;
  for (int i = 0; i < 4; ++i)
    owners.push_back(std::make_unique<outside_owner>(*off, *r_off, log));
  BOOST_CHECK((*r_off)->registrations_per_poller() == std::vector<size_t>({2, 2}));
  for (auto& o : owners)
    o->pair.poke();
  BOOST_CHECK(log->wait_for("ready", 4));
  owners.clear();
  BOOST_CHECK(wait_until([&] { return (*r_off)->size() == 0; }));
}

BOOST_AUTO_TEST_CASE(registrations_follow_their_owners_to_the_active_workers) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  auto io = *r;
  auto log = std::make_shared<event_log>();
  std::vector<std::unique_ptr<outside_owner>> owners;
  {
    // Both workers active: registrations from outside alternate.
    busy_worker busy{sys};
    BOOST_REQUIRE(wait_until([&] { return io->active_workers() == 2; }));
    for (int i = 0; i < 20; ++i)
      owners.push_back(std::make_unique<outside_owner>(sys, io, log));
    BOOST_CHECK(io->registrations_per_poller() == std::vector<size_t>({10, 10}));
  }
  BOOST_REQUIRE(wait_until([&] { return io->active_workers() == 1; }));
  // Nothing moved yet; an event each, and each owner re-arms on the active
  // worker, whose poller then has them all.
  BOOST_CHECK(io->registrations_per_poller() == std::vector<size_t>({10, 10}));
  for (auto& o : owners)
    o->pair.poke();
  BOOST_CHECK(log->wait_for("ready", 20));
  BOOST_CHECK(wait_until(
    [&] { return io->registrations_per_poller() == std::vector<size_t>({20, 0}); }));
  // And they keep getting their events, once each.
  for (auto& o : owners)
    o->pair.poke();
  BOOST_CHECK(log->wait_for("ready", 40));
  std::this_thread::sleep_for(quiet_window);
  BOOST_CHECK_EQUAL(log->count("ready"), 40u);
  owners.clear();
  BOOST_CHECK(wait_until([&] { return io->size() == 0; }));
}

BOOST_AUTO_TEST_CASE(a_parked_worker_serves_the_sockets_of_a_stuck_one) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  auto io = *r;
  BOOST_REQUIRE(wait_until([&] { return io->active_workers() == 1; }));
  auto activations = io->worker_activations();
  // Everything new goes to the active worker: the owners, their
  // registrations and the blocker.
  auto log = std::make_shared<event_log>();
  socket_pair a;
  socket_pair b;
  auto owner_a = sys.spawn(logging_owner, io, a.reader(), "a", log);
  auto owner_b = sys.spawn(logging_owner, io, b.reader(), "b", log);
  BOOST_REQUIRE(wait_until([&] { return io->size() == 2; }));
  BOOST_CHECK(io->registrations_per_poller() == std::vector<size_t>({2, 0}));
  worker_holder holder{sys};
  BOOST_REQUIRE(holder.hold());
  a.poke();
  b.poke();
  auto served = log->wait_for("a:ready") && log->wait_for("b:ready");
  auto joined = io->worker_activations() > activations;
  holder.release();
  BOOST_CHECK_MESSAGE(served, "a socket event waited for the blocked worker");
  BOOST_CHECK_MESSAGE(joined, "the parked worker did not take work");
  for (auto& x : {owner_a, owner_b})
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  BOOST_CHECK(wait_until([&] { return io->size() == 0; }));
}

BOOST_AUTO_TEST_CASE(work_queued_behind_a_long_job_is_taken_by_a_parked_worker) {
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  auto io = *r;
  BOOST_REQUIRE(wait_until([&] { return io->active_workers() == 1; }));
  // Both go to the active worker: an actor that answers, then one that
  // holds the worker until the test got the answer (or 10 s).
  auto answering = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](int x) { return x + 1; }};
  });
  worker_holder holder{sys};
  BOOST_REQUIRE(holder.hold());
  // The request waits in the held worker's queue: the parked one takes it.
  caf::scoped_actor self{sys};
  std::optional<int> answer;
  self->request(answering, 5s, 41).receive([&](int x) { answer = x; }, [](caf::error&) {});
  holder.release();
  BOOST_CHECK(answer == 42);
  caf::anon_send_exit(answering, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(free_memory_goes_back_to_the_os_after_work_and_a_rest) {
  // The fixture's system keeps the default rest of 100 ms.
  auto r = atl::reactor::of(sys);
  BOOST_REQUIRE(r);
  run_short_jobs(sys, 1000);
  BOOST_REQUIRE(wait_until([&] { return (*r)->memory_releases() >= 1; }));
  // Once per rest after work: resting on, without work, releases nothing
  // more.
  auto settled = settled_releases(**r);
  BOOST_REQUIRE_MESSAGE(settled, "the releases went on without work");
  // New work and a rest: released again.
  run_short_jobs(sys, 1000);
  BOOST_CHECK(wait_until([&] { return (*r)->memory_releases() > *settled; }));
}

BOOST_AUTO_TEST_CASE(the_rest_before_releasing_memory_is_a_setting) {
  // Milliseconds, where the program declared the setting as an integer.
  ms_option_config quick_cfg;
  auto quick = make_resting_system(quick_cfg, int64_t{30});
  // 0: never (both ways).
  caf::actor_system_config never_cfg;
  auto never = make_resting_system(never_cfg, caf::timespan{0});
  ms_option_config never_ms_cfg;
  auto never_ms = make_resting_system(never_ms_cfg, int64_t{0});
  // Longer than a worker's sleep between two looks for a stuck worker
  // (100 ms while all are idle): the rest spans several sleeps. Made last
  // and given work first: its rest since its start is too short to count.
  caf::actor_system_config slow_cfg;
  auto slow = make_resting_system(slow_cfg, caf::timespan{400ms});
  auto rs = atl::reactor::of(*slow);
  auto rq = atl::reactor::of(*quick);
  auto rn = atl::reactor::of(*never);
  auto rnm = atl::reactor::of(*never_ms);
  BOOST_REQUIRE(rs && rq && rn && rnm);
  auto jobs_sent = std::chrono::steady_clock::now();
  for (auto* system : {slow.get(), quick.get(), never.get(), never_ms.get()})
    run_short_jobs(*system, 1000);
  // Not before 400 ms of rest (the default would have released at 100 ms):
  // the rest begins after the jobs, which run after `jobs_sent`.
  BOOST_CHECK(wait_until([&] { return (*rs)->memory_releases() >= 1; }));
  BOOST_CHECK(std::chrono::steady_clock::now() - jobs_sent >= 400ms);
  BOOST_CHECK(wait_until([&] { return (*rq)->memory_releases() >= 1; }));
  // The other two have rested at least as long, longer than 400 ms.
  BOOST_CHECK_EQUAL((*rn)->memory_releases(), 0u);
  BOOST_CHECK_EQUAL((*rnm)->memory_releases(), 0u);
}

BOOST_AUTO_TEST_SUITE_END()
