// The generic supervisor's actor: child records, restart strategies and
// intensity, ordered start and shutdown, and the supervisor protocol (see
// supervisor.hpp and detail/supervisor_actor.hpp).
#include "atoll/runtime/detail/supervisor_actor.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/adoption_batch.hpp"
#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/detail/child_table.hpp"
#include "atoll/runtime/detail/restart_intensity.hpp"
#include "atoll/runtime/error.hpp"

namespace atl::detail {

namespace {

/// Normal exits do not restart transient children: a clean quit, CAF's
/// `normal`, and `user_shutdown` (OTP's `shutdown`).
bool is_normal_exit(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal
         || reason == caf::exit_reason::user_shutdown;
}

// Restarts are counted in the actor system's time (`clock().now()`: the steady
// clock through the system's actor clock), so that a test on CAF's test
// coordinator decides when a period has passed. (`local_actor::now()` would
// say the same, but Debian's libcaf_core 0.17.6 declares it without a
// definition.)
static_assert(std::is_same_v<restart_intensity::clock_type, caf::actor_clock::clock_type>);

/// A child exit or an API request that arrived while the supervisor was busy
/// with a multi-step operation.
struct deferred_event {
  caf::actor_id child = 0; // non-zero: exit of this child
  caf::error reason;
  std::function<void()> run; // otherwise: a request to run when idle
};

/// A child being stopped: waits for its exit message (or the timer).
struct termination {
  caf::actor handle;
  uint64_t timer_token = 0;
  std::function<void()> done;
  /// A temporary child (a connection): it left the table when its stop
  /// began, but it runs until it exits (a connection drains), so
  /// `which_children`, `count_children` and the tree still show it.
  bool temporary = false;
};

/// The generic supervisor (see supervisor.hpp): its children in a
/// `child_table`, its restarts counted by a `restart_intensity`.
class supervisor_actor : public caf::event_based_actor {
public:
  supervisor_actor(caf::actor_config& cfg, supervisor_flags flags, std::vector<child_spec> specs)
    : caf::event_based_actor(cfg),
      flags_(std::move(flags)),
      intensity_(flags_.max_restarts, flags_.period) {
    for (auto& spec : specs) {
      child_record rec;
      rec.spec = std::make_shared<const child_spec>(std::move(spec));
      if (dynamic())
        children_.set_template(rec.spec);
      else
        children_.insert(std::move(rec));
    }
  }

  const char* name() const override {
    return "atoll.supervisor";
  }

  caf::behavior make_behavior() override {
    set_exit_handler([this](caf::exit_msg& msg) { on_exit(msg); });
    set_down_handler([this](caf::down_msg& msg) { on_down(msg); });
    set_default_handler(caf::drop);
    // Children are monitored, not linked (in CAF an actor receiving an exit
    // signal unlinks from its sender, so links cannot report the death of a
    // child we stopped). If we die without an orderly stop (e.g. killed),
    // the children must not outlive us.
    attach_functor([this](const caf::error& reason) { on_cleanup_children(reason); });
    begin_initial_start();
    caf::message_handler protocol{
      [this](which_children_atom) { return which_children(); },
      [this](count_children_atom) { return count_children(); },
      [this](start_child_atom, child_spec& spec) -> caf::result<caf::actor> {
        return reply_when_idle<caf::actor>(&supervisor_actor::add_static_child, spec);
      },
      [this](start_child_atom, caf::message& args) -> caf::result<caf::actor> {
        auto rp = make_response_promise<caf::actor>();
        if (!dynamic() || busy_ || phase_ != phase::running) {
          when_idle([this, rp, args{std::move(args)}]() mutable {
            add_dynamic_child(std::move(args), rp);
          });
        } else {
          add_dynamic_child(std::move(args), rp);
        }
        return rp;
      },
      [this](adopt_children_atom, std::vector<caf::actor>& kids) -> caf::result<caf::ok_atom> {
        if (auto err = adopt_actors(std::move(kids)))
          return err;
        return caf::ok_atom::value;
      },
      [this](adopt_children_atom, adoption_batch& batch) {
        // Refused: the batch stops them as it goes.
        auto err = can_adopt() ? adopt_actors(batch.take()) : refuse_adoption();
        // A plain send gets no reply (not even an error, which would be an
        // ordinary message to an adopter that does not wait for one).
        auto rp = make_response_promise();
        if (!rp.pending() || rp.async())
          return;
        if (err)
          rp.deliver(std::move(err));
        else
          rp.deliver(caf::ok_atom::value);
      },
      [this](terminate_child_atom, std::string& id) -> caf::result<caf::ok_atom> {
        return reply_when_idle<caf::ok_atom>(&supervisor_actor::terminate_by_id, id);
      },
      [this](terminate_child_atom, caf::actor& child) -> caf::result<caf::ok_atom> {
        return reply_when_idle<caf::ok_atom>(&supervisor_actor::terminate_by_handle, child);
      },
      [this](restart_child_atom, std::string& id) -> caf::result<caf::actor> {
        return reply_when_idle<caf::actor>(&supervisor_actor::restart_by_id, id);
      },
      [this](delete_child_atom, std::string& id) -> caf::result<caf::ok_atom> {
        return reply_when_idle<caf::ok_atom>(&supervisor_actor::delete_by_id, id);
      },
      [this](await_started_atom) -> caf::result<caf::ok_atom> {
        auto rp = make_response_promise<caf::ok_atom>();
        if (phase_ == phase::starting || start_failed_)
          start_waiters_.push_back(rp); // answered when the start ends
        else if (phase_ == phase::running)
          rp.deliver(caf::ok_atom::value);
        else
          rp.deliver(caf::make_error(errc::shutting_down));
        return rp;
      },
      [this](drain_atom) -> caf::result<caf::ok_atom> {
        auto rp = make_response_promise<caf::ok_atom>();
        draining_ = true;
        when_idle([this, rp]() mutable { drain_children(rp); });
        return rp;
      },
      [this](stop_atom) -> caf::result<caf::ok_atom> {
        auto rp = make_response_promise<caf::ok_atom>();
        stop_waiters_.push_back(rp);
        when_idle([this] { begin_shutdown(caf::exit_reason::user_shutdown); });
        return rp;
      },
      [this](tree_atom) -> caf::result<tree_node> { return snapshot(); },
      [this](shutdown_timer_atom, caf::actor_id child, uint64_t token) {
        on_shutdown_timer(child, token);
      },
      [this](try_again_atom, uint64_t seq) {
        when_idle([this, seq] { try_again(seq); });
      },
    };
    if (flags_.extension)
      return caf::behavior{protocol.or_else(flags_.extension(this))};
    return caf::behavior{protocol};
  }

private:
  enum class phase { starting, running, stopping };

