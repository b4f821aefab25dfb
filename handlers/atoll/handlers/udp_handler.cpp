#include "atoll/handlers/udp_handler.hpp"

#include <algorithm>

#include "atoll/handlers/detail/handler_host.hpp"

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/io_scheduler.hpp"
#include "atoll/runtime/span.hpp"

namespace atl {

namespace {

/// The sockets with replies queued by the handler actors that ran on this
/// scheduler worker since its run of jobs began: each socket sends what is
/// queued in one `sendmmsg` when the run ends
/// (`io_scheduler::defer_to_batch_end`), or when it closes.
class reply_batch {
public:
  /// Queues `data` for `to` on `sock`. Returns false if nothing was queued
  /// because this thread is not an `io_scheduler` worker (send it now).
  /// Errors: `errc::closed`.
  caf::expected<bool> add(const std::shared_ptr<datagram_socket>& sock, const udp_peer& to,
                          std::string_view data) {
    if (!scheduled_) {
      if (!io_scheduler::defer_to_batch_end(&reply_batch::flush_this, this))
        return false;
      scheduled_ = true;
    }
    if (std::find(pending_.begin(), pending_.end(), sock) == pending_.end())
      pending_.push_back(sock);
    if (auto err = sock->queue_send(to, data))
      return err;
    return true;
  }

  static reply_batch& of_this_thread() {
    thread_local reply_batch batch;
    return batch;
  }

private:
  static void flush_this(void* self) {
    static_cast<reply_batch*>(self)->flush();
  }

  void flush() noexcept {
    scheduled_ = false;
    // What cannot go (a full send buffer) is dropped, as UDP drops it.
    for (auto& sock : pending_)
      sock->try_flush_queued();
    pending_.clear(); // a closed socket is not kept alive by the batch
  }

  std::vector<std::shared_ptr<datagram_socket>> pending_;
  bool scheduled_ = false;
};

} // namespace

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
  // The largest UDP payload over IPv4: a larger reply goes out at once, so
  // that its error (EMSGSIZE) reaches the caller.
  constexpr size_t max_batched = 65'507;
  if (batched_ && outbox_ == nullptr && data.size() <= max_batched) {
    auto queued = reply_batch::of_this_thread().add(sock_, peer_, data);
    if (!queued)
      return queued.error();
    if (*queued) {
      sent(data);
      return caf::none;
    }
  }
  return send_to_peer(peer_, data);
}

caf::error udp_socket::send_to(const endpoint& to, std::string_view data) {
  auto peer = udp_peer::from(to);
  if (!peer)
    return peer.error();
  return send_to_peer(*peer, data);
}

caf::error udp_socket::send_to_peer(const udp_peer& to, std::string_view data) {
  if (outbox_ != nullptr) {
    if (sock_->closed())
      return caf::make_error(errc::closed, "the UDP socket is closed");
    outbox_->emplace_back(to, std::string{data});
    sent(data);
    return caf::none;
  }
  if (batched_)
    sock_->flush_queued(); // after the replies queued before it
  auto err = sock_->send_to(to, data);
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
