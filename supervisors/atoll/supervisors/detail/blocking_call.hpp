// Internal: the blocking server handles' one request to a server's root
// actor, and the check that refuses a blocking call on the only scheduler
// thread.
#pragma once

#include <chrono>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/scoped_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/reactor.hpp"

namespace atl::detail {

/// `errc::would_deadlock` if a blocking call on this thread would wait for
/// itself: the caller is an actor on the only scheduler thread.
inline caf::error check_blocking(const reactor& io) {
  if (io.on_worker() && io.num_pollers() == 1)
    return caf::make_error(errc::would_deadlock,
                           "a blocking server call inside an actor on the only scheduler "
                           "thread; send the server's request instead");
  return caf::none;
}

/// How long a blocking call waits for the root's answer (a bound, not an
/// expectation: a request whose answer is lost fails with
/// `caf::sec::request_timeout` instead of hanging).
constexpr std::chrono::seconds blocking_call_timeout{60};

/// One request to `root`, waiting for its answer on this thread.
template <class T, class... Ts>
caf::expected<T> blocking_call(caf::actor_system& sys, const reactor& io, const caf::actor& root,
                               Ts&&... xs) {
  if (!root)
    return caf::make_error(errc::not_found, "the server is not running");
  if (auto err = check_blocking(io))
    return err;
  caf::scoped_actor self{sys};
  caf::expected<T> result{caf::error{}};
  self->request(root, blocking_call_timeout, std::forward<Ts>(xs)...)
    .receive([&](T& x) { result = std::move(x); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

/// As `blocking_call` for requests answered with `ok`.
template <class... Ts>
caf::error blocking_call_ok(caf::actor_system& sys, const reactor& io, const caf::actor& root,
                            Ts&&... xs) {
  auto res = blocking_call<caf::ok_atom>(sys, io, root, std::forward<Ts>(xs)...);
  return res ? caf::error{} : std::move(res.error());
}

} // namespace atl::detail