  bool dynamic() const noexcept {
    return flags_.strategy == strategy::simple_one_for_one;
  }

  // -- deferred work ------------------------------------------------------------

  void when_idle(std::function<void()> fn) {
    if (busy_) {
      deferred_event ev;
      ev.run = std::move(fn);
      queue_.push_back(std::move(ev));
      return;
    }
    fn();
  }

  void set_idle() {
    busy_ = false;
    while (!busy_ && !queue_.empty()) {
      auto ev = std::move(queue_.front());
      queue_.pop_front();
      if (ev.child != 0) {
        if (auto seq = children_.seq_of(ev.child))
          on_child_exit(*seq, std::move(ev.reason));
      } else {
        ev.run();
      }
    }
  }

  /// Answers a request once the supervisor is idle: then calls the operation
  /// `op` with `arg` (moved from the request) and the reply's promise.
  template <class T, class Arg, class Operation>
  caf::result<T> reply_when_idle(Operation op, Arg& arg) {
    auto rp = make_response_promise<T>();
    when_idle([this, op, rp, arg{std::move(arg)}]() mutable { (this->*op)(std::move(arg), rp); });
    return rp;
  }

  /// Removes a queued exit of `child` (it died while we were busy).
  bool take_deferred_exit(caf::actor_id child) {
    for (auto i = queue_.begin(); i != queue_.end(); ++i) {
      if (i->child == child) {
        queue_.erase(i);
        return true;
      }
    }
    return false;
  }

  // -- starting children -------------------------------------------------------

  /// Starts the child of record `seq`, then calls `k` with the outcome.
  void start_record(uint64_t seq, std::function<void(caf::error)> k) {
    auto& rec = children_.at(seq);
    start_context ctx{this, &rec.args};
    caf::expected<caf::actor> res{caf::error{}};
    try {
      res = rec.spec->start(ctx);
    } catch (const std::exception& ex) {
      res = caf::make_error(errc::start_failed, rec.spec->id,
                            std::string{"start function threw: "} + ex.what());
    } catch (...) {
      res = caf::make_error(errc::start_failed, rec.spec->id,
                            "start function threw a non-standard exception");
    }
    if (res && !*res)
      res = caf::make_error(errc::start_failed, rec.spec->id,
                            "start function returned an invalid handle");
    if (!res) {
      k(std::move(res.error()));
      return;
    }
    rec.handle = std::move(*res);
    // Counted as soon as the new child is visible (to which_children too).
    if (rec.restarting) {
      rec.restarting = false;
      ++rec.restarts;
    }
    monitor<caf::message_priority::high>(rec.handle);
    children_.bind(rec.handle.id(), seq);
    if (rec.spec->type != child_type::supervisor) {
      k(caf::none);
      return;
    }
    // Supervisor children acknowledge once their own children are up.
    auto child = rec.handle;
    awaiting_ack_ = child.id();
    ack_exit_seen_ = false;
    ack_down_reason_ = caf::error{};
    request(child, caf::infinite, await_started_atom::value)
      .then([this, k](caf::ok_atom) { awaiting_ack_ = 0; k(caf::none); },
            [this, seq, child, k](caf::error& err) {
              auto fail = [this, seq, child, k](caf::error reason) {
                awaiting_ack_ = 0;
                forget(seq, child);
                k(std::move(reason));
              };
              if (err != caf::sec::request_receiver_down) {
                fail(std::move(err));
              } else if (ack_exit_seen_) {
                fail(ack_down_reason_);
              } else {
                // The child died before it could answer; its down message
                // carries the real reason.
                ack_failure_ = std::move(fail);
              }
            });
  }

