// Actors handed to a supervisor for adoption, stopped by the batch itself
// unless a supervisor takes them.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

namespace atl {

/// Running actors on their way to a `simple_one_for_one` supervisor of
/// temporary workers, in the message `(adopt_children_atom,
/// adoption_batch)` (a plain send; a request gets the same replies as the
/// `std::vector<caf::actor>` form). Unlike that form, nobody has to watch
/// for the reply: the supervisor takes them (or stops them itself when
/// draining or stopping), and if no supervisor ever takes them (it is
/// another kind of supervisor, it is gone, or it dies with the message
/// still in its mailbox) the last copy of the batch sends each of them
/// `user_shutdown` as it is destroyed, on whichever thread destroys it.
/// So an adopter that spawns actors and hands them over can end at any
/// time without leaving actors that nobody stops. Local actors only (the
/// type is not serializable). Copies share one set of actors.
class adoption_batch {
public:
  /// An empty batch.
  adoption_batch() = default;

  /// A batch of `actors` (invalid handles are skipped by the adopter).
  explicit adoption_batch(std::vector<caf::actor> actors);

  /// For the adopter, on its own thread: takes the actors out of the batch
  /// (of every copy), which then stops none of them. Returns them.
  [[nodiscard]] std::vector<caf::actor> take() noexcept;

  /// The number of actors not taken yet.
  [[nodiscard]] size_t size() const noexcept;

private:
  struct state {
    std::vector<caf::actor> actors;
    state() = default;
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state();
  };
  std::shared_ptr<state> state_;
};

} // namespace atl

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(atl::adoption_batch)
