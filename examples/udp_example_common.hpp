// What Atoll's UDP example servers share: their command-line options, the
// "listening on ADDRESS:PORT" line and a graceful stop on SIGINT/SIGTERM.
// Uses the public API only.
#pragma once

#include "example_common.hpp"

namespace example {

/// The defaults in which the UDP examples differ (`--help` shows each
/// example's own).
struct udp_defaults {
  int port = 4000;
  int num_listeners = 100;
  int num_connections = 16384;
  const char* lifetime = "per-datagram";
  bool broadcast = false;
  bool detached = false;
  bool reuseport = false;

  /// One listener that handles each datagram in place, on `port_number`
  /// (the packet printers).
  static udp_defaults single_listener(int port_number) {
    udp_defaults d;
    d.port = port_number;
    d.num_listeners = 1;
    d.lifetime = "in-listener";
    return d;
  }
};

/// Options every UDP example accepts (`--help` lists them with their limits).
class udp_server_config : public observable_config {
public:
  int port;
  std::string host = "any";
  int num_listeners;
  int num_connections;
  /// `--read-timeout`'s default, in ms.
  static constexpr int default_read_timeout_ms = 60000;
  int read_timeout = default_read_timeout_ms;
  int shutdown_timeout = 15000;
  int max_packet_size = 8192;
  bool rate_limit_enabled = false;
  int64_t rate_limit_max_packets = 1000;
  int64_t rate_limit_window_ms = 1000;
  int64_t rate_limit_max_sources = int64_t{1} << 20;
  bool reuseport;
  int recbuf = 0;
  int sndbuf = 0;
  bool broadcast;
  std::string lifetime;
  bool detached;
  bool print_tree = false;

  explicit udp_server_config(const udp_defaults& defaults = {})
    : port(defaults.port),
      num_listeners(defaults.num_listeners),
      num_connections(defaults.num_connections),
      reuseport(defaults.reuseport),
      broadcast(defaults.broadcast),
      lifetime(defaults.lifetime),
      detached(defaults.detached),
      defaults_(defaults) {
    atl::register_types(*this);
    auto dflt = [](auto value) { return " (default: " + std::to_string(value) + ")"; };
    auto on_by_default = [](bool on) {
      return std::string{on ? " (on by default here; =false turns it off)" : ""};
    };
    opt_group{custom_options_, "global"}
        .add(port, "port,p", "UDP port, 0..65535 (0: pick a free port; default: "
                                 + std::to_string(defaults.port) + ")")
        .add(host, "host", "bind address: any, any6, loopback, loopback6 or an IP")
        .add(num_listeners, "num-listeners",
             "listener actors, 1.." + std::to_string(atl::udp_server_options::max_num_listeners) +
                 " (with --reuseport each has its own socket)" + dflt(defaults.num_listeners))
        .add(num_connections, "num-connections",
             "handler actors alive at once (0: unlimited)" + dflt(defaults.num_connections))
        .add(read_timeout, "read-timeout",
             "silence before a per-peer handler ends, in ms (0: none; default 60000)")
        .add(shutdown_timeout, "shutdown-timeout", "drain limit at stop in ms (-1: infinity)")
        .add(max_packet_size, "max-packet-size",
             "larger datagrams are dropped, 1..65535 bytes (default 8192)")
        .add(rate_limit_enabled, "rate-limit-enabled", "limit datagrams per source IP")
        .add(rate_limit_max_packets, "rate-limit-max-packets",
             "datagrams per window and source IP, 1..10000000 (default 1000)")
        .add(rate_limit_window_ms, "rate-limit-window-ms",
             "the rate limit's window in ms, 1..86400000 (default 1000)")
        .add(rate_limit_max_sources, "rate-limit-max-sources",
             "source IPs the rate limiter tracks at once, 1..16777216 (default 1048576); a "
             "datagram from a new source that finds no room is dropped")
        .add(reuseport, "reuseport",
             std::string{"one SO_REUSEPORT socket per listener (default: "}
               + (defaults.reuseport ? "true" : "false") + ")")
        .add(recbuf, "recbuf", "SO_RCVBUF in bytes (0: the kernel's default, capped by rmem_max)")
        .add(sndbuf, "sndbuf", "SO_SNDBUF in bytes (0: the kernel's default, capped by wmem_max)")
        .add(broadcast, "broadcast",
             "allow sending to broadcast addresses (SO_BROADCAST)" + on_by_default(defaults.broadcast))
        .add(lifetime, "lifetime",
             "per-datagram (one handler per datagram; it runs in the listener unless it needs "
             "an actor), per-peer (one handler actor per source address and port) or "
             "in-listener (one handler object per listener); default: "
                 + std::string{defaults.lifetime})
        .add(detached, "detached",
             "run each handler actor on its own thread" + on_by_default(defaults.detached))
        .add(print_tree, "print-tree", "print the supervision tree to stderr once listening");
    add_observability_options();
  }