  /// Drops a child that failed its start acknowledgement.
  void forget(uint64_t seq, const caf::actor& child) {
    children_.unbind(child.id());
    if (auto i = children_.find(seq); i != children_.end())
      i->second.handle = nullptr;
    if (!ack_exit_seen_)
      ignored_exits_.insert(child.id());
    demonitor(child);
  }

  /// Starts the records `seqs` in order; stops at the first failure and
  /// reports it with the failing record's seq.
  void start_sequence(std::vector<uint64_t> seqs, size_t pos,
                      std::function<void(caf::error, uint64_t)> k) {
    start_sequence_from(std::make_shared<const std::vector<uint64_t>>(std::move(seqs)), pos,
                        std::move(k));
  }

  /// `start_sequence`'s loop. Records that start at once (workers) are
  /// started in a loop, not by recursion: thousands of children (e.g. UDP
  /// listeners) would overflow the stack. A supervisor child's acknowledgement
  /// comes later, in a message; its continuation resumes the loop.
  void start_sequence_from(std::shared_ptr<const std::vector<uint64_t>> seqs, size_t pos,
                           std::function<void(caf::error, uint64_t)> k) {
    for (; pos < seqs->size(); ++pos) {
      auto seq = (*seqs)[pos];
      // Where a continuation that runs during start_record leaves its result.
      auto now = std::make_shared<std::optional<caf::error>>();
      auto in_call = std::make_shared<bool>(true);
      start_record(seq, [this, now, in_call, seqs, pos, seq, k](caf::error err) {
        if (*in_call) {
          *now = std::move(err);
          return;
        }
        if (err)
          k(std::move(err), seq);
        else
          start_sequence_from(seqs, pos + 1, k);
      });
      *in_call = false;
      if (!*now)
        return; // resumed by the continuation
      if (**now) {
        k(std::move(**now), seq);
        return;
      }
    }
    k(caf::none, 0);
  }

  void begin_initial_start() {
    busy_ = true;
    phase_ = phase::starting;
    std::vector<uint64_t> seqs;
    for (auto& kv : children_)
      seqs.push_back(kv.first);
    start_sequence(std::move(seqs), 0, [this](caf::error err, uint64_t) {
      if (!err) {
        phase_ = phase::running;
        for (auto& rp : start_waiters_)
          rp.deliver(caf::ok_atom::value);
        start_waiters_.clear();
        set_idle();
        return;
      }
      // Leave nothing half-started: stop what runs, then fail with the error.
      phase_ = phase::stopping;
      start_failed_ = true;
      exit_reason_ = err;
      terminate_sequence(children_.running_in_reverse(), [this] { finish_shutdown(); });
    });
  }

  // -- stopping children -------------------------------------------------------

  /// Stops `handle` with `policy`; calls `on_done` once it has exited.
  /// `temporary`: a temporary child, still shown (which_children, counts,
  /// tree) until it exits.
  void terminate_child_actor(const caf::actor& handle, const shutdown_policy& policy,
                             std::function<void()> on_done, bool temporary = false) {
    auto id = handle.id();
    children_.unbind(id);
    if (take_deferred_exit(id)) {
      on_done();
      return;
    }
    termination t;
    t.handle = handle;
    t.done = std::move(on_done);
    t.temporary = temporary;
    switch (policy.which()) {
      case shutdown_policy::kind::brutal_kill:
        send_exit(handle, caf::exit_reason::kill);
        break;
      case shutdown_policy::kind::timeout:
        send_exit(handle, caf::exit_reason::user_shutdown);
        if (caf_timeout(policy.time()).valid()) {
          t.timer_token = ++timer_seq_;
          delayed_send(this, policy.time(), shutdown_timer_atom::value, id, t.timer_token);
        }
        break;
      case shutdown_policy::kind::infinity:
        send_exit(handle, caf::exit_reason::user_shutdown);
        break;
    }
    terminating_.emplace(id, std::move(t));
  }

  void on_shutdown_timer(caf::actor_id child, uint64_t token) {
    auto i = terminating_.find(child);
    if (i != terminating_.end() && i->second.timer_token == token) {
      i->second.timer_token = 0;
      send_exit(i->second.handle, caf::exit_reason::kill);
    }
  }

  /// Stops the running children among `seqs`, one after another, in the order
  /// given. Temporary children's records are dropped.
  void terminate_sequence(std::vector<uint64_t> seqs, std::function<void()> on_done) {
    terminate_sequence_from(std::make_shared<const std::vector<uint64_t>>(std::move(seqs)), 0,
                            std::make_shared<std::function<void()>>(std::move(on_done)));
  }

