#include "atoll/runtime/supervisor.hpp"

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/error.hpp"

namespace atl {

std::string to_string(strategy x) {
  switch (x) {
    case strategy::one_for_one: return "one_for_one";
    case strategy::rest_for_one: return "rest_for_one";
    case strategy::one_for_all: return "one_for_all";
    case strategy::simple_one_for_one: return "simple_one_for_one";
  }
  return "?";
}

caf::actor_system& start_context::system() const noexcept {
  return self_->system();
}

caf::actor start_context::supervisor() const {
  return caf::actor_cast<caf::actor>(self_);
}

const caf::message& start_context::args() const noexcept {
  static const caf::message empty;
  return args_ != nullptr ? *args_ : empty;
}

caf::error validate(const supervisor_flags& flags, const std::vector<child_spec>& specs) {
  if (flags.period.count() <= 0)
    return caf::make_error(errc::invalid_spec, "period must be positive");
  if (flags.max_children && flags.strategy != strategy::simple_one_for_one)
    return caf::make_error(errc::invalid_spec,
                           "max_children requires strategy simple_one_for_one");
  if (flags.strategy == strategy::simple_one_for_one && specs.size() != 1)
    return caf::make_error(errc::invalid_spec,
                           "simple_one_for_one needs exactly one template child spec");
  std::set<std::string> ids;
  for (const auto& spec : specs) {
    if (spec.id.empty())
      return caf::make_error(errc::invalid_spec, "child id must not be empty");
    if (!spec.start)
      return caf::make_error(errc::invalid_spec, "child has no start function", spec.id);
    if (!ids.insert(spec.id).second)
      return caf::make_error(errc::invalid_spec, "duplicate child id", spec.id);
    if (spec.shutdown.which() == shutdown_policy::kind::timeout
        && spec.shutdown.time().count() < 0)
      return caf::make_error(errc::invalid_spec, "negative shutdown timeout", spec.id);
  }
  return caf::none;
}

namespace {

/// `timeout` as CAF takes it. CAF adds a timeout to the current time, so a
/// value near `milliseconds::max()` (how callers spell "no limit") would
/// overflow: anything above a century means no timeout.
caf::duration caf_timeout(std::chrono::milliseconds timeout) {
  if (timeout >= std::chrono::hours{24 * 365 * 100})
    return caf::duration{caf::infinite};
  return caf::duration{timeout};
}

/// Normal exits do not restart transient children: a clean quit, CAF's
/// `normal`, and `user_shutdown` (OTP's `shutdown`).
bool is_normal_exit(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal
         || reason == caf::exit_reason::user_shutdown;
}

using clock_type = std::chrono::steady_clock;

struct child_record {
  std::shared_ptr<const child_spec> spec;
  caf::message args;
  caf::actor handle;
  uint32_t restarts = 0;
  bool restarting = false; // counts as a restart once its new handle is set
};

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
};

class supervisor_actor : public caf::event_based_actor {
public:
  supervisor_actor(caf::actor_config& cfg, supervisor_flags flags, std::vector<child_spec> specs)
    : caf::event_based_actor(cfg), flags_(std::move(flags)) {
    for (auto& spec : specs) {
      child_record rec;
      rec.spec = std::make_shared<const child_spec>(std::move(spec));
      if (dynamic())
        template_ = rec.spec;
      else
        records_.emplace(next_seq_++, std::move(rec));
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
      [this](which_children_atom) { return which(); },
      [this](count_children_atom) { return counts(); },
      [this](start_child_atom, child_spec& spec) -> caf::result<caf::actor> {
        auto rp = make_response_promise<caf::actor>();
        when_idle([this, rp, spec{std::move(spec)}]() mutable {
          add_static_child(std::move(spec), rp);
        });
        return rp;
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
      [this](terminate_child_atom, std::string& id) -> caf::result<caf::ok_atom> {
        auto rp = make_response_promise<caf::ok_atom>();
        when_idle([this, rp, id{std::move(id)}]() mutable { terminate_by_id(id, rp); });
        return rp;
      },
      [this](terminate_child_atom, caf::actor& child) -> caf::result<caf::ok_atom> {
        auto rp = make_response_promise<caf::ok_atom>();
        when_idle([this, rp, child{std::move(child)}]() mutable {
          terminate_by_handle(child, rp);
        });
        return rp;
      },
      [this](restart_child_atom, std::string& id) -> caf::result<caf::actor> {
        auto rp = make_response_promise<caf::actor>();
        when_idle([this, rp, id{std::move(id)}]() mutable { restart_by_id(id, rp); });
        return rp;
      },
      [this](delete_child_atom, std::string& id) -> caf::result<caf::ok_atom> {
        auto rp = make_response_promise<caf::ok_atom>();
        when_idle([this, rp, id{std::move(id)}]() mutable { delete_by_id(id, rp); });
        return rp;
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
        auto i = by_actor_.find(ev.child);
        if (i != by_actor_.end())
          on_child_exit(i->second, std::move(ev.reason));
      } else {
        ev.run();
      }
    }
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
    auto& rec = records_.at(seq);
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
    by_actor_[rec.handle.id()] = seq;
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
    by_actor_.erase(child.id());
    if (auto i = records_.find(seq); i != records_.end())
      i->second.handle = nullptr;
    if (!ack_exit_seen_)
      ignored_exits_.insert(child.id());
    demonitor(child);
  }

  /// Starts the records `seqs` in order; stops at the first failure and
  /// reports it with the failing record's seq.
  void start_sequence(std::vector<uint64_t> seqs, size_t pos,
                      std::function<void(caf::error, uint64_t)> k) {
    if (pos == seqs.size()) {
      k(caf::none, 0);
      return;
    }
    auto seq = seqs[pos];
    start_record(seq, [this, seqs{std::move(seqs)}, pos, seq, k](caf::error err) mutable {
      if (err) {
        k(std::move(err), seq);
        return;
      }
      start_sequence(std::move(seqs), pos + 1, std::move(k));
    });
  }

  void begin_initial_start() {
    busy_ = true;
    phase_ = phase::starting;
    std::vector<uint64_t> seqs;
    for (auto& kv : records_)
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
      terminate_sequence(running_in_reverse(), [this] { finish_shutdown(); });
    });
  }

