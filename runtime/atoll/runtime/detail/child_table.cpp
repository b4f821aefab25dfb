// The children of a supervisor (see child_table.hpp).
#include "atoll/runtime/detail/child_table.hpp"

#include <utility>

namespace atl::detail {

namespace {

/// Adds `n` children of `spec`, `active` of them running, to `c`.
void add_counts(child_counts& c, const child_spec& spec, uint32_t n, uint32_t active) {
  c.specs += n;
  c.active += active;
  if (spec.type == child_type::supervisor)
    c.supervisors += n;
  else
    c.workers += n;
}

} // namespace

child_info make_child_info(const child_spec& spec, const caf::actor& handle, uint32_t restarts) {
  child_info info;
  info.id = spec.id;
  info.handle = handle;
  info.type = spec.type;
  info.restart = spec.restart;
  info.restart_count = restarts;
  return info;
}

tree_node make_tree_node(const child_spec& spec, const caf::actor& handle, uint32_t restarts) {
  tree_node node;
  node.role = spec.id;
  node.type = spec.type;
  node.restart = spec.restart;
  node.restart_count = restarts;
  node.running = static_cast<bool>(handle);
  node.id = node.running ? handle.id() : 0;
  return node;
}

void child_table::set_template(std::shared_ptr<const child_spec> spec) {
  template_ = std::move(spec);
}

uint64_t child_table::insert(child_record rec) {
  auto seq = next_seq_++;
  records_.emplace(seq, std::move(rec));
  return seq;
}

child_record& child_table::at(uint64_t seq) {
  return records_.at(seq);
}

child_table::iterator child_table::find(uint64_t seq) {
  return records_.find(seq);
}

child_table::iterator child_table::find_id(const std::string& id) {
  for (auto i = records_.begin(); i != records_.end(); ++i)
    if (i->second.spec->id == id)
      return i;
  return records_.end();
}

bool child_table::contains(uint64_t seq) const {
  return records_.count(seq) > 0;
}

void child_table::erase(uint64_t seq) {
  records_.erase(seq);
}

void child_table::erase(iterator pos) {
  records_.erase(pos);
}

child_table::iterator child_table::begin() noexcept {
  return records_.begin();
}

child_table::iterator child_table::end() noexcept {
  return records_.end();
}

child_table::reverse_iterator child_table::rbegin() noexcept {
  return records_.rbegin();
}

child_table::reverse_iterator child_table::rend() noexcept {
  return records_.rend();
}

std::vector<uint64_t> child_table::running_in_reverse() const {
  std::vector<uint64_t> out;
  for (auto i = records_.rbegin(); i != records_.rend(); ++i)
    if (i->second.handle)
      out.push_back(i->first);
  return out;
}

void child_table::bind(caf::actor_id id, uint64_t seq) {
  by_actor_[id] = seq;
}

void child_table::unbind(caf::actor_id id) {
  by_actor_.erase(id);
}

std::optional<uint64_t> child_table::seq_of(caf::actor_id id) const {
  if (auto i = by_actor_.find(id); i != by_actor_.end())
    return i->second;
  return std::nullopt;
}

void child_table::add_temporary(caf::actor handle) {
  temps_->adopt(std::move(handle));
}

bool child_table::remove_temporary(caf::actor_id id) {
  return temps_->remove(id);
}

caf::actor child_table::take_temporary(caf::actor_id id) {
  return temps_->take(id);
}

std::vector<caf::actor> child_table::take_temporaries() {
  return temps_->take_all();
}

bool child_table::has_actor(caf::actor_id id) const {
  return by_actor_.count(id) > 0 || temps_->contains(id);
}

std::vector<child_info> child_table::which() const {
  auto temps = temps_->snapshot();
  std::vector<child_info> out;
  out.reserve(records_.size() + temps.size());
  for (auto& handle : temps)
    out.push_back(make_child_info(*template_, handle, 0));
  for (auto& kv : records_)
    out.push_back(make_child_info(*kv.second.spec, kv.second.handle, kv.second.restarts));
  return out;
}

child_counts child_table::counts() const {
  child_counts c;
  if (auto n = static_cast<uint32_t>(temps_->size()); n > 0)
    add_counts(c, *template_, n, n);
  for (auto& kv : records_)
    add_counts(c, *kv.second.spec, 1, kv.second.handle ? 1 : 0);
  return c;
}

void child_table::clear() {
  records_.clear();
  by_actor_.clear();
  temps_->take_all();
  template_.reset();
}

} // namespace atl::detail