  /// `terminate_sequence`'s loop: children already gone (no handle, or an
  /// exit already queued) are passed in a loop, not by recursion, so that
  /// thousands of them cannot overflow the stack; a child that has to be
  /// waited for resumes the loop from its continuation.
  void terminate_sequence_from(std::shared_ptr<const std::vector<uint64_t>> seqs, size_t pos,
                               std::shared_ptr<std::function<void()>> on_done) {
    for (; pos < seqs->size(); ++pos) {
      auto seq = (*seqs)[pos];
      auto i = children_.find(seq);
      if (i == children_.end() || !i->second.handle)
        continue;
      auto handle = std::exchange(i->second.handle, nullptr);
      auto policy = i->second.spec->shutdown;
      // Set while terminate_child_actor runs: a continuation that runs in it
      // only marks the child done, and the loop goes on.
      auto in_call = std::make_shared<bool>(true);
      auto done_now = std::make_shared<bool>(false);
      terminate_child_actor(handle, policy, [this, seq, seqs, pos, on_done, in_call, done_now] {
        drop_if_temporary(seq);
        if (*in_call) {
          *done_now = true;
          return;
        }
        terminate_sequence_from(seqs, pos + 1, on_done);
      });
      *in_call = false;
      if (!*done_now)
        return; // resumed by the continuation
    }
    (*on_done)();
  }

  /// Stops all running children at once (dynamic supervisors), then `on_done`.
  void terminate_all_concurrently(std::function<void()> on_done) {
    auto pending = std::make_shared<size_t>(0);
    auto shared_done = std::make_shared<std::function<void()>>(std::move(on_done));
    std::vector<std::pair<uint64_t, caf::actor>> victims;
    for (auto& kv : children_)
      if (kv.second.handle)
        victims.emplace_back(kv.first, std::exchange(kv.second.handle, nullptr));
    for (auto& handle : children_.take_temporaries()) {
      // Temporaries are not monitored while they run (they leave the table
      // by themselves): their exit is awaited from now on.
      monitor<caf::message_priority::high>(handle);
      victims.emplace_back(0, std::move(handle)); // seq 0: no record
    }
    if (victims.empty()) {
      (*shared_done)();
      return;
    }
    *pending = victims.size();
    for (auto& [seq, handle] : victims) {
      auto& policy = children_.template_spec()->shutdown;
      terminate_child_actor(
        handle, policy,
        [this, seq{seq}, pending, shared_done] {
          children_.erase(seq);
          if (--*pending == 0)
            (*shared_done)();
        },
        seq == 0);
    }
  }

  void drop_if_temporary(uint64_t seq) {
    auto i = children_.find(seq);
    if (i != children_.end() && !i->second.handle
        && (dynamic() || i->second.spec->restart == restart_type::temporary))
      children_.erase(i);
  }

  void drain_children(caf::typed_response_promise<caf::ok_atom> rp) {
    if (phase_ == phase::stopping) {
      rp.deliver(caf::make_error(errc::shutting_down));
      return;
    }
    busy_ = true;
    auto finish = [this, rp]() mutable {
      rp.deliver(caf::ok_atom::value);
      set_idle();
    };
    if (dynamic())
      terminate_all_concurrently(
        [this, finish{std::move(finish)}]() mutable { when_stopped_all(std::move(finish)); });
    else
      terminate_sequence(children_.running_in_reverse(), std::move(finish));
  }

  void begin_shutdown(caf::error reason) {
    if (phase_ == phase::stopping)
      return;
    if (flags_.on_stop) {
      try {
        flags_.on_stop();
      } catch (...) {
        // A faulty hook must not keep the supervisor from stopping.
      }
    }
    phase_ = phase::stopping;
    exit_reason_ = std::move(reason);
    busy_ = true;
    if (dynamic())
      terminate_all_concurrently([this] { when_stopped_all([this] { finish_shutdown(); }); });
    else
      terminate_sequence(children_.running_in_reverse(), [this] { finish_shutdown(); });
  }

  /// Runs `f` once no child is being stopped: a dynamic supervisor's drain
  /// and stop also wait for the children adopted while they ran (an accept
  /// batch that arrives during a drain), each within the template's
  /// shutdown policy.
  void when_stopped_all(std::function<void()> f) {
    if (terminating_.empty()) {
      f();
      return;
    }
    stopped_all_waiters_.push_back(std::move(f));
  }

  void finish_shutdown() {
    // Requests that waited for an idle supervisor see it stopping.
    auto pending = std::move(queue_);
    for (auto& ev : pending)
      if (ev.run)
        ev.run();
    for (auto& rp : start_waiters_)
      rp.deliver(exit_reason_ ? exit_reason_ : caf::make_error(errc::shutting_down));
    start_waiters_.clear();
    for (auto& rp : stop_waiters_)
      rp.deliver(caf::ok_atom::value);
    stop_waiters_.clear();
    quit(exit_reason_);
  }

  // -- exits and restarts ------------------------------------------------------

  /// A monitored child died.
  void on_down(caf::down_msg& msg) {
    auto id = msg.source ? msg.source.id() : caf::actor_id{0};
    if (auto i = terminating_.find(id); i != terminating_.end()) {
      auto on_done = std::move(i->second.done);
      terminating_.erase(i);
      on_done();
      if (terminating_.empty() && !stopped_all_waiters_.empty()) {
        auto waiters = std::move(stopped_all_waiters_);
        stopped_all_waiters_.clear();
        for (auto& f : waiters)
          f();
      }
      return;
    }
    if (ignored_exits_.erase(id) > 0)
      return;
    // (Temporaries are monitored only while being stopped, in `terminating_`
    // above; this catches one that is not, defensively.)
    if (children_.remove_temporary(id))
      return; // a temporary child: nothing to restart
    if (id != 0 && id == awaiting_ack_) {
      // The pending acknowledgement fails and handles it.
      ack_exit_seen_ = true;
      ack_down_reason_ = msg.reason;
      if (ack_failure_) {
        // Take it out first: it must not be destroyed while it runs.
        auto fail = std::move(ack_failure_);
        ack_failure_ = nullptr;
        fail(std::move(msg.reason));
      }
      return;
    }
    if (auto seq = children_.seq_of(id)) {
      if (busy_) {
        deferred_event ev;
        ev.child = id;
        ev.reason = std::move(msg.reason);
        queue_.push_back(std::move(ev));
      } else {
        on_child_exit(*seq, std::move(msg.reason));
      }
    }
  }

