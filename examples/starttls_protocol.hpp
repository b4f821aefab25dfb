// The line protocol of the starttls example, free of sockets and actors (so
// that test/fuzz/fuzz_starttls_lines.cpp can drive it): framing a byte stream
// into lines (pipelining, a size limit) and answering each command.
// Header-only; uses the standard library only.
//
// Commands, one per line (CRLF or LF), verbs in any case:
//   EHLO NAME   "250-atoll greets NAME" and "250 STARTTLS" (NAME: printable
//               ASCII only, else "501")
//   HELO NAME   "250 atoll"
//   STARTTLS    "220 go ahead", then the connection upgrades to TLS; nothing
//               may follow it in the same read ("501 pipelining after
//               STARTTLS" and close: the bytes would have been read in clear
//               and answered as if secure); "503 already secure" once secure
//   QUIT        "221 bye" and close
//   any other   echoed once secure; "530 issue STARTTLS first" before
// A line longer than `max_command_line` bytes (line end included) gets
// "500 line too long" and the connection closes.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>

namespace example {

/// The longest line a client may send, its line end included.
inline constexpr size_t max_command_line = 8192;

/// What the connection does after the replies of one read.
enum class line_action {
  /// Send the replies and read on.
  proceed,
  /// Send the replies and close.
  close,
  /// Send the replies, then upgrade the connection to TLS.
  upgrade,
};

/// The answer to one read: bytes to send, then what to do.
struct line_result {
  std::string replies;
  line_action action = line_action::proceed;
};

/// The protocol state of one connection: the bytes of an incomplete line.
/// Runs on the connection's actor (not thread-safe).
class starttls_session {
public:
  /// What the server sends when a client connects.
  static constexpr std::string_view greeting = "220 atoll STARTTLS example ready\r\n";

  /// Answers the complete lines of everything read so far plus `data`.
  /// `secure`: the connection runs TLS now. After `close` or `upgrade` the
  /// session holds nothing; after `close` it must not be fed again.
  line_result feed(std::string_view data, bool secure) {
    line_result out;
    buffer_.append(data);
    // Every complete line first (pipelined commands arrive together), then
    // the limit on the incomplete rest.
    size_t start = 0;
    for (auto nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n', start)) {
      if (nl + 1 - start > max_command_line)
        return close_with(out, "500 line too long\r\n");
      std::string_view line{buffer_.data() + start, nl + 1 - start};
      start = nl + 1;
      auto end = line.find_last_not_of("\r\n");
      auto command = line.substr(0, end == std::string_view::npos ? 0 : end + 1);
      auto verb = ascii_upper(command.substr(0, command.find(' ')));
      if (verb == "STARTTLS") {
        if (secure) {
          out.replies += "503 already secure\r\n";
          continue;
        }
        if (start < buffer_.size()) // nothing may follow STARTTLS before the handshake
          return close_with(out, "501 pipelining after STARTTLS\r\n");
        buffer_.clear();
        out.replies += "220 go ahead\r\n";
        out.action = line_action::upgrade;
        return out;
      }
      if (verb == "EHLO") {
        auto name = command.substr(std::min(command.size(), size_t{5}));
        if (printable(name))
          out.replies.append("250-atoll greets ").append(name).append("\r\n250 STARTTLS\r\n");
        else
          out.replies += "501 the name must be printable ASCII\r\n";
      } else if (verb == "HELO") {
        out.replies += "250 atoll\r\n";
      } else if (verb == "QUIT") {
        return close_with(out, "221 bye\r\n");
      } else if (secure) {
        out.replies.append(line); // the echo, over TLS
      } else {
        out.replies += "530 issue STARTTLS first\r\n";
      }
    }
    buffer_.erase(0, start);
    if (buffer_.size() >= max_command_line) // its line end would exceed the limit
      return close_with(out, "500 line too long\r\n");
    return out;
  }

  /// The bytes of the incomplete line held back.
  size_t buffered() const noexcept {
    return buffer_.size();
  }

private:
  static std::string ascii_upper(std::string_view s) {
    std::string out{s};
    for (auto& c : out)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
  }

  static bool printable(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
      auto u = static_cast<unsigned char>(c);
      return u >= 0x20 && u < 0x7f;
    });
  }

  line_result& close_with(line_result& out, std::string_view reply) {
    buffer_.clear();
    out.replies.append(reply);
    out.action = line_action::close;
    return out;
  }

  std::string buffer_;
};

} // namespace example
