#include "atoll/supervisors/inspector.hpp"

#include <algorithm>
#include <map>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/openssl/remote_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/transports/tls.hpp"

namespace atl {

namespace {

/// A shown server: a TCP/TLS server or a UDP server.
struct shown_server {
  caf::actor handle;
  bool udp = false;

  server_actor tcp() const {
    return caf::actor_cast<server_actor>(handle);
  }
  udp_server_actor datagram() const {
    return caf::actor_cast<udp_server_actor>(handle);
  }
};

/// The inspector's state: the servers it shows.
struct inspector_state {
  std::map<std::string, shown_server> servers;
  bool control = false;
  std::chrono::milliseconds server_timeout{5000};
  static inline const char* name = "atl.inspector";
};

using inspector_ptr = inspector_actor::stateful_pointer<inspector_state>;

/// The server called `name`, or an error naming the ones there are.
caf::expected<shown_server> find_server(inspector_ptr self, const std::string& name) {
  auto& servers = self->state.servers;
  if (auto i = servers.find(name); i != servers.end())
    return i->second;
  std::string known;
  for (auto& [n, _] : servers)
    known += (known.empty() ? "" : ", ") + n;
  return caf::make_error(errc::not_found, "no server named \"" + name + "\" (servers: "
                                            + (known.empty() ? "none" : known) + ")");
}

/// Control operations need the node's permission.
caf::error check_control(inspector_ptr self) {
  if (self->state.control)
    return {};
  return caf::make_error(errc::not_permitted,
                         "control is not enabled on this node (its inspector was spawned "
                         "without control)");
}

/// Hands a request on to the server `srv`, TCP or UDP (same reply type).
template <class Reply, class Atom>
caf::result<Reply> delegate_to(inspector_ptr self, const shown_server& srv, Atom atom) {
  if (srv.udp)
    return self->delegate(srv.datagram(), atom);
  return self->delegate(srv.tcp(), atom);
}

/// Hands a request on to the server called `name`.
template <class Reply, class Atom>
caf::result<Reply> delegate_named(inspector_ptr self, Atom atom, const std::string& name) {
  auto srv = find_server(self, name);
  if (!srv)
    return srv.error();
  return delegate_to<Reply>(self, *srv, atom);
}

/// Forwards a control request to the server called `name`.
template <class Atom>
caf::result<caf::ok_atom> forward_control(inspector_ptr self, Atom atom, const std::string& name) {
  if (auto err = check_control(self))
    return err;
  return delegate_named<caf::ok_atom>(self, atom, name);
}

/// Shows `srv` under `name` (local senders only).
caf::result<caf::ok_atom> add(inspector_ptr self, std::string& name, shown_server srv) {
  if (auto& from = self->current_sender(); from && from->node() != self->node())
    return caf::make_error(errc::not_permitted, "servers are added on the inspector's node");
  if (!srv.handle)
    return caf::make_error(errc::invalid_option, "add_server: an invalid server handle");
  if (name.empty())
    return caf::make_error(errc::invalid_option, "add_server: an empty server name");
  auto& servers = self->state.servers;
  if (servers.count(name) != 0)
    return caf::make_error(errc::already_present,
                           "a server named \"" + name + "\" is shown already");
  self->monitor(srv.handle);
  servers.emplace(std::move(name), std::move(srv));
  return caf::ok_atom::value;
}

inspector_actor::behavior_type inspector(inspector_ptr self, bool control,
                                         std::chrono::milliseconds server_timeout) {
  self->state.control = control;
  self->state.server_timeout = server_timeout;
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& servers = self->state.servers;
    for (auto i = servers.begin(); i != servers.end(); ++i)
      if (i->second.handle.address() == msg.source) {
        servers.erase(i);
        return;
      }
  });
  return {
    [self](servers_atom) -> caf::result<std::vector<inspected_server>> {
      auto& servers = self->state.servers;
      if (servers.empty())
        return std::vector<inspected_server>{};
      auto rp = self->make_response_promise<std::vector<inspected_server>>();
      auto list = std::make_shared<std::vector<inspected_server>>();
      auto left = std::make_shared<size_t>(servers.size());
      for (auto& [name, srv] : servers) {
        auto answered = [rp, list, left, n{name}](server_info info) mutable {
          list->push_back(inspected_server{std::move(n), std::move(info)});
          if (--*left == 0) {
            std::sort(list->begin(), list->end(),
                      [](auto& a, auto& b) { return a.name < b.name; });
            rp.deliver(std::move(*list));
          }
        };
        // TCP and UDP servers reply the same `server_info`.
        auto replied = [answered](server_info& info) mutable { answered(std::move(info)); };
        auto failed = [answered](caf::error&) mutable { answered(server_info{}); };
        auto timeout = self->state.server_timeout;
        if (srv.udp)
          self->request(srv.datagram(), timeout, server_info_atom::value).then(replied, failed);
        else
          self->request(srv.tcp(), timeout, server_info_atom::value).then(replied, failed);
      }
      return rp;
    },
    [self](add_server_atom, std::string& name,
           server_actor& srv) -> caf::result<caf::ok_atom> {
      return add(self, name, shown_server{caf::actor_cast<caf::actor>(srv), false});
    },
    [self](add_server_atom, std::string& name,
           udp_server_actor& srv) -> caf::result<caf::ok_atom> {
      return add(self, name, shown_server{caf::actor_cast<caf::actor>(srv), true});
    },
    [self](tree_atom atom, const std::string& name) -> caf::result<tree_node> {
      return delegate_named<tree_node>(self, atom, name);
    },
    [self](connections_atom atom,
           const std::string& name) -> caf::result<std::vector<connection_record>> {
      return delegate_named<std::vector<connection_record>>(self, atom, name);
    },
    [self](suspend_atom atom, const std::string& name) -> caf::result<caf::ok_atom> {
      return forward_control(self, atom, name);
    },
    [self](resume_atom atom, const std::string& name) -> caf::result<caf::ok_atom> {
      return forward_control(self, atom, name);
    },
    [self](stop_atom atom, const std::string& name) -> caf::result<caf::ok_atom> {
      return forward_control(self, atom, name);
    },
    [self](control_atom) { return self->state.control; },
    [self](scheduler_atom) -> caf::result<scheduler_stats> {
      auto io = reactor::of(self->system());
      if (!io)
        return io.error();
      return (*io)->stats();
    },
  };
}

