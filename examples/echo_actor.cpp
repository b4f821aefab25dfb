// echo_actor: the echo server written as its own CAF actor per connection,
// instead of a handler (Thousand Island's "when Handler isn't enough"): the
// server hands each accepted socket to an `echo_connection` actor, which
// drives it with `atl::stream_connection` and answers ordinary messages too.
//
// Usage: echo_actor [--port=N] [--host=ADDR] [--greeting=TEXT] [--detached] ...
//   echo_actor --port=0            # prints "listening on 0.0.0.0:PORT"
//   nc 127.0.0.1 PORT              # type lines, get them back
// On SIGINT/SIGTERM every connection answers what it had received but not
// read yet, says "bye", then closes with a FIN (the server's drain).
#include "example_common.hpp"

namespace {

/// The example's own options (besides the server's).
struct echo_actor_config : example::server_config {
  std::string greeting;

  // The connection is the example's own actor (a connection_process):
  // --connection-actor does not apply.
  echo_actor_config() : example::server_config(60000, false) {
    opt_group{custom_options_, "global"}.add(greeting, "greeting",
                                             "a line sent to each client when it connects "
                                             "(default: none)");
  }
};

/// One connection: echoes what the client sends.
class echo_connection : public caf::event_based_actor {
public:
  echo_connection(caf::actor_config& cfg, atl::connection_hand_off hand_off, std::string greeting)
    : caf::event_based_actor(cfg),
      conn_(this, std::move(hand_off)),
      greeting_(std::move(greeting)) {
  }

  caf::behavior make_behavior() override {
    // The server's stop: after every byte already read was echoed, answer
    // what arrived but was not read yet and say goodbye; the drain follows.
    conn_.on_stop([this] {
      if (auto rest = conn_.read_available(); rest && !rest->empty())
        static_cast<void>(conn_.socket().send(*rest));
      static_cast<void>(conn_.socket().send("bye\n"));
    });
    conn_.start();
    return conn_.handlers().or_else(
      [this](atl::stream_open_atom) {
        if (!greeting_.empty())
          static_cast<void>(conn_.socket().send(greeting_ + "\n"));
        conn_.activate(); // the first bytes, as a message
      },
      [this](atl::stream_data_atom, const std::string& data) {
        if (auto err = conn_.socket().send(data)) {
          conn_.close(); // e.g. the client does not read: output_limit
          return;
        }
        conn_.activate(); // the next bytes
      },
      [this](atl::stream_closed_atom) { conn_.close(); },
      [this](atl::stream_error_atom, const caf::error&) { conn_.close(); });
  }

private:
  atl::stream_connection conn_;
  std::string greeting_;
};

} // namespace

int main(int argc, char** argv) {
  return example::main_of<echo_actor_config>(
    argc, argv, [](caf::actor_system&, const echo_actor_config& cfg, atl::server_options& opts) {
      opts.handler = nullptr;
      if (opts.detached_connections) {
        // --detached: the actor gets its own thread (a spawn option).
        opts.detached_connections = false;
        opts.set_connection_process<echo_connection, caf::detached>(cfg.greeting);
      } else {
        opts.set_connection_process<echo_connection>(cfg.greeting);
      }
      opts.name = "echo_actor";
      return true;
    });
}
