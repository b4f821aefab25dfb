// The typed protocol a server's root actor answers: for actors (request /
// then, never blocking) and for other CAF nodes.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "atoll/handlers/connection_record.hpp"
#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/types.hpp"
#include "atoll/supervisors/server_options.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl {

/// Whether a server accepts connections.
enum class server_status : uint8_t {
  /// Listening.
  running,
  /// Suspended: the port is closed, existing connections go on.
  suspended,
  /// Stopping or stopped.
  stopped,
};

/// Returns "running", "suspended" or "stopped".
std::string to_string(server_status x);

/// A server's state as reported by `server_info_atom` of a TCP/TLS server
/// (`server::info`) and of a UDP server (`udp_server::info`).
struct server_info {
  /// Running, suspended or stopped.
  server_status status = server_status::stopped;
  /// The bound address while running.
  std::optional<endpoint> local;
  /// TCP/TLS: connections alive now (summed over the connection
  /// supervisors). UDP: handler actors alive now (one per peer or per
  /// datagram, as `udp_server_options::lifetime` says), the actors that
  /// `connections_atom` lists.
  uint64_t active_connections = 0;
};

/// Serializes a `server_info`.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, server_info& x) {
  // CAF 0.17 has no std::optional: a flag and the address.
  bool listening = x.local.has_value();
  endpoint local = listening ? *x.local : endpoint{};
  auto loaded = caf::meta::load_callback([&]() -> caf::error {
    x.local = listening ? std::optional<endpoint>{local} : std::nullopt;
    return caf::none;
  });
  return f(caf::meta::type_name("server_info"), x.status, listening, local, x.active_connections,
           loaded);
}

/// `(listener_info_atom)`: replies the bound `endpoint`, or
/// `errc::suspended`. Also answered by the server's `listener` child.
using listener_info_atom = caf::atom_constant<caf::atom("lstninfo")>;
/// `(listening_atom)`: replies the bound `endpoint` once the server started
/// (at once if it runs), or the error that made its start fail (e.g.
/// `errc::address_in_use`) if asked while it started. A server that failed
/// is gone: a later request fails with `caf::sec::request_receiver_down`
/// (monitor the server for its exit reason, or start it with
/// `spawn_server(self, opts)`, which reports the start's own error).
using listening_atom = caf::atom_constant<caf::atom("listening")>;
/// `(status_atom)`: replies the `server_status`.
using status_atom = caf::atom_constant<caf::atom("srvstatus")>;
/// `(server_info_atom)`: replies a `server_info` (status, address, active
/// connections).
using server_info_atom = caf::atom_constant<caf::atom("srvinfo")>;
/// `(connections_atom)`: replies the `connection_record` of every
/// connection alive, in the order of their actor ids. A connection that
/// does not answer within 5 s (busy in a blocking callback) is listed with
/// its handle alone.
using connections_atom = caf::atom_constant<caf::atom("srvconns")>;
/// `(suspend_atom)`: closes the port and stops accepting; connections go on.
/// Atomic: replies `ok` when every acceptor and the listener stopped, or an
/// error with everything as it was. Suspending a suspended server is `ok`.
/// Errors: `errc::shutting_down` (the server stops).
using suspend_atom = caf::atom_constant<caf::atom("suspend")>;
/// `(resume_atom)`: re-opens the port (a new one if started with port 0) and
/// accepts again. Atomic: on an error (e.g. `errc::address_in_use`) the
/// server stays suspended. Resuming a running server is `ok`. Errors:
/// the bind error, `errc::shutting_down`.
using resume_atom = caf::atom_constant<caf::atom("resume")>;
/// `(subscribe_atom, actor)`: `actor` receives a `connection_event` when a
/// connection of this server starts and when it stops, until it ends or
/// unsubscribes. Replies `ok`; subscribing twice is `ok` (one delivery).
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
/// `(unsubscribe_atom, actor)`: ends a subscription. Replies `ok`, or
/// `errc::not_found` if `actor` was not subscribed.
using unsubscribe_atom = caf::atom_constant<caf::atom("unsubscr")>;