  /// Turns the command line into server options (validated by the server).
  caf::expected<atl::udp_server_options> options() const {
    atl::udp_server_options opts;
    auto bad = [](const char* what) { return caf::make_error(atl::errc::invalid_option, what); };
    if (port < 0 || port > 65535)
      return bad("--port must be within 0..65535");
    opts.port = static_cast<uint32_t>(port);
    auto addr = atl::bind_address::parse(host);
    if (!addr)
      return addr.error();
    if (addr->which() == atl::bind_address::kind::local)
      return bad("--host must be an IP address (UDP has no Unix socket servers here)");
    opts.address = *addr;
    if (num_listeners < 1)
      return bad("--num-listeners must be at least 1");
    opts.num_listeners = static_cast<uint32_t>(num_listeners);
    if (num_connections < 0)
      return bad("--num-connections must not be negative");
    if (num_connections == 0)
      opts.num_connections.reset();
    else
      opts.num_connections = static_cast<uint32_t>(num_connections);
    if (read_timeout < 0)
      return bad("--read-timeout must not be negative (0: none)");
    opts.read_timeout = read_timeout == 0 ? atl::infinite : std::chrono::milliseconds{read_timeout};
    if (shutdown_timeout < -1)
      return bad("--shutdown-timeout must be at least -1 (-1: infinity)");
    opts.shutdown_timeout =
        shutdown_timeout == -1
            ? atl::shutdown_policy::infinity()
            : atl::shutdown_policy::timeout(std::chrono::milliseconds{shutdown_timeout});
    if (max_packet_size < 1 || max_packet_size > 65535)
      return bad("--max-packet-size must be within 1..65535");
    opts.max_packet_size = static_cast<uint32_t>(max_packet_size);
    opts.rate_limit_enabled = rate_limit_enabled;
    if (rate_limit_max_packets < 1 || rate_limit_max_packets > 10000000)
      return bad("--rate-limit-max-packets must be within 1..10000000");
    opts.rate_limit_max_packets = static_cast<uint32_t>(rate_limit_max_packets);
    if (rate_limit_window_ms < 1 || rate_limit_window_ms > 86400000)
      return bad("--rate-limit-window-ms must be within 1..86400000");
    opts.rate_limit_window = std::chrono::milliseconds{rate_limit_window_ms};
    if (rate_limit_max_sources < 1 || rate_limit_max_sources > (int64_t{1} << 24))
      return bad("--rate-limit-max-sources must be within 1..16777216");
    opts.rate_limit_max_sources = static_cast<uint32_t>(rate_limit_max_sources);
    opts.transport.reuseport = reuseport;
    if (recbuf < 0 || sndbuf < 0)
      return bad("--recbuf and --sndbuf must not be negative (0: the kernel's default)");
    if (recbuf > 0)
      opts.transport.recbuf = recbuf;
    if (sndbuf > 0)
      opts.transport.sndbuf = sndbuf;
    opts.broadcast = broadcast;
    if (lifetime == "per-datagram")
      opts.lifetime = atl::udp_lifetime::per_datagram;
    else if (lifetime == "per-peer")
      opts.lifetime = atl::udp_lifetime::per_peer;
    else if (lifetime == "in-listener")
      opts.lifetime = atl::udp_lifetime::in_listener;
    else
      return bad("--lifetime must be per-datagram, per-peer or in-listener");
    opts.detached_connections = detached;
    return opts;
  }

protected:
  std::optional<std::string> check_options() const override {
    if (auto problem = check_observability())
      return problem;
    if (auto opts = options(); !opts)
      return atl::describe(opts.error());
    else if (auto err = validate_without_handler(*opts))
      return err;
    // Options that would do nothing with the lifetime chosen.
    if (lifetime != "per-peer" && read_timeout != default_read_timeout_ms)
      return "--read-timeout: only per-peer handlers wait for silence (--lifetime=per-peer); "
             "with --lifetime=" + lifetime + " it would do nothing";
    if (lifetime == "in-listener" && num_connections != defaults_.num_connections)
      return std::string{"--num-connections: with --lifetime=in-listener each listener runs one "
                         "handler object, there are no handler actors to limit"};
    return std::nullopt;
  }

private:
  udp_defaults defaults_;

