#include "atoll/supervisors/observer_page.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/http_request.hpp"

namespace atl {

namespace {

/// `(observer_tick_atom)`: time for the next snapshot of an event stream.
using observer_tick_atom = caf::atom_constant<caf::atom("obstick")>;

/// The page: HTML with its style and script inline (nothing is downloaded).
constexpr std::string_view page_html = R"page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Atoll observer</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
header { background: #17324d; color: #fff; padding: 10px 16px; display: flex; gap: 16px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
#status, #scheduler { font-size: 12px; opacity: .85; }
#scheduler { margin-left: auto; }
main { padding: 16px; display: grid; gap: 16px; }
.server { background: #fff; border: 1px solid #d9dde3; border-radius: 6px; padding: 12px 14px; }
.server h2 { margin: 0 0 8px; font-size: 16px; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 12px; font-weight: 400; background: #e3e8ef; margin-left: 6px; }
.running { background: #d3f2db; } .suspended { background: #fff1b8; } .stopped { background: #ffd6d6; }
ul.tree { list-style: none; padding-left: 18px; margin: 0; border-left: 1px dashed #c5ccd6; }
ul.tree.root { border: 0; padding-left: 0; }
li { margin: 2px 0; }
.node { font-family: ui-monospace, monospace; font-size: 12px; }
.sup { color: #17324d; font-weight: 600; }
.meta { color: #6b7585; }
.restarted { background: #ffd8a8; color: #7a3e00; border-radius: 3px; padding: 0 5px; margin-left: 6px; }
.new { animation: flash 2s; }
@keyframes flash { from { background: #b2f2bb; } to { background: transparent; } }
table { border-collapse: collapse; width: 100%; font-size: 12px; margin-top: 4px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eef0f3; }
th { color: #6b7585; font-weight: 600; }
td.num { text-align: right; font-family: ui-monospace, monospace; }
summary { cursor: pointer; color: #17324d; margin-top: 10px; }
</style>
</head>
<body>
<header><h1>Atoll observer</h1><span id="status">connecting…</span><span id="scheduler"></span></header>
<main id="servers"></main>
<script>
"use strict";
const previous = new Map();   // connection id -> bytes at the last snapshot
const seen = new Set();       // every actor id shown so far
const closedTrees = new Set(); // servers whose tree the user folded
let previousTime = 0;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function rate(bytesPerSecond) {
  const b = Math.max(0, bytesPerSecond);
  if (b < 1024) return b.toFixed(0) + " B/s";
  if (b < 1048576) return (b / 1024).toFixed(1) + " KiB/s";
  return (b / 1048576).toFixed(1) + " MiB/s";
}
function connectionsOf(node, out) {
  // TCP/TLS connection actors, and UDP handler actors
  if (node.type === "worker" && (node.role === "connection" || node.role === "handler"))
    out.push(node);
  (node.children || []).forEach(c => connectionsOf(c, out));
  return out;
}
function treeNode(n, isNew) {
  const li = el("li");
  const line = el("span", "node");
  line.appendChild(el("span", n.type === "supervisor" ? "sup" : "", n.role));
  let meta = "  #" + n.id + "  " + n.type + ", " + n.restart;
  if (n.strategy)
    meta += ", " + n.strategy + ", restarts " + (n.recent_restarts || 0) + "/" + n.max_restarts
      + " in " + n.period_ms + " ms";
  if (n.details && n.details.peer) meta += "  " + n.details.peer + "  " + n.details.state;
  line.appendChild(el("span", "meta", meta));
  if (n.restart_count > 0) line.appendChild(el("span", "restarted", "restarted " + n.restart_count + "×"));
  if (!n.running) line.appendChild(el("span", "restarted", "not running"));
  if (isNew(n.id)) li.classList.add("new");
  li.appendChild(line);
  if (n.children && n.children.length) {
    const ul = el("ul", "tree");
    n.children.forEach(c => ul.appendChild(treeNode(c, isNew)));
    li.appendChild(ul);
  }
  return li;
}
function schedulerLine(s) {
  if (!s) return "";
  let line = "scheduler: " + s.active_workers + " of " + s.workers
    + (s.workers === 1 ? " worker" : " workers") + " active";
  if (s.compaction)
    line += " (load compaction: " + s.activations + " activated, " + s.deactivations + " parked)";
  return line + " · sockets per worker: " + s.registrations_per_poller.join(", ");
}
function render(snapshot) {
  document.getElementById("scheduler").textContent = schedulerLine(snapshot.scheduler);
  const main = document.getElementById("servers");
  main.textContent = "";
  const seconds = previousTime ? (snapshot.time_ms - previousTime) / 1000 : 0;
  const isNew = id => previousTime !== 0 && !seen.has(id);
  const shown = [];
  if (!snapshot.servers.length) main.appendChild(el("p", "meta", "No servers."));
  for (const s of snapshot.servers) {
    const card = el("section", "server");
    card.dataset.server = s.name;
    const h = el("h2", null, s.name);
    h.appendChild(el("span", "badge " + s.status, s.status));
    h.appendChild(el("span", "badge", s.local || "not listening"));
    h.appendChild(el("span", "badge", s.connections + (s.connections === 1 ? " connection" : " connections")));
    card.appendChild(h);
    const conns = s.tree ? connectionsOf(s.tree, []) : [];
    const table = el("table");
    const head = el("tr");
    ["ID", "peer", "state", "in", "out", "bytes in", "bytes out", "age", "handler"]
      .forEach(t => head.appendChild(el("th", null, t)));
    table.appendChild(head);
    for (const c of conns) {
      const d = c.details || {};
      const p = previous.get(c.id);
      const rin = p && seconds > 0 ? (d.recv_oct - p.recv) / seconds : 0;
      const rout = p && seconds > 0 ? (d.send_oct - p.send) / seconds : 0;
      const tr = el("tr", "connection");
      if (isNew(c.id)) tr.classList.add("new");
      [c.id, d.peer, d.state, rate(rin), rate(rout), d.recv_oct, d.send_oct,
       (d.age_ms / 1000).toFixed(1) + " s", d.handler]
        .forEach((v, i) => tr.appendChild(el("td", i >= 3 && i <= 7 ? "num" : "", String(v))));
      table.appendChild(tr);
    }
    if (!conns.length) {
      const tr = el("tr");
      const td = el("td", "meta", "no connections");
      td.colSpan = 9;
      tr.appendChild(td);
      table.appendChild(tr);
    }
    card.appendChild(table);
    if (s.tree) {
      const details = el("details");
      details.open = !closedTrees.has(s.name);
      details.addEventListener("toggle", () => {
        if (details.open) closedTrees.delete(s.name); else closedTrees.add(s.name);
      });
      details.appendChild(el("summary", null, "supervision tree"));
      const ul = el("ul", "tree root");
      ul.appendChild(treeNode(s.tree, isNew));
      details.appendChild(ul);
      card.appendChild(details);
      (function walk(n) {
        shown.push(n.id);
        if (n.role === "connection" && n.details)
          previous.set(n.id, {recv: +n.details.recv_oct, send: +n.details.send_oct});
        (n.children || []).forEach(walk);
      })(s.tree);
    }
    main.appendChild(card);
  }
  shown.forEach(id => seen.add(id));
  previousTime = snapshot.time_ms;
  document.getElementById("status").textContent =
    "updated " + new Date(snapshot.time_ms).toLocaleTimeString();
}
const initial = /*SNAPSHOT*/null; // filled in by the server
if (initial) render(initial); else fetch("/snapshot").then(r => r.json()).then(render).catch(() => {});
const events = new EventSource("/events");
events.onmessage = ev => render(JSON.parse(ev.data));
events.onerror = () => {
  document.getElementById("status").textContent = "disconnected, reconnecting…";
};
</script>
</body>
</html>
)page";

/// A scheduler's state as the page shows it.
nlohmann::json scheduler_json(const scheduler_stats& st) {
  return {{"workers", st.workers},
          {"active_workers", st.active_workers},
          {"compaction", st.compaction},
          {"activations", st.activations},
          {"deactivations", st.deactivations},
          {"spin_waits", st.spin_waits},
          {"memory_releases", st.memory_releases},
          {"registrations", st.registrations},
          {"registrations_per_poller", st.registrations_per_poller}};
}

/// What one connection of the page's server does: answers `/` and
/// `/snapshot` once, or streams snapshots on `/events`.
class observer_page_handler : public detail::http_endpoint_handler {
public:
  observer_page_handler(inspector_actor inspector, observer_page_options opts)
    : inspector_(std::move(inspector)), opts_(std::move(opts)) {
  }

  verdict handle_data(std::string_view data, socket& sock) override {
    if (streaming_)
      return verdict::proceed(infinite); // the client has nothing more to say
    verdict next = verdict::proceed();
    auto req = read_request(data, sock, next);
    if (!req)
      return next;
    if (req->target == "/") {
      // The first snapshot comes with the page: it shows at once.
      snapshot([this, &sock](std::string json) {
        apply(answer(sock, "200 OK", page_with(json), {}, "text/html; charset=utf-8"));
      });
      return verdict::proceed();
    }
    if (req->target == "/snapshot") {
      snapshot([this, &sock](std::string json) {
        apply(answer(sock, "200 OK", json, {}, "application/json"));
      });
      return verdict::proceed();
    }
    if (req->target == "/events") {
      static_cast<void>(sock.send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                  "Cache-Control: no-cache\r\nConnection: close\r\n\r\n"));
      if (head_only())
        return verdict::close();
      streaming_ = true;
      tick(sock);
      return verdict::proceed(infinite);
    }
    return answer(sock, "404 Not Found", "the page is at /\n");
  }

  caf::message_handler message_handlers(socket& sock) override {
    return {[this, &sock](observer_tick_atom) { tick(sock); }};
  }

private:
  /// The page with `json` as its first snapshot (safe inside a script
  /// element: no "</" is left in it).
  static std::string page_with(const std::string& json) {
    std::string safe;
    safe.reserve(json.size());
    for (size_t i = 0; i < json.size(); ++i) {
      safe += json[i];
      if (json[i] == '<' && i + 1 < json.size() && json[i + 1] == '/')
        safe += "\\";
    }
    std::string page{page_html};
    static constexpr std::string_view marker = "/*SNAPSHOT*/null";
    page.replace(page.find(marker), marker.size(), safe);
    return page;
  }

  /// One event, then the next one after the interval.
  void tick(socket& sock) {
    snapshot([this, &sock](std::string json) {
      static_cast<void>(sock.send("data: " + json + "\n\n"));
      self()->delayed_send(self(), opts_.interval, observer_tick_atom::value);
    });
  }

  /// Asks the inspector for its node's scheduler, its servers and their
  /// trees; `then` gets the snapshot as JSON (null for a scheduler that did
  /// not answer; a server that did not answer has no tree).
  void snapshot(std::function<void(std::string)> then) {
    self()
      ->request(inspector_, opts_.timeout, scheduler_atom::value)
      .then([this, then](scheduler_stats& st) { gather(then, scheduler_json(st)); },
            [this, then](caf::error&) { gather(then, nullptr); });
  }

  /// The rest of `snapshot`, with the scheduler's state.
  void gather(std::function<void(std::string)> then, nlohmann::json scheduler) {
    auto timeout = opts_.timeout;
    self()
      ->request(inspector_, timeout, servers_atom::value)
      .then(
        [this, then, timeout, scheduler](std::vector<inspected_server>& servers) {
          struct gathering {
            nlohmann::json list = nlohmann::json::array();
            size_t left = 0;
          };
          auto g = std::make_shared<gathering>();
          g->left = servers.size();
          auto finish = [g, then, scheduler] {
            auto now = std::chrono::system_clock::now().time_since_epoch();
            nlohmann::json out{
              {"time_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now).count()},
              {"scheduler", scheduler},
              {"servers", std::move(g->list)}};
            then(out.dump());
          };
          if (servers.empty()) {
            finish();
            return;
          }
          for (auto& s : servers) {
            nlohmann::json entry{{"name", s.name},
                                 {"status", to_string(s.info.status)},
                                 {"local", s.info.local ? to_string(*s.info.local) : ""},
                                 {"connections", s.info.active_connections},
                                 {"tree", nullptr}};
            g->list.push_back(std::move(entry));
            auto index = g->list.size() - 1;
            auto done = [g, finish, index](const tree_node* tree) {
              if (tree != nullptr)
                g->list[index]["tree"] = nlohmann::json::parse(tree_to_json(*tree, -1));
              if (--g->left == 0)
                finish();
            };
            self()
              ->request(inspector_, timeout, tree_atom::value, s.name)
              .then([done](tree_node& tree) { done(&tree); },
                    [done](caf::error&) { done(nullptr); });
          }
        },
        [then, scheduler](caf::error&) {
          then(nlohmann::json{{"time_ms", 0},
                              {"scheduler", scheduler},
                              {"servers", nlohmann::json::array()}}
                 .dump());
        });
  }

  inspector_actor inspector_;
  observer_page_options opts_;
  bool streaming_ = false;
};

} // namespace

caf::expected<server> start_observer_page(caf::actor_system& sys, inspector_actor inspector,
                                          observer_page_options opts) {
  if (!inspector)
    return caf::make_error(errc::invalid_option, "observer page: an invalid inspector handle");
  if (opts.interval < std::chrono::milliseconds{100})
    return caf::make_error(errc::invalid_option, "observer page interval: at least 100 ms, got "
                                                   + std::to_string(opts.interval.count()) + " ms");
  if (opts.timeout <= std::chrono::milliseconds::zero())
    return caf::make_error(errc::invalid_option, "observer page timeout: must be positive");
  server_options so;
  so.handler = [inspector, opts]() -> std::unique_ptr<handler> {
    return std::make_unique<observer_page_handler>(inspector, opts);
  };
  so.handler_name = "atl::observer_page_handler";
  so.port = opts.port;
  so.address = opts.address;
  so.num_acceptors = opts.num_acceptors;
  so.read_timeout = std::chrono::seconds{10};
  so.shutdown_timeout = shutdown_policy::timeout(std::chrono::seconds{1});
  so.telemetry = std::make_shared<telemetry::bus>();
  so.name = "observer_page";
  return start_server(sys, std::move(so));
}

} // namespace atl
