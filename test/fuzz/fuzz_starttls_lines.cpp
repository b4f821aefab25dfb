// libFuzzer target for the line protocol of the starttls example
// (examples/starttls_protocol.hpp): `starttls_session` framing a byte stream
// into lines and answering each command, in clear and over TLS.
//
// Input: the first byte chooses how the rest, the byte stream of one
// connection, is cut into reads (0: one read only; otherwise pseudo-random
// reads of 1 to 2^(b % 15) bytes, seeded with the byte, at most 256 reads,
// the last taking the rest). Each read is copied to a heap block of its exact
// size, so ASan sees any read past it. Checked:
//
// - The stream in one read, in clear and as if already secure, gets exactly
//   the replies and the final action of an independent statement of the
//   protocol (`model` below: the rules of starttls_protocol.hpp's comment).
// - In clear, every reply is a line "DDD TEXT" or "DDD-TEXT" with CRLF and
//   printable ASCII text: no byte a client sent reaches a reply unless it is
//   printable (an EHLO name), so no client can inject reply lines.
// - After each read, the session holds exactly the bytes after the stream's
//   last line end (fewer than max_command_line of them when it reads on),
//   and nothing after close or upgrade.
// - An upgrade comes only right after a STARTTLS line that ends its read.
// - Cutting the stream into reads changes nothing before the STARTTLS line;
//   at it, the cut stream upgrades where the whole one refuses pipelining
//   only if a read ends right after the line. After such an upgrade, the rest
//   of the stream, cut into reads as secure, gets what the model gives it.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "starttls_protocol.hpp"

#include "fuzz_check.hpp"

namespace {

using example::line_action;
using example::max_command_line;

/// What the session (or the model) answered to a stream.
struct outcome {
  std::string replies;
  line_action action = line_action::proceed;
  /// The session: bytes of the stream given to it (its last read may go on
  /// past the line it stopped at). The model: where the line it stopped at
  /// (close or upgrade) ends, or the stream's size.
  size_t fed = 0;
};

/// The protocol as its documentation states it, on the stream in one read.
outcome model(std::string_view stream, bool secure) {
  outcome out;
  auto close_with = [&](const char* reply) {
    out.replies += reply;
    out.action = line_action::close;
  };
  size_t pos = 0;
  for (;;) {
    auto nl = stream.find('\n', pos);
    if (nl == std::string_view::npos) {
      if (stream.size() - pos >= max_command_line)
        close_with("500 line too long\r\n");
      break;
    }
    if (nl + 1 - pos > max_command_line) {
      close_with("500 line too long\r\n");
      break;
    }
    auto line = stream.substr(pos, nl + 1 - pos);
    pos = nl + 1;
    auto text = line;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
      text.remove_suffix(1);
    std::string verb;
    for (char c : text.substr(0, text.find(' ')))
      verb += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (verb == "STARTTLS" && secure) {
      out.replies += "503 already secure\r\n";
    } else if (verb == "STARTTLS") {
      if (pos < stream.size()) {
        close_with("501 pipelining after STARTTLS\r\n");
      } else {
        out.replies += "220 go ahead\r\n";
        out.action = line_action::upgrade;
      }
      break;
    } else if (verb == "EHLO") {
      auto name = text.size() > 5 ? text.substr(5) : std::string_view{};
      bool ok = true;
      for (char c : name)
        ok = ok && c >= 0x20 && c < 0x7f; // char may be signed: bytes >= 0x80 are negative
      if (ok)
        out.replies += "250-atoll greets " + std::string{name} + "\r\n250 STARTTLS\r\n";
      else
        out.replies += "501 the name must be printable ASCII\r\n";
    } else if (verb == "HELO") {
      out.replies += "250 atoll\r\n";
    } else if (verb == "QUIT") {
      close_with("221 bye\r\n");
      break;
    } else if (secure) {
      out.replies += line;
    } else {
      out.replies += "530 issue STARTTLS first\r\n";
    }
  }
  out.fed = out.action == line_action::proceed ? stream.size() : pos;
  return out;
}

/// Checks that `replies` (sent in clear) are lines "DDD TEXT" / "DDD-TEXT"
/// with CRLF and printable ASCII text.
void check_clear_syntax(std::string_view replies) {
  size_t pos = 0;
  while (pos < replies.size()) {
    auto end = replies.find("\r\n", pos);
    FUZZ_CHECK(end != std::string_view::npos);
    auto line = replies.substr(pos, end - pos);
    FUZZ_CHECK(line.size() >= 4);
    for (size_t i = 0; i < 3; ++i)
      FUZZ_CHECK(std::isdigit(static_cast<unsigned char>(line[i])));
    FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
    for (char c : line)
      FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f);
    pos = end + 2;
  }
}

