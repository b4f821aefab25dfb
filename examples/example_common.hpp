// What Atoll's example servers share: CAF-style command-line options
// (parsed strictly, see example_options.hpp), the "listening on
// ADDRESS:PORT" line, and a graceful stop on SIGINT/SIGTERM.
// Uses the public API only.
#pragma once

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "atoll/all.hpp"
#include "example_inspection.hpp"
#include "example_options.hpp"
#include "stop_signals.hpp"

namespace example {

/// The verdict of a handler after `sock.send(...)` returned `err`: go on;
/// when the client is gone (it reset or closed: `errc::closed`), close
/// quietly, as the read side does; any other failure is an error verdict
/// (logged unless `silent_terminate_on_error`, then `handle_error`).
inline atl::verdict after_send(const caf::error& err) {
  if (!err)
    return atl::verdict::proceed();
  if (err == atl::errc::closed)
    return atl::verdict::close();
  return atl::verdict::error(err);
}

/// The observability options of every example, TCP and UDP: `--log-level`
/// (`--log`), `--telemetry-json`, `--metrics-port`, `--metrics-host` and the
/// inspection options (see example_inspection.hpp).
class observable_config : public strict_config {
public:
  std::string log_level;
  std::string log_alias;
  bool telemetry_json = false;
  int metrics_port = -1;
  std::string metrics_host = "loopback";
  inspection_options inspection;

  /// The metrics endpoint's options, or nullopt when `--metrics-port` is off.
  /// (`--metrics-host` is checked also then.)
  caf::expected<std::optional<atl::metrics_endpoint_options>> metrics_options() const {
    auto addr = atl::bind_address::parse(metrics_host);
    if (!addr)
      return caf::make_error(atl::errc::invalid_option,
                             "--metrics-host: " + atl::describe(addr.error()));
    if (metrics_port == -1)
      return std::optional<atl::metrics_endpoint_options>{};
    if (metrics_port < -1 || metrics_port > 65535)
      return caf::make_error(atl::errc::invalid_option,
                             "--metrics-port must be within 0..65535, or -1 (off)");
    atl::metrics_endpoint_options mo;
    mo.port = static_cast<uint32_t>(metrics_port);
    mo.address = *addr;
    return std::optional<atl::metrics_endpoint_options>{mo};
  }

  /// The level of `--log-level` (or `--log`), or nullopt for none.
  std::optional<atl::log_level> log() const {
    return atl::parse_log_level(log_level.empty() ? log_alias : log_level);
  }

protected:
  /// Adds the options to the command line (call from the constructor).
  void add_observability_options() {
    opt_group{custom_options_, "global"}
      .add(log_level, "log-level",
           "log telemetry events to stderr at none, error, info, debug or trace "
           "(each level includes the ones before it; default: none)")
      .add(log_alias, "log", "the same as --log-level")
      .add(telemetry_json, "telemetry-json",
           "write every telemetry event to stderr as one JSON object per line")
      .add(metrics_port, "metrics-port",
           "serve Prometheus metrics at http://METRICS-HOST:PORT/metrics, 0..65535 "
           "(0: pick a free port; -1: off, the default)")
      .add(metrics_host, "metrics-host",
           "bind address of the metrics endpoint (default: loopback)");
    inspection.add_to(custom_options_);
  }

  /// What is wrong with the options, if anything.
  std::optional<std::string> check_observability() const {
    for (const auto& [name, value] : {std::pair{"--log-level", &log_level}, {"--log", &log_alias}})
      if (!value->empty() && *value != "none" && !atl::parse_log_level(*value))
        return std::string{name} + " must be none, error, info, debug or trace, got \"" + *value
               + "\"";
    if (!log_level.empty() && !log_alias.empty() && log_level != log_alias)
      return "--log is an alias of --log-level: give one, or the same value to both";
    if (auto mo = metrics_options(); !mo)
      return atl::describe(mo.error());
    return inspection.check();
  }
};

/// What an example's observability options run around its server: the
/// logger, the JSON writer and the metrics subscriber (attached before the
/// server starts, so that they see its first event), then the metrics
/// endpoint and the inspection services.
class observability {
public:
  /// Attaches the logger, the JSON writer and the metrics subscriber to
  /// `bus`. False after saying why on stderr.
  bool attach(const std::shared_ptr<atl::telemetry::bus>& bus, const observable_config& cfg) {
    if (auto level = cfg.log()) {
      if (auto err = atl::attach_logger(*bus, *level)) {
        say(std::string{"cannot attach the logger: "} + atl::describe(err) + "\n");
        return false;
      }
    }
    if (cfg.telemetry_json)
      json_.emplace(bus, stderr);
    if (auto mo = cfg.metrics_options(); mo && *mo) {
      metrics_opts_ = **mo;
      metrics_ = std::make_shared<atl::server_metrics>(bus);
    }
    return true;
  }

