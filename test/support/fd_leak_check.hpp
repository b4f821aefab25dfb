// The file-descriptor check every test suite uses as (a base of) its
// fixture: what a test opens, it closes. No CAF: pure unit tests include it
// alone.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <unistd.h>

namespace atl::test {

using namespace std::chrono_literals;

/// The process's open file descriptors, each as "N -> target".
inline std::vector<std::string> list_open_fds() {
  std::vector<std::string> out;
  auto* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr)
    return out;
  auto self = ::dirfd(dir);
  while (auto* ent = ::readdir(dir)) {
    if (ent->d_name[0] == '.' || std::atoi(ent->d_name) == self)
      continue;
    char target[256] = {};
    auto path = std::string{"/proc/self/fd/"} + ent->d_name;
    auto n = ::readlink(path.c_str(), target, sizeof(target) - 1);
    out.push_back(std::string{ent->d_name} + " -> " + (n > 0 ? std::string(target, n) : "?"));
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

/// Checks, when a test ends, that the process has the file descriptors it
/// had when the test began: every socket, epoll instance, pipe and file a
/// test opened (directly or through Atoll) is closed by then. Waits up to
/// 5 s for descriptors that close asynchronously.
struct fd_leak_check {
  std::vector<std::string> fds_at_start_ = list_open_fds();

  ~fd_leak_check() {
    auto deadline = std::chrono::steady_clock::now() + 5000ms;
    auto now_open = list_open_fds();
    while (now_open.size() > fds_at_start_.size() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);
      now_open = list_open_fds();
    }
    std::string leaked;
    for (auto& fd : now_open)
      if (std::find(fds_at_start_.begin(), fds_at_start_.end(), fd) == fds_at_start_.end())
        leaked += " [" + fd + "]";
    BOOST_CHECK_MESSAGE(now_open.size() <= fds_at_start_.size(),
                        "file descriptors left open by the test:" << leaked);
  }
};

} // namespace atl::test
