#include "atoll/handlers/connection_record.hpp"
#include "atoll/handlers/detail/connection_watchers.hpp"

#include <algorithm>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

namespace atl {

std::string to_string(connection_state x) {
  switch (x) {
    case connection_state::proxy: return "proxy";
    case connection_state::handshaking: return "handshaking";
    case connection_state::open: return "open";
    case connection_state::draining: return "draining";
    case connection_state::closed: return "closed";
  }
  return "?";
}

std::vector<tree_detail> to_details(const connection_record& rec) {
  auto age = std::chrono::duration_cast<std::chrono::milliseconds>(rec.age).count();
  return {{"peer", to_string(rec.peer)},
          {"local", to_string(rec.local)},
          {"transport", rec.transport},
          {"handler", rec.handler},
          {"state", to_string(rec.state)},
          {"recv_oct", std::to_string(rec.recv_oct)},
          {"send_oct", std::to_string(rec.send_oct)},
          {"recv_cnt", std::to_string(rec.recv_cnt)},
          {"send_cnt", std::to_string(rec.send_cnt)},
          {"send_pend", std::to_string(rec.send_pend)},
          {"age_ms", std::to_string(age)}};
}

namespace detail {

bool connection_watchers::add(const caf::actor& who) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto addr = who.address();
  if (std::find(list_.begin(), list_.end(), addr) != list_.end())
    return false;
  list_.push_back(std::move(addr));
  count_.store(list_.size());
  return true;
}

bool connection_watchers::remove(const caf::actor& who) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = std::find(list_.begin(), list_.end(), who.address());
  if (i == list_.end())
    return false;
  list_.erase(i);
  count_.store(list_.size());
  return true;
}

void connection_watchers::notify(const connection_event& ev) {
  std::vector<caf::actor> targets;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto alive = [&](const caf::actor_addr& addr) {
      if (auto hdl = caf::actor_cast<caf::actor>(addr)) {
        targets.push_back(std::move(hdl));
        return true;
      }
      return false;
    };
    list_.erase(std::remove_if(list_.begin(), list_.end(),
                               [&](const caf::actor_addr& addr) { return !alive(addr); }),
                list_.end());
    count_.store(list_.size());
  }
  for (auto& target : targets)
    caf::anon_send(target, ev);
}

} // namespace detail

} // namespace atl