  /// Starts the metrics endpoint and the inspection services once the
  /// server runs; `show` adds the server to the inspector. False after
  /// saying why on stderr, with nothing of them left running.
  bool start(caf::actor_system& sys, const observable_config& cfg,
             const std::function<void(const atl::inspector_actor&)>& show) {
    if (metrics_) {
      auto ep = atl::start_metrics_endpoint(sys, metrics_, *metrics_opts_);
      if (!ep) {
        say("cannot start the metrics endpoint: " + atl::describe(ep.error()) + "\n");
        return false;
      }
      endpoint_ = *ep;
    }
    if (!services_.start(sys, cfg.inspection, show)) {
      static_cast<void>(stop());
      return false;
    }
    return true;
  }

  /// Says on stderr where the services listen (after "listening on").
  void print() {
    services_.print();
    if (endpoint_) {
      if (auto where = endpoint_->listener_info())
        say(std::string{"metrics on http://"} + atl::to_string(*where) + "/metrics\n");
    }
  }

  /// The inspection services (for `run_until_stopped`).
  inspector_services& services() noexcept {
    return services_;
  }

  /// Stops the metrics endpoint. False after saying why on stderr.
  bool stop() {
    if (!endpoint_)
      return true;
    auto err = endpoint_->stop();
    endpoint_.reset();
    if (err) {
      say(std::string{"stop of the metrics endpoint: "} + atl::describe(err) + "\n");
      return false;
    }
    return true;
  }

private:
  std::optional<atl::telemetry::json_writer> json_;
  std::optional<atl::metrics_endpoint_options> metrics_opts_;
  std::shared_ptr<atl::server_metrics> metrics_;
  std::optional<atl::server> endpoint_;
  inspector_services services_;
};

/// Options every example server accepts (`--help` lists them, with their
/// limits; every value is checked before the server starts).
class server_config : public observable_config {
public:
  int port = 4000;
  std::string host = "any";
  int num_acceptors = 100;
  int num_listen_sockets = 1;
  int num_connections = 16384;
  int read_timeout;
  int shutdown_timeout = 15000;
  bool reuseport = false;
  bool detached = false;
  bool print_tree = false;
  std::string proxy_protocol = "off";
  std::string proxy_trusted = "127.0.0.0/8,::1";
  int proxy_timeout = 5000;
  int max_connections_per_source = 0;
  std::string connection_actor = "auto";

  /// `default_read_timeout`: the `--read-timeout` (ms, 0: none) when the
  /// command line has none. `lightweight_capable`: the example's handler
  /// never calls `self()`, so it offers `--connection-actor` (without it,
  /// every connection gets an `event_based_actor`).
  explicit server_config(int default_read_timeout = 60000, bool lightweight_capable = true)
    : read_timeout(default_read_timeout), lightweight_capable_(lightweight_capable) {
    atl::register_types(*this);
    auto limit = [](uint32_t n) { return std::to_string(n); };
    opt_group{custom_options_, "global"}
      .add(port, "port,p", "TCP port, 0..65535 (0: pick a free port)")
      .add(host, "host", "bind address: any, any6, loopback, loopback6, an IP, or unix:PATH")
      .add(num_acceptors, "num-acceptors",
           "number of acceptors, 1.." + limit(atl::server_options::max_num_acceptors))
      .add(num_listen_sockets, "num-listen-sockets",
           "listen sockets, 1.." + limit(atl::server_options::max_num_listen_sockets)
             + " and at most --num-acceptors (>1 needs --reuseport)")
      .add(num_connections, "num-connections", "connections per acceptor (0: unlimited)")
      .add(read_timeout, "read-timeout",
           "client silence limit in ms (0: none; default: " + std::to_string(read_timeout) + ")")
      .add(shutdown_timeout, "shutdown-timeout", "drain limit at stop in ms (-1: infinity)")
      .add(reuseport, "reuseport", "set SO_REUSEPORT on listen sockets")
      .add(detached, "detached", "run each connection actor on its own thread")
      .add(print_tree, "print-tree", "print the supervision tree to stderr once listening")
      .add(proxy_protocol, "proxy-protocol",
           "expect a PROXY protocol header on every connection: off (default), v1, v2 or any")
      .add(proxy_trusted, "proxy-trusted",
           "comma-separated addresses or networks allowed to send PROXY headers "
           "(default: 127.0.0.0/8,::1)")
      .add(proxy_timeout, "proxy-timeout",
           "how long a connection may take to send its PROXY header, in ms (default: 5000)")
      .add(max_connections_per_source, "max-connections-per-source",
           "connections at once from one client address (0: unlimited, the default)");
    if (lightweight_capable_)
      opt_group{custom_options_, "global"}.add(
        connection_actor, "connection-actor",
        "each connection's actor: light (a lightweight actor: fewer instructions and bytes "
        "per connection), event-based (CAF's event_based_actor), or auto (light unless "
        "--detached; the default)");
    add_observability_options();
  }

