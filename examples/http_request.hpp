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

/// Largest request head (request line and headers, without the final empty
/// line): `request_reader` refuses a stream at a longer one.
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

/// Removes spaces and tabs (HTTP's optional whitespace) around `s`.
inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

/// True if `a` and `b` are equal without regard to ASCII case.
inline bool equal_nocase(std::string_view a, std::string_view b) {
  return a.size() == b.size()
         && std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
              return std::tolower(x) == std::tolower(y);
            });
}

/// True if `c` may be part of a header name (RFC 9110's token characters).
inline bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0
         || std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

/// Parses a request head (without the final empty line): "METHOD TARGET
/// HTTP/1.x" (after an empty line, which RFC 9112 says to ignore; the reader
/// hands over at most one), then one header per line, "name: value".
/// HTTP/1.1 keeps the connection open unless a `Connection` header lists
/// `close`; HTTP/1.0 closes it unless one lists `keep-alive` (and not
/// `close`). Names and the connection options are matched without regard to
/// case, each header on its own (a header's value never counts as another
/// header). Refused (not valid): a bare CR or LF or a NUL anywhere (a
/// proxy that splits lines at a bare LF would see other headers), a header
/// line without a colon, a name that is not a token (a folded line, which
/// starts with whitespace, included), a `Content-Length` that is not
/// decimal digits or not 0 (this server has no use for a body), or a
/// `Transfer-Encoding`.
inline request_head parse_head(std::string_view head) {
  request_head result;
  for (int i = 0; i < 4 && head.substr(0, 2) == "\r\n"; ++i)
    head.remove_prefix(2);
  auto eol = head.find("\r\n");
  auto line = head.substr(0, eol);
  constexpr std::string_view bare_breaks{"\r\n\0", 3};
  if (line.find_first_of(bare_breaks) != std::string_view::npos)
    return result;
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1 || sp1 == 0)
    return result;
  auto version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0")
    return result;
  bool close = false;
  bool keep_alive = false;
  auto rest = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);
  while (!rest.empty()) {
    auto end = rest.find("\r\n");
    auto header = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 2);
    if (header.find_first_of(bare_breaks) != std::string_view::npos)
      return result;
    auto colon = header.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return result;
    auto name = header.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char))
      return result; // also a folded line, which starts with whitespace
    auto value = trim_ows(header.substr(colon + 1));
    if (equal_nocase(name, "content-length")) {
      if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos
          || value.find_first_not_of('0') != std::string_view::npos)
        return result;
    } else if (equal_nocase(name, "transfer-encoding")) {
      return result;
    } else if (equal_nocase(name, "connection")) {
      while (!value.empty()) {
        auto comma = value.find(',');
        auto option = trim_ows(value.substr(0, comma));
        value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
        close = close || equal_nocase(option, "close");
        keep_alive = keep_alive || equal_nocase(option, "keep-alive");
      }
    }
  }
  result.keep_alive = !close && (version == "HTTP/1.1" || keep_alive);
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
    /// A complete head longer than `max_head`, or more than `max_head` + 3
    /// bytes without a head's end (see `feed`).
    too_large,
    /// The next head can never be valid: its first `max_head` + 3 bytes
    /// (with the byte after them if it ends there) hold a NUL, a bare CR or
    /// a bare LF (see `feed`).
    malformed,
  };

  /// Where the first byte that `parse_head` never accepts is in `bytes`: a
  /// NUL, an LF not right after a CR, or the byte after a CR if it is not
  /// an LF (a bare CR shows only at the byte after it); npos if none.
  /// `bytes` starts a head (an LF first is bare).
  static size_t first_bare_break(std::string_view bytes) noexcept {
    for (size_t i = 0; i < bytes.size(); ++i) {
      auto c = bytes[i];
      auto after_cr = i > 0 && bytes[i - 1] == '\r';
      if (c == '\0' || (c == '\n' && !after_cr) || (after_cr && c != '\n'))
        return i;
    }
    return std::string_view::npos;
  }

  /// Appends `data` and calls `on_head(std::string_view head)` for each
  /// complete head in the buffer, in order; the view (valid during the call
  /// only) excludes the final "\r\n\r\n". `on_head` returns false to stop.
  /// A head longer than `max_head` is refused (`too_large`, before it is
  /// handed over), also while it still arrives (more than `max_head` + 3
  /// bytes without a head's end); a head that `parse_head` would refuse for
  /// a NUL, a bare CR or a bare LF among its first `max_head` + 3 bytes is
  /// refused as soon as that byte is in (`malformed`: a client that ends its
  /// lines with LF alone gets its answer without waiting for a "\r\n\r\n"
  /// that never comes); the first of the two that the stream shows decides.
  /// The results do not depend on how the stream is cut into reads.
  template <class OnHead>
  status feed(std::string_view data, OnHead&& on_head) {
    buffer_.append(data);
    size_t start = 0;
    constexpr auto window = max_head + 3;
    for (auto end = buffer_.find("\r\n\r\n"); end != std::string::npos;
         end = buffer_.find("\r\n\r\n", start)) {
      // The head with the CR after it: a head that ends in a CR shows its
      // bare CR there, as it would while the head arrives.
      auto head = std::string_view{buffer_}.substr(start, end - start);
      if (first_bare_break(std::string_view{buffer_}.substr(start, end + 1 - start)) < window) {
        buffer_.erase(0, start);
        return status::malformed;
      }
      if (head.size() > max_head) {
        buffer_.erase(0, start);
        return status::too_large;
      }
      start = end + 4;
      if (!on_head(head))
        return status::stopped;
    }
    buffer_.erase(0, start);
    if (first_bare_break(std::string_view{buffer_}.substr(0, window)) != std::string_view::npos)
      return status::malformed;
    // Up to 3 bytes of the final "\r\n\r\n" may be there already: more than
    // max_head + 3 bytes without it can only start a head that is too long,
    // so the refusal does not depend on how the bytes arrived.
    if (buffer_.size() > window)
      return status::too_large;
    return status::need_more;
  }

  /// The bytes received after the last complete head (after `feed` returned
  /// `need_more`, `too_large` or `malformed`).
  std::string_view buffered() const noexcept {
    return buffer_;
  }

private:
  std::string buffer_;
};

} // namespace example