  /// An exit signal: our parent (or anyone linked, or an anonymous exit)
  /// tells us to stop. Children are monitored, so a child's death shows up in
  /// `on_down`; an exit signal from a current child (one that linked itself
  /// to us) is left to that. Normal exits are ignored, as in OTP.
  void on_exit(caf::exit_msg& msg) {
    auto id = msg.source ? msg.source.id() : caf::actor_id{0};
    if (id != this->id() && (children_.has_actor(id) || terminating_.count(id) > 0))
      return;
    if (!msg.reason || msg.reason == caf::exit_reason::normal)
      return;
    when_idle([this, reason{std::move(msg.reason)}]() mutable {
      begin_shutdown(std::move(reason));
    });
  }

  void on_child_exit(uint64_t seq, caf::error reason) {
    if (phase_ == phase::stopping)
      return;
    auto& rec = children_.at(seq);
    children_.unbind(rec.handle.id());
    rec.handle = nullptr;
    auto restart = rec.spec->restart == restart_type::permanent
                   || (rec.spec->restart == restart_type::transient && !is_normal_exit(reason));
    if (!restart) {
      drop_if_temporary(seq);
      if (dynamic() && children_.contains(seq))
        children_.erase(seq); // a transient dynamic child that exited normally
      return;
    }
    if (!intensity_.note_restart(clock().now())) {
      give_up(rec.spec->id, reason);
      return;
    }
    restart_by_strategy(seq);
  }

  void on_cleanup_children(const caf::error& reason) {
    auto signal = is_normal_exit(reason) ? caf::error{caf::exit_reason::user_shutdown} : reason;
    for (auto& kv : children_)
      if (kv.second.handle)
        exit_anonymously(kv.second.handle, signal);
    for (auto& handle : children_.temporaries())
      exit_anonymously(handle, signal);
    for (auto& kv : terminating_)
      exit_anonymously(kv.second.handle, caf::exit_reason::kill);
    // Drop the specs and the hook now, not when the actor object goes: their
    // closures may hold references back to this supervisor.
    children_.clear();
    terminating_.clear();
    // Waiters may hold response promises, which hold a strong reference to
    // this actor (killed during a drain: it would never be freed).
    stopped_all_waiters_.clear();
    queue_.clear();
    flags_.on_stop = nullptr;
    flags_.extension = nullptr;
  }

  /// Sends an exit signal whose source is the receiver itself (like CAF's
  /// anon_send_exit). Used while this actor is being destroyed: a receiver
  /// unlinks from an exit's source, which must not be a dying actor.
  static void exit_anonymously(const caf::actor& dest, caf::error reason) {
    dest->enqueue(nullptr, caf::make_message_id(),
                  caf::make_message(caf::exit_msg{dest.address(), std::move(reason)}), nullptr);
  }

  void give_up(const std::string& child_id, const caf::error& reason) {
    begin_shutdown(caf::make_error(errc::restart_intensity_reached, flags_.name, child_id,
                                   describe(reason)));
  }

  /// Restarts after the child of `seq` terminated, following the strategy.
  void restart_by_strategy(uint64_t seq) {
    busy_ = true;
    std::vector<uint64_t> victims; // to stop first, in stop order
    std::vector<uint64_t> to_start;
    switch (flags_.strategy) {
      case strategy::one_for_one:
      case strategy::simple_one_for_one:
        to_start.push_back(seq);
        break;
      case strategy::rest_for_one:
        for (auto i = children_.rbegin(); i != children_.rend() && i->first > seq; ++i)
          victims.push_back(i->first);
        for (auto i = children_.find(seq); i != children_.end(); ++i)
          if (i->first == seq || i->second.spec->restart != restart_type::temporary)
            to_start.push_back(i->first);
        break;
      case strategy::one_for_all:
        for (auto i = children_.rbegin(); i != children_.rend(); ++i)
          if (i->first != seq)
            victims.push_back(i->first);
        for (auto& kv : children_)
          if (kv.first == seq || kv.second.spec->restart != restart_type::temporary)
            to_start.push_back(kv.first);
        break;
    }
    terminate_sequence(std::move(victims), [this, to_start{std::move(to_start)}]() mutable {
      // Records of temporary children stopped above are gone by now.
      // Shared: the continuation is copied once per child started.
      auto alive = std::make_shared<std::vector<uint64_t>>();
      for (auto s : to_start)
        if (auto i = children_.find(s); i != children_.end()) {
          i->second.restarting = true;
          alive->push_back(s);
        }
      start_sequence(*alive, 0, [this, alive](caf::error err, uint64_t failed) {
        // Children after a failed one were not restarted.
        for (auto s : *alive)
          if (auto i = children_.find(s); i != children_.end())
            i->second.restarting = false;
        if (err) // OTP: retry the failed restart later; it counts as a restart
          send(this, try_again_atom::value, failed);
        set_idle();
      });
    });
  }

