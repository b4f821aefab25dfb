// messenger: a chat room. Every line a client sends is delivered, by
// message, to the actors of all other connections, which write it to their
// clients. Shows connection actors receiving ordinary CAF messages next to
// socket data (Thousand Island's Messenger example, with a room actor).
//
// Usage: messenger [--port=N] [--host=ADDR] ...
//   nc 127.0.0.1 PORT   # in two terminals; lines typed in one appear in the other
#include <set>

#include "example_common.hpp"

namespace {

using join_atom = caf::atom_constant<caf::atom("join")>;
using say_atom = caf::atom_constant<caf::atom("say")>;
using deliver_atom = caf::atom_constant<caf::atom("deliver")>;

/// The room: knows every connection actor (and forgets those that end).
caf::behavior room(caf::event_based_actor* self) {
  auto members = std::make_shared<std::set<caf::actor>>();
  self->set_down_handler([members](caf::down_msg& msg) {
    for (auto i = members->begin(); i != members->end(); ++i)
      if (i->address() == msg.source) {
        members->erase(i);
        return;
      }
  });
  return {
    [self, members](join_atom, const caf::actor& conn) {
      members->insert(conn);
      self->monitor(conn);
      return caf::ok_atom::value;
    },
    [members](say_atom, const caf::actor& from, const std::string& line) {
      for (auto& m : *members)
        if (m != from)
          caf::anon_send(m, deliver_atom::value, line);
    },
  };
}

/// One client: joins the room, sends complete lines to it, and writes what
/// the room delivers.
class messenger_handler : public atl::handler {
public:
  explicit messenger_handler(caf::actor room) : room_(std::move(room)) {
  }

  atl::verdict handle_connection(socket& sock) override {
    auto peer = sock.peername();
    name_ = peer ? atl::to_string(*peer) : "someone";
    // Welcome the client once the room knows it: from then on it hears
    // everything said.
    self()
      ->request(room_, caf::infinite, join_atom::value, caf::actor_cast<caf::actor>(self()))
      .then([this, &sock](caf::ok_atom) { sock.send("welcome, " + name_ + "\n"); });
    return atl::verdict::proceed(atl::infinite); // chat clients may idle
  }

  atl::verdict handle_data(std::string_view data, socket&) override {
    buffer_.append(data);
    if (buffer_.size() > 64 * 1024)
      return atl::verdict::error(caf::make_error(atl::errc::handler_error, "line too long"));
    for (auto nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n')) {
      auto line = buffer_.substr(0, nl + 1);
      buffer_.erase(0, nl + 1);
      self()->send(room_, say_atom::value, caf::actor_cast<caf::actor>(self()), name_ + ": " + line);
    }
    return atl::verdict::proceed(atl::infinite);
  }

  caf::message_handler message_handlers(socket& sock) override {
    return {
      [&sock](deliver_atom, const std::string& line) { sock.send(line); },
    };
  }

private:
  caf::actor room_;
  std::string name_;
  std::string buffer_;
};

} // namespace

int main(int argc, char** argv) {
  return example::main_of<example::server_config>(
    argc, argv, [](caf::actor_system& sys, const example::server_config&, atl::server_options& opts) {
      opts.set_handler<messenger_handler>(sys.spawn(room));
      opts.name = "messenger";
      return true;
    });
}
