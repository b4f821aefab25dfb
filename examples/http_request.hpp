// The request parsing of the http_hello example, free of sockets and actors
// (so that test/fuzz/fuzz_http_head.cpp can drive it): framing a byte stream
// into request heads (pipelining, a size limit) and parsing one head.
// Header-only; uses the standard library only.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>

namespace example {

/// Largest request head (request line and headers) that may wait for its end:
/// `request_reader` refuses a stream once more than this many bytes are
/// buffered after the last complete head.
inline constexpr size_t max_head = 8192;

/// Returns `s` with ASCII letters in lower case (other bytes unchanged).
inline std::string ascii_lower(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// What one request head asks for. The views point into the text given to
/// `parse_head` and are set only when `valid` is true.
struct request_head {
  /// True if the head is a request this server answers.
  bool valid = false;
  /// True if the connection stays open after the answer.
  bool keep_alive = false;
  /// The method, e.g. "GET" (not empty, no space).
  std::string_view method;
  /// The request target, e.g. "/" (may be empty or contain spaces).
  std::string_view target;
  /// "HTTP/1.1" or "HTTP/1.0".
  std::string_view version;
};

/// Parses a request head (without the final empty line): "METHOD TARGET
/// HTTP/1.x" and headers. HTTP/1.1 keeps the connection open unless a
/// "connection: close" header says otherwise, HTTP/1.0 closes it unless a
/// "connection: keep-alive" header says otherwise. Header names and values are
/// matched without regard to case, as substrings of the header block.
/// Requests with a body (a content-length other than "0", or a
/// transfer-encoding) are refused: this server has no use for one.
inline request_head parse_head(std::string_view head) {
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
  auto headers = ascii_lower(eol == std::string_view::npos ? std::string_view{}
                                                           : head.substr(eol + 2));
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
  result.method = line.substr(0, sp1);
  result.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  result.version = version;
  return result;
}

/// Splits one connection's byte stream into request heads, each ended by an
/// empty line ("\r\n\r\n"); several may arrive in one read (pipelining), and a
/// head may be split across reads. Keeps what follows the last complete head
/// until more data arrives.
class request_reader {
public:
  /// How `feed` ended.
  enum class status {
    /// Every complete head was handed over; waiting for more data.
    need_more,
    /// `on_head` returned false: the caller stops reading this stream.
    stopped,
    /// More than `max_head` bytes wait for the end of a head.
    too_large,
  };

  /// Appends `data` and calls `on_head(std::string_view head)` for each
  /// complete head in the buffer, in order; the view (valid during the call
  /// only) excludes the final "\r\n\r\n". `on_head` returns false to stop.
  /// The size limit is checked once the complete heads are consumed.
  template <class OnHead>
  status feed(std::string_view data, OnHead&& on_head) {
    buffer_.append(data);
    size_t start = 0;
    for (auto end = buffer_.find("\r\n\r\n"); end != std::string::npos;
         end = buffer_.find("\r\n\r\n", start)) {
      auto head = std::string_view{buffer_}.substr(start, end - start);
      start = end + 4;
      if (!on_head(head))
        return status::stopped;
    }
    buffer_.erase(0, start);
    if (buffer_.size() > max_head)
      return status::too_large;
    return status::need_more;
  }

  /// The bytes received after the last complete head (after `feed` returned
  /// `need_more` or `too_large`).
  std::string_view buffered() const noexcept {
    return buffer_;
  }

private:
  std::string buffer_;
};

} // namespace example
