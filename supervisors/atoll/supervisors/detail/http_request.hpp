// The small HTTP/1.x request reading the library's own endpoints share (the
// metrics endpoint, the observer page): a request head up to a limit, its
// request line checked, and a complete response with Connection: close.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "atoll/handlers/handler.hpp"

namespace atl::detail {

/// The request line of a complete request head (views into the head).
struct http_request_line {
  std::string_view method;
  std::string_view target; // without the query
  bool head_only = false;  // method HEAD
};

/// What reading a request head gave.
enum class http_head_status {
  incomplete, // wait for more bytes
  ok,
  too_large,   // 400
  bad_line,    // 400
  bad_version, // 400
  bad_method,  // 405 (GET and HEAD only)
};

/// Appends `data` to `head` (at most `max_head` bytes kept, plus the end
/// marker) and reads the request line once the head is complete.
inline http_head_status read_http_head(std::string& head, std::string_view data, size_t max_head,
                                       http_request_line& out) {
  head.append(data.data(), std::min(data.size(), max_head + 4 - std::min(head.size(), max_head + 4)));
  if (head.find("\r\n\r\n") == std::string::npos)
    return head.size() > max_head ? http_head_status::too_large : http_head_status::incomplete;
  auto line = std::string_view{head}.substr(0, head.find("\r\n"));
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return http_head_status::bad_line;
  auto version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0")
    return http_head_status::bad_version;
  out.method = line.substr(0, sp1);
  auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  out.target = target.substr(0, target.find('?'));
  if (out.method != "GET" && out.method != "HEAD")
    return http_head_status::bad_method;
  out.head_only = out.method == "HEAD";
  return http_head_status::ok;
}

/// A complete response that closes the connection (the body left out for
/// HEAD).
inline std::string http_response(std::string_view status, std::string_view type,
                                 const std::string& body, bool head_only,
                                 std::string_view extra_headers = {}) {
  auto response = fmt::format("HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}"
                              "Connection: close\r\n\r\n",
                              status, type, body.size(), extra_headers);
  if (!head_only)
    response += body;
  return response;
}

/// The answer to a head that is not `ok` (nullptr text for `incomplete`
/// and `ok`): status line and body.
inline std::pair<const char*, const char*> http_head_problem(http_head_status st) {
  switch (st) {
    case http_head_status::too_large: return {"400 Bad Request", "request head too large\n"};
    case http_head_status::bad_line: return {"400 Bad Request", "bad request line\n"};
    case http_head_status::bad_version: return {"400 Bad Request", "HTTP/1.0 or HTTP/1.1 only\n"};
    case http_head_status::bad_method: return {"405 Method Not Allowed", "GET or HEAD only\n"};
    default: return {nullptr, nullptr};
  }
}

/// A handler answering one HTTP/1.x request per connection (the library's
/// endpoints): reads the request head, answers bad ones itself.
class http_endpoint_handler : public handler {
protected:
  /// Reads `data` into the head. Returns the request line once the head is
  /// complete and acceptable; otherwise nullopt with `next` set (wait for
  /// more, or the error response sent and the connection closing).
  std::optional<http_request_line> read_request(std::string_view data, socket& sock,
                                                verdict& next) {
    http_request_line req;
    auto st = read_http_head(head_, data, max_head, req);
    if (st == http_head_status::incomplete) {
      next = verdict::proceed();
      return std::nullopt;
    }
    head_only_ = req.head_only;
    if (auto [status, text] = http_head_problem(st); status != nullptr) {
      next = answer(sock, status, text,
                    st == http_head_status::bad_method ? "Allow: GET, HEAD\r\n" : "");
      return std::nullopt;
    }
    return req;
  }

  /// Sends a complete response (no body for HEAD); the verdict closes.
  verdict answer(socket& sock, std::string_view status, const std::string& body,
                 std::string_view extra_headers = {},
                 std::string_view type = "text/plain; charset=utf-8") {
    static_cast<void>(sock.send(http_response(status, type, body, head_only_, extra_headers)));
    return verdict::close();
  }

  /// True when the request was HEAD.
  bool head_only() const noexcept {
    return head_only_;
  }

private:
  /// The longest request head read.
  static constexpr size_t max_head = 8192;

  std::string head_;
  bool head_only_ = false;
};

} // namespace atl::detail
