// http_hello: a minimal HTTP/1.1 server answering every request with
// "Hello, World!" (HEAD: the headers only; keep-alive and pipelining;
// usable with wrk).
//
// Usage: http_hello [--port=N] [--host=ADDR] ...
//   curl http://127.0.0.1:PORT/
//   wrk -t1 -c50 -d5s http://127.0.0.1:PORT/
#include "example_common.hpp"
#include "http_request.hpp"

namespace {

constexpr std::string_view ok_keep_alive = "HTTP/1.1 200 OK\r\n"
                                           "Content-Length: 13\r\n"
                                           "Content-Type: text/plain\r\n"
                                           "Connection: keep-alive\r\n"
                                           "\r\n"
                                           "Hello, World!";

constexpr std::string_view ok_close = "HTTP/1.1 200 OK\r\n"
                                      "Content-Length: 13\r\n"
                                      "Content-Type: text/plain\r\n"
                                      "Connection: close\r\n"
                                      "\r\n"
                                      "Hello, World!";

/// An answer's head only: what HEAD gets (the same headers, no body).
constexpr std::string_view head_of(std::string_view answer) {
  return answer.substr(0, answer.find("\r\n\r\n") + 4);
}

constexpr std::string_view bad_request = "HTTP/1.1 400 Bad Request\r\n"
                                         "Content-Length: 0\r\n"
                                         "Connection: close\r\n"
                                         "\r\n";

class http_handler : public atl::handler {
public:
  atl::verdict handle_data(std::string_view data, socket& sock) override {
    // Answer every complete request in the buffer (pipelining).
    auto status = reader_.feed(data, [&](std::string_view raw) {
      auto head = example::parse_head(raw);
      if (!head.valid) {
        sock.send(bad_request);
        return false;
      }
      auto body = head.method != "HEAD";
      if (!head.keep_alive) {
        sock.send(body ? ok_close : head_of(ok_close));
        return false;
      }
      sock.send(body ? ok_keep_alive : head_of(ok_keep_alive));
      return true;
    });
    switch (status) {
      case example::request_reader::status::need_more:
        return atl::verdict::proceed();
      case example::request_reader::status::stopped:
        return atl::verdict::close();
      case example::request_reader::status::too_large:
      case example::request_reader::status::malformed:
        sock.send(bad_request);
        return atl::verdict::close();
    }
    return atl::verdict::close();
  }

private:
  example::request_reader reader_;
};

} // namespace

int main(int argc, char** argv) {
  return example::main_of<example::server_config>(
    argc, argv, [](caf::actor_system&, const example::server_config&, atl::server_options& opts) {
      opts.set_handler<http_handler>();
      opts.name = "http_hello";
      return true;
    });
}
