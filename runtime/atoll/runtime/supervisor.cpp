// The generic supervisor's entry points: flags and specs validation,
// spawning (the actor itself is in detail/supervisor_actor.cpp) and nested
// supervisor specs. The blocking client helpers are in supervisor_client.cpp.
#include "atoll/runtime/supervisor.hpp"

#include <set>
#include <string>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/system_messages.hpp>

#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/detail/supervisor_actor.hpp"
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

caf::expected<caf::actor> spawn_supervisor(caf::actor_system& sys, supervisor_flags flags,
                                           std::vector<child_spec> specs) {
  if (auto err = validate(flags, specs))
    return err;
  return detail::spawn_supervisor_actor(sys, std::move(flags), std::move(specs));
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
    return detail::spawn_supervisor_actor(ctx.self(), flags, specs);
  };
  return spec;
}

} // namespace atl
