#include "atoll/supervisors/detail/server_context_base.hpp"

namespace atl::detail {

server_context_base::server_context_base(std::shared_ptr<reactor> io,
                                         std::shared_ptr<telemetry::bus> events,
                                         telemetry::event_name listener,
                                         telemetry::event_name acceptor)
  : io_(std::move(io)),
    events_(std::move(events)),
    listener_prefix_(std::make_shared<const telemetry::event_name>(std::move(listener))),
    acceptor_prefix_(std::make_shared<const telemetry::event_name>(std::move(acceptor))) {}

server_context_base::~server_context_base() = default;

void server_context_base::set_server(const caf::actor& sup) {
  std::lock_guard<std::mutex> guard{server_mtx_};
  server_ = sup;
}

caf::actor server_context_base::server() const {
  std::lock_guard<std::mutex> guard{server_mtx_};
  return server_;
}

} // namespace atl::detail
