#include <chrono>
#include <string>

#include "atoll/all.hpp"

using tick_atom = caf::atom_constant<caf::atom("tick")>;

// Counts down to the client, one number per period, then closes. The ticks
// are messages the connection actor sends itself: they arrive in its
// mailbox between the client's data, and run in the same actor (no locks).
class countdown_handler : public atl::handler {
public:
  countdown_handler(int from, std::chrono::milliseconds period) : left_(from), period_(period) {}

  atl::verdict handle_connection(socket& sock) override {
    sock.send("counting down from " + std::to_string(left_) + "\n");
    self()->delayed_send(self(), period_, tick_atom::value);
    return atl::verdict::proceed();
  }

  // The client can end it early.
  atl::verdict handle_data(std::string_view data, socket& sock) override {
    if (data.substr(0, 4) == "stop") {
      sock.send("stopped at " + std::to_string(left_) + "\n");
      return atl::verdict::close();
    }
    return atl::verdict::proceed();
  }

  // The handler's own messages (a GenServer's handle_info).
  caf::message_handler message_handlers(socket& sock) override {
    return {
      [this, &sock](tick_atom) {
        if (--left_ > 0) {
          sock.send(std::to_string(left_) + "\n");
          self()->delayed_send(self(), period_, tick_atom::value);
        } else {
          sock.send("liftoff\n");
          apply(atl::verdict::close()); // a verdict from a message handler
        }
      },
    };
  }

private:
  int left_;
  std::chrono::milliseconds period_;
};
