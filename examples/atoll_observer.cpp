// atoll-observer: looks into running Atoll nodes from another process,
// through the inspector each node publishes (`--inspector-port` of the
// example servers, `atl::spawn_inspector` in a program), over CAF's own
// distribution (the middleman).
//
//   atoll-observer 127.0.0.1 4100 tree          # one node
//   atoll-observer 127.0.0.1:4100 10.0.0.2:4100 connections   # side by side
//   atoll-observer 127.0.0.1 4100 send 42 "hello"
//
// Exit codes: 0 done, 1 bad usage, 2 a node cannot be reached, 3 control is
// not enabled on a node, 4 any other failure.
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <nlohmann/json.hpp>

#include "atoll/all.hpp"

namespace {

constexpr int exit_usage = 1;
constexpr int exit_unreachable = 2;
constexpr int exit_not_permitted = 3;
constexpr int exit_failed = 4;

const char* usage_text = R"(usage: atoll-observer HOST PORT COMMAND [ARGS] [OPTIONS]
       atoll-observer HOST:PORT [HOST:PORT ...] COMMAND [ARGS] [OPTIONS]

Looks into running Atoll nodes through the inspector each one publishes
(example servers: --inspector-port). Several nodes are shown side by side.

commands:
  servers              each node's servers: name, status, address, connections
  tree                 each server's supervision tree (indented text)
  tree --json          the same as one JSON array of {"node", "server", "tree"}
  tree --dot           the same as Graphviz DOT (one digraph per server)
  connections          one line per connection: node, server, ID, peer, local
                       address, state, transport, bytes and packets each way,
                       age, handler
  scheduler            each node's scheduler: workers, active workers, load
                       compaction and its activations and parkings, sockets
                       per worker, busy waits, memory releases
  send ID TEXT         sends TEXT to the connection actor ID (from
                       `connections`) and prints its answer
  suspend              stops accepting (needs --inspector-control on the node)
  resume               accepts again (the same)
  stop                 stops with the drain (the same)

options:
  --server NAME        only the server NAME (default: every server)
  --timeout MS         how long to wait for each answer (default: 5000)
  --cert FILE          link to the nodes with TLS (CAF's OpenSSL module, for
  --key FILE           nodes started with --inspector-cert): this node's
  --ca FILE            certificate (PEM), its key, and the CA that signed
                       the nodes' certificates; all three, or none
  --help               this text

exit codes: 0 done, 1 bad usage, 2 a node cannot be reached, 3 control is
not enabled on a node, 4 any other failure
)";

struct node_address {
  std::string host;
  uint16_t port = 0;

  std::string text() const {
    return host + ":" + std::to_string(port);
  }
};

struct arguments {
  std::vector<node_address> nodes;
  std::string command;
  std::vector<std::string> operands;
  std::string server; // empty: all
  std::string format = "text";
  std::chrono::milliseconds timeout{5000};
  std::string cert; // all three set: secure links
  std::string key;
  std::string ca;

  bool secure() const {
    return !cert.empty();
  }
};

std::optional<uint16_t> parse_port(const std::string& text) {
  unsigned value = 0;
  auto res = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || res.ec != std::errc{} || res.ptr != text.data() + text.size() || value == 0
      || value > 65535)
    return std::nullopt;
  return static_cast<uint16_t>(value);
}

bool is_command(const std::string& x) {
  for (auto* c :
       {"servers", "tree", "connections", "scheduler", "send", "suspend", "resume", "stop"})
    if (x == c)
      return true;
  return false;
}