  // -- stopping children -------------------------------------------------------

  /// Stops `handle` with `policy`; calls `on_done` once it has exited.
  void terminate_child_actor(const caf::actor& handle, const shutdown_policy& policy,
                             std::function<void()> on_done) {
    auto id = handle.id();
    by_actor_.erase(id);
    if (take_deferred_exit(id)) {
      on_done();
      return;
    }
    termination t;
    t.handle = handle;
    t.done = std::move(on_done);
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
    if (seqs.empty()) {
      on_done();
      return;
    }
    auto seq = seqs.front();
    seqs.erase(seqs.begin());
    auto next = [this, seqs{std::move(seqs)}, on_done{std::move(on_done)}]() mutable {
      terminate_sequence(std::move(seqs), std::move(on_done));
    };
    auto i = records_.find(seq);
    if (i == records_.end() || !i->second.handle) {
      next();
      return;
    }
    auto handle = std::exchange(i->second.handle, nullptr);
    auto policy = i->second.spec->shutdown;
    terminate_child_actor(handle, policy, [this, seq, next{std::move(next)}]() mutable {
      drop_if_temporary(seq);
      next();
    });
  }

  /// Stops all running children at once (dynamic supervisors), then `on_done`.
  void terminate_all_concurrently(std::function<void()> on_done) {
    auto pending = std::make_shared<size_t>(0);
    auto shared_done = std::make_shared<std::function<void()>>(std::move(on_done));
    std::vector<std::pair<uint64_t, caf::actor>> victims;
    for (auto& kv : records_)
      if (kv.second.handle)
        victims.emplace_back(kv.first, std::exchange(kv.second.handle, nullptr));
    for (auto& kv : temps_)
      victims.emplace_back(0, std::move(kv.second)); // seq 0: no record
    temps_.clear();
    if (victims.empty()) {
      (*shared_done)();
      return;
    }
    *pending = victims.size();
    for (auto& [seq, handle] : victims) {
      terminate_child_actor(handle, template_->shutdown, [this, seq{seq}, pending, shared_done] {
        records_.erase(seq);
        if (--*pending == 0)
          (*shared_done)();
      });
    }
  }

