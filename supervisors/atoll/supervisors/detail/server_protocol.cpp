#include "atoll/supervisors/detail/server_protocol.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/gather.hpp"
#include "atoll/supervisors/server_actor.hpp"
#include "atoll/supervisors/server_context.hpp"

namespace atl::detail {

namespace {

using done_fn = std::function<void()>;

/// The protocol's state inside one root supervisor.
struct protocol_state {
  caf::event_based_actor* self;
  std::shared_ptr<server_context> ctx;
  /// Suspend and resume run one at a time, in order of arrival.
  bool busy = false;
  std::deque<std::function<void()>> waiting;

  caf::actor self_handle() const {
    return caf::actor_cast<caf::actor>(self);
  }
};

using state_ptr = std::shared_ptr<protocol_state>;

/// Runs the next waiting control operation, if none runs.
void run_next(const state_ptr& st) {
  if (st->busy || st->waiting.empty())
    return;
  st->busy = true;
  auto op = std::move(st->waiting.front());
  st->waiting.pop_front();
  op();
}

/// Queues a control operation; it calls `done` when it answered.
void enqueue_control(const state_ptr& st, std::function<void(done_fn)> op) {
  st->waiting.emplace_back([st, op{std::move(op)}] {
    op([st] {
      st->busy = false;
      run_next(st);
    });
  });
  run_next(st);
}

/// The first error of `results`, if any.
template <class T>
caf::error first_error(const std::vector<caf::expected<T>>& results) {
  for (auto& x : results)
    if (!x)
      return x.error();
  return caf::none;
}

/// Finds the acceptor supervisors (the groups under the acceptor pool).
void with_groups(const state_ptr& st,
                 std::function<void(caf::expected<std::vector<caf::actor>>)> k) {
  st->self->request(st->self_handle(), caf::infinite, which_children_atom::value)
    .then(
      [st, k](std::vector<child_info>& top) {
        auto pool = std::find_if(top.begin(), top.end(),
                                 [](const child_info& c) { return c.id == "acceptor_pool"; });
        if (pool == top.end() || !pool->handle) {
          k(caf::make_error(errc::not_found, "the acceptor pool is not running"));
          return;
        }
        st->self->request(pool->handle, caf::infinite, which_children_atom::value)
          .then(
            [k](std::vector<child_info>& groups) {
              std::vector<caf::actor> result;
              for (auto& g : groups)
                if (g.handle)
                  result.push_back(g.handle);
              k(std::move(result));
            },
            [k](caf::error& err) { k(std::move(err)); });
      },
      [k](caf::error& err) { k(std::move(err)); });
}

/// The groups whose result is a success.
template <class T>
std::vector<caf::actor> succeeded(const std::vector<caf::actor>& groups,
                                  const std::vector<caf::expected<T>>& results) {
  std::vector<caf::actor> result;
  for (size_t i = 0; i < groups.size(); ++i)
    if (results[i])
      result.push_back(groups[i]);
  return result;
}

/// Sends `(atom, "acceptor")` to `groups` and ignores the answers (undoing
/// part of a suspend or resume that failed).
template <class Atom>
void undo_acceptors(const state_ptr& st, const std::vector<caf::actor>& groups, Atom atom) {
  for (auto& g : groups)
    st->self->send(g, atom, std::string{"acceptor"});
}

/// Acceptors first (so none is mid-accept), then the listener: the port
/// closes; connections and their supervisors stay. On a failure, the
/// acceptors that were stopped start again.
void suspend(const state_ptr& st, caf::typed_response_promise<caf::ok_atom> rp, done_fn done) {
  if (st->ctx->stopping.load()) {
    rp.deliver(caf::make_error(errc::shutting_down, "the server is stopping"));
    done();
    return;
  }
  with_groups(st, [st, rp, done](caf::expected<std::vector<caf::actor>> groups) mutable {
    if (!groups) {
      rp.deliver(std::move(groups.error()));
      done();
      return;
    }
    auto stop_msg = caf::make_message(terminate_child_atom::value, std::string{"acceptor"});
    ask_all<caf::ok_atom>(st->self, *groups, std::move(stop_msg), caf::infinite,
      [st, rp, done, groups{*groups}](std::vector<caf::expected<caf::ok_atom>> results) mutable {
        auto stopped = succeeded(groups, results);
        if (auto err = first_error(results)) {
          undo_acceptors(st, stopped, restart_child_atom::value);
          rp.deliver(std::move(err));
          done();
          return;
        }
        st->self
          ->request(st->self_handle(), caf::infinite, terminate_child_atom::value,
                    std::string{"listener"})
          .then(
            [rp, done](caf::ok_atom) mutable {
              rp.deliver(caf::ok_atom::value);
              done();
            },
            [st, rp, done, stopped](caf::error& err) mutable {
              undo_acceptors(st, stopped, restart_child_atom::value);
              rp.deliver(std::move(err));
              done();
            });
      });
  });
}

/// The listener first (it binds), then the acceptors. On a failure, what
/// was started stops again: the server stays suspended.
void resume(const state_ptr& st, caf::typed_response_promise<caf::ok_atom> rp, done_fn done) {
  if (st->ctx->stopping.load()) {
    rp.deliver(caf::make_error(errc::shutting_down, "the server is stopping"));
    done();
    return;
  }
  auto fail = [st, rp, done](caf::error err, const std::vector<caf::actor>& restarted,
                             bool listener_restarted) mutable {
    undo_acceptors(st, restarted, terminate_child_atom::value);
    if (listener_restarted)
      st->self->send(st->self_handle(), terminate_child_atom::value, std::string{"listener"});
    rp.deliver(std::move(err));
    done();
  };
  auto with_listener = [st, rp, done, fail](bool listener_restarted) mutable {
    with_groups(st, [st, rp, done, fail,
                     listener_restarted](caf::expected<std::vector<caf::actor>> groups) mutable {
      if (!groups) {
        fail(std::move(groups.error()), {}, listener_restarted);
        return;
      }
      auto start_msg = caf::make_message(restart_child_atom::value, std::string{"acceptor"});
      ask_all<caf::actor>(st->self, *groups, std::move(start_msg), caf::infinite,
        [rp, done, fail, listener_restarted,
         groups{*groups}](std::vector<caf::expected<caf::actor>> results) mutable {
          caf::error err;
          for (auto& x : results)
            if (!x && x.error() != errc::running && !err)
              err = x.error();
          if (err) {
            fail(std::move(err), succeeded(groups, results), listener_restarted);
            return;
          }
          rp.deliver(caf::ok_atom::value);
          done();
        });
    });
  };
  st->self
    ->request(st->self_handle(), caf::infinite, restart_child_atom::value,
              std::string{"listener"})
    .then([with_listener](caf::actor&) mutable { with_listener(true); },
          [with_listener, rp, done](caf::error& err) mutable {
            if (err == errc::running) {
              with_listener(false);
              return;
            }
            rp.deliver(std::move(err));
            done();
          });
}

server_status status_of(const server_context& ctx) {
  if (ctx.stopping.load())
    return server_status::stopped;
  return ctx.listener() ? server_status::running : server_status::suspended;
}

/// The connection actors under `sups`, then their records.
void list_connections(const state_ptr& st,
                      caf::typed_response_promise<std::vector<connection_record>> rp) {
  auto sups = st->ctx->connection_supervisors();
  ask_all<std::vector<child_info>>(
    st->self, sups, caf::make_message(which_children_atom::value), caf::infinite,
    [st, rp](std::vector<caf::expected<std::vector<child_info>>> lists) mutable {
      std::vector<caf::actor> conns;
      for (auto& list : lists)
        if (list) // a supervisor that just went away has no connections
          for (auto& child : *list)
            if (child.handle)
              conns.push_back(child.handle);
      gather_records(st->self, std::move(conns), rp);
    });
}

} // namespace

caf::message_handler server_protocol(caf::event_based_actor* self,
                                     std::shared_ptr<server_context> ctx) {
  auto st = std::make_shared<protocol_state>();
  st->self = self;
  st->ctx = std::move(ctx);
  return {
    [st](listening_atom) -> caf::result<endpoint> {
      auto rp = st->self->make_response_promise<endpoint>();
      st->self->request(st->self_handle(), caf::infinite, await_started_atom::value)
        .then(
          [st, rp](caf::ok_atom) mutable {
            if (auto l = st->ctx->listener())
              rp.deliver(l->local);
            else
              rp.deliver(caf::make_error(errc::suspended, "the server is not listening"));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [st](listener_info_atom) -> caf::result<endpoint> {
      if (auto l = st->ctx->listener())
        return l->local;
      return caf::make_error(errc::suspended, "the server is not listening");
    },
    [st](status_atom) { return status_of(*st->ctx); },
    [st](server_info_atom) -> caf::result<server_info> {
      auto rp = st->self->make_response_promise<server_info>();
      ask_all<child_counts>(st->self, st->ctx->connection_supervisors(),
                            caf::make_message(count_children_atom::value), caf::infinite,
                            [st, rp](std::vector<caf::expected<child_counts>> counts) mutable {
                              server_info result;
                              result.status = status_of(*st->ctx);
                              if (auto l = st->ctx->listener())
                                result.local = l->local;
                              for (auto& c : counts)
                                if (c)
                                  result.active_connections += c->active;
                              rp.deliver(std::move(result));
                            });
      return rp;
    },
    [st](connections_atom) -> caf::result<std::vector<connection_record>> {
      auto rp = st->self->make_response_promise<std::vector<connection_record>>();
      list_connections(st, rp);
      return rp;
    },
    [st](suspend_atom) -> caf::result<caf::ok_atom> {
      auto rp = st->self->make_response_promise<caf::ok_atom>();
      enqueue_control(st, [st, rp](done_fn done) { suspend(st, rp, std::move(done)); });
      return rp;
    },
    [st](resume_atom) -> caf::result<caf::ok_atom> {
      auto rp = st->self->make_response_promise<caf::ok_atom>();
      enqueue_control(st, [st, rp](done_fn done) { resume(st, rp, std::move(done)); });
      return rp;
    },
    [st](subscribe_atom, caf::actor& who) -> caf::result<caf::ok_atom> {
      if (!who)
        return caf::make_error(errc::invalid_option, "subscribe: an invalid actor handle");
      st->ctx->watchers().add(who);
      return caf::ok_atom::value;
    },
    [st](unsubscribe_atom, caf::actor& who) -> caf::result<caf::ok_atom> {
      if (!st->ctx->watchers().remove(who))
        return caf::make_error(errc::not_found, "unsubscribe: the actor is not subscribed");
      return caf::ok_atom::value;
    },
  };
}

} // namespace atl::detail