  /// Whether connections get lightweight actors (`--connection-actor`).
  caf::expected<bool> lightweight() const {
    if (connection_actor == "auto")
      return lightweight_capable_ && !detached;
    if (connection_actor == "event-based")
      return false;
    if (connection_actor == "light") {
      if (detached)
        return caf::make_error(atl::errc::invalid_option,
                               "--connection-actor=light excludes --detached (a detached "
                               "connection needs an event-based actor)");
      return true;
    }
    return caf::make_error(atl::errc::invalid_option,
                           "--connection-actor must be auto, light or event-based, got \""
                             + connection_actor + "\"");
  }

  /// The PROXY protocol settings, or nullopt when `--proxy-protocol=off`
  /// (`--proxy-trusted` and `--proxy-timeout` are checked also then).
  caf::expected<std::optional<atl::proxy_protocol_options>> proxy_options() const {
    atl::proxy_protocol_options po;
    std::string_view rest = proxy_trusted;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      auto item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      auto net = atl::ip_network::parse(item);
      if (!net)
        return caf::make_error(atl::errc::invalid_option,
                               "--proxy-trusted: " + atl::describe(net.error()));
      po.trusted.push_back(*net);
    }
    if (po.trusted.empty())
      return caf::make_error(atl::errc::invalid_option,
                             "--proxy-trusted must list at least one address or network");
    if (proxy_timeout <= 0)
      return caf::make_error(atl::errc::invalid_option, "--proxy-timeout must be positive");
    po.timeout = std::chrono::milliseconds{proxy_timeout};
    if (proxy_protocol == "off")
      return std::optional<atl::proxy_protocol_options>{};
    auto version = atl::parse_proxy_protocol_version(proxy_protocol);
    if (!version)
      return caf::make_error(atl::errc::invalid_option,
                             "--proxy-protocol must be off, v1, v2 or any, got \""
                               + proxy_protocol + "\"");
    po.version = *version;
    return std::optional<atl::proxy_protocol_options>{std::move(po)};
  }

  /// Turns the command line into server options (validated by the server,
  /// which enforces the upper limits).
  caf::expected<atl::server_options> options() const {
    atl::server_options opts;
    if (port < 0 || port > 65535)
      return caf::make_error(atl::errc::invalid_option, "--port must be within 0..65535");
    opts.port = static_cast<uint32_t>(port);
    auto addr = atl::bind_address::parse(host);
    if (!addr)
      return addr.error();
    opts.address = *addr;
    if (num_acceptors < 1 || num_listen_sockets < 1)
      return caf::make_error(atl::errc::invalid_option,
                             "--num-acceptors and --num-listen-sockets must be at least 1");
    opts.num_acceptors = static_cast<uint32_t>(num_acceptors);
    opts.num_listen_sockets = static_cast<uint32_t>(num_listen_sockets);
    if (num_connections < 0)
      return caf::make_error(atl::errc::invalid_option, "--num-connections must not be negative");
    if (num_connections == 0)
      opts.num_connections.reset();
    else
      opts.num_connections = static_cast<uint32_t>(num_connections);
    if (read_timeout < 0)
      return caf::make_error(atl::errc::invalid_option,
                             "--read-timeout must not be negative (0: none)");
    opts.read_timeout =
      read_timeout == 0 ? atl::infinite : std::chrono::milliseconds{read_timeout};
    if (shutdown_timeout < -1)
      return caf::make_error(atl::errc::invalid_option,
                             "--shutdown-timeout must be at least -1 (-1: infinity)");
    if (shutdown_timeout == -1)
      opts.shutdown_timeout = atl::shutdown_policy::infinity();
    else
      opts.shutdown_timeout =
        atl::shutdown_policy::timeout(std::chrono::milliseconds{shutdown_timeout});
    opts.transport.reuseport = reuseport;
    opts.detached_connections = detached;
    auto light = lightweight();
    if (!light)
      return light.error();
    opts.lightweight_connections = *light;
    auto proxy = proxy_options();
    if (!proxy)
      return proxy.error();
    opts.proxy_protocol = std::move(*proxy);
    if (max_connections_per_source < 0)
      return caf::make_error(atl::errc::invalid_option,
                             "--max-connections-per-source must not be negative (0: unlimited)");
    if (max_connections_per_source > 0)
      opts.max_connections_per_source = static_cast<uint32_t>(max_connections_per_source);
    return opts;
  }

protected:
  std::optional<std::string> check_options() const override {
    if (auto problem = check_observability())
      return problem;
    if (auto po = proxy_options(); !po)
      return atl::describe(po.error());
    if (auto light = lightweight(); !light)
      return atl::describe(light.error());
    return std::nullopt;
  }

private:
  bool lightweight_capable_;
};