/// Whether `sys` can link nodes with CAF's OpenSSL module, with mutual
/// authentication: the module, a certificate, its key and a CA, loadable.
caf::error check_secure_links(caf::actor_system& sys, const std::string& what) {
  if (!sys.has_openssl_manager())
    return caf::make_error(errc::invalid_option,
                           what + " with secure links needs CAF's OpenSSL module: load "
                                  "caf::openssl::manager into the actor system's config");
  auto& cfg = sys.config();
  // (A certificate without a key, or a key without a certificate, stops
  // CAF's module already at the actor system's start.)
  const char* missing = nullptr;
  if (cfg.openssl_certificate.empty())
    missing = "openssl.certificate";
  else if (cfg.openssl_cafile.empty() && cfg.openssl_capath.empty())
    missing = "openssl.cafile (or openssl.capath)";
  if (missing != nullptr)
    return caf::make_error(errc::invalid_option,
                           what + " with secure links: " + missing
                             + " is not set (without it, nodes would not authenticate each other)");
  // Loaded here, so that a bad file fails now, not at each node's handshake.
  tls_options check;
  check.certificates.push_back({cfg.openssl_certificate, cfg.openssl_key, cfg.openssl_passphrase});
  if (!cfg.openssl_cafile.empty()) {
    check.verify = tls_verify::required;
    check.cafile = cfg.openssl_cafile;
  }
  if (auto ctx = tls_context::make(std::move(check)); !ctx) {
    return caf::make_error(errc::invalid_option,
                           what + " with secure links: " + error_context(ctx.error()));
  }
  return {};
}

} // namespace

inspector_actor spawn_local_inspector(caf::actor_system& sys, const inspector_options& opts) {
  auto timeout = opts.server_timeout > std::chrono::milliseconds::zero()
                   ? opts.server_timeout
                   : std::chrono::milliseconds{5000};
  return sys.spawn(inspector, opts.control, timeout);
}

caf::expected<published_inspector> spawn_inspector(caf::actor_system& sys,
                                                   inspector_options opts) {
  if (!sys.has_middleman())
    return caf::make_error(errc::invalid_option,
                           "the inspector needs CAF's middleman: load caf::io::middleman into "
                           "the actor system's config");
  if (opts.host.empty())
    return caf::make_error(errc::invalid_option, "inspector host: empty");
  if (opts.server_timeout <= std::chrono::milliseconds::zero())
    return caf::make_error(errc::invalid_option, "inspector server_timeout: must be positive");
  if (opts.secure)
    if (auto err = check_secure_links(sys, "the inspector"))
      return err;
  auto handle = spawn_local_inspector(sys, opts);
  auto port = opts.secure ? caf::openssl::publish(handle, opts.port, opts.host.c_str(), true)
                          : sys.middleman().publish(handle, opts.port, opts.host.c_str(), true);
  if (!port) {
    caf::anon_send_exit(handle, caf::exit_reason::user_shutdown);
    return caf::make_error(errc::start_failed, "cannot publish the inspector on " + opts.host
                                                 + ":" + std::to_string(opts.port) + ": "
                                                 + sys.render(port.error()));
  }
  return published_inspector{std::move(handle), *port};
}

caf::expected<inspector_actor> connect_inspector(caf::actor_system& sys, const std::string& host,
                                                 uint16_t port, bool secure) {
  if (!sys.has_middleman())
    return caf::make_error(errc::invalid_option,
                           "connecting to an inspector needs CAF's middleman: load "
                           "caf::io::middleman into the actor system's config");
  if (secure)
    if (auto err = check_secure_links(sys, "connecting to an inspector"))
      return err;
  auto handle = secure ? caf::openssl::remote_actor<inspector_actor>(sys, host, port)
                       : sys.middleman().remote_actor<inspector_actor>(host, port);
  if (!handle)
    return caf::make_error(errc::closed, "cannot reach the inspector at " + host + ":"
                                           + std::to_string(port) + ": "
                                           + sys.render(handle.error()));
  return std::move(*handle);
}

} // namespace atl
