// The inspector: a node's servers seen, and when the node allows it
// controlled, from other CAF nodes through CAF's middleman (remote actors).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "atoll/handlers/connection_record.hpp"
#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/reactor.hpp"
#include "atoll/runtime/types.hpp"
#include "atoll/supervisors/server_actor.hpp"
#include "atoll/supervisors/udp_server.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl {

/// `(servers_atom)` → `std::vector<inspected_server>`: the node's servers.
using servers_atom = caf::atom_constant<caf::atom("servers")>;
/// `(add_server_atom, name, server_actor)` or `(add_server_atom, name,
/// udp_server_actor)` → `ok`: shows a server under `name` (from the
/// inspector's own node only).
using add_server_atom = caf::atom_constant<caf::atom("addserver")>;

/// `(scheduler_atom)` → `scheduler_stats`: the state of the node's scheduler
/// (`reactor::stats`).
using scheduler_atom = caf::atom_constant<caf::atom("scheduler")>;
/// `(control_atom)` → `bool`: whether remote nodes may suspend, resume and
/// stop the node's servers.
using control_atom = caf::atom_constant<caf::atom("control")>;
/// `(text_message_atom, std::string text)`: a text for a connection, as
/// `atoll-observer send` sends it to a connection actor. A handler that
/// takes it answers with a `std::string`; one that does not gives CAF's
/// `unexpected_message` error.
using text_message_atom = caf::atom_constant<caf::atom("textmsg")>;

/// One server as the inspector lists it (without its handle: control goes
/// through the inspector, which checks it is allowed).
struct inspected_server {
  /// The name it was added under.
  std::string name;
  /// Its status, listening address and active connections (status
  /// `stopped` if it did not answer).
  server_info info;
};

/// Serializes an `inspected_server` (CAF inspection: it crosses nodes).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inspected_server& x) {
  return f(caf::meta::type_name("inspected_server"), x.name, x.info);
}

/// The inspector's typed interface. Server names select a server (error
/// `errc::not_found` for an unknown name). A UDP server's `server_info`
/// counts its handler actors as connections, and its connection records
/// are its handler actors' (transport "udp"). `tree_atom` and
/// `connections_atom` are answered by the server itself (the connection
/// records' handles are usable from the remote node: messages to them reach
/// the connection actors). `suspend_atom`, `resume_atom` and `stop_atom` fail
/// with `errc::not_permitted` unless the inspector was spawned with control.
/// `scheduler_atom` is answered by the inspector (`errc::reactor_unavailable`
/// while its system shuts down, or on a system without `atl::io_scheduler`).
using inspector_actor = caf::typed_actor<
  caf::replies_to<servers_atom>::with<std::vector<inspected_server>>,
  caf::replies_to<add_server_atom, std::string, server_actor>::with<caf::ok_atom>,
  caf::replies_to<add_server_atom, std::string, udp_server_actor>::with<caf::ok_atom>,
  caf::replies_to<tree_atom, std::string>::with<tree_node>,
  caf::replies_to<connections_atom, std::string>::with<std::vector<connection_record>>,
  caf::replies_to<suspend_atom, std::string>::with<caf::ok_atom>,
  caf::replies_to<resume_atom, std::string>::with<caf::ok_atom>,
  caf::replies_to<stop_atom, std::string>::with<caf::ok_atom>,
  caf::replies_to<control_atom>::with<bool>,
  caf::replies_to<scheduler_atom>::with<scheduler_stats>>;

/// Where and how an inspector is published.
struct inspector_options {
  /// The TCP port of CAF's middleman for it (0: a free one).
  uint16_t port = 0;
  /// The address it listens on. Loopback by default: a remote node that
  /// connects can message every connection actor (and, with `control`, stop
  /// servers), so wider exposure needs a protected network or `secure`.
  std::string host = "127.0.0.1";
  /// Publishes through CAF's OpenSSL module instead of plain TCP: both nodes
  /// present a certificate and accept only one signed by their CA (TLS with
  /// mutual authentication). Needs `caf::openssl::manager` loaded into the
  /// actor system's config, and CAF's options `openssl.certificate`,
  /// `openssl.key` (`openssl.passphrase` for an encrypted key) and
  /// `openssl.cafile` or `openssl.capath` set. Remote nodes connect with
  /// `connect_inspector(..., true)`.
  bool secure = false;
  /// Allows remote nodes to suspend, resume and stop servers.
  bool control = false;
  /// How long the inspector waits for a server's answer when listing.
  std::chrono::milliseconds server_timeout{5000};
};

/// A published inspector.
struct published_inspector {
  /// The inspector (local); add servers with `add_server_atom`. Stop it
  /// with an exit message (`caf::exit_reason::user_shutdown`) before the
  /// actor system ends, or the system waits for it.
  inspector_actor handle;
  /// The port it is published on.
  uint16_t port = 0;
};

/// Spawns an inspector and publishes it with `sys`'s middleman on
/// `opts.host:opts.port` (with `opts.secure`: through CAF's OpenSSL module).
/// Errors: `errc::invalid_option` when `sys` has no middleman (load
/// `caf::io::middleman` into the config) or the host is empty; with
/// `secure`, also without `caf::openssl::manager`, without a certificate,
/// key or CA in the config, or when the certificate or key cannot be loaded
/// (a missing file, a key that does not match); `errc::start_failed` when
/// publishing fails (e.g. a port in use);
/// nothing is left running on an error. Blocks the calling thread until
/// published (call it outside actors, as a program's set-up).
[[nodiscard]] caf::expected<published_inspector> spawn_inspector(caf::actor_system& sys,
                                                                 inspector_options opts);

/// Spawns an inspector that is not published (for the observer page, or
/// to publish yourself, e.g. with CAF's OpenSSL module). `opts.port` and
/// `opts.host` are not used; no middleman is needed. Stop it with an exit
/// message before the actor system ends.
[[nodiscard]] inspector_actor spawn_local_inspector(caf::actor_system& sys,
                                                    const inspector_options& opts = {});

/// Connects to the inspector published on `host:port` (another node)
/// through `sys`'s middleman; with `secure`, through CAF's OpenSSL module
/// (to an inspector published with `inspector_options::secure`; `sys` needs
/// the same set-up). Errors: `errc::invalid_option` without a middleman (or,
/// with `secure`, as for `spawn_inspector`), `errc::closed` when the node
/// cannot be reached or the handshake fails (e.g. a certificate the node
/// does not trust). Blocks the calling thread (CAF's `remote_actor`).
[[nodiscard]] caf::expected<inspector_actor>
connect_inspector(caf::actor_system& sys, const std::string& host, uint16_t port,
                  bool secure = false);

} // namespace atl