  void try_again(uint64_t seq) {
    if (phase_ != phase::running)
      return;
    auto i = children_.find(seq);
    if (i == children_.end() || i->second.handle)
      return;
    if (!intensity_.note_restart(clock().now())) {
      give_up(i->second.spec->id,
              caf::make_error(errc::start_failed, i->second.spec->id, "restart failed"));
      return;
    }
    restart_by_strategy(seq);
  }

  // -- operations --------------------------------------------------------------

  template <class Promise>
  bool refuse_when_stopping(Promise& rp) {
    if (phase_ == phase::stopping || draining_) {
      rp.deliver(caf::make_error(errc::shutting_down));
      return true;
    }
    return false;
  }

  /// Answers `rp` with an error and returns true if the supervisor is stopping
  /// or draining (`shutting_down`) or if the operation is `unsupported` by this
  /// kind of supervisor (`unsupported_operation`, saying `why`). `why` is
  /// passed as given (a literal stays a pointer): no string is built on the
  /// path that succeeds, which a start_child per connection takes.
  template <class Promise, class Why>
  bool refuse(Promise& rp, bool unsupported, const Why& why) {
    if (refuse_when_stopping(rp))
      return true;
    if (unsupported) {
      rp.deliver(caf::make_error(errc::unsupported_operation, why));
      return true;
    }
    return false;
  }

  /// Starts a temporary worker from the template (no record, no restarts).
  caf::expected<caf::actor> start_temporary(const caf::message& args) {
    auto& tmpl = *children_.template_spec();
    start_context ctx{this, &args};
    caf::expected<caf::actor> res{caf::error{}};
    try {
      res = tmpl.start(ctx);
    } catch (const std::exception& ex) {
      res = caf::make_error(errc::start_failed, tmpl.id,
                            std::string{"start function threw: "} + ex.what());
    } catch (...) {
      res = caf::make_error(errc::start_failed, tmpl.id,
                            "start function threw a non-standard exception");
    }
    if (res && !*res)
      res = caf::make_error(errc::start_failed, tmpl.id,
                            "start function returned an invalid handle");
    if (!res)
      return res;
    children_.add_temporary(*res); // not monitored: see child_table
    return res;
  }

  /// A `simple_one_for_one` supervisor of temporary workers.
  bool can_adopt() const {
    auto tmpl = dynamic() ? children_.template_spec() : nullptr;
    return tmpl && tmpl->restart == restart_type::temporary && tmpl->type == child_type::worker;
  }

  static caf::error refuse_adoption() {
    return caf::make_error(errc::unsupported_operation,
                           "adopt_children needs a simple_one_for_one supervisor of "
                           "temporary workers");
  }

  /// Takes running actors as temporary children (listed as if started from
  /// the template, each leaving the list by itself when it ends; one already
  /// dead goes at once). Runs even
  /// while busy: no start function runs and no record changes but the
  /// temporaries'. `max_children` is the adopter's to keep. A draining
  /// or stopping supervisor stops them with the template's shutdown policy
  /// (its drain or stop waits for them too) and answers `shutting_down`. A
  /// supervisor of another kind answers `unsupported_operation` and leaves
  /// them alone.
  caf::error adopt_actors(std::vector<caf::actor> kids) {
    if (!can_adopt())
      return refuse_adoption();
    auto tmpl = children_.template_spec();
    if (phase_ != phase::running || draining_) {
      for (auto& kid : kids) {
        if (!kid)
          continue;
        // Stopped like the others (our drain or stop waits for them too).
        monitor<caf::message_priority::high>(kid);
        terminate_child_actor(kid, tmpl->shutdown, [] {}, true);
      }
      return caf::make_error(errc::shutting_down);
    }
    for (auto& kid : kids)
      children_.add_temporary(std::move(kid)); // not monitored: see child_table
    return {};
  }

  void add_static_child(child_spec spec, caf::typed_response_promise<caf::actor> rp) {
    if (refuse(rp, dynamic(), "start_child with a spec needs a static supervisor"))
      return;
    if (auto err = validate(flags_, {spec})) {
      rp.deliver(std::move(err));
      return;
    }
    if (auto i = children_.find_id(spec.id); i != children_.end()) {
      rp.deliver(caf::make_error(i->second.handle ? errc::already_started
                                                  : errc::already_present,
                                 spec.id));
      return;
    }
    child_record rec;
    rec.spec = std::make_shared<const child_spec>(std::move(spec));
    auto seq = children_.insert(std::move(rec));
    busy_ = true;
    start_record(seq, [this, seq, rp](caf::error err) mutable {
      if (err) {
        children_.erase(seq);
        rp.deliver(std::move(err));
      } else {
        rp.deliver(children_.at(seq).handle);
      }
      set_idle();
    });
  }

