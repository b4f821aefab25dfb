// http_hello: a minimal HTTP/1.1 server answering every request with
// "Hello, World!" (keep-alive and pipelining; usable with wrk).
//
// Usage: http_hello [--port=N] [--host=ADDR] ...
//   curl http://127.0.0.1:PORT/
//   wrk -t1 -c50 -d5s http://127.0.0.1:PORT/
#include <algorithm>
#include <cctype>

#include "example_common.hpp"

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

constexpr std::string_view bad_request = "HTTP/1.1 400 Bad Request\r\n"
                                         "Content-Length: 0\r\n"
                                         "Connection: close\r\n"
                                         "\r\n";

/// Largest accepted request head (request line and headers).
constexpr size_t max_head = 8192;

std::string lower(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// What one request head asks for.
struct request_head {
  bool valid = false;
  bool keep_alive = false;
};

/// Parses a request head (without the final empty line): "METHOD TARGET
/// HTTP/1.x" and headers. Requests with a body are refused (this server has
/// no use for one).
request_head parse_head(std::string_view head) {
  request_head result;
  auto eol = head.find("\r\n");
  auto line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1 || sp1 == 0)
    return result;
  auto version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0")
    return result;
  result.keep_alive = version == "HTTP/1.1";
  auto headers = lower(eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2));
  if (headers.find("content-length:") != std::string::npos
      && headers.find("content-length: 0") == std::string::npos)
    return result;
  if (headers.find("transfer-encoding:") != std::string::npos)
    return result;
  if (headers.find("connection: close") != std::string::npos)
    result.keep_alive = false;
  if (headers.find("connection: keep-alive") != std::string::npos)
    result.keep_alive = true;
  result.valid = true;
  return result;
}

class http_handler : public atl::handler {
public:
  atl::verdict handle_data(std::string_view data, socket& sock) override {
    buffer_.append(data);
    size_t start = 0;
    // Answer every complete request in the buffer (pipelining).
    for (auto end = buffer_.find("\r\n\r\n"); end != std::string::npos;
         end = buffer_.find("\r\n\r\n", start)) {
      auto head = parse_head(std::string_view{buffer_}.substr(start, end - start));
      start = end + 4;
      if (!head.valid) {
        sock.send(bad_request);
        return atl::verdict::close();
      }
      if (!head.keep_alive) {
        sock.send(ok_close);
        return atl::verdict::close();
      }
      sock.send(ok_keep_alive);
    }
    buffer_.erase(0, start);
    if (buffer_.size() > max_head) {
      sock.send(bad_request);
      return atl::verdict::close();
    }
    return atl::verdict::proceed();
  }

private:
  std::string buffer_;
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
