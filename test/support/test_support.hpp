// Helpers shared by Atoll's tests: an actor-system fixture, a thread-safe
// event log, and waits on conditions with deadlines (never blind sleeps).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/supervisor.hpp"
#include "support/fd_leak_check.hpp"

namespace atl::test {

using namespace std::chrono_literals;

/// An actor system with Atoll's I/O scheduler and a fixed configuration (2
/// workers), independent of any caf-application.ini in the working
/// directory. The fd check (a base) runs after the system is gone.
struct system_fixture : fd_leak_check {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys_ptr;
  caf::actor_system& sys;

  system_fixture() : sys_ptr(make_system(cfg)), sys(*sys_ptr) {
  }

  static std::unique_ptr<caf::actor_system> make_system(caf::actor_system_config& cfg) {
    atl::register_runtime_types(cfg); // all a test system needs
    cfg.set("scheduler.max-threads", 2);
    return std::make_unique<caf::actor_system>(cfg);
  }
};

/// Polls `pred` until it holds or `timeout` passes; returns its last value.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// The handle of `id` among `sup`'s children (an invalid handle if none).
inline caf::actor child_of(caf::actor_system& sys, const caf::actor& sup, const std::string& id) {
  auto children = which_children(sys, sup);
  if (!children)
    return {};
  for (auto& c : *children)
    if (c.id == id)
      return c.handle;
  return {};
}

/// A thread-safe, append-only list of strings that tests wait on.
class event_log {
public:
  void add(std::string entry) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      entries_.push_back(std::move(entry));
    }
    cv_.notify_all();
  }

  std::vector<std::string> entries() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return entries_;
  }

  size_t size() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return entries_.size();
  }

  size_t count(const std::string& entry) const {
    std::lock_guard<std::mutex> guard{mtx_};
    return static_cast<size_t>(std::count(entries_.begin(), entries_.end(), entry));
  }

  /// Waits until the log holds at least `n` entries.
  bool wait_for_size(size_t n, std::chrono::milliseconds timeout = 5000ms) const {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] { return entries_.size() >= n; });
  }

  /// Waits until `entry` occurs at least `n` times.
  bool wait_for(const std::string& entry, size_t n = 1,
                std::chrono::milliseconds timeout = 5000ms) const {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] {
      return static_cast<size_t>(std::count(entries_.begin(), entries_.end(), entry)) >= n;
    });
  }

  /// Entries from index `from` on.
  std::vector<std::string> since(size_t from) const {
    std::lock_guard<std::mutex> guard{mtx_};
    if (from >= entries_.size())
      return {};
    return {entries_.begin() + static_cast<std::ptrdiff_t>(from), entries_.end()};
  }

  void clear() {
    std::lock_guard<std::mutex> guard{mtx_};
    entries_.clear();
  }

private:
  mutable std::mutex mtx_;
  mutable std::condition_variable cv_;
  std::vector<std::string> entries_;
};

} // namespace atl::test
