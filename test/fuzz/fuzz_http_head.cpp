// libFuzzer target for the request parsing of the http_hello example
// (examples/http_request.hpp): `request_reader` framing a byte stream into
// request heads and `parse_head` parsing each.
//
// Input: the first byte chooses how the rest, the byte stream of one
// connection, is cut into reads (0: one read; otherwise pseudo-random reads
// of 1 to 2^(b % 15) bytes, seeded with the byte, at most 256 reads, the
// last taking the rest). Each read and each head
// is copied to a heap block of its exact size, so ASan sees any read past it.
// The reader stops as http_hello does: at the first head that is invalid or
// asks to close. Checked:
//
// Framing
// - the heads handed over are consecutive pieces of the stream, each followed
//   by "\r\n\r\n" there, which is the first "\r\n\r\n" after the head's start,
//   and none is longer than max_head;
// - after each read the reader holds exactly the bytes after the last head;
//   need_more means no complete head, at most max_head + 3 bytes and no bare
//   break (a NUL, a CR not followed by LF, an LF not after a CR) among them,
//   too_large a complete head longer than max_head at the start or more than
//   max_head + 3 bytes without one, and no bare break in the first
//   max_head + 3 bytes, malformed a bare break there (in a complete head or
//   at the CR after it); a head handed over has none;
// - cutting the stream differently changes nothing: the same heads, the same
//   end.
// parse_head, for every head handed over and for the whole stream as a head
// - valid: method, target and version are views into the head; method is
//   where the request line starts (after at most 4 empty lines), not empty
//   and without a space; the request line is "METHOD TARGET VERSION"; the
//   version is HTTP/1.1 or HTTP/1.0; no header line is named
//   transfer-encoding, and every content-length is zeros; without its
//   CRLFs the head has no CR, LF or NUL;
// - not valid: the views are empty;
// - keep_alive: HTTP/1.1 without "close" anywhere in the headers keeps the
//   connection open, HTTP/1.0 without "keep-alive" there closes it; kept open
//   only by HTTP/1.1 or a "keep-alive", closed only by HTTP/1.0 or a "close"
//   (all without regard to case);
// - the result does not depend on the case of the header block (checked for
//   heads up to 2 KiB).
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http_request.hpp"

#include "fuzz_check.hpp"

namespace {

constexpr std::string_view crlf2 = "\r\n\r\n";

/// A copy of `text` in a heap block of exactly its size.
struct exact_copy {
  std::unique_ptr<char[]> block;
  size_t size;

  explicit exact_copy(std::string_view text)
    : block(new char[text.size() == 0 ? 1 : text.size()]), size(text.size()) {
    if (size > 0)
      std::memcpy(block.get(), text.data(), size);
  }

