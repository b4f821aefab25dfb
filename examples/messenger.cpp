// messenger: a chat room. Every line a client sends is delivered, by
// message, to the actors of all other connections, which write it to their
// clients. Shows connection actors receiving ordinary CAF messages next to
// socket data (Thousand Island's Messenger example, with a room actor).
//
// Usage: messenger [--port=N] [--host=ADDR] [--read-timeout=MS] ...
//   nc 127.0.0.1 PORT   # in two terminals; lines typed in one appear in the other
//
// With --inspector-port=N, another process can write to one client:
//   atoll-observer 127.0.0.1 N connections      # find its ID
//   atoll-observer 127.0.0.1 N send ID "hello"  # the client reads "(operator): hello"
//
// Lines may be up to 64 KiB long (newline included). --read-timeout closes
// clients silent that long (default 0: never, as chat clients idle).
//
// Flow control: a client's lines are read, handed to the room in one
// message per read, and the client's connection reads nothing more
// (`verdict::hold`) until every other connection has queued them for its
// client. A fast talker thus waits in TCP's flow control instead of filling
// the actors' mailboxes; a client that reads too slowly for the room is
// disconnected when its queued output reaches the transport's limit.
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
    // Answers once every other member has queued `lines` (or is gone): the
    // speaker reads its client again only then.
    [self, members](say_atom, const caf::actor& from,
                    const std::string& lines) -> caf::result<caf::ok_atom> {
      auto left = std::make_shared<size_t>(0);
      for (auto& m : *members)
        if (m != from)
          ++*left;
      if (*left == 0)
        return caf::ok_atom::value;
      auto rp = self->make_response_promise<caf::ok_atom>();
      auto one_done = [rp, left]() mutable {
        if (--*left == 0)
          rp.deliver(caf::ok_atom::value);
      };
      for (auto& m : *members)
        if (m != from)
          self->request(m, caf::infinite, deliver_atom::value, lines)
            .then([one_done](caf::ok_atom) mutable { one_done(); },
                  [one_done](caf::error&) mutable { one_done(); }); // it ended
      return rp;
    },
  };
}

/// The longest line a client may send, its newline included; a client
/// exceeding it is disconnected.
constexpr size_t max_line = 64 * 1024;

/// One client: joins the room, sends complete lines to it, and writes what
/// the room delivers. Idle clients are closed after the read timeout (none by
/// default: chat clients may idle).
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
    return atl::verdict::proceed(); // with --read-timeout
  }

  atl::verdict handle_data(std::string_view data, socket& sock) override {
    buffer_.append(data);
    // Every complete line first (a burst holds many), then the limit on the
    // incomplete rest.
    std::string lines;
    size_t start = 0;
    for (auto nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n', start)) {
      if (nl + 1 - start > max_line)
        return line_too_long(sock);
      lines.append(name_).append(": ").append(buffer_, start, nl + 1 - start);
      start = nl + 1;
    }
    buffer_.erase(0, start);
    if (buffer_.size() >= max_line) // its newline would exceed the limit
      return line_too_long(sock);
    if (lines.empty())
      return atl::verdict::proceed();
    // Read on once the room has handed the lines on (see the top).
    self()
      ->request(room_, caf::infinite, say_atom::value, caf::actor_cast<caf::actor>(self()),
                std::move(lines))
      .then([this](caf::ok_atom) { apply(atl::verdict::proceed()); },
            [this](caf::error& err) { apply(atl::verdict::error(std::move(err))); });
    return atl::verdict::hold();
  }

  void handle_timeout(socket& sock) override {
    sock.send("silent for too long, bye\n");
  }

  caf::message_handler message_handlers(socket& sock) override {
    return {
      [this, &sock](deliver_atom, const std::string& lines) {
        // A client that reads nothing (or too slowly) while others talk is
        // disconnected once its queued output reaches the transport's limit,
        // rather than buffered without bound.
        if (auto err = sock.send(lines); err == atl::errc::output_limit)
          apply(atl::verdict::error(std::move(err)));
        return caf::ok_atom::value; // queued (or this connection ends)
      },
      [this, &sock](atl::text_message_atom, const std::string& text) -> std::string {
        // From another process (`atoll-observer HOST PORT send ID TEXT`):
        // a line for this client.
        auto line = text.empty() || text.back() != '\n' ? text + "\n" : text;
        if (auto err = sock.send("(operator): " + line)) {
          if (err == atl::errc::output_limit)
            apply(atl::verdict::error(err));
          return "not delivered to " + name_ + ": " + atl::describe(err);
        }
        return "delivered to " + name_;
      },
    };
  }

private:
  static atl::verdict line_too_long(socket& sock) {
    sock.send("line too long (more than " + std::to_string(max_line) + " bytes), bye\n");
    return atl::verdict::error(caf::make_error(atl::errc::handler_error, "line too long"));
  }

  caf::actor room_;
  std::string name_;
  std::string buffer_;
};

/// The messenger's options: the common ones, with no read timeout by default.
class messenger_config : public example::server_config {
public:
  messenger_config() : example::server_config(0, false) { // the handler uses self()
  }
};

} // namespace

int main(int argc, char** argv) {
  return example::main_of<messenger_config>(
    argc, argv, [](caf::actor_system& sys, const messenger_config&, atl::server_options& opts) {
      opts.set_handler<messenger_handler>(sys.spawn(room));
      opts.name = "messenger";
      return true;
    });
}