  static std::optional<std::string> validate_without_handler(atl::udp_server_options opts) {
    opts.handler = [] { return std::unique_ptr<atl::udp_handler>{}; };
    if (auto err = atl::validate(opts))
      return atl::describe(err);
    return std::nullopt;
  }
};

/// Starts the UDP server with `opts`, prints "listening on ADDRESS:PORT",
/// runs until SIGINT/SIGTERM, stops it gracefully. Returns the exit code.
inline int run_udp_server(caf::actor_system& sys, const udp_server_config& cfg,
                          atl::udp_server_options opts) {
  observability watch;
  if (!watch.attach(opts.telemetry ? opts.telemetry : atl::telemetry::default_bus(), cfg))
    return EXIT_FAILURE;
  auto name = opts.name.empty() ? std::string{"udp_server"} : opts.name;
  auto srv = atl::start_udp_server(sys, std::move(opts));
  if (!srv) {
    say(std::string{"cannot start the server: "} + atl::describe(srv.error()) + "\n");
    return EXIT_FAILURE;
  }
  auto local = srv->listener_info();
  if (!local) {
    say(std::string{"cannot read the listener address: "} + atl::describe(local.error()) + "\n");
    return EXIT_FAILURE;
  }
  if (!watch.start(sys, cfg, [&](const atl::inspector_actor& insp) {
        caf::anon_send(insp, atl::add_server_atom::value, name, srv->actor());
      })) {
    static_cast<void>(srv->stop());
    return EXIT_FAILURE;
  }
  std::cout << "listening on " << atl::to_string(*local) << std::endl;
  watch.print();
  if (cfg.print_tree) {
    if (auto tree = srv->tree())
      say(atl::format_tree(*tree));
    else
      say(std::string{"cannot snapshot the tree: "} + atl::describe(tree.error()) + "\n");
  }
  if (!run_until_stopped(sys, srv->actor(), watch.services(), [&] { return srv->stop(); }))
    return EXIT_FAILURE;
  auto s = srv->stats();
  say("datagrams: " + std::to_string(s.received) + " received, " + std::to_string(s.too_large)
      + " too large, " + std::to_string(s.rate_limited) + " rate-limited, "
      + std::to_string(s.spawn_failed) + " without a handler\n");
  if (s.rate_limit)
    say("rate limiter: " + std::to_string(s.rate_limit->sources) + " sources tracked, "
        + std::to_string(s.rate_limit->table_full) + " datagrams from new sources refused (table full), "
        + std::to_string(s.rate_limit->expired) + " full buckets forgotten\n");
  return watch.stop() ? EXIT_SUCCESS : EXIT_FAILURE;
}

/// The whole main() of a UDP example: parse, start, run, stop. `customize`
/// adds the example's handler (and may add options) to `opts`.
template <class Config, class Customize>
int udp_main_of(int argc, char** argv, Customize customize) {
  block_stop_signals();
  Config cfg;
  int exit_code = 0;
  if (!cfg.parse_command_line(argc, argv, exit_code))
    return exit_code;
  auto opts = cfg.options();
  if (!opts) {
    say(std::string{"invalid options: "} + atl::describe(opts.error()) + "\n");
    return EXIT_FAILURE;
  }
  cfg.inspection.prepare(cfg); // e.g. CAF's middleman for the inspector
  auto previous_handler = std::set_terminate(&example::report_startup_failure);
  caf::actor_system system{cfg};
  std::set_terminate(previous_handler);
  if (!customize(system, cfg, *opts))
    return EXIT_FAILURE;
  return run_udp_server(system, cfg, std::move(*opts));
}

} // namespace example
