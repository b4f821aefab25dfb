// libFuzzer target for atl::output_queue (buffers only, no file ranges).
//
// The input is a program: a sequence of operations on one queue (append a
// buffer of a chosen size, flush through a fake transport whose writes take a
// chosen number of bytes or report want_write, want_read, closed or failed,
// clear, move the queue to another object). A model (the bytes appended, the
// bytes the transport accepted) is checked after every operation:
//
// - each write is offered the next unsent bytes, in order, in at most 64
//   non-empty buffers, no more than are pending;
// - the bytes the transport accepted, concatenated, are a prefix of the bytes
//   appended (minus those dropped by `clear`), and all of them once the
//   transport finally takes everything.
//
// Byte values are a function of their position in the stream the peer sees
// (a pseudo-random pattern with a period of 65,521 bytes), so every accepted
// byte is checked once where it lands, and the ends of every offered buffer
// where they are offered, without keeping a copy of the stream.
// - pending_bytes() and buffered_bytes() equal appended minus written, and
//   empty() agrees with them;
// - the stats count every accepted byte and every write that took some;
// - flush returns done exactly when the queue is empty, passes any other
//   status of the transport through, and reports want_write when a write
//   took nothing;
// - a moved-from queue is empty and usable.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <fuzzer/FuzzedDataProvider.h>

#include "atoll/runtime/error.hpp"
#include "atoll/transports/output_queue.hpp"
#include "atoll/transports/transport.hpp"

#include "fuzz_check.hpp"

namespace {

/// Stops the run with a message (libFuzzer saves the input as a crash).
/// Most bytes one input may append (keeps each run fast while still allowing
/// more than 64 queued buffers of 16 KiB, the gather limit of a write).
constexpr size_t max_total_append = 2u << 20;

/// The period of the byte pattern (a prime, so that no buffer size used here
/// divides it).
constexpr size_t pattern_period = 65521;

/// Longest piece of the pattern handed out at once (one append).
constexpr size_t max_piece = 100000;

/// The pattern: the byte at position `pos` of the stream is
/// `pattern()[pos % pattern_period]`; continued for `max_piece` more bytes so
/// that any piece up to that size is contiguous.
const std::string& pattern() {
  static const std::string bytes = [] {
    std::string out(pattern_period + max_piece, '\0');
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < pattern_period; ++i) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      out[i] = static_cast<char>(x >> 24);
    }
    for (size_t i = pattern_period; i < out.size(); ++i)
      out[i] = out[i - pattern_period];
    return out;
  }();
  return bytes;
}

/// True if `bytes` are the stream's bytes from position `pos` on.
bool matches(const char* bytes, size_t len, uint64_t pos) {
  while (len > 0) {
    auto offset = static_cast<size_t>(pos % pattern_period);
    auto n = std::min(len, max_piece);
    if (std::memcmp(bytes, pattern().data() + offset, n) != 0)
      return false;
    bytes += n;
    len -= n;
    pos += n;
  }
  return true;
}

/// The model of one queue's stream.
struct model {
  /// Bytes of the stream accepted by the transport.
  uint64_t written = 0;
  /// Bytes of the stream (accepted and pending).
  uint64_t end = 0;
  /// Bytes appended in this run (including those dropped by `clear`).
  size_t total_appended = 0;

  uint64_t pending() const {
    return end - written;
  }
};

/// What the next write of the fake transport does.
struct write_plan {
  atl::io_status status = atl::io_status::done;
  /// Bytes taken (at most what is offered).
  size_t take = 0;
};

/// A transport that checks what it is offered and behaves as the fuzzer says.
class fake_transport final : public atl::transport {
public:
  explicit fake_transport(model* stream = nullptr) : stream_(stream) {
  }

  /// Bytes accepted.
  uint64_t accepted = 0;
  /// Writes that accepted at least one byte.
  uint64_t productive_writes = 0;
  /// Where the next write's plan comes from.
  FuzzedDataProvider* input = nullptr;
  /// The last write's plan.
  write_plan last;
  /// Writes made during the current flush.
  size_t writes_in_flush = 0;
  /// Ignore `input`: take everything offered.
  bool take_all = false;

