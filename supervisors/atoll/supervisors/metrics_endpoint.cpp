#include "atoll/supervisors/metrics_endpoint.hpp"

#include <string>
#include <string_view>

#include <caf/typed_event_based_actor.hpp>

#include "atoll/handlers/handler.hpp"
#include "atoll/runtime/reactor.hpp"
#include "atoll/supervisors/detail/http_request.hpp"

namespace atl {

namespace {

/// Answers one HTTP request with the metrics, then closes.
class metrics_http_handler : public detail::http_endpoint_handler {
public:
  explicit metrics_http_handler(std::shared_ptr<const server_metrics> metrics)
    : metrics_(std::move(metrics)) {
  }

  verdict handle_data(std::string_view data, socket& sock) override {
    verdict next = verdict::proceed();
    auto req = read_request(data, sock, next);
    if (!req)
      return next;
    if (req->target != "/metrics")
      return answer(sock, "404 Not Found", "the metrics are at /metrics\n");
    auto text = metrics_->prometheus_text();
    if (auto io = reactor::of(self()->system()))
      text += to_prometheus_text((*io)->stats());
    return answer(sock, "200 OK", text, {}, "text/plain; version=0.0.4; charset=utf-8");
  }

private:
  std::shared_ptr<const server_metrics> metrics_;
};

} // namespace

metrics_actor spawn_metrics_actor(caf::actor_system& sys,
                                  std::shared_ptr<const server_metrics> metrics) {
  return sys.spawn([metrics{std::move(metrics)}]() -> metrics_actor::behavior_type {
    return {[metrics](caf::get_atom) { return metrics->snapshot(); }};
  });
}

caf::expected<server> start_metrics_endpoint(caf::actor_system& sys,
                                              std::shared_ptr<const server_metrics> metrics,
                                              metrics_endpoint_options opts) {
  server_options so;
  so.handler = [metrics]() -> std::unique_ptr<handler> {
    return std::make_unique<metrics_http_handler>(metrics);
  };
  so.handler_name = "atl::metrics_http_handler";
  so.port = opts.port;
  so.address = std::move(opts.address);
  so.num_acceptors = opts.num_acceptors;
  so.read_timeout = std::chrono::seconds{10};
  so.shutdown_timeout = shutdown_policy::timeout(std::chrono::seconds{1});
  so.telemetry = std::make_shared<telemetry::bus>();
  return start_server(sys, std::move(so));
}

} // namespace atl
