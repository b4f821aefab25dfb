// Supervision demo: builds a three-level supervision tree, crashes workers,
// shows the restarts, escalates past a restart intensity, and prints the tree.
//
// Usage: supervision_demo [--crashes=N (0..100)] [--json]
// Not a server (no --port or --host): SIGINT or SIGTERM ends the demo early,
// after stopping the tree (exit 0).
//
// The tree:
//   demo                  rest_for_one
//    ├─ registry          worker, permanent
//    ├─ workers           supervisor, one_for_one, at most 2 restarts in 1 s
//    │   └─ worker-1..3   worker, permanent (crash when told to)
//    └─ reporter          worker, transient
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>

#include <caf/all.hpp>

#include "atoll/runtime/all.hpp"
#include "example_options.hpp"
#include "stop_signals.hpp"

namespace {

using namespace std::chrono_literals;
using crash_atom = caf::atom_constant<caf::atom("crash")>;

/// The most single crashes the demo shows (each takes 0.6 s).
constexpr int max_crashes = 100;

class demo_config : public example::strict_config {
public:
  int crashes = 3;
  bool json = false;

  demo_config() {
    atl::register_runtime_types(*this); // the runtime alone: no servers
    opt_group{custom_options_, "global"}
      .add(crashes, "crashes",
           "number of single worker crashes to show, 0.." + std::to_string(max_crashes))
      .add(json, "json", "also print the final tree as JSON");
  }

protected:
  std::optional<std::string> check_options() const override {
    if (crashes < 0 || crashes > max_crashes)
      return "--crashes must be within 0.." + std::to_string(max_crashes);
    return std::nullopt;
  }
};

/// A worker that throws when told to crash (an exception is a crash).
caf::behavior crashy_worker(caf::event_based_actor* self) {
  // Crash quietly (CAF's default handler prints every exception to stdout).
  self->set_exception_handler(
    [](std::exception_ptr&) -> caf::error { return caf::sec::runtime_error; });
  return {
    [](crash_atom) { throw std::runtime_error("told to crash"); },
  };
}

atl::child_spec worker(std::string id, atl::restart_type restart = atl::restart_type::permanent) {
  atl::child_spec spec;
  spec.id = std::move(id);
  spec.restart = restart;
  spec.start = [](atl::start_context& ctx) -> caf::expected<caf::actor> {
    return ctx.self()->spawn(crashy_worker);
  };
  return spec;
}

caf::actor find_child(caf::actor_system& sys, const caf::actor& sup, const std::string& id) {
  if (auto children = atl::which_children(sys, sup))
    for (auto& c : *children)
      if (c.id == id)
        return c.handle;
  return {};
}

/// Waits until child `id` of `sup` runs as a new actor; returns it.
caf::actor await_restart(caf::actor_system& sys, const caf::actor& sup, const std::string& id,
                         caf::actor_id old_id) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto c = find_child(sys, sup, id); c && c.id() != old_id)
      return c;
    std::this_thread::sleep_for(2ms);
  }
  return {};
}

void print_tree(caf::actor_system& sys, const caf::actor& root, const char* title) {
  auto tree = atl::snapshot_tree(sys, root);
  if (!tree) {
    std::cout << "cannot snapshot the tree: " << atl::describe(tree.error()) << '\n';
    return;
  }
  std::cout << "\n" << title << ":\n" << atl::format_tree(*tree) << std::flush;
}

/// Ends the demo at a stop signal: stops the tree, exits 0.
int stop_early(caf::actor_system& sys, const caf::actor& root, int sig) {
  example::say(std::string{"received "} + (sig == SIGINT ? "SIGINT" : "SIGTERM")
               + ", stopping\n");
  if (auto err = atl::stop_supervisor(sys, root)) {
    example::say(std::string{"stop failed: "} + atl::describe(err) + "\n");
    return EXIT_FAILURE;
  }
  std::cout << "stopped\n";
  return EXIT_SUCCESS;
}

int run(caf::actor_system& sys, const demo_config& cfg) {
  atl::supervisor_flags root_flags;
  root_flags.name = "demo";
  root_flags.strategy = atl::strategy::rest_for_one;
  atl::supervisor_flags pool_flags;
  pool_flags.strategy = atl::strategy::one_for_one;
  pool_flags.max_restarts = 2;
  pool_flags.period = 1000ms;
  auto root = atl::start_supervisor(
    sys, root_flags,
    {worker("registry"),
     atl::supervisor_child("workers", pool_flags,
                           {worker("worker-1"), worker("worker-2"), worker("worker-3")}),
     worker("reporter", atl::restart_type::transient)});
  if (!root) {
    example::say(std::string{"cannot start the tree: "} + atl::describe(root.error()) + "\n");
    return EXIT_FAILURE;
  }
  print_tree(sys, *root, "started");

  // Single crashes, spaced out: each worker restarts alone (one_for_one).
  auto workers = find_child(sys, *root, "workers");
  for (int i = 0; i < cfg.crashes; ++i) {
    auto id = "worker-" + std::to_string(i % 3 + 1);
    auto victim = find_child(sys, workers, id);
    caf::anon_send(victim, crash_atom::value);
    auto fresh = await_restart(sys, workers, id, victim.id());
    std::cout << "crashed " << id << " #" << victim.id() << " -> restarted as #"
              << (fresh ? fresh.id() : 0) << std::endl; // flushed: shown as it happens
    // At most 2 restarts per second.
    if (auto sig = example::wait_for_stop_signal_for(600ms))
      return stop_early(sys, *root, sig);
  }

  // Three crashes within one second exceed the workers' intensity (2 in 1 s):
  // the workers supervisor gives up, the root restarts it and, rest_for_one,
  // the reporter started after it. First let the earlier restarts age out.
  if (auto sig = example::wait_for_stop_signal_for(pool_flags.period + 100ms))
    return stop_early(sys, *root, sig);
  auto old_workers = workers.id();
  for (int i = 1; i <= 3; ++i) {
    auto id = "worker-" + std::to_string(i);
    auto victim = find_child(sys, workers, id);
    caf::anon_send(victim, crash_atom::value);
    if (i < 3)
      await_restart(sys, workers, id, victim.id());
  }
  workers = await_restart(sys, *root, "workers", old_workers);
  // A stop signal during the escalation ends the demo here (after it, the
  // demo ends anyway, with the same stop).
  if (auto sig = example::wait_for_stop_signal_for(0ms))
    return stop_early(sys, *root, sig);
  std::cout << "3 crashes in 1 s: workers supervisor #" << old_workers
            << " escalated; root restarted it as #" << (workers ? workers.id() : 0) << '\n';
  print_tree(sys, *root, "after the escalation");
  if (cfg.json)
    if (auto tree = atl::snapshot_tree(sys, *root))
      std::cout << atl::tree_to_json(*tree) << '\n';

  if (auto err = atl::stop_supervisor(sys, *root)) {
    example::say(std::string{"stop failed: "} + atl::describe(err) + "\n");
    return EXIT_FAILURE;
  }
  std::cout << "stopped\n";
  return EXIT_SUCCESS;
}

} // namespace

int main(int argc, char** argv) {
  example::block_stop_signals(); // done at exec already (see stop_signals.hpp)
  demo_config cfg;
  int exit_code = EXIT_SUCCESS;
  if (!cfg.parse_command_line(argc, argv, exit_code))
    return exit_code;
  // A scheduler that cannot start throws: report it, exit 1.
  auto previous_handler = std::set_terminate(&example::report_startup_failure);
  caf::actor_system system{cfg};
  std::set_terminate(previous_handler);
  return run(system, cfg);
}