  int fd() const noexcept override {
    return -1;
  }

  const char* name() const noexcept override {
    return "fake";
  }

  bool secure() const noexcept override {
    return false;
  }

  atl::io_result handshake() override {
    return {};
  }

  atl::io_result read(char*, size_t) override {
    fuzz_fail(__FILE__, "output_queue read from its transport");
  }

  atl::io_result write(const iovec* iov, size_t count) override {
    ++writes_in_flush;
    FUZZ_CHECK(stream_ != nullptr);
    FUZZ_CHECK(count > 0);
    FUZZ_CHECK(count <= 64);
    // Offered: the next unsent bytes, no more than are pending. The ends of
    // each buffer are checked here, the bytes taken below.
    constexpr size_t edge = 32;
    uint64_t pos = stream_->written;
    size_t offered = 0;
    for (size_t i = 0; i < count; ++i) {
      auto len = iov[i].iov_len;
      auto base = static_cast<const char*>(iov[i].iov_base);
      FUZZ_CHECK(len > 0);
      FUZZ_CHECK(offered + len <= stream_->pending());
      auto head = std::min(len, edge);
      FUZZ_CHECK(matches(base, head, pos));
      FUZZ_CHECK(matches(base + len - head, head, pos + len - head));
      offered += len;
      pos += len;
    }
    last = plan(offered);
    // The bytes taken, each checked once where it lands.
    size_t left = last.take;
    pos = stream_->written;
    for (size_t i = 0; left > 0; ++i) {
      auto n = std::min(left, iov[i].iov_len);
      FUZZ_CHECK(matches(static_cast<const char*>(iov[i].iov_base), n, pos));
      pos += n;
      left -= n;
    }
    stream_->written += last.take;
    accepted += last.take;
    if (last.take > 0)
      ++productive_writes;
    atl::io_result res;
    res.bytes = last.take;
    res.status = last.status;
    if (last.status == atl::io_status::failed)
      res.error = caf::make_error(atl::errc::system_error, "injected");
    return res;
  }

  atl::io_result sendfile(int, uint64_t, size_t) override {
    fuzz_fail(__FILE__, "output_queue sent a file range although none was queued");
  }

  caf::error shutdown(atl::shutdown_way) override {
    return caf::none;
  }

  void close() noexcept override {
  }

private:
  model* stream_;

  write_plan plan(size_t offered) {
    write_plan p;
    if (take_all) {
      p.take = offered;
      return p;
    }
    switch (input->ConsumeIntegralInRange<int>(0, 9)) {
      case 0: // nothing written, would block
        p.status = atl::io_status::want_write;
        break;
      case 1: // TLS wants to read first
        p.status = atl::io_status::want_read;
        break;
      case 2: // peer gone
        p.status = atl::io_status::closed;
        break;
      case 3: // error
        p.status = atl::io_status::failed;
        break;
      case 4: // partial, then would block
        p.status = atl::io_status::want_write;
        p.take = input->ConsumeIntegralInRange<size_t>(0, offered);
        break;
      case 5: // everything
        p.take = offered;
        break;
      case 6: // a write that takes nothing but says done
        p.take = 0;
        break;
      default: // a partial write
        p.take = input->ConsumeIntegralInRange<size_t>(0, offered);
        break;
    }
    return p;
  }
};

void check(const atl::output_queue& q, const model& m, const fake_transport& t,
           const atl::socket_stats& stats) {
  FUZZ_CHECK(t.accepted == m.written);
  FUZZ_CHECK(q.pending_bytes() == m.pending());
  FUZZ_CHECK(q.buffered_bytes() == m.pending());
  FUZZ_CHECK(q.empty() == (m.pending() == 0));
  FUZZ_CHECK(stats.send_oct == m.written);
  FUZZ_CHECK(stats.send_cnt == t.productive_writes);
  FUZZ_CHECK(stats.recv_oct == 0 && stats.recv_cnt == 0);
}