/// Parses the command line; on a problem, sets `why` (empty with --help).
std::optional<arguments> parse(int argc, char** argv, std::string& why, bool& help) {
  arguments args;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& name) -> std::optional<std::string> {
      if (auto eq = arg.find('='); eq != std::string::npos)
        return arg.substr(eq + 1);
      if (i + 1 >= argc) {
        why = name + " needs a value";
        return std::nullopt;
      }
      return std::string{argv[++i]};
    };
    if (arg == "--help" || arg == "-h") {
      help = true;
      return std::nullopt;
    }
    if (arg == "--json" || arg == "--dot") {
      args.format = arg.substr(2);
    } else if (arg.rfind("--server", 0) == 0) {
      auto v = value("--server");
      if (!v)
        return std::nullopt;
      if (v->empty()) {
        why = "--server needs a name";
        return std::nullopt;
      }
      args.server = *v;
    } else if (arg.rfind("--timeout", 0) == 0) {
      auto v = value("--timeout");
      if (!v)
        return std::nullopt;
      unsigned ms = 0;
      auto res = std::from_chars(v->data(), v->data() + v->size(), ms);
      if (v->empty() || res.ec != std::errc{} || res.ptr != v->data() + v->size() || ms == 0
          || ms > 3'600'000) {
        why = "--timeout must be 1..3600000 ms, got \"" + *v + "\"";
        return std::nullopt;
      }
      args.timeout = std::chrono::milliseconds{ms};
    } else if (auto name = arg.substr(0, arg.find('='));
               name == "--cert" || name == "--key" || name == "--ca") {
      auto v = value(name);
      if (!v)
        return std::nullopt;
      if (v->empty()) {
        why = name + " needs a file";
        return std::nullopt;
      }
      (name == "--cert" ? args.cert : name == "--key" ? args.key : args.ca) = *v;
    } else if (arg.rfind("--", 0) == 0 && arg != "--") {
      why = "unknown option " + arg;
      return std::nullopt;
    } else {
      positional.push_back(arg);
    }
  }
  if (args.cert.empty() != args.key.empty() || args.cert.empty() != args.ca.empty()) {
    why = "--cert, --key and --ca go together (all three, or none)";
    return std::nullopt;
  }
  // Nodes: HOST PORT, or HOST:PORT..., up to the command.
  size_t i = 0;
  while (i < positional.size() && !is_command(positional[i])) {
    auto& x = positional[i];
    auto colon = x.rfind(':');
    if (colon != std::string::npos && x.find(']') == std::string::npos
        && x.find(':') == colon) {
      auto port = parse_port(x.substr(colon + 1));
      if (colon == 0 || !port) {
        why = "bad node address \"" + x + "\" (HOST:PORT, port 1..65535)";
        return std::nullopt;
      }
      args.nodes.push_back({x.substr(0, colon), *port});
      ++i;
    } else if (i + 1 < positional.size() && !is_command(positional[i + 1])) {
      auto port = parse_port(positional[i + 1]);
      if (!port) {
        why = "bad port \"" + positional[i + 1] + "\" (1..65535)";
        return std::nullopt;
      }
      args.nodes.push_back({x, *port});
      i += 2;
    } else {
      why = "\"" + x + "\" is neither HOST:PORT nor HOST PORT";
      return std::nullopt;
    }
  }
  if (args.nodes.empty()) {
    why = "no node given";
    return std::nullopt;
  }
  if (i == positional.size()) {
    why = "no command given (servers, tree, connections, scheduler, send, suspend, resume, stop)";
    return std::nullopt;
  }
  args.command = positional[i++];
  args.operands.assign(positional.begin() + static_cast<std::ptrdiff_t>(i), positional.end());
  size_t wanted = args.command == "send" ? 2 : 0;
  if (args.operands.size() != wanted) {
    why = args.command
          + (wanted == 0 ? " takes no operands" : " needs ID and TEXT (quote a TEXT with blanks)");
    return std::nullopt;
  }
  if (args.format != "text" && args.command != "tree") {
    why = "--" + args.format + " is for the tree command";
    return std::nullopt;
  }
  if (!args.server.empty() && args.command == "scheduler") {
    why = "--server is not for the scheduler command (a node has one scheduler)";
    return std::nullopt;
  }
  return args;
}

/// One connected node.
struct node {
  node_address where;
  atl::inspector_actor inspector;
  std::vector<atl::inspected_server> servers;
};

class observer {
public:
  observer(caf::actor_system& sys, arguments args) : sys_(sys), self_(sys), args_(std::move(args)) {
  }