/// The options of the TLS examples on top of the common ones.
class tls_server_config : public server_config {
public:
  std::string certfile;
  std::string keyfile;
  std::string cafile;
  std::string verify = "none";
  std::vector<std::string> alpn;
  int handshake_timeout = 5000;

  tls_server_config() {
    opt_group{custom_options_, "global"}
      .add(certfile, "certfile", "PEM certificate (with chain)")
      .add(keyfile, "keyfile", "PEM private key")
      .add(cafile, "cafile", "trusted CAs for client certificates (needs --verify=optional or required)")
      .add(verify, "verify", "client certificates: none, optional or required")
      .add(alpn, "alpn", "ALPN protocols in order of preference, e.g. [\"h2\",\"http/1.1\"]")
      .add(handshake_timeout, "handshake-timeout",
           "TLS handshake limit in ms (0: none; default: 5000)");
  }

  /// The TLS settings from the command line (checked when the server starts).
  caf::expected<atl::tls_options> tls_options() const {
    if (certfile.empty() || keyfile.empty())
      return caf::make_error(atl::errc::missing_option, "--certfile and --keyfile are required");
    atl::tls_options tls;
    tls.certificates.push_back({certfile, keyfile, {}});
    tls.cafile = cafile;
    tls.alpn = alpn;
    if (verify == "optional")
      tls.verify = atl::tls_verify::optional;
    else if (verify == "required")
      tls.verify = atl::tls_verify::required;
    else if (verify != "none")
      return caf::make_error(atl::errc::invalid_option, "--verify must be none, optional or required");
    if (!cafile.empty() && tls.verify == atl::tls_verify::none)
      return caf::make_error(atl::errc::invalid_option,
                             "--cafile needs --verify=optional or --verify=required (with "
                             "--verify=none no client certificate is asked for)");
    return tls;
  }

  /// The TLS settings, or nullopt after printing why they are invalid.
  std::optional<atl::tls_options> tls_options_or_report() const {
    auto tls = tls_options();
    if (!tls) {
      say(std::string{"invalid options: "} + atl::describe(tls.error()) + "\n");
      return std::nullopt;
    }
    return std::move(*tls);
  }

  /// The handshake timeout from the command line.
  std::chrono::milliseconds handshake_limit() const {
    return handshake_timeout == 0 ? atl::infinite : std::chrono::milliseconds{handshake_timeout};
  }

protected:
  std::optional<std::string> check_options() const override {
    if (auto problem = server_config::check_options())
      return problem;
    if (handshake_timeout < 0)
      return std::string{"--handshake-timeout must not be negative (0: none)"};
    return std::nullopt;
  }
};

/// Parses the command line strictly (see `strict_config`); returns false
/// (and sets `exit_code`) when the program should exit right away (bad
/// options or --help).
inline bool parse(server_config& cfg, int argc, char** argv, int& exit_code) {
  return cfg.parse_command_line(argc, argv, exit_code);
}