void append(atl::output_queue& q, model& m, size_t size) {
  size = std::min(size, max_total_append - m.total_appended);
  // One append (at most max_piece bytes, more than any op asks for).
  while (size > 0) {
    auto n = std::min(size, max_piece);
    q.append(std::string_view{pattern()}.substr(static_cast<size_t>(m.end % pattern_period), n));
    m.end += n;
    m.total_appended += n;
    size -= n;
  }
}

/// Flushes `q` and checks the result against the fake transport's last word.
void flush(atl::output_queue& q, model& m, fake_transport& t, atl::socket_stats& stats) {
  t.writes_in_flush = 0;
  auto before = m.pending();
  auto res = q.flush(t, stats);
  if (before == 0)
    FUZZ_CHECK(t.writes_in_flush == 0);
  if (res.status == atl::io_status::done) {
    FUZZ_CHECK(q.empty());
    FUZZ_CHECK(m.pending() == 0);
    FUZZ_CHECK(res.bytes == 0 && !res.error);
    return;
  }
  // Stopped early: by the last write's status, or by a write taking nothing.
  FUZZ_CHECK(t.writes_in_flush > 0);
  if (t.last.status == atl::io_status::done) {
    FUZZ_CHECK(t.last.take == 0);
    FUZZ_CHECK(res.status == atl::io_status::want_write);
    FUZZ_CHECK(res.bytes == 0);
  } else {
    FUZZ_CHECK(res.status == t.last.status);
    FUZZ_CHECK(res.bytes == t.last.take);
    FUZZ_CHECK(static_cast<bool>(res.error) == (res.status == atl::io_status::failed));
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input{data, size};
  model m;
  fake_transport t{&m};
  t.input = &input;
  atl::socket_stats stats;
  std::optional<atl::output_queue> q;
  q.emplace();
  for (int step = 0; step < 256 && input.remaining_bytes() > 0; ++step) {
    switch (input.ConsumeIntegralInRange<int>(0, 9)) {
      case 0:
      case 1: // a small buffer
        append(*q, m, input.ConsumeIntegralInRange<size_t>(0, 300));
        break;
      case 2: // around the 16 KiB coalescing limit
        append(*q, m, input.ConsumeIntegralInRange<size_t>(16000, 17000));
        break;
      case 3: // a large buffer
        append(*q, m, input.ConsumeIntegralInRange<size_t>(0, 70000));
        break;
      case 4: // many 16 KiB buffers: more than a write gathers, and compaction
        for (int i = input.ConsumeIntegralInRange<int>(1, 80); i > 0; --i)
          append(*q, m, 16384);
        break;
      case 5:
      case 6:
      case 7:
        flush(*q, m, t, stats);
        break;
      case 8: { // drop everything pending
        q->clear();
        m.end = m.written;
        break;
      }
      case 9: { // move the queue; the moved-from one must be empty and usable
        std::optional<atl::output_queue> target;
        if (input.ConsumeBool()) {
          target.emplace(std::move(*q));
        } else {
          target.emplace();
          target->append("dropped by the assignment");
          *target = std::move(*q);
        }
        FUZZ_CHECK(q->empty());
        FUZZ_CHECK(q->pending_bytes() == 0 && q->buffered_bytes() == 0);
        fake_transport idle;
        atl::socket_stats unused;
        FUZZ_CHECK(q->flush(idle, unused).status == atl::io_status::done);
        q->append("x");
        FUZZ_CHECK(q->pending_bytes() == 1 && !q->empty());
        q->clear();
        FUZZ_CHECK(q->empty());
        q.emplace(std::move(*target));
        break;
      }
    }
    check(*q, m, t, stats);
  }
  // Finally the transport takes everything: the peer gets the whole stream.
  t.take_all = true;
  flush(*q, m, t, stats);
  FUZZ_CHECK(q->empty());
  FUZZ_CHECK(m.written == m.end);
  check(*q, m, t, stats);
  return 0;
}