  int run() {
    for (auto& where : args_.nodes) {
      auto insp = atl::connect_inspector(sys_, where.host, where.port, args_.secure());
      if (!insp && insp.error() == atl::errc::invalid_option) { // e.g. a bad --cert
        fail(exit_usage, atl::describe(insp.error()));
        return exit_code_;
      }
      if (!insp) {
        fail(exit_unreachable, "node " + where.text() + " cannot be reached: "
                                 + atl::describe(insp.error()));
        continue;
      }
      node n{where, *insp, {}};
      if (!ask(n, [&](auto& self) {
            return self->request(n.inspector, args_.timeout, atl::servers_atom::value);
          },
               [&](std::vector<atl::inspected_server>& xs) { n.servers = std::move(xs); }))
        continue;
      if (!args_.server.empty()) {
        auto keep = std::find_if(n.servers.begin(), n.servers.end(),
                                 [&](auto& s) { return s.name == args_.server; });
        if (keep == n.servers.end()) {
          fail(exit_failed, "node " + where.text() + " has no server named \"" + args_.server
                              + "\"");
          continue;
        }
        n.servers = {*keep};
      }
      nodes_.push_back(std::move(n));
    }
    auto& cmd = args_.command;
    if (cmd == "servers")
      list_servers();
    else if (cmd == "tree")
      trees();
    else if (cmd == "connections")
      connections();
    else if (cmd == "scheduler")
      schedulers();
    else if (cmd == "send")
      send();
    else
      control();
    return exit_code_;
  }

private:
  /// Records a failure; the first one sets the exit code.
  void fail(int code, const std::string& text) {
    std::cerr << "atoll-observer: " << text << std::endl;
    if (exit_code_ == 0)
      exit_code_ = code;
  }

  /// Sends a request made by `make` and hands its answer to `on_answer` (a
  /// function of the answer's types); an error (a timeout too) is reported
  /// naming `n` and gives false.
  template <class Make, class OnAnswer>
  bool ask(const node& n, Make make, OnAnswer on_answer, const std::string& what = "") {
    bool ok = true;
    make(self_).receive(
      on_answer,
      [&](caf::error& err) {
        ok = false;
        auto code = err == atl::errc::not_permitted ? exit_not_permitted : exit_failed;
        fail(code, "node " + n.where.text() + (what.empty() ? "" : ", " + what) + ": "
                     + atl::describe(err));
      });
    return ok;
  }

  void list_servers() {
    for (auto& n : nodes_) {
      if (n.servers.empty())
        std::cout << n.where.text() << "  (no servers)\n";
      for (auto& s : n.servers)
        std::cout << n.where.text() << "  " << s.name << "  " << atl::to_string(s.info.status)
                  << "  " << (s.info.local ? atl::to_string(*s.info.local) : "-") << "  "
                  << s.info.active_connections << " connections\n";
    }
  }

  void schedulers() {
    for (auto& n : nodes_)
      ask(
        n,
        [&](auto& self) {
          return self->request(n.inspector, args_.timeout, atl::scheduler_atom::value);
        },
        [&](atl::scheduler_stats& st) {
          std::string per_worker;
          for (auto count : st.registrations_per_poller)
            per_worker += (per_worker.empty() ? "" : ",") + std::to_string(count);
          std::cout << n.where.text() << "  workers " << st.workers << "  active "
                    << st.active_workers << "  compaction " << (st.compaction ? "on" : "off")
                    << "  activations " << st.activations << "  parkings " << st.deactivations
                    << "  sockets " << st.registrations << " (" << per_worker << ")"
                    << "  busy-waits " << st.spin_waits << "  memory-releases "
                    << st.memory_releases << "\n";
        },
        "scheduler");
  }

  void trees() {
    auto json = nlohmann::json::array();
    for (auto& n : nodes_)
      for (auto& s : n.servers)
        ask(
          n,
          [&](auto& self) {
            return self->request(n.inspector, args_.timeout, atl::tree_atom::value, s.name);
          },
          [&](atl::tree_node& tree) {
            if (args_.format == "json") {
              json.push_back({{"node", n.where.text()},
                              {"server", s.name},
                              {"tree", nlohmann::json::parse(atl::tree_to_json(tree))}});
            } else if (args_.format == "dot") {
              std::cout << "// node " << n.where.text() << ", server " << s.name << "\n"
                        << atl::tree_to_dot(tree);
            } else {
              std::cout << "== node " << n.where.text() << ", server " << s.name << " ("
                        << atl::to_string(s.info.status) << ", " << s.info.active_connections
                        << " connections)\n"
                        << atl::format_tree(tree);
            }
          },
          "server " + s.name);
    if (args_.format == "json")
      std::cout << json.dump(2) << "\n";
  }

