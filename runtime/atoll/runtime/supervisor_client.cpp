// Blocking client helpers of the generic supervisor (see
// supervisor_client.hpp).
#include "atoll/runtime/supervisor_client.hpp"

#include <utility>

#include <caf/actor_system.hpp>
#include <caf/after.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/detail/supervisor_actor.hpp"
#include "atoll/runtime/error.hpp"

namespace atl {

namespace {

/// Sends `msg` to `dest` and waits up to `timeout` for a `T` in reply.
template <class T>
caf::expected<T> blocking_request_impl(caf::actor_system& sys, const caf::actor& dest,
                                       std::chrono::milliseconds timeout, caf::message msg) {
  if (!dest)
    return caf::make_error(errc::not_found, "invalid supervisor handle");
  caf::scoped_actor self{sys};
  caf::expected<T> result{caf::error{}};
  self->request(dest, detail::caf_timeout(timeout), std::move(msg))
    .receive([&](T& value) { result = std::move(value); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

/// Sends `msg` to `dest` and waits up to `timeout` for an `ok_atom` reply.
caf::error blocking_ok(caf::actor_system& sys, const caf::actor& dest,
                       std::chrono::milliseconds timeout, caf::message msg) {
  auto res = blocking_request_impl<caf::ok_atom>(sys, dest, timeout, std::move(msg));
  return res ? caf::error{} : std::move(res.error());
}

} // namespace

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

caf::error adopt_children(caf::actor_system& sys, const caf::actor& sup,
                          std::vector<caf::actor> children, std::chrono::milliseconds timeout) {
  return blocking_ok(sys, sup, timeout,
                     caf::make_message(adopt_children_atom::value, std::move(children)));
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
                caf::after(detail::caf_timeout(timeout)) >> [&] {
                  result = caf::make_error(errc::timeout, "supervisor still stopping");
                });
  return result;
}

} // namespace atl
