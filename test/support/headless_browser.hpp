// Drives Debian's headless Chromium over the DevTools protocol on a pipe
// (`--remote-debugging-pipe`: the browser reads commands on fd 3 and writes
// answers on fd 4, each message a JSON text ended by a NUL byte). Tests open
// a page once and then watch it change while it stays open: what `--dump-dom`
// cannot show (it reads a page once, when it has loaded).
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

extern char** environ;

namespace atl::test {

/// One headless Chromium with one page (a tab). Not thread-safe.
class headless_browser {
public:
  /// Where Debian's chromium package puts the browser.
  static constexpr const char* path = "/usr/bin/chromium";

  /// Starts the browser; `started()` tells whether it runs.
  headless_browser() {
    profile_ = "/tmp/atoll-cdp-" + std::to_string(::getpid()) + "-"
               + std::to_string(reinterpret_cast<uintptr_t>(this));
    int to_browser[2];
    int from_browser[2];
    if (::pipe2(to_browser, O_CLOEXEC) != 0)
      return;
    if (::pipe2(from_browser, O_CLOEXEC) != 0) {
      ::close(to_browser[0]);
      ::close(to_browser[1]);
      return;
    }
    // Out of the way of 3 and 4 before they are set up in the child.
    int child_in = ::fcntl(to_browser[0], F_DUPFD_CLOEXEC, 64);
    int child_out = ::fcntl(from_browser[1], F_DUPFD_CLOEXEC, 64);
    ::close(to_browser[0]);
    ::close(from_browser[1]);
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, child_in, 3);
    posix_spawn_file_actions_adddup2(&actions, child_out, 4);
    posix_spawn_file_actions_adddup2(&actions, devnull, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, devnull, STDERR_FILENO);
    std::vector<std::string> argv{path,
                                  "--headless",
                                  "--no-sandbox",
                                  "--disable-gpu",
                                  "--disable-quic",
                                  "--no-first-run",
                                  "--disable-background-networking",
                                  "--disable-component-update",
                                  "--disable-sync",
                                  "--remote-debugging-pipe",
                                  "--user-data-dir=" + profile_,
                                  "about:blank"};
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawn(&pid_, path, &actions, nullptr, args.data(), environ) != 0)
      pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(child_in);
    ::close(child_out);
    ::close(devnull);
    out_ = to_browser[1];
    in_ = from_browser[0];
  }

  headless_browser(const headless_browser&) = delete;
  headless_browser& operator=(const headless_browser&) = delete;

  /// Closes the browser (politely, then with SIGKILL) and its profile.
  ~headless_browser() {
    if (pid_ > 0) {
      if (out_ >= 0)
        static_cast<void>(command("Browser.close", nlohmann::json::object(), false,
                                  std::chrono::seconds{5}));
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
      while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, nullptr, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{20});
      }
    }
    if (out_ >= 0)
      ::close(out_);
    if (in_ >= 0)
      ::close(in_);
    std::error_code ignored;
    std::filesystem::remove_all(profile_, ignored);
  }

  /// Whether the browser process runs.
  bool started() const {
    return pid_ > 0 && out_ >= 0 && in_ >= 0;
  }

  /// Opens `url` in a new page and attaches to it; false on an error.
  bool open(const std::string& url) {
    auto target = command("Target.createTarget", {{"url", url}}, false);
    if (!target || !target->contains("targetId"))
      return false;
    auto attached = command("Target.attachToTarget",
                            {{"targetId", (*target)["targetId"]}, {"flatten", true}}, false);
    if (!attached || !attached->contains("sessionId"))
      return false;
    session_ = (*attached)["sessionId"].get<std::string>();
    return true;
  }

  /// Evaluates `expression` in the page; its value (JSON), or nullopt when
  /// the browser did not answer or the expression threw.
  std::optional<nlohmann::json> evaluate(const std::string& expression) {
    auto r = command("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}},
                     true);
    if (!r || r->contains("exceptionDetails") || !r->contains("result"))
      return std::nullopt;
    auto& result = (*r)["result"];
    return result.contains("value") ? result["value"] : nlohmann::json{};
  }

  /// Evaluates `expression` every 50 ms until it gives `true`; false once
  /// `timeout` passed without it.
  bool wait_for(const std::string& expression, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      auto v = evaluate("Boolean(" + expression + ")");
      if (v && v->is_boolean() && v->get<bool>())
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }

private:
  /// Sends a command (to the page's session if `in_page`) and returns its
  /// result, or nullopt on an error or after `timeout`.
  std::optional<nlohmann::json> command(const std::string& method, nlohmann::json params,
                                        bool in_page,
                                        std::chrono::milliseconds timeout = std::chrono::seconds{
                                          20}) {
    nlohmann::json msg{{"id", ++last_id_}, {"method", method}, {"params", std::move(params)}};
    if (in_page)
      msg["sessionId"] = session_;
    auto text = msg.dump();
    text.push_back('\0');
    for (size_t off = 0; off < text.size();) {
      auto n = ::write(out_, text.data() + off, text.size() - off);
      if (n <= 0)
        return std::nullopt;
      off += static_cast<size_t>(n);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (auto end = buffer_.find('\0'); end != std::string::npos; end = buffer_.find('\0')) {
        auto reply = nlohmann::json::parse(buffer_.substr(0, end), nullptr, false);
        buffer_.erase(0, end + 1);
        if (reply.is_object() && reply.contains("id") && reply["id"] == last_id_) {
          if (reply.contains("error") || !reply.contains("result"))
            return std::nullopt;
          return reply["result"];
        }
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return std::nullopt;
      pollfd pfd{in_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0)
        continue;
      char chunk[65536];
      auto n = ::read(in_, chunk, sizeof(chunk));
      if (n <= 0)
        return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  int64_t last_id_ = 0;
  std::string session_;
  std::string buffer_;
  std::string profile_;
};

} // namespace atl::test