  void add_dynamic_child(caf::message args, caf::typed_response_promise<caf::actor> rp) {
    if (refuse(rp, !dynamic(), "start_child with arguments needs simple_one_for_one"))
      return;
    if (flags_.max_children && children_.num_children() >= *flags_.max_children) {
      rp.deliver(caf::make_error(errc::max_children, flags_.name));
      return;
    }
    auto& tmpl = children_.template_spec();
    if (tmpl->restart == restart_type::temporary && tmpl->type == child_type::worker) {
      auto child = start_temporary(args);
      if (child)
        rp.deliver(*child);
      else
        rp.deliver(std::move(child.error()));
      return;
    }
    child_record rec;
    rec.spec = tmpl;
    rec.args = std::move(args);
    auto seq = children_.insert(std::move(rec));
    auto needs_ack = tmpl->type == child_type::supervisor;
    if (needs_ack)
      busy_ = true;
    start_record(seq, [this, seq, rp, needs_ack](caf::error err) mutable {
      if (err) {
        children_.erase(seq);
        rp.deliver(std::move(err));
      } else {
        auto& started = children_.at(seq);
        // A temporary child is never restarted: its arguments are not needed
        // any more (and may hold resources, e.g. a connection's hand-off).
        if (started.spec->restart == restart_type::temporary)
          started.args = caf::message{};
        rp.deliver(started.handle);
      }
      if (needs_ack)
        set_idle();
    });
  }

  void terminate_by_id(const std::string& id, caf::typed_response_promise<caf::ok_atom> rp) {
    if (refuse(rp, dynamic(), "dynamic children are terminated by handle"))
      return;
    auto i = children_.find_id(id);
    if (i == children_.end()) {
      rp.deliver(caf::make_error(errc::not_found, id));
      return;
    }
    busy_ = true;
    terminate_sequence({i->first}, [this, rp]() mutable {
      rp.deliver(caf::ok_atom::value);
      set_idle();
    });
  }

  void terminate_by_handle(const caf::actor& child,
                           caf::typed_response_promise<caf::ok_atom> rp) {
    if (refuse_when_stopping(rp))
      return;
    if (child) {
      if (auto handle = children_.take_temporary(child.id())) {
        monitor<caf::message_priority::high>(handle); // its exit is awaited now
        busy_ = true;
        auto& policy = children_.template_spec()->shutdown;
        terminate_child_actor(
          handle, policy,
          [this, rp]() mutable {
            rp.deliver(caf::ok_atom::value);
            set_idle();
          },
          true);
        return;
      }
    }
    auto found = child ? children_.seq_of(child.id()) : std::nullopt;
    if (!found) {
      rp.deliver(caf::make_error(errc::not_found, "no such child"));
      return;
    }
    auto seq = *found;
    busy_ = true;
    auto handle = std::exchange(children_.at(seq).handle, nullptr);
    terminate_child_actor(handle, children_.at(seq).spec->shutdown, [this, seq, rp]() mutable {
      if (dynamic() || children_.at(seq).spec->restart == restart_type::temporary)
        children_.erase(seq);
      rp.deliver(caf::ok_atom::value);
      set_idle();
    });
  }

  /// Finds the terminated child `id` of a static supervisor for `operation`,
  /// or answers `rp` with the reason it cannot be used.
  template <class Promise>
  std::optional<child_table::iterator>
  find_stopped_child(const std::string& id, Promise& rp, const char* operation) {
    if (refuse(rp, dynamic(), std::string{operation} + " needs a static supervisor"))
      return std::nullopt;
    auto i = children_.find_id(id);
    if (i == children_.end()) {
      rp.deliver(caf::make_error(errc::not_found, id));
      return std::nullopt;
    }
    if (i->second.handle) {
      rp.deliver(caf::make_error(errc::running, id));
      return std::nullopt;
    }
    return i;
  }

  void restart_by_id(const std::string& id, caf::typed_response_promise<caf::actor> rp) {
    auto i = find_stopped_child(id, rp, "restart_child");
    if (!i)
      return;
    auto seq = (*i)->first;
    busy_ = true;
    start_record(seq, [this, seq, rp](caf::error err) mutable {
      if (err)
        rp.deliver(std::move(err));
      else
        rp.deliver(children_.at(seq).handle);
      set_idle();
    });
  }

  void delete_by_id(const std::string& id, caf::typed_response_promise<caf::ok_atom> rp) {
    if (auto i = find_stopped_child(id, rp, "delete_child")) {
      children_.erase(*i);
      rp.deliver(caf::ok_atom::value);
    }
  }

  // -- what runs ----------------------------------------------------------------

  /// Temporary children being stopped (still running until they exit).
  std::vector<caf::actor> stopping_temporaries() const {
    std::vector<caf::actor> out;
    for (auto& kv : terminating_)
      if (kv.second.temporary)
        out.push_back(kv.second.handle);
    return out;
  }

  std::vector<child_info> which_children() const {
    auto out = children_.which();
    if (terminating_.empty())
      return out;
    for (auto& handle : stopping_temporaries())
      out.push_back(make_child_info(*children_.template_spec(), handle, 0));
    return out;
  }

