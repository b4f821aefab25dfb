#include "atoll/runtime/adoption_batch.hpp"

#include <utility>

#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

namespace atl {

adoption_batch::adoption_batch(std::vector<caf::actor> actors) : state_(std::make_shared<state>()) {
  state_->actors = std::move(actors);
}

std::vector<caf::actor> adoption_batch::take() noexcept {
  if (!state_)
    return {};
  return std::exchange(state_->actors, {});
}

size_t adoption_batch::size() const noexcept {
  return state_ ? state_->actors.size() : 0;
}

adoption_batch::state::~state() {
  // Nobody took them: nobody would stop them either.
  for (auto& actor : actors)
    if (actor)
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}

} // namespace atl