/// The typed interface of a server's root actor (the supervisor at the top
/// of its tree). Every request is answered asynchronously: an actor never
/// blocks on it, also on a one-thread scheduler. `atl::register_types`
/// announces every type these messages carry, so that they can cross CAF
/// nodes; publishing a server to another node is not built yet.
///
/// Besides those listed here, the root speaks the supervisor protocol of
/// `atoll/runtime/supervisor.hpp` (`which_children_atom`, ...), and:
/// - `(tree_atom)` replies a `tree_node` snapshot of the whole tree;
/// - `(stop_atom)` stops the server gracefully (the port closes at once,
///   connections drain with `handle_shutdown` within the shutdown timeout,
///   then the tree stops) and replies `ok` when it is gone; a request to a
///   stopped server fails with `caf::sec::request_receiver_down`.
using server_actor = caf::typed_actor<
  caf::replies_to<listening_atom>::with<endpoint>,
  caf::replies_to<listener_info_atom>::with<endpoint>,
  caf::replies_to<status_atom>::with<server_status>,
  caf::replies_to<server_info_atom>::with<server_info>,
  caf::replies_to<connections_atom>::with<std::vector<connection_record>>,
  caf::replies_to<tree_atom>::with<tree_node>, caf::replies_to<suspend_atom>::with<caf::ok_atom>,
  caf::replies_to<resume_atom>::with<caf::ok_atom>, caf::replies_to<stop_atom>::with<caf::ok_atom>,
  caf::replies_to<subscribe_atom, caf::actor>::with<caf::ok_atom>,
  caf::replies_to<unsubscribe_atom, caf::actor>::with<caf::ok_atom>>;

/// Spawns a server without waiting for it: validates `opts` (synchronously;
/// nothing is bound yet) and returns its root actor at once. Ask it
/// `listening_atom` to learn when it listens (and where) or why it could
/// not start. Callable from anywhere, actors included; never blocks. The
/// server runs until stopped (`stop_atom`), also when every handle is
/// dropped. To run it under your own supervisor instead, add the spec of
/// `make_server_child` with `start_child_atom`. Errors:
/// `errc::missing_option` / `errc::invalid_option` (also for a certificate
/// or key that cannot be read or does not match, naming the option),
/// `errc::tls_error` (OpenSSL cannot make a context),
/// `errc::reactor_unavailable`.
[[nodiscard]] caf::expected<server_actor> spawn_server(caf::actor_system& sys,
                                                       server_options opts);

/// A server that listens: its root actor and its bound address.
struct listening_server {
  /// The server's root actor.
  server_actor root;
  /// Where it listens (the real port when started with port 0).
  endpoint local;
};

/// Spawns a server from inside the actor `self` without blocking it, and
/// calls `then` on `self`'s thread once the server listens, or with the
/// error of the validation or of the start (`errc::address_in_use`, ...;
/// nothing is left running then). `then` is not called if `self` ends
/// first. The server is not linked to `self`: it runs until stopped. A small
/// helper actor waits for the start.
void spawn_server(caf::event_based_actor* self, server_options opts,
                  std::function<void(caf::expected<listening_server>)> then);

/// Spawns a server from a message handler of the actor `self`, without
/// blocking it, and answers the request being handled once the server
/// listens: with the server's root actor and its bound address, or with
/// the error of the validation or of the start (`errc::address_in_use`,
/// ...; nothing is left running then). Return the promise from the
/// handler:
///
///     [=](start_atom) { return atl::spawn_server(self, opts); }
///
/// The server is not linked to `self`: it runs until stopped. Runs on
/// `self`'s thread; a small helper actor waits for the start.
[[nodiscard]] caf::typed_response_promise<server_actor, endpoint>
spawn_server(caf::event_based_actor* self, server_options opts);

} // namespace atl