  child_counts count_children() const {
    auto c = children_.counts();
    if (terminating_.empty())
      return c;
    auto n = static_cast<uint32_t>(stopping_temporaries().size());
    c.specs += n;
    c.active += n;
    if (n > 0 && children_.template_spec()->type == child_type::supervisor)
      c.supervisors += n;
    else
      c.workers += n;
    return c;
  }

  // -- tree snapshots ----------------------------------------------------------

  caf::result<tree_node> snapshot() {
    struct pending_tree {
      tree_node root;
      size_t outstanding = 1; // released after the requests went out
      caf::typed_response_promise<tree_node> rp;

      void one_done() {
        if (--outstanding == 0)
          rp.deliver(std::move(root));
      }
    };
    auto st = std::make_shared<pending_tree>();
    st->rp = make_response_promise<tree_node>();
    st->root.role = flags_.name;
    st->root.id = id();
    st->root.type = child_type::supervisor;
    st->root.running = true;
    st->root.strategy = to_string(flags_.strategy);
    st->root.max_restarts = flags_.max_restarts;
    st->root.period = flags_.period;
    st->root.recent_restarts = intensity_.recent_restarts(clock().now());
    std::vector<std::pair<size_t, caf::actor>> subtrees;
    std::vector<std::tuple<size_t, caf::actor, const describe_function*>> described;
    for (auto& handle : children_.temporaries()) {
      auto& tmpl = *children_.template_spec();
      if (tmpl.describe)
        described.emplace_back(st->root.children.size(), handle, &tmpl.describe);
      st->root.children.push_back(make_tree_node(tmpl, handle, 0));
    }
    // Temporaries being stopped: shown, but not asked for details (one that
    // does not answer while it drains must not hold up the snapshot).
    if (!terminating_.empty())
      for (auto& handle : stopping_temporaries())
        st->root.children.push_back(make_tree_node(*children_.template_spec(), handle, 0));
    for (auto& kv : children_) {
      auto node = make_tree_node(*kv.second.spec, kv.second.handle, kv.second.restarts);
      if (node.running && node.type == child_type::supervisor)
        subtrees.emplace_back(st->root.children.size(), kv.second.handle);
      else if (node.running && kv.second.spec->describe)
        described.emplace_back(st->root.children.size(), kv.second.handle,
                               &kv.second.spec->describe);
      st->root.children.push_back(std::move(node));
    }
    auto rp = st->rp;
    st->outstanding += subtrees.size() + described.size();
    for (auto& [index, child] : subtrees) {
      // Bounded: a child killed while it builds its answer drops its response
      // promise (CAF 0.17 sends no error for it), and the whole snapshot
      // would wait forever.
      request(child, default_call_timeout, tree_atom::value)
        .then(
          [st, index{index}](tree_node& sub) {
            auto& node = st->root.children[index];
            node.strategy = std::move(sub.strategy);
            node.max_restarts = sub.max_restarts;
            node.period = sub.period;
            node.recent_restarts = sub.recent_restarts;
            node.children = std::move(sub.children);
            st->one_done();
          },
          // A child that cannot answer (e.g. it just exited) stays a leaf.
          [st](caf::error&) { st->one_done(); });
    }
    for (auto& [index, child, describe] : described) {
      (*describe)(this, child, [st, index{index}](std::vector<tree_detail> details) {
        st->root.children[index].details = std::move(details);
        st->one_done();
      });
    }
    st->one_done();
    return rp;
  }

  // -- state --------------------------------------------------------------------

  supervisor_flags flags_;
  child_table children_;
  std::unordered_map<caf::actor_id, termination> terminating_;
  /// Waiting until `terminating_` is empty (`when_stopped_all`).
  std::vector<std::function<void()>> stopped_all_waiters_;
  std::unordered_set<caf::actor_id> ignored_exits_;
  std::deque<deferred_event> queue_;
  restart_intensity intensity_; // after flags_, which it is built from
  std::vector<caf::typed_response_promise<caf::ok_atom>> start_waiters_;
  std::vector<caf::typed_response_promise<caf::ok_atom>> stop_waiters_;
  caf::error exit_reason_;
  caf::actor_id awaiting_ack_ = 0;
  bool ack_exit_seen_ = false;
  caf::error ack_down_reason_;
  std::function<void(caf::error)> ack_failure_;
  bool start_failed_ = false;
  uint64_t timer_seq_ = 0;
  bool busy_ = false;
  bool draining_ = false; // after `drain`: no new children
  phase phase_ = phase::starting;
};

} // namespace

caf::actor spawn_supervisor_actor(caf::actor_system& sys, supervisor_flags flags,
                                  std::vector<child_spec> specs) {
  return sys.spawn<supervisor_actor>(std::move(flags), std::move(specs));
}

caf::actor spawn_supervisor_actor(caf::event_based_actor* parent, supervisor_flags flags,
                                  std::vector<child_spec> specs) {
  return parent->spawn<supervisor_actor>(std::move(flags), std::move(specs));
}

caf::duration caf_timeout(std::chrono::milliseconds timeout) {
  if (timeout >= std::chrono::hours{24 * 365 * 100})
    return caf::duration{caf::infinite};
  return caf::duration{timeout};
}

} // namespace atl::detail
