// The running temporary children of a supervisor (see temporary_registry.hpp).
#include "atoll/runtime/detail/temporary_registry.hpp"

#include <utility>

#include <caf/abstract_actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/attachable.hpp>

namespace atl::detail {

namespace {

/// Attached to a temporary child: unlists it when it ends. Holds the
/// registry, which may outlive the supervisor.
class temporary_exit_hook final : public caf::attachable {
public:
  temporary_exit_hook(std::shared_ptr<temporary_registry> registry, caf::actor_id id) noexcept
    : registry_(std::move(registry)), id_(id) {
  }

  void actor_exited(const caf::error&, caf::execution_unit*) override {
    registry_->remove(id_);
  }

private:
  std::shared_ptr<temporary_registry> registry_;
  caf::actor_id id_;
};

} // namespace

void temporary_registry::adopt(caf::actor handle) {
  if (!handle)
    return;
  auto id = handle.id();
  // Made first: a failed allocation must not leave a child listed without
  // the hook that unlists it.
  auto hook = std::make_unique<temporary_exit_hook>(shared_from_this(), id);
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!temps_.try_emplace(id, handle).second)
      return; // listed already (adopted twice): its hook is attached
  }
  // Listed first: a child that has already ended runs the hook right here.
  // (`handle` keeps the actor alive meanwhile: its hook may unlist it at once.)
  caf::actor_cast<caf::abstract_actor*>(handle)->attach(std::move(hook));
}

bool temporary_registry::remove(caf::actor_id id) {
  return static_cast<bool>(take(id));
}

caf::actor temporary_registry::take(caf::actor_id id) {
  caf::actor out; // released outside the lock
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = temps_.find(id); i != temps_.end()) {
    out = std::move(i->second);
    temps_.erase(i);
  }
  return out;
}

std::vector<caf::actor> temporary_registry::take_all() {
  std::vector<caf::actor> out;
  std::lock_guard<std::mutex> guard{mtx_};
  out.reserve(temps_.size());
  for (auto& kv : temps_)
    out.push_back(std::move(kv.second));
  temps_.clear();
  return out;
}

std::vector<caf::actor> temporary_registry::snapshot() const {
  std::vector<caf::actor> out;
  std::lock_guard<std::mutex> guard{mtx_};
  out.reserve(temps_.size());
  for (auto& kv : temps_)
    out.push_back(kv.second);
  return out;
}

bool temporary_registry::contains(caf::actor_id id) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return temps_.count(id) > 0;
}

size_t temporary_registry::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return temps_.size();
}

} // namespace atl::detail
