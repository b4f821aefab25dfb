#include "atoll/supervisors/server_context.hpp"

#include "atoll/supervisors/server_log_levels.hpp"

#include <algorithm>
#include <mutex>

#include <sys/socket.h>

#include <caf/actor_cast.hpp>

namespace atl::detail {

caf::expected<std::shared_ptr<listen_endpoint>> listen_endpoint::make(listen_socket sock,
                                                                       std::shared_ptr<reactor> io) {
  auto reg = io->add_shared(sock.fd(), io_events::readable);
  if (!reg)
    return reg.error();
  return std::make_shared<listen_endpoint>(std::move(sock), std::move(io), *reg);
}

listen_endpoint::~listen_endpoint() {
  stop_listening();
}

void listen_endpoint::stop_listening() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (closed_.exchange(true))
    return;
  io_->remove(reg_);
  // On Linux, shutting a listening socket down stops it listening: pending
  // and new connection attempts are refused at once. The fd stays open (and
  // its number reserved) until the last acceptor lets go of it.
  if (sock_.fd() >= 0)
    ::shutdown(sock_.fd(), SHUT_RDWR);
  sock_.unlink_path();
}

server_context::server_context(server_options opts, std::shared_ptr<reactor> io,
                               std::shared_ptr<telemetry::bus> events)
  : server_context_base(std::move(io), std::move(events), {"atoll", "listener"},
                        {"atoll", "acceptor"}),
    opts_(std::move(opts)) {
  static std::once_flag levels_registered;
  std::call_once(levels_registered, [] { register_log_levels(server_log_levels()); });
  auto conf = std::make_shared<connection_config>();
  conf->factory = opts_.handler;
  conf->handler_name = opts_.handler_name;
  conf->io = io_;
  conf->events = events_;
  conf->span_prefix = std::make_shared<const telemetry::event_name>(
    telemetry::event_name{"atoll", "connection"});
  conf->data_events = std::make_shared<const detail::data_events>(events_.get(), *conf->span_prefix);
  conf->transport = opts_.transport;
  conf->read_timeout = opts_.read_timeout;
  conf->handshake_timeout = opts_.handshake_timeout;
  conf->silent_terminate_on_error = opts_.silent_terminate_on_error;
  conf->make_transport = opts_.transport_layer;
  if (opts_.proxy_protocol)
    conf->proxy = std::make_shared<const proxy_protocol_options>(*opts_.proxy_protocol);
  if (opts_.max_connections_per_source)
    conf->sources = std::make_shared<detail::source_limiter>(*opts_.max_connections_per_source);
  conf->watchers = std::make_shared<detail::connection_watchers>();
  conn_ = std::move(conf);
}

void server_context::publish_listener(listener_state state) {
  std::lock_guard<std::mutex> guard{mtx_};
  listener_ = std::move(state);
}

void server_context::unpublish_listener(caf::actor_id listener) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (listener_ && listener_->actor.id() == listener)
    listener_.reset();
}

std::optional<listener_state> server_context::listener() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return listener_;
}

void server_context::stop_listening() {
  std::vector<std::shared_ptr<listen_endpoint>> sockets;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (listener_)
      sockets = listener_->sockets;
  }
  for (auto& sock : sockets)
    sock->stop_listening();
}

void server_context::add_connection_supervisor(const caf::actor& sup) {
  std::lock_guard<std::mutex> guard{mtx_};
  connection_sups_.push_back(sup.address());
}

std::vector<caf::actor> server_context::connection_supervisors() {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<caf::actor> result;
  auto alive = [&](const caf::actor_addr& addr) {
    auto hdl = caf::actor_cast<caf::actor>(addr);
    if (!hdl)
      return false;
    result.push_back(std::move(hdl));
    return true;
  };
  connection_sups_.erase(std::remove_if(connection_sups_.begin(), connection_sups_.end(),
                                        [&](const caf::actor_addr& a) { return !alive(a); }),
                         connection_sups_.end());
  return result;
}

} // namespace atl::detail
