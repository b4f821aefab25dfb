// Runs a program as a child process for end-to-end tests: reads its
// standard output line by line with deadlines, signals it, waits for it.
#pragma once

#include <chrono>
#include <csignal>
#include <optional>
#include <thread>
#include <utility>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace atl::test {

/// A child process with its stdout and stderr captured.
class child_process {
public:
  /// Starts `argv[0]` with arguments `argv` (its stdin is a pipe: see
  /// `write_stdin`), in this process's environment with the "NAME=VALUE"
  /// entries of `env` added or replaced.
  explicit child_process(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env = {}) {
    int out[2];
    int err[2];
    int in[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0
        || ::pipe2(in, O_CLOEXEC) != 0)
      return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    auto vars = environment(env);
    std::vector<char*> envp;
    for (auto& v : vars)
      envp.push_back(const_cast<char*>(v.c_str()));
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data()) != 0)
      pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    ::close(in[0]);
    out_ = out[0];
    err_ = err[0];
    in_ = in[1];
  }

  /// Writes to the child's standard input.
  void write_stdin(const std::string& text) {
    size_t off = 0;
    while (off < text.size()) {
      auto n = ::write(in_, text.data() + off, text.size() - off);
      if (n <= 0)
        return;
      off += static_cast<size_t>(n);
    }
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  ~child_process() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
    ::close(err_);
    ::close(in_);
  }

  bool started() const noexcept {
    return pid_ > 0;
  }

  /// The next line of standard output, or nullopt on timeout or EOF.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = std::chrono::seconds{10}) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto nl = out_buf_.find('\n'); nl != std::string::npos) {
        auto line = out_buf_.substr(0, nl);
        out_buf_.erase(0, nl + 1);
        return line;
      }
      if (!read_some(out_, out_buf_, deadline))
        return std::nullopt;
    }
  }

  /// Sends a signal.
  void signal(int sig) {
    if (pid_ > 0)
      ::kill(pid_, sig);
  }

  /// Waits for the exit; returns the exit code (128+N for signal N), or
  /// nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
    if (exit_code_)
      return exit_code_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      auto r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    return std::nullopt;
  }

  /// Closes the child's standard input (it reads EOF).
  void close_stdin() {
    ::close(in_);
    in_ = -1;
  }

  /// The rest of standard output, read until the child closes it (or
  /// `timeout` passes).
  std::string stdout_until_eof(std::chrono::milliseconds timeout = std::chrono::seconds{10}) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (read_some(out_, out_buf_, deadline)) {
    }
    return std::exchange(out_buf_, {});
  }

  /// Everything written to stderr so far (after exit: all of it).
  std::string stderr_text() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{200};
    while (read_some(err_, err_buf_, deadline)) {
    }
    return err_buf_;
  }

  /// This process's environment with the "NAME=VALUE" entries of
  /// `overrides` added or replaced.
  static std::vector<std::string> environment(const std::vector<std::string>& overrides) {
    std::vector<std::string> vars;
    auto name_of = [](const std::string& var) { return var.substr(0, var.find('=')); };
    for (char** e = environ; *e != nullptr; ++e) {
      std::string var = *e;
      bool replaced = false;
      for (auto& o : overrides)
        replaced = replaced || name_of(o) == name_of(var);
      if (!replaced)
        vars.push_back(std::move(var));
    }
    vars.insert(vars.end(), overrides.begin(), overrides.end());
    return vars;
  }

private:
  /// Reads available bytes into `buf`; false on timeout or EOF.
  static bool read_some(int fd, std::string& buf, std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return false;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0)
      return false;
    char chunk[4096];
    auto n = ::read(fd, chunk, sizeof(chunk));
    if (n <= 0)
      return false;
    buf.append(chunk, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;
  int in_ = -1;
  std::string out_buf_;
  std::string err_buf_;
  std::optional<int> exit_code_;
};

} // namespace atl::test
