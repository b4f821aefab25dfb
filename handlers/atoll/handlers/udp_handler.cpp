#include "atoll/handlers/udp_handler.hpp"

#include "atoll/handlers/detail/handler_host.hpp"

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/span.hpp"

namespace atl {

std::string to_string(udp_lifetime x) {
  switch (x) {
    case udp_lifetime::per_datagram: return "per_datagram";
    case udp_lifetime::per_peer: return "per_peer";
    case udp_lifetime::in_listener: return "in_listener";
  }
  return "?";
}

// -- udp_socket -------------------------------------------------------------------

udp_socket::udp_socket(std::shared_ptr<datagram_socket> sock, udp_peer peer)
  : sock_(std::move(sock)), peer_(peer) {}

caf::error udp_socket::send(std::string_view data) {
  if (outbox_ != nullptr) {
    if (sock_->closed())
      return caf::make_error(errc::closed, "the UDP socket is closed");
    outbox_->emplace_back(peer_, std::string{data});
    sent(data);
    return caf::none;
  }
  auto err = sock_->send_to(peer_, data);
  if (err)
    send_failed(data, err);
  else
    sent(data);
  return err;
}

caf::error udp_socket::send_to(const endpoint& to, std::string_view data) {
  auto peer = udp_peer::from(to);
  if (!peer)
    return peer.error();
  if (outbox_ != nullptr) {
    if (sock_->closed())
      return caf::make_error(errc::closed, "the UDP socket is closed");
    outbox_->emplace_back(*peer, std::string{data});
    sent(data);
    return caf::none;
  }
  auto err = sock_->send_to(*peer, data);
  if (err)
    send_failed(data, err);
  else
    sent(data);
  return err;
}

void udp_socket::sent(std::string_view data) {
  ++stats_.send_cnt;
  stats_.send_oct += data.size();
  if (span_ != nullptr && send_event_ != nullptr && span_->enabled(*send_event_))
    span_->emit(*send_event_, telemetry::fields{{"data", std::string{data}}});
}

void udp_socket::send_failed(std::string_view data, const caf::error& err) const {
  if (span_ != nullptr && span_->enabled())
    span_->emit("send_error", telemetry::fields{{"monotonic_time", telemetry::monotonic_time()},
                                                {"data", std::string{data}},
                                                {"error", describe(err)}});
}

caf::expected<endpoint> udp_socket::peername() const {
  return peer_.to_endpoint();
}

endpoint udp_socket::sockname() const {
  return sock_->local();
}

caf::expected<int> udp_socket::getopt(socket_option opt) const {
  auto fd = sock_->fd();
  if (fd < 0)
    return caf::make_error(errc::closed, "the UDP socket is closed");
  return get_socket_option(fd, opt);
}

caf::error udp_socket::setopt(socket_option opt, int value) {
  auto fd = sock_->fd();
  if (fd < 0)
    return caf::make_error(errc::closed, "the UDP socket is closed");
  return set_socket_option(fd, opt, value);
}

// -- udp_handler ----------------------------------------------------------------

udp_handler::~udp_handler() = default;

} // namespace atl
