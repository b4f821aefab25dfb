#include "atoll/supervisors/udp_server_context.hpp"

#include <caf/actor_cast.hpp>

namespace atl::detail {

// -- udp_endpoint -------------------------------------------------------------------

caf::expected<std::shared_ptr<udp_endpoint>>
udp_endpoint::make(std::shared_ptr<datagram_socket> sock, std::shared_ptr<reactor> io) {
  auto reg = io->add_shared(sock->fd(), io_events::readable);
  if (!reg)
    return reg.error();
  return std::make_shared<udp_endpoint>(std::move(sock), std::move(io), *reg);
}

udp_endpoint::~udp_endpoint() {
  close();
}

void udp_endpoint::stop_receiving() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (stopped_.exchange(true))
    return;
  io_->remove(reg_);
}

void udp_endpoint::close() {
  stop_receiving();
  sock_->close();
}

// -- log levels -----------------------------------------------------------------

const log_level_table& udp_log_levels() {
  static const log_level_table table = [] {
    log_level_table t;
    auto add = [&t](const char* span, std::initializer_list<const char*> names, log_level l) {
      for (auto name : names)
        t.emplace_back(telemetry::event_name{"atoll", "udp", span, name}, l);
    };
    add("acceptor", {"spawn_error"}, log_level::error);
    add("listener", {"start", "stop"}, log_level::info);
    add("acceptor", {"start", "stop"}, log_level::debug);
    add("listener", {"ready", "rate_limit_exceeded", "packet_too_large"}, log_level::debug);
    add("connection", {"start", "stop"}, log_level::debug);
    add("listener", {"waiting", "receiving", "handled"}, log_level::trace);
    add("connection", {"ready", "recv", "send", "send_error"}, log_level::trace);
    return t;
  }();
  return table;
}

// -- udp_server_context -----------------------------------------------------------

udp_server_context::udp_server_context(udp_server_options opts, std::shared_ptr<reactor> io,
                                       std::shared_ptr<telemetry::bus> events)
  : server_context_base(std::move(io), std::move(events), {"atoll", "udp", "listener"},
                        {"atoll", "udp", "acceptor"}),
    opts_(std::move(opts)) {
  static std::once_flag levels_registered;
  std::call_once(levels_registered, [] { register_log_levels(udp_log_levels()); });
  if (opts_.broadcast)
    opts_.transport.broadcast = true;
  auto conf = std::make_shared<udp_session_config>();
  conf->factory = opts_.handler;
  conf->handler_name = opts_.handler_name;
  conf->events = events_;
  conf->span_prefix = std::make_shared<const telemetry::event_name>(
      telemetry::event_name{"atoll", "udp", "connection"});
  conf->recv_event = std::make_shared<const telemetry::interest>(
      events_.get(), telemetry::join(*conf->span_prefix, "recv"));
  conf->send_event = std::make_shared<const telemetry::interest>(
      events_.get(), telemetry::join(*conf->span_prefix, "send"));
  conf->progress_event = std::make_shared<const telemetry::interest>(
      events_.get(), telemetry::join(*conf->span_prefix, "progress"));
  conf->lifetime = opts_.lifetime;
  conf->read_timeout = opts_.read_timeout;
  conf->silent_terminate_on_error = opts_.silent_terminate_on_error;
  conf->detached = opts_.detached_connections;
  if (opts_.lifetime == udp_lifetime::per_peer)
    conf->peers = std::make_shared<udp_peer_table>();
  conf->slots = std::make_shared<session_slots>(opts_.num_connections);
  sessions_ = std::move(conf);
  receiving_ = std::make_unique<telemetry::interest>(
      events_.get(), telemetry::join(*listener_prefix_, "receiving"));
  waiting_ = std::make_unique<telemetry::interest>(events_.get(),
                                                   telemetry::join(*listener_prefix_, "waiting"));
  handled_ = std::make_unique<telemetry::interest>(events_.get(),
                                                   telemetry::join(*listener_prefix_, "handled"));
  if (opts_.rate_limit_enabled)
    limiter_ = std::make_shared<rate_limiter>(
        rate_limit_config{opts_.rate_limit_max_packets, opts_.rate_limit_window},
        opts_.rate_limit_max_sources);
}

void udp_server_context::publish_sockets(std::vector<std::shared_ptr<udp_endpoint>> sockets) {
  std::lock_guard<std::mutex> guard{mtx_};
  sockets_ = std::move(sockets);
}

void udp_server_context::close_sockets() {
  std::vector<std::shared_ptr<udp_endpoint>> sockets;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    sockets.swap(sockets_);
  }
  for (auto& s : sockets)
    s->close();
}

void udp_server_context::stop_receiving() {
  for (auto& s : sockets())
    s->stop_receiving();
}

std::vector<std::shared_ptr<udp_endpoint>> udp_server_context::sockets() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return sockets_;
}

void udp_server_context::set_connection_supervisor(const caf::actor& sup) {
  std::lock_guard<std::mutex> guard{mtx_};
  conn_sup_ = sup.address();
}

caf::actor udp_server_context::connection_supervisor() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return caf::actor_cast<caf::actor>(conn_sup_);
}

} // namespace atl::detail
