// echo_managed: the echo server run from an actor, as a CAF application
// would: a manager actor starts it with `atl::spawn_server` (never blocking),
// subscribes to its connection events, lists its connections with their
// records, messages each connection actor at the stop and stops the server
// asynchronously. The main thread only waits for a signal.
//
// Usage: echo_managed [--port=N] [--host=ADDR] [--events] [--status-every=MS]
//                     [--goodbye=TEXT] ...
//   echo_managed --port=0 --events   # prints "listening on 0.0.0.0:PORT"
//   nc 127.0.0.1 PORT                # type lines, get them back
// With --events, stderr gets "connection from ADDR:PORT" and "connection
// ADDR:PORT closed: REASON" lines; with --status-every, a list of the
// connections every MS milliseconds. On SIGINT/SIGTERM each client gets
// the --goodbye line (sent through its connection actor) before the drain.
#include <sstream>

#include "example_common.hpp"

namespace {

using start_atom = caf::atom_constant<caf::atom("start")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using goodbye_atom = caf::atom_constant<caf::atom("goodbye")>;

/// The example's own options (besides the server's).
struct managed_config : example::server_config {
  bool events = false;
  int status_every = 0;
  std::string goodbye = "goodbye";

  managed_config() {
    opt_group{custom_options_, "global"}
      .add(events, "events", "print each connection's start and stop to stderr")
      .add(status_every, "status-every",
           "print the connections every MS milliseconds, 0..3600000 (0: never, the default)")
      .add(goodbye, "goodbye",
           "the line each client gets at the stop, at most 1024 bytes (empty: none; "
           "default: goodbye)");
  }

  /// Checks the example's own options. Prints why and returns false if one
  /// is out of range.
  bool valid() const {
    if (status_every < 0 || status_every > 3600000) {
      example::say("invalid options: --status-every must be within 0..3600000\n");
      return false;
    }
    if (goodbye.size() > 1024 || goodbye.find('\n') != std::string::npos) {
      example::say("invalid options: --goodbye must be one line of at most 1024 bytes\n");
      return false;
    }
    return true;
  }
};

/// Echoes, and sends a line when its connection actor is asked to.
class echo_handler : public atl::handler {
public:
  atl::verdict handle_data(std::string_view data, atl::socket& sock) override {
    return example::after_send(sock.send(data));
  }

