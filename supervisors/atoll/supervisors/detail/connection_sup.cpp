#include "atoll/supervisors/detail/connection_sup.hpp"

#include <utility>

#include "atoll/supervisors/detail/gather.hpp"

namespace atl::detail {

child_spec connection_sup_child(std::string child_id, start_function start,
                                shutdown_policy shutdown, std::optional<uint32_t> max_children,
                                std::function<void(const caf::actor&)> started) {
  child_spec child;
  child.id = std::move(child_id);
  child.restart = restart_type::temporary;
  child.shutdown = shutdown;
  child.start = std::move(start);
  // Tree snapshots show each child's connection record.
  child.describe = describe_connection;
  supervisor_flags flags;
  flags.strategy = strategy::simple_one_for_one;
  flags.max_children = max_children;
  flags.name = "connection_sup";
  auto spec = supervisor_child("connection_sup", std::move(flags), {std::move(child)});
  auto start_sup = std::move(spec.start);
  spec.start = [start_sup{std::move(start_sup)}, started{std::move(started)}](start_context& sc) {
    auto sup = start_sup(sc);
    if (sup)
      started(*sup);
    return sup;
  };
  return spec;
}

} // namespace atl::detail