/// True if `s` ends with `suffix`.
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// Most reads one stream is cut into.
constexpr size_t max_reads = 256;

/// Feeds `stream` to `session` in reads of the sizes `next_size` gives, until
/// the session closes or upgrades or the stream ends.
template <class NextSize>
outcome drive(example::starttls_session& session, std::string_view stream, bool secure,
              NextSize next_size) {
  outcome out;
  size_t fed = 0;
  auto last_nl = std::string_view::npos; // the last line end given to the session
  for (size_t reads = 0; fed < stream.size(); ++reads) {
    auto n = reads + 1 < max_reads ? std::min(next_size(), stream.size() - fed)
                                   : stream.size() - fed;
    auto copy = std::make_unique<char[]>(n == 0 ? 1 : n);
    std::memcpy(copy.get(), stream.data() + fed, n);
    auto res = session.feed({copy.get(), n}, secure);
    if (auto nl = std::string_view{copy.get(), n}.rfind('\n'); nl != std::string_view::npos)
      last_nl = fed + nl;
    fed += n;
    if (!secure)
      check_clear_syntax(res.replies);
    out.replies += res.replies;
    out.action = res.action;
    if (res.action == line_action::proceed) {
      auto tail = last_nl == std::string_view::npos ? fed : fed - last_nl - 1;
      FUZZ_CHECK(session.buffered() == tail);
      FUZZ_CHECK(session.buffered() < max_command_line);
      continue;
    }
    FUZZ_CHECK(session.buffered() == 0);
    if (res.action == line_action::upgrade) {
      FUZZ_CHECK(!secure);
      FUZZ_CHECK(stream[fed - 1] == '\n');
      FUZZ_CHECK(ends_with(res.replies, "220 go ahead\r\n"));
    }
    break;
  }
  out.fed = fed;
  return out;
}

void check_same(const outcome& got, const outcome& want) {
  FUZZ_CHECK(got.replies == want.replies);
  FUZZ_CHECK(got.action == want.action);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string_view stream{reinterpret_cast<const char*>(data + 1), size - 1};
  auto one_read = [&] { return stream.size(); };
  // The stream in one read, in clear and over TLS, against the model.
  auto want = model(stream, false);
  example::starttls_session clear;
  check_same(drive(clear, stream, false, one_read), want);
  example::starttls_session secure;
  check_same(drive(secure, stream, true, one_read), model(stream, true));
  if (data[0] == 0)
    return 0;
  // The stream in reads of pseudo-random sizes.
  example::starttls_session session;
  auto cut_sizes = fuzz_read_sizes{data[0]};
  auto cut = drive(session, stream, false, std::ref(cut_sizes));
  bool at_starttls = ends_with(want.replies, "220 go ahead\r\n")
                     || ends_with(want.replies, "501 pipelining after STARTTLS\r\n");
  if (!at_starttls) {
    check_same(cut, want);
    return 0;
  }
  // Both reach the STARTTLS line (the last reply) and differ at most there.
  auto last = want.replies.rfind("\r\n", want.replies.size() - 3);
  auto before = last == std::string::npos ? std::string{} : want.replies.substr(0, last + 2);
  FUZZ_CHECK(cut.replies == before + "220 go ahead\r\n"
             || cut.replies == before + "501 pipelining after STARTTLS\r\n");
  if (cut.action == line_action::close) {
    FUZZ_CHECK(cut.replies == want.replies);
    return 0;
  }
  FUZZ_CHECK(cut.action == line_action::upgrade);
  FUZZ_CHECK(cut.fed == want.fed); // both stop at the STARTTLS line's end
  // A read ended right after the STARTTLS line: the rest arrives over TLS.
  auto rest = stream.substr(cut.fed);
  auto after = drive(session, rest, true, std::ref(cut_sizes));
  check_same(after, model(rest, true));
  return 0;
}
