// Message atoms of Atoll's actor protocols (CAF 0.17 atom constants).
#pragma once

#include <caf/atom.hpp>

namespace atl {

// -- supervisor protocol --------------------------------------------------------

/// `which_children` request: replies `std::vector<child_info>`.
using which_children_atom = caf::atom_constant<caf::atom("whichchld")>;
/// `count_children` request: replies `child_counts`.
using count_children_atom = caf::atom_constant<caf::atom("countchld")>;
/// `start_child` request: replies the new child's `caf::actor` or an error.
using start_child_atom = caf::atom_constant<caf::atom("startchld")>;
/// `(adopt_children_atom, std::vector<caf::actor>)` request to a
/// `simple_one_for_one` supervisor whose template is a temporary worker:
/// takes actors its caller spawned itself as temporary children (see
/// `supervisor_flags::max_children`). Replies `ok_atom` or an error.
/// `(adopt_children_atom, adoption_batch)` does the same, and the batch
/// stops the actors that no supervisor takes (see `atl::adoption_batch`).
using adopt_children_atom = caf::atom_constant<caf::atom("adoptchld")>;
/// `terminate_child` request: replies `caf::unit` or an error.
using terminate_child_atom = caf::atom_constant<caf::atom("termchld")>;
/// `restart_child` request: replies the new child's `caf::actor` or an error.
using restart_child_atom = caf::atom_constant<caf::atom("restchld")>;
/// `delete_child` request: replies `caf::unit` or an error.
using delete_child_atom = caf::atom_constant<caf::atom("delchld")>;
/// Replies once the supervisor started all its initial children (or failed).
using await_started_atom = caf::atom_constant<caf::atom("awaitstart")>;
/// `drain` request: stop all children, refuse new ones, reply `ok_atom`.
using drain_atom = caf::atom_constant<caf::atom("drain")>;
/// Asks a supervisor to stop all children (reverse order) and exit.
using stop_atom = caf::atom_constant<caf::atom("stop")>;
/// `tree` request: replies a recursive `tree_node` snapshot.
using tree_atom = caf::atom_constant<caf::atom("tree")>;
/// Internal: shutdown timer of a terminating child.
using shutdown_timer_atom = caf::atom_constant<caf::atom("shuttimer")>;
/// Internal: retry a restart that failed.
using try_again_atom = caf::atom_constant<caf::atom("tryagain")>;

// -- reactor --------------------------------------------------------------------

/// `(socket_ready_atom, fd, events, token)`: the registered fd is ready.
using socket_ready_atom = caf::atom_constant<caf::atom("sockready")>;
/// `(reactor_timer_atom, tag)`: a reactor timer is due.
using reactor_timer_atom = caf::atom_constant<caf::atom("rtimer")>;

} // namespace atl