  caf::message_handler message_handlers(atl::socket& sock) override {
    return {
      [&sock](goodbye_atom, const std::string& line) -> caf::result<caf::ok_atom> {
        if (auto err = sock.send(line + "\n"))
          return err;
        return caf::ok_atom::value;
      },
    };
  }
};

/// What the manager knows.
struct manager_state {
  atl::server_actor server;
  size_t goodbyes_pending = 0;
};

/// "127.0.0.1:5000 open in=5 out=5 age=120ms".
std::string describe(const atl::connection_record& rec) {
  std::ostringstream out;
  out << atl::to_string(rec.peer) << ' ' << atl::to_string(rec.state) << " in=" << rec.recv_oct
      << " out=" << rec.send_oct << " age="
      << std::chrono::duration_cast<std::chrono::milliseconds>(rec.age).count() << "ms";
  return out.str();
}

/// Starts the server on request and runs it until asked to stop.
caf::behavior run_manager(caf::stateful_actor<manager_state>* self, atl::server_options opts,
                          bool events, std::chrono::milliseconds status_every,
                          std::string goodbye) {
  return {
    // Start: reply (root, address) once the server listens and this actor
    // is subscribed to its connection events.
    [=](start_atom) -> caf::result<atl::server_actor, atl::endpoint> {
      auto rp = self->make_response_promise<atl::server_actor, atl::endpoint>();
      atl::spawn_server(self, opts, [=](caf::expected<atl::listening_server> started) mutable {
        if (!started) {
          rp.deliver(std::move(started.error()));
          return;
        }
        self->state.server = started->root;
        auto reply = [=]() mutable {
          rp.deliver(started->root, started->local);
          if (status_every.count() > 0)
            self->delayed_send(self, status_every, tick_atom::value);
        };
        if (!events) {
          reply();
          return;
        }
        self
          ->request(started->root, std::chrono::seconds{5}, atl::subscribe_atom::value,
                    caf::actor_cast<caf::actor>(self))
          .then([=](caf::ok_atom) mutable { reply(); },
                [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
      });
      return rp;
    },
    [=](const atl::connection_event& ev) {
      if (ev.kind == atl::connection_event::kind_t::started)
        example::say("connection from " + atl::to_string(ev.connection.peer) + "\n");
      else
        example::say("connection " + atl::to_string(ev.connection.peer) + " closed: " + ev.reason
                     + (ev.error.empty() ? "" : " (" + ev.error + ")") + "\n");
    },
    [=](tick_atom) {
      self->request(self->state.server, std::chrono::seconds{10}, atl::connections_atom::value)
        .then(
          [=](std::vector<atl::connection_record>& conns) {
            std::string text = "connections: " + std::to_string(conns.size()) + "\n";
            for (auto& rec : conns)
              text += "  " + describe(rec) + "\n";
            example::say(text);
            self->delayed_send(self, status_every, tick_atom::value);
          },
          [=](caf::error&) {}); // stopping
    },
    // Stop: every connection actor sends the goodbye line (and answers when
    // it did), then the server stops with its drain. Replies when it is gone.
    [=](atl::stop_atom) -> caf::result<caf::ok_atom> {
      auto rp = self->make_response_promise<caf::ok_atom>();
      auto srv = self->state.server;
      auto stop = [=]() mutable {
        self->request(srv, caf::infinite, atl::stop_atom::value)
          .then([=](caf::ok_atom) mutable { rp.deliver(caf::ok_atom::value); },
                [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
      };
      if (goodbye.empty()) {
        stop();
        return rp;
      }
      self->request(srv, std::chrono::seconds{10}, atl::connections_atom::value)
        .then(
          [=](std::vector<atl::connection_record>& conns) mutable {
            self->state.goodbyes_pending = conns.size();
            if (conns.empty()) {
              stop();
              return;
            }
            auto one_done = [=]() mutable {
              if (--self->state.goodbyes_pending == 0)
                stop();
            };
            for (auto& rec : conns)
              self->request(rec.handle, std::chrono::seconds{5}, goodbye_atom::value, goodbye)
                .then([=](caf::ok_atom) mutable { one_done(); },
                      [=](caf::error&) mutable { one_done(); }); // gone meanwhile
          },
          [=](caf::error&) mutable { stop(); });
      return rp;
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  return example::main_of_with<managed_config>(
    argc, argv,
    [](caf::actor_system&, const managed_config& cfg, atl::server_options& opts) {
      if (!cfg.valid())
        return false;
      opts.set_handler<echo_handler>();
      opts.name = "echo_managed";
      return true;
    },
    [](caf::actor_system& sys, const managed_config& cfg) -> example::start_function {
      return [&sys, &cfg](atl::server_options opts) -> caf::expected<example::started_server> {
        auto mgr = sys.spawn(run_manager, std::move(opts), cfg.events,
                             std::chrono::milliseconds{cfg.status_every}, cfg.goodbye);
        // The main thread is outside actors: it may wait for the answers.
        caf::scoped_actor self{sys};
        caf::expected<example::started_server> result{caf::error{}};
        self->request(mgr, caf::infinite, start_atom::value)
          .receive(
            [&](atl::server_actor& root, atl::endpoint& local) {
              auto stop = [&sys, mgr]() -> caf::error {
                caf::scoped_actor waiter{sys};
                caf::error failure;
                waiter->request(mgr, caf::infinite, atl::stop_atom::value)
                  .receive([](caf::ok_atom) {}, [&](caf::error& err) { failure = err; });
                waiter->send_exit(mgr, caf::exit_reason::user_shutdown);
                return failure;
              };
              result = example::started_server{root, local, stop};
            },
            [&](caf::error& err) {
              self->send_exit(mgr, caf::exit_reason::user_shutdown);
              result = std::move(err);
            });
        return result;
      };
    });
}