  std::string_view view() const {
    return {block.get(), size};
  }
};

/// True if `part` lies within `whole`.
bool within(std::string_view part, std::string_view whole) {
  auto b = reinterpret_cast<uintptr_t>(whole.data());
  auto p = reinterpret_cast<uintptr_t>(part.data());
  return p >= b && p + part.size() <= b + whole.size();
}

/// The oracle's bare break: the index of the first NUL, of the first LF whose
/// byte before is no CR (the first byte has none), or of the byte after a CR
/// that is no LF; npos if none. Independent of the reader's own scan.
size_t bare_break(std::string_view s) {
  size_t best = std::string_view::npos;
  auto keep = [&](size_t i) { best = std::min(best, i); };
  if (auto nul = s.find('\0'); nul != std::string_view::npos)
    keep(nul);
  for (auto lf = s.find('\n'); lf != std::string_view::npos; lf = s.find('\n', lf + 1))
    if (lf == 0 || s[lf - 1] != '\r')
      keep(lf);
  for (auto cr = s.find('\r'); cr != std::string_view::npos; cr = s.find('\r', cr + 1))
    if (cr + 1 < s.size() && s[cr + 1] != '\n')
      keep(cr + 1);
  return best;
}

constexpr size_t window = example::max_head + 3;

bool contains(std::string_view s, std::string_view what) {
  return s.find(what) != std::string_view::npos;
}

std::string with_case(std::string_view s, bool upper) {
  std::string out{s};
  for (auto& c : out)
    c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// Heads up to this size are also parsed with their header block in upper
/// and lower case (case mapping every byte of large inputs would make most
/// of the run's time).
constexpr size_t max_case_checked = 2048;

/// Parses `head` (from an exact copy) and checks the result; returns it with
/// the views cleared (the copy is gone after the call).
example::request_head check_parse(std::string_view head_text, bool metamorphic) {
  exact_copy copy{head_text};
  auto head = copy.view();
  auto res = example::parse_head(head);
  for (int i = 0; i < 4 && head.substr(0, 2) == "\r\n"; ++i)
    head.remove_prefix(2);
  auto eol = head.find("\r\n");
  auto line = head.substr(0, eol);
  auto header_block = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);
  if (res.valid) {
    FUZZ_CHECK(within(res.method, head) && within(res.target, head) && within(res.version, head));
    FUZZ_CHECK(res.method.data() == head.data());
    FUZZ_CHECK(!res.method.empty() && !contains(res.method, " "));
    FUZZ_CHECK(res.version == "HTTP/1.1" || res.version == "HTTP/1.0");
    FUZZ_CHECK(line.size() == res.method.size() + res.target.size() + res.version.size() + 2);
    FUZZ_CHECK(std::string{res.method} + " " + std::string{res.target} + " "
                 + std::string{res.version}
               == line);
    auto lowered = example::ascii_lower(header_block);
    bool v11 = res.version == "HTTP/1.1";
    if (v11 && !contains(lowered, "close"))
      FUZZ_CHECK(res.keep_alive);
    if (!v11 && !contains(lowered, "keep-alive"))
      FUZZ_CHECK(!res.keep_alive);
    if (res.keep_alive)
      FUZZ_CHECK(v11 || contains(lowered, "keep-alive"));
    else
      FUZZ_CHECK(!v11 || contains(lowered, "close"));
    auto lines = "\r\n" + lowered;
    FUZZ_CHECK(!contains(lines, "\r\ntransfer-encoding:"));
    // No bare CR or LF, no NUL: without its CRLFs, the head has none.
    std::string joined;
    for (size_t at = 0; at < head.size();) {
      auto next = head.find("\r\n", at);
      joined += head.substr(at, next == std::string_view::npos ? next : next - at);
      at = next == std::string_view::npos ? head.size() : next + 2;
    }
    FUZZ_CHECK(joined.find_first_of(std::string_view{"\r\n\0", 3}) == std::string::npos);
    for (auto at = lines.find("\r\ncontent-length:"); at != std::string::npos;
         at = lines.find("\r\ncontent-length:", at + 1)) {
      auto value = std::string_view{lines}.substr(at + 17);
      value = value.substr(0, value.find("\r\n"));
      FUZZ_CHECK(value.find_first_not_of(" \t0") == std::string_view::npos);
    }
  } else {
    FUZZ_CHECK(res.method.empty() && res.target.empty() && res.version.empty());
  }
  if (metamorphic && !header_block.empty() && head.size() <= max_case_checked) {
    for (bool upper : {false, true}) {
      auto other = std::string{line} + "\r\n" + with_case(header_block, upper);
      auto res2 = check_parse(other, false);
      FUZZ_CHECK(res2.valid == res.valid);
      FUZZ_CHECK(res2.keep_alive == res.keep_alive);
    }
  }
  res.method = res.target = res.version = {};
  return res;
}

/// Most reads one stream is cut into.
constexpr size_t max_reads = 256;

/// What reading one stream gave.
struct outcome {
  std::vector<std::string> heads;
  example::request_reader::status last = example::request_reader::status::need_more;
};

/// Feeds `stream` to a reader in reads of the sizes `next_size` gives;
/// `check_heads`: check the parse of every head (else parse only).
template <class NextSize>
outcome read_stream(std::string_view stream, bool check_heads, NextSize next_size) {
  outcome out;
  example::request_reader reader;
  size_t fed = 0;     // bytes given to the reader
  size_t consumed = 0; // bytes of the stream in heads (with their "\r\n\r\n")
  bool stop = false;
  for (size_t reads = 0; fed < stream.size() && !stop; ++reads) {
    // At most max_reads reads (the last takes the rest): the reader scans its
    // whole buffer on each, and thousands of 1-byte reads would make the run
    // slow, not more thorough.
    auto n = reads + 1 < max_reads ? std::min(next_size(), stream.size() - fed)
                                   : stream.size() - fed;
    exact_copy chunk{stream.substr(fed, n)};
    fed += n;
    out.last = reader.feed(chunk.view(), [&](std::string_view head) {
      // Where the head must be: right after the previous one.
      FUZZ_CHECK(stream.substr(consumed, head.size()) == head);
      FUZZ_CHECK(stream.substr(consumed + head.size(), 4) == crlf2);
      FUZZ_CHECK(consumed + head.size() + 4 <= fed);
      auto framed = std::string{head} + std::string{crlf2};
      FUZZ_CHECK(framed.find(crlf2) == head.size());
      FUZZ_CHECK(head.size() <= example::max_head);
      FUZZ_CHECK(bare_break(std::string{head} + '\r') == std::string_view::npos);
      consumed += head.size() + 4;
      out.heads.emplace_back(head);
      auto res = check_heads ? check_parse(head, true) : example::parse_head(head);
      return res.valid && res.keep_alive;
    });
    using status = example::request_reader::status;
    switch (out.last) {
      case status::stopped: stop = true; break;
      case status::too_large: {
        stop = true;
        FUZZ_CHECK(reader.buffered() == stream.substr(consumed, fed - consumed));
        auto end = reader.buffered().find(crlf2);
        FUZZ_CHECK(end == std::string_view::npos ? reader.buffered().size() > window
                                                 : end > example::max_head);
        auto scanned = end == std::string_view::npos ? window : std::min(window, end + 1);
        FUZZ_CHECK(bare_break(reader.buffered().substr(0, scanned)) == std::string_view::npos);
        break;
      }
      case status::malformed: {
        stop = true;
        FUZZ_CHECK(reader.buffered() == stream.substr(consumed, fed - consumed));
        auto end = reader.buffered().find(crlf2);
        auto bare = bare_break(reader.buffered());
        FUZZ_CHECK(bare < window);
        FUZZ_CHECK(end == std::string_view::npos || bare <= end);
        break;
      }
      case status::need_more:
        FUZZ_CHECK(reader.buffered() == stream.substr(consumed, fed - consumed));
        FUZZ_CHECK(!contains(reader.buffered(), crlf2));
        FUZZ_CHECK(reader.buffered().size() <= window);
        FUZZ_CHECK(bare_break(reader.buffered()) == std::string_view::npos);
        break;
    }
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string_view stream{reinterpret_cast<const char*>(data + 1), size - 1};
  // The whole stream as one head.
  check_parse(stream, false);
  // The stream in one read.
  auto whole = read_stream(stream, true, [&] { return stream.size(); });
  if (data[0] == 0)
    return 0;
  // The stream in reads of pseudo-random sizes.
  auto cut = read_stream(stream, false, fuzz_read_sizes{data[0]});
  FUZZ_CHECK(cut.heads == whole.heads);
  FUZZ_CHECK(cut.last == whole.last);
  return 0;
}
