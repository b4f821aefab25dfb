#include "atoll/supervisors/metrics_endpoint.hpp"

#include <string>
#include <string_view>

#include <fmt/format.h>

#include <caf/typed_event_based_actor.hpp>

#include "atoll/handlers/handler.hpp"

namespace atl {

namespace {

/// The longest request head the endpoint reads.
constexpr size_t max_head = 8192;

/// Answers one HTTP request with the metrics, then closes.
class metrics_http_handler : public handler {
public:
  explicit metrics_http_handler(std::shared_ptr<const server_metrics> metrics)
    : metrics_(std::move(metrics)) {
  }

  verdict handle_data(std::string_view data, socket& sock) override {
    head_.append(data.data(), std::min(data.size(), max_head + 4 - head_.size()));
    auto end = head_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (head_.size() > max_head)
        return answer(sock, "400 Bad Request", "request head too large\n");
      return verdict::proceed();
    }
    auto line = std::string_view{head_}.substr(0, head_.find("\r\n"));
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
      return answer(sock, "400 Bad Request", "bad request line\n");
    auto method = line.substr(0, sp1);
    auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    auto version = line.substr(sp2 + 1);
    if (version != "HTTP/1.1" && version != "HTTP/1.0")
      return answer(sock, "400 Bad Request", "HTTP/1.0 or HTTP/1.1 only\n");
    if (method != "GET" && method != "HEAD")
      return answer(sock, "405 Method Not Allowed", "GET or HEAD only\n", "Allow: GET, HEAD\r\n");
    head_only_ = method == "HEAD";
    if (target.substr(0, target.find('?')) != "/metrics")
      return answer(sock, "404 Not Found", "the metrics are at /metrics\n");
    return answer(sock, "200 OK", metrics_->prometheus_text(), {},
                  "text/plain; version=0.0.4; charset=utf-8");
  }

private:
  verdict answer(socket& sock, std::string_view status, const std::string& body,
                 std::string_view extra_headers = {},
                 std::string_view type = "text/plain; charset=utf-8") {
    auto response = fmt::format("HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}"
                                "Connection: close\r\n\r\n",
                                status, type, body.size(), extra_headers);
    if (!head_only_)
      response += body;
    static_cast<void>(sock.send(response));
    return verdict::close();
  }

  std::shared_ptr<const server_metrics> metrics_;
  std::string head_;
  bool head_only_ = false;
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
