// What one connection looks like from outside: its record (asked of a
// connection actor, listed by a server) and the start/stop events a server
// delivers to subscribed actors.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include "atoll/runtime/types.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl {

/// `(connection_info_atom)` to a connection actor: replies its
/// `connection_record`. Answered in every phase (also while the handler's
/// own messages wait for the handshake), by the built-in connection actor
/// and by actors driven by `atl::stream_connection`.
using connection_info_atom = caf::atom_constant<caf::atom("conninfo")>;

/// Where a connection is in its life.
enum class connection_state : uint8_t {
  /// Reading the PROXY protocol header.
  proxy,
  /// Transport handshake (TLS), before `handle_connection`.
  handshaking,
  /// Open: the handler runs.
  open,
  /// Ending: writing its last output, or a server stop's drain (a TLS
  /// handshake in progress when the stop came goes on first).
  draining,
  /// Ended (the state in a stop event).
  closed,
};

/// Returns "proxy", "handshaking", "open", "draining" or "closed".
std::string to_string(connection_state x);

/// One connection as its actor reports it. Plain data: it can be printed
/// and sent to other CAF nodes.
struct connection_record {
  /// The connection actor (message it, monitor it).
  caf::actor handle;
  /// The client (behind a PROXY balancer: the client the header names).
  endpoint peer;
  /// The server's side of the connection.
  endpoint local;
  /// "tcp" or "tls" (after a STARTTLS upgrade: "tls").
  std::string transport;
  /// The handler's name (`server_options::handler_name`, or the custom
  /// connection process's).
  std::string handler;
  /// Where the connection is in its life.
  connection_state state = connection_state::open;
  /// Bytes received from the client.
  uint64_t recv_oct = 0;
  /// Receive calls that got bytes.
  uint64_t recv_cnt = 0;
  /// Bytes written to the client.
  uint64_t send_oct = 0;
  /// Send calls that wrote bytes.
  uint64_t send_cnt = 0;
  /// Bytes queued and not yet written.
  uint64_t send_pend = 0;
  /// Time since the connection was accepted.
  std::chrono::nanoseconds age{0};
};

/// The record as the details of its node in a tree snapshot: peer, local,
/// transport, handler, state, recv_oct, send_oct, recv_cnt, send_cnt,
/// send_pend, age_ms.
std::vector<tree_detail> to_details(const connection_record& rec);

/// Serializes a `connection_record`.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, connection_record& x) {
  return f(caf::meta::type_name("connection_record"), x.handle, x.peer, x.local, x.transport,
           x.handler, x.state, x.recv_oct, x.recv_cnt, x.send_oct, x.send_cnt, x.send_pend,
           x.age);
}

/// A connection started or stopped, delivered to the actors subscribed to a
/// server (`atl::subscribe_atom`) as a `connection_event` message.
struct connection_event {
  /// Started (the connection span began: after the PROXY header, before the
  /// handshake) or stopped (its last event; the record's state is `closed`
  /// and its counters are final).
  enum class kind_t : uint8_t {
    /// The connection started.
    started,
    /// The connection ended.
    stopped,
  };
  /// Which of the two.
  kind_t kind = kind_t::started;
  /// The connection.
  connection_record connection;
  /// Stopped only: the stop event's reason (`peer_closed`, `local_closed`,
  /// `handler_closed`, `timeout`, `handshake_timeout`, `shutdown`, `error`,
  /// `handshake_error`, `exception`, `proxy_error`, `source_limit`).
  std::string reason;
  /// Stopped only: the error's text, empty if none.
  std::string error;
};

/// Serializes a `connection_event`.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, connection_event& x) {
  return f(caf::meta::type_name("connection_event"), x.kind, x.connection, x.reason, x.error);
}

} // namespace atl