  void drop_if_temporary(uint64_t seq) {
    auto i = records_.find(seq);
    if (i != records_.end() && !i->second.handle
        && (dynamic() || i->second.spec->restart == restart_type::temporary))
      records_.erase(i);
  }

  std::vector<uint64_t> running_in_reverse() const {
    std::vector<uint64_t> out;
    for (auto i = records_.rbegin(); i != records_.rend(); ++i)
      if (i->second.handle)
        out.push_back(i->first);
    return out;
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
      terminate_all_concurrently(std::move(finish));
    else
      terminate_sequence(running_in_reverse(), std::move(finish));
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
      terminate_all_concurrently([this] { finish_shutdown(); });
    else
      terminate_sequence(running_in_reverse(), [this] { finish_shutdown(); });
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
      return;
    }
    if (ignored_exits_.erase(id) > 0)
      return;
    if (temps_.erase(id) > 0)
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
    if (auto i = by_actor_.find(id); i != by_actor_.end()) {
      if (busy_) {
        deferred_event ev;
        ev.child = id;
        ev.reason = std::move(msg.reason);
        queue_.push_back(std::move(ev));
      } else {
        on_child_exit(i->second, std::move(msg.reason));
      }
    }
  }

  /// An exit signal: our parent (or anyone linked, or an anonymous exit)
  /// tells us to stop. Children are monitored, so a child's death shows up in
  /// `on_down`; an exit signal from a current child (one that linked itself
  /// to us) is left to that. Normal exits are ignored, as in OTP.
  void on_exit(caf::exit_msg& msg) {
    auto id = msg.source ? msg.source.id() : caf::actor_id{0};
    if (id != this->id()
        && (by_actor_.count(id) > 0 || temps_.count(id) > 0 || terminating_.count(id) > 0))
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
    auto& rec = records_.at(seq);
    by_actor_.erase(rec.handle.id());
    rec.handle = nullptr;
    auto restart = rec.spec->restart == restart_type::permanent
                   || (rec.spec->restart == restart_type::transient && !is_normal_exit(reason));
    if (!restart) {
      drop_if_temporary(seq);
      if (dynamic() && records_.count(seq) > 0)
        records_.erase(seq); // a transient dynamic child that exited normally
      return;
    }
    if (!note_restart()) {
      give_up(rec.spec->id, reason);
      return;
    }
    restart_by_strategy(seq);
  }

  void on_cleanup_children(const caf::error& reason) {
    auto signal = is_normal_exit(reason) ? caf::error{caf::exit_reason::user_shutdown} : reason;
    for (auto& kv : records_)
      if (kv.second.handle)
        exit_anonymously(kv.second.handle, signal);
    for (auto& kv : temps_)
      exit_anonymously(kv.second, signal);
    for (auto& kv : terminating_)
      exit_anonymously(kv.second.handle, caf::exit_reason::kill);
    // Drop the specs and the hook now, not when the actor object goes: their
    // closures may hold references back to this supervisor.
    records_.clear();
    by_actor_.clear();
    temps_.clear();
    terminating_.clear();
    template_.reset();
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

  /// Records a restart; false if it exceeds the restart intensity.
  bool note_restart() {
    auto now = clock_type::now();
    restart_log_.push_back(now);
    while (!restart_log_.empty() && now - restart_log_.front() > flags_.period)
      restart_log_.pop_front();
    return restart_log_.size() <= flags_.max_restarts;
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
        for (auto i = records_.rbegin(); i != records_.rend() && i->first > seq; ++i)
          victims.push_back(i->first);
        for (auto i = records_.find(seq); i != records_.end(); ++i)
          if (i->first == seq || i->second.spec->restart != restart_type::temporary)
            to_start.push_back(i->first);
        break;
      case strategy::one_for_all:
        for (auto i = records_.rbegin(); i != records_.rend(); ++i)
          if (i->first != seq)
            victims.push_back(i->first);
        for (auto& kv : records_)
          if (kv.first == seq || kv.second.spec->restart != restart_type::temporary)
            to_start.push_back(kv.first);
        break;
    }
    terminate_sequence(std::move(victims), [this, to_start{std::move(to_start)}]() mutable {
      // Records of temporary children stopped above are gone by now.
      std::vector<uint64_t> alive;
      for (auto s : to_start)
        if (auto i = records_.find(s); i != records_.end()) {
          i->second.restarting = true;
          alive.push_back(s);
        }
      start_sequence(alive, 0, [this, alive](caf::error err, uint64_t failed) {
        // Children after a failed one were not restarted.
        for (auto s : alive)
          if (auto i = records_.find(s); i != records_.end())
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
    auto i = records_.find(seq);
    if (i == records_.end() || i->second.handle)
      return;
    if (!note_restart()) {
      give_up(i->second.spec->id,
              caf::make_error(errc::start_failed, i->second.spec->id, "restart failed"));
      return;
    }
    restart_by_strategy(seq);
  }

  // -- operations --------------------------------------------------------------

  std::vector<child_info> which() const {
    std::vector<child_info> out;
    out.reserve(records_.size() + temps_.size());
    for (auto& kv : temps_) {
      child_info info;
      info.id = template_->id;
      info.handle = kv.second;
      info.type = template_->type;
      info.restart = template_->restart;
      out.push_back(std::move(info));
    }
    for (auto& kv : records_) {
      child_info info;
      info.id = kv.second.spec->id;
      info.handle = kv.second.handle;
      info.type = kv.second.spec->type;
      info.restart = kv.second.spec->restart;
      info.restart_count = kv.second.restarts;
      out.push_back(std::move(info));
    }
    return out;
  }

  child_counts counts() const {
    child_counts c;
    if (!temps_.empty()) {
      auto n = static_cast<uint32_t>(temps_.size());
      c.specs += n;
      c.active += n;
      if (template_->type == child_type::supervisor)
        c.supervisors += n;
      else
        c.workers += n;
    }
    for (auto& kv : records_) {
      ++c.specs;
      if (kv.second.handle)
        ++c.active;
      if (kv.second.spec->type == child_type::supervisor)
        ++c.supervisors;
      else
        ++c.workers;
    }
    return c;
  }

  std::map<uint64_t, child_record>::iterator find_id(const std::string& id) {
    for (auto i = records_.begin(); i != records_.end(); ++i)
      if (i->second.spec->id == id)
        return i;
    return records_.end();
  }

  template <class Promise>
  bool refuse_when_stopping(Promise& rp) {
    if (phase_ == phase::stopping || draining_) {
      rp.deliver(caf::make_error(errc::shutting_down));
      return true;
    }
    return false;
  }

  /// Starts a temporary worker from the template (no record, no restarts).
  caf::expected<caf::actor> start_temporary(const caf::message& args) {
    start_context ctx{this, &args};
    caf::expected<caf::actor> res{caf::error{}};
    try {
      res = template_->start(ctx);
    } catch (const std::exception& ex) {
      res = caf::make_error(errc::start_failed, template_->id,
                            std::string{"start function threw: "} + ex.what());
    } catch (...) {
      res = caf::make_error(errc::start_failed, template_->id,
                            "start function threw a non-standard exception");
    }
    if (res && !*res)
      res = caf::make_error(errc::start_failed, template_->id,
                            "start function returned an invalid handle");
    if (!res)
      return res;
    monitor<caf::message_priority::high>(*res);
    temps_.emplace(res->id(), *res);
    return res;
  }

  void add_static_child(child_spec spec, caf::typed_response_promise<caf::actor> rp) {
    if (refuse_when_stopping(rp))
      return;
    if (dynamic()) {
      rp.deliver(caf::make_error(errc::unsupported_operation,
                                 "start_child with a spec needs a static supervisor"));
      return;
    }
    if (auto err = validate(flags_, {spec})) {
      rp.deliver(std::move(err));
      return;
    }
    if (auto i = find_id(spec.id); i != records_.end()) {
      rp.deliver(caf::make_error(i->second.handle ? errc::already_started
                                                  : errc::already_present,
                                 spec.id));
      return;
    }
    auto seq = next_seq_++;
    child_record rec;
    rec.spec = std::make_shared<const child_spec>(std::move(spec));
    records_.emplace(seq, std::move(rec));
    busy_ = true;
    start_record(seq, [this, seq, rp](caf::error err) mutable {
      if (err) {
        records_.erase(seq);
        rp.deliver(std::move(err));
      } else {
        rp.deliver(records_.at(seq).handle);
      }
      set_idle();
    });
  }

  void add_dynamic_child(caf::message args, caf::typed_response_promise<caf::actor> rp) {
    if (refuse_when_stopping(rp))
      return;
    if (!dynamic()) {
      rp.deliver(caf::make_error(errc::unsupported_operation,
                                 "start_child with arguments needs simple_one_for_one"));
      return;
    }
    if (flags_.max_children && records_.size() + temps_.size() >= *flags_.max_children) {
      rp.deliver(caf::make_error(errc::max_children, flags_.name));
      return;
    }
    if (template_->restart == restart_type::temporary
        && template_->type == child_type::worker) {
      auto child = start_temporary(args);
      if (child)
        rp.deliver(*child);
      else
        rp.deliver(std::move(child.error()));
      return;
    }
    auto seq = next_seq_++;
    child_record rec;
    rec.spec = template_;
    rec.args = std::move(args);
    records_.emplace(seq, std::move(rec));
    auto needs_ack = template_->type == child_type::supervisor;
    if (needs_ack)
      busy_ = true;
    start_record(seq, [this, seq, rp, needs_ack](caf::error err) mutable {
      if (err) {
        records_.erase(seq);
        rp.deliver(std::move(err));
      } else {
        auto& started = records_.at(seq);
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
    if (refuse_when_stopping(rp))
      return;
    if (dynamic()) {
      rp.deliver(caf::make_error(errc::unsupported_operation,
                                 "dynamic children are terminated by handle"));
      return;
    }
    auto i = find_id(id);
    if (i == records_.end()) {
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
      if (auto t = temps_.find(child.id()); t != temps_.end()) {
        auto handle = std::move(t->second);
        temps_.erase(t);
        busy_ = true;
        terminate_child_actor(handle, template_->shutdown, [this, rp]() mutable {
          rp.deliver(caf::ok_atom::value);
          set_idle();
        });
        return;
      }
    }
    auto i = child ? by_actor_.find(child.id()) : by_actor_.end();
    if (i == by_actor_.end()) {
      rp.deliver(caf::make_error(errc::not_found, "no such child"));
      return;
    }
    auto seq = i->second;
    busy_ = true;
    auto handle = std::exchange(records_.at(seq).handle, nullptr);
    terminate_child_actor(handle, records_.at(seq).spec->shutdown, [this, seq, rp]() mutable {
      if (dynamic() || records_.at(seq).spec->restart == restart_type::temporary)
        records_.erase(seq);
      rp.deliver(caf::ok_atom::value);
      set_idle();
    });
  }

  /// Finds the terminated child `id` of a static supervisor for `operation`,
  /// or answers `rp` with the reason it cannot be used.
  template <class Promise>
  std::optional<std::map<uint64_t, child_record>::iterator>
  find_stopped_child(const std::string& id, Promise& rp, const char* operation) {
    if (refuse_when_stopping(rp))
      return std::nullopt;
    if (dynamic()) {
      rp.deliver(caf::make_error(errc::unsupported_operation,
                                 std::string{operation} + " needs a static supervisor"));
      return std::nullopt;
    }
    auto i = find_id(id);
    if (i == records_.end()) {
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
        rp.deliver(records_.at(seq).handle);
      set_idle();
    });
  }

  void delete_by_id(const std::string& id, caf::typed_response_promise<caf::ok_atom> rp) {
    if (auto i = find_stopped_child(id, rp, "delete_child")) {
      records_.erase(*i);
      rp.deliver(caf::ok_atom::value);
    }
  }

  // -- tree snapshots ----------------------------------------------------------

  /// Restarts counted against the intensity now.
  uint32_t recent_restarts() const {
    auto now = clock_type::now();
    uint32_t n = 0;
    for (auto t : restart_log_)
      if (now - t <= flags_.period)
        ++n;
    return n;
  }

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
    st->root.recent_restarts = recent_restarts();
    std::vector<std::pair<size_t, caf::actor>> subtrees;
    std::vector<std::tuple<size_t, caf::actor, const describe_function*>> described;
    for (auto& kv : temps_) {
      tree_node node;
      node.role = template_->id;
      node.type = template_->type;
      node.restart = template_->restart;
      node.running = true;
      node.id = kv.second.id();
      if (template_->describe)
        described.emplace_back(st->root.children.size(), kv.second, &template_->describe);
      st->root.children.push_back(std::move(node));
    }
    for (auto& kv : records_) {
      tree_node node;
      node.role = kv.second.spec->id;
      node.type = kv.second.spec->type;
      node.restart = kv.second.spec->restart;
      node.restart_count = kv.second.restarts;
      node.running = static_cast<bool>(kv.second.handle);
      node.id = node.running ? kv.second.handle.id() : 0;
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
  std::shared_ptr<const child_spec> template_; // simple_one_for_one
  std::map<uint64_t, child_record> records_;   // in start order
  std::unordered_map<caf::actor_id, uint64_t> by_actor_;
  // Temporary children of a dynamic supervisor (e.g. connections): never
  // restarted, so only their handles are kept (a few words each).
  std::unordered_map<caf::actor_id, caf::actor> temps_;
  std::unordered_map<caf::actor_id, termination> terminating_;
  std::unordered_set<caf::actor_id> ignored_exits_;
  std::deque<deferred_event> queue_;
  std::deque<clock_type::time_point> restart_log_;
  std::vector<caf::typed_response_promise<caf::ok_atom>> start_waiters_;
  std::vector<caf::typed_response_promise<caf::ok_atom>> stop_waiters_;
  caf::error exit_reason_;
  caf::actor_id awaiting_ack_ = 0;
  bool ack_exit_seen_ = false;
  caf::error ack_down_reason_;
  std::function<void(caf::error)> ack_failure_;
  bool start_failed_ = false;
  uint64_t next_seq_ = 1;
  uint64_t timer_seq_ = 0;
  bool busy_ = false;
  bool draining_ = false; // after `drain`: no new children
  phase phase_ = phase::starting;
};

template <class T>
caf::expected<T> blocking_request_impl(caf::actor_system& sys, const caf::actor& dest,
                                       std::chrono::milliseconds timeout, caf::message msg) {
  if (!dest)
    return caf::make_error(errc::not_found, "invalid supervisor handle");
  caf::scoped_actor self{sys};
  caf::expected<T> result{caf::error{}};
  self->request(dest, caf_timeout(timeout), std::move(msg))
    .receive([&](T& value) { result = std::move(value); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

caf::error blocking_ok(caf::actor_system& sys, const caf::actor& dest,
                       std::chrono::milliseconds timeout, caf::message msg) {
  auto res = blocking_request_impl<caf::ok_atom>(sys, dest, timeout, std::move(msg));
  return res ? caf::error{} : std::move(res.error());
}

} // namespace

caf::expected<caf::actor> spawn_supervisor(caf::actor_system& sys, supervisor_flags flags,
                                           std::vector<child_spec> specs) {
  if (auto err = validate(flags, specs))
    return err;
  return sys.spawn<supervisor_actor>(std::move(flags), std::move(specs));
}

caf::expected<caf::actor> start_supervisor(caf::actor_system& sys, supervisor_flags flags,
                                           std::vector<child_spec> specs) {
  auto sup = spawn_supervisor(sys, std::move(flags), std::move(specs));
  if (!sup)
    return sup;
  caf::scoped_actor self{sys};
  auto mon = *sup;
  self->monitor(mon);
  caf::error failure;
  self->request(*sup, caf::infinite, await_started_atom::value)
    .receive([](caf::ok_atom) {}, [&](caf::error& err) { failure = std::move(err); });
  if (!failure) {
    self->demonitor(mon);
    return sup;
  }
  // Return only once the failed supervisor is gone, so nothing is left behind.
  self->receive([&](caf::down_msg& dm) {
    if (dm.reason && failure == caf::sec::request_receiver_down)
      failure = dm.reason;
  });
  return failure;
}

child_spec supervisor_child(std::string id, supervisor_flags flags, std::vector<child_spec> specs,
                            restart_type restart) {
  child_spec spec;
  spec.id = std::move(id);
  spec.restart = restart;
  spec.type = child_type::supervisor;
  spec.shutdown = shutdown_policy::infinity();
  if (flags.name == supervisor_flags{}.name)
    flags.name = spec.id;
  spec.start = [flags{std::move(flags)},
                specs{std::move(specs)}](start_context& ctx) -> caf::expected<caf::actor> {
    if (auto err = validate(flags, specs))
      return err;
    return ctx.self()->spawn<supervisor_actor>(flags, specs);
  };
  return spec;
}

caf::expected<std::vector<child_info>> which_children(caf::actor_system& sys, const caf::actor& sup,
                                                      std::chrono::milliseconds timeout) {
  return blocking_request_impl<std::vector<child_info>>(
    sys, sup, timeout, caf::make_message(which_children_atom::value));
}

caf::expected<child_counts> count_children(caf::actor_system& sys, const caf::actor& sup,
                                           std::chrono::milliseconds timeout) {
  return blocking_request_impl<child_counts>(sys, sup, timeout,
                                             caf::make_message(count_children_atom::value));
}

caf::expected<caf::actor> start_child(caf::actor_system& sys, const caf::actor& sup,
                                      child_spec spec, std::chrono::milliseconds timeout) {
  return blocking_request_impl<caf::actor>(
    sys, sup, timeout, caf::make_message(start_child_atom::value, std::move(spec)));
}

caf::expected<caf::actor> start_child(caf::actor_system& sys, const caf::actor& sup,
                                      caf::message args, std::chrono::milliseconds timeout) {
  return blocking_request_impl<caf::actor>(
    sys, sup, timeout, caf::make_message(start_child_atom::value, std::move(args)));
}

caf::error terminate_child(caf::actor_system& sys, const caf::actor& sup, const std::string& id,
                           std::chrono::milliseconds timeout) {
  return blocking_ok(sys, sup, timeout, caf::make_message(terminate_child_atom::value, id));
}

caf::error terminate_child(caf::actor_system& sys, const caf::actor& sup, const caf::actor& child,
                           std::chrono::milliseconds timeout) {
  return blocking_ok(sys, sup, timeout, caf::make_message(terminate_child_atom::value, child));
}

caf::expected<caf::actor> restart_child(caf::actor_system& sys, const caf::actor& sup,
                                        const std::string& id,
                                        std::chrono::milliseconds timeout) {
  return blocking_request_impl<caf::actor>(sys, sup, timeout,
                                           caf::make_message(restart_child_atom::value, id));
}

caf::error delete_child(caf::actor_system& sys, const caf::actor& sup, const std::string& id,
                        std::chrono::milliseconds timeout) {
  return blocking_ok(sys, sup, timeout, caf::make_message(delete_child_atom::value, id));
}

caf::error drain(caf::actor_system& sys, const caf::actor& sup,
                 std::chrono::milliseconds timeout) {
  return blocking_ok(sys, sup, timeout, caf::make_message(drain_atom::value));
}

caf::expected<tree_node> snapshot_tree(caf::actor_system& sys, const caf::actor& sup,
                                       std::chrono::milliseconds timeout) {
  return blocking_request_impl<tree_node>(sys, sup, timeout,
                                          caf::make_message(tree_atom::value));
}

caf::error stop_supervisor(caf::actor_system& sys, const caf::actor& sup,
                           std::chrono::milliseconds timeout) {
  if (!sup)
    return caf::make_error(errc::not_found, "invalid supervisor handle");
  caf::scoped_actor self{sys};
  self->monitor(sup);
  self->send_exit(sup, caf::exit_reason::user_shutdown);
  caf::error result;
  self->receive([](caf::down_msg&) {},
                caf::after(caf_timeout(timeout)) >> [&] {
                  result = caf::make_error(errc::timeout, "supervisor still stopping");
                });
  return result;
}

} // namespace atl