/// Runs until SIGINT/SIGTERM, or until the server `root` ends without one
/// (stopped through the inspector); then stops the server with `stop`
/// (unless it ended already) and `seen`. False, after saying why, if the
/// server's stop failed.
template <class Handle, class Stop>
bool run_until_stopped(caf::actor_system& sys, const Handle& root, inspector_services& seen,
                       Stop stop) {
  stop_watch watch{sys, root};
  auto sig = wait_for_stop_signal();
  caf::error stopped;
  if (!watch.stopped_elsewhere()) {
    say(std::string{"received "} + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping\n");
    stopped = stop();
  }
  seen.stop();
  if (stopped) {
    say(std::string{"stop: "} + atl::describe(stopped) + "\n");
    return false;
  }
  return true;
}


/// A started server as `run_server_with` sees it: its typed root, where it
/// listens, and how to stop it gracefully (blocking).
struct started_server {
  atl::server_actor root;
  atl::endpoint local;
  std::function<caf::error()> stop;
};

/// Starts a server from options (the example's own way).
using start_function = std::function<caf::expected<started_server>(atl::server_options)>;

/// Attaches what the observability options ask for (logger, JSON
/// telemetry, metrics endpoint), starts the server with `start`, prints
/// "listening on ADDRESS:PORT", runs until SIGINT/SIGTERM, stops it
/// gracefully. Returns the exit code.
inline int run_server_with(caf::actor_system& sys, const server_config& cfg,
                           atl::server_options opts, const start_function& start) {
  observability watch;
  if (!watch.attach(opts.telemetry ? opts.telemetry : atl::telemetry::default_bus(), cfg))
    return EXIT_FAILURE;
  auto name = opts.name.empty() ? std::string{"server"} : opts.name;
  auto srv = start(std::move(opts));
  if (!srv) {
    say(std::string{"cannot start the server: "} + atl::describe(srv.error()) + "\n");
    return EXIT_FAILURE;
  }
  if (!watch.start(sys, cfg, [&](const atl::inspector_actor& insp) {
        caf::anon_send(insp, atl::add_server_atom::value, name, srv->root);
      })) {
    static_cast<void>(srv->stop());
    return EXIT_FAILURE;
  }
  std::cout << "listening on " << atl::to_string(srv->local) << std::endl;
  watch.print();
  if (cfg.print_tree) {
    caf::scoped_actor self{sys};
    self->request(srv->root, std::chrono::seconds{5}, atl::tree_atom::value)
      .receive([](atl::tree_node& tree) { say(atl::format_tree(tree)); },
               [](caf::error& err) {
                 say(std::string{"cannot snapshot the tree: "} + atl::describe(err) + "\n");
               });
  }
  if (!run_until_stopped(sys, srv->root, watch.services(), srv->stop))
    return EXIT_FAILURE;
  return watch.stop() ? EXIT_SUCCESS : EXIT_FAILURE;
}

/// Starts a server with `atl::start_server` (blocking; the examples' main
/// thread is outside actors).
inline start_function blocking_start(caf::actor_system& sys) {
  return [&sys](atl::server_options o) -> caf::expected<started_server> {
    auto srv = atl::start_server(sys, std::move(o));
    if (!srv)
      return srv.error();
    auto local = srv->listener_info();
    if (!local) {
      static_cast<void>(srv->stop());
      return local.error();
    }
    return started_server{srv->actor(), *local, [s{*srv}]() mutable { return s.stop(); }};
  };
}

/// `run_server_with` for a server started by `atl::start_server`.
inline int run_server(caf::actor_system& sys, const server_config& cfg, atl::server_options opts) {
  return run_server_with(sys, cfg, std::move(opts), blocking_start(sys));
}

/// The whole main() of an example: parse, start, run, stop. `customize`
/// adds the example's handler to the options; `make_start(sys, cfg)` gives
/// the way the server starts.
template <class Config, class Customize, class MakeStart>
int main_of_with(int argc, char** argv, Customize customize, MakeStart make_start) {
  block_stop_signals(); // done at exec already (see detail::block_stop_signals_at_exec)
  Config cfg;
  int exit_code = 0;
  if (!parse(cfg, argc, argv, exit_code))
    return exit_code;
  auto opts = cfg.options();
  if (!opts) {
    say(std::string{"invalid options: "} + atl::describe(opts.error()) + "\n");
    return EXIT_FAILURE;
  }
  cfg.inspection.prepare(cfg); // e.g. CAF's middleman for the inspector
  // A scheduler that cannot start throws: report it, exit 1.
  auto previous_handler = std::set_terminate(&example::report_startup_failure);
  caf::actor_system system{cfg};
  std::set_terminate(previous_handler);
  if (!customize(system, cfg, *opts))
    return EXIT_FAILURE;
  return run_server_with(system, cfg, std::move(*opts), make_start(system, cfg));
}

/// `main_of_with` for a server started by `atl::start_server`.
template <class Config, class Customize>
int main_of(int argc, char** argv, Customize customize) {
  return main_of_with<Config>(argc, argv, std::move(customize),
                              [](caf::actor_system& sys, const Config&) {
                                return blocking_start(sys);
                              });
}

} // namespace example