  /// Every connection record of every shown server, with its node and
  /// server.
  struct located_record {
    const node* where;
    std::string server;
    atl::connection_record record;
  };

  std::vector<located_record> all_records() {
    std::vector<located_record> out;
    for (auto& n : nodes_)
      for (auto& s : n.servers)
        ask(
          n,
          [&](auto& self) {
            return self->request(n.inspector, args_.timeout, atl::connections_atom::value,
                                 s.name);
          },
          [&](std::vector<atl::connection_record>& records) {
            for (auto& r : records)
              out.push_back({&n, s.name, std::move(r)});
          },
          "server " + s.name);
    return out;
  }

  void connections() {
    for (auto& x : all_records()) {
      auto& r = x.record;
      auto age_ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.age).count();
      std::cout << x.where->where.text() << "  " << x.server << "  " << r.handle.id() << "  "
                << atl::to_string(r.peer) << "  " << atl::to_string(r.local) << "  "
                << atl::to_string(r.state) << "  " << r.transport << "  in " << r.recv_oct
                << " B/" << r.recv_cnt << "  out " << r.send_oct << " B/" << r.send_cnt
                << "  age " << age_ms << " ms  " << r.handler << "\n";
    }
  }

  void send() {
    uint64_t id = 0;
    auto& text_id = args_.operands[0];
    auto res = std::from_chars(text_id.data(), text_id.data() + text_id.size(), id);
    if (res.ec != std::errc{} || res.ptr != text_id.data() + text_id.size()) {
      fail(exit_usage, "send: bad connection ID \"" + text_id + "\" (a number from `connections`)");
      return;
    }
    for (auto& x : all_records()) {
      if (x.record.handle.id() != id)
        continue;
      ask(
        *x.where,
        [&](auto& self) {
          return self->request(x.record.handle, args_.timeout, atl::text_message_atom::value,
                               args_.operands[1]);
        },
        [&](std::string& answer) { std::cout << answer << "\n"; },
        "connection " + text_id
          + " (a handler takes texts if it handles atl::text_message_atom)");
      return;
    }
    if (exit_code_ == 0)
      fail(exit_failed, "no connection with ID " + text_id);
  }

  void control() {
    for (auto& n : nodes_)
      for (auto& s : n.servers) {
        auto done = [&](caf::ok_atom) {
          std::cout << n.where.text() << "  " << s.name << "  " << args_.command << ": done\n";
        };
        auto what = "server " + s.name + ", " + args_.command;
        if (args_.command == "suspend")
          ask(
            n,
            [&](auto& self) {
              return self->request(n.inspector, args_.timeout, atl::suspend_atom::value, s.name);
            },
            done, what);
        else if (args_.command == "resume")
          ask(
            n,
            [&](auto& self) {
              return self->request(n.inspector, args_.timeout, atl::resume_atom::value, s.name);
            },
            done, what);
        else
          ask(
            n,
            [&](auto& self) {
              // A stop drains: allow it the node's shutdown time.
              return self->request(n.inspector, args_.timeout + std::chrono::seconds{60},
                                   atl::stop_atom::value, s.name);
            },
            done, what);
      }
  }

  caf::actor_system& sys_;
  caf::scoped_actor self_;
  arguments args_;
  std::vector<node> nodes_;
  int exit_code_ = 0;
};

} // namespace

int main(int argc, char** argv) {
  std::string why;
  bool help = false;
  auto args = parse(argc, argv, why, help);
  if (help) {
    std::cout << usage_text;
    return EXIT_SUCCESS;
  }
  if (!args) {
    std::cerr << "atoll-observer: " << why << "\n(atoll-observer --help for usage)\n";
    return exit_usage;
  }
  caf::actor_system_config cfg;
  atl::register_types(cfg);
  cfg.load<caf::io::middleman>();
  if (args->secure()) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = args->cert;
    cfg.openssl_key = args->key;
    cfg.openssl_cafile = args->ca;
  }
  cfg.set("scheduler.max-threads", 2);
  int code = 0;
  {
    caf::actor_system sys{cfg};
    code = observer{sys, std::move(*args)}.run();
  }
  return code;
}
