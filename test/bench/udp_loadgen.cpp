// atoll_udp_loadgen: a closed-loop load generator for UDP echo servers.
// One epoll loop per thread (--threads), no CAF.
//
// Each of the --sockets sockets is a connected UDP socket with its own
// source port (the kernel picks it at connect()), so the server sees that
// many distinct peers. Each socket keeps --window datagrams in flight: every
// echo that comes back triggers the next datagram on that socket. A datagram
// whose echo has not come back after --loss-timeout is counted as lost and
// replaced by a new one, so a lost datagram costs the loop a timeout instead
// of stalling it.
//
// Payload of a datagram (--size bytes): an 8-byte sequence number followed by
// a window of a fixed pseudo-random pattern, whose offset depends on the
// sequence number and the socket. The window slot k of a socket only ever
// uses sequence numbers n with n % window == k, so an echo is matched to its
// slot in O(1). An echo counts as valid only if it has the exact size and
// bytes of the datagram its slot is waiting for. An echo of a datagram that
// was already declared lost (or a duplicate) is "stale"; anything else is
// "mismatched". With --size below 8 the sequence number is truncated to
// --size bytes, and with --size 0 no check is possible: each empty echo
// answers the socket's oldest datagram in flight.
//
// With --server-pid, the CPU time used during the measured interval by that
// process, by the load generator and by everything else on the machine is
// reported too (from /proc/PID/stat, getrusage() and /proc/stat), as
// atoll_loadgen does.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_common.hpp"

namespace {

using namespace atl::bench;
using clock_type = std::chrono::steady_clock;

/// Exit code when no echo came back at all (or set-up failed).
constexpr int exit_no_echo = 1;

/// Bytes of the sequence number at the start of each datagram.
constexpr size_t header_size = sizeof(uint64_t);

/// Extra pattern bytes beyond --size; the pattern offset cycles through
/// them. A prime, so consecutive datagrams of a slot use distinct offsets.
constexpr size_t pattern_slack = 251;

/// Most datagrams read or sent by one recvmmsg()/sendmmsg() call.
constexpr size_t max_batch = 64;

/// Number of individual error messages printed to stderr per run.
constexpr int max_printed_errors = 5;

/// Command-line options.
struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  size_t sockets = 50;
  size_t window = 1;
  size_t size = 64;
  double warmup = 1.0;
  double duration = 5.0;
  /// Milliseconds after which a datagram without echo is counted as lost.
  double loss_timeout_ms = 200;
  size_t threads = 1;
  int server_pid = 0;
  bool json = false;
};

/// Seconds as a clock duration.
clock_type::duration seconds(double s) {
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
}

/// Clock duration as seconds.
double to_seconds(clock_type::duration d) {
  return std::chrono::duration<double>(d).count();
}

/// Rounds to `digits` decimals, for readable JSON numbers.
double round_to(double value, int digits) {
  double scale = std::pow(10.0, digits);
  return std::round(value * scale) / scale;
}

/// Latency histogram in nanoseconds with log-linear buckets: values below
/// 64 ns have their own bucket, above that each power of two is split into
/// 64 equal buckets, so a bucket's midpoint is within 0.8% of any value in
/// it. Fixed size (about 30 KiB), O(1) recording, mergeable across threads.
class histogram {
public:
  void record(uint64_t ns) {
    ++counts_[index_of(ns)];
    ++total_;
  }

  uint64_t count() const noexcept {
    return total_;
  }

  /// The smallest bucket value that at least q * count() of the recorded
  /// values do not exceed (0 if empty).
  uint64_t quantile(double q) const {
    if (total_ == 0)
      return 0;
    auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * double(total_))));
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank)
        return midpoint_of(i);
    }
    return midpoint_of(counts_.size() - 1);
  }

  void clear() {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
  }

  void merge(const histogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i)
      counts_[i] += other.counts_[i];
    total_ += other.total_;
  }

private:
  static constexpr unsigned sub_bits = 6;
  static constexpr uint64_t sub = uint64_t{1} << sub_bits;

  /// v < sub: bucket v. Otherwise, with e the index of v's highest set bit,
  /// the top sub_bits + 1 bits of v (a number in [sub, 2 * sub)) select one
  /// of `sub` buckets in group e - sub_bits + 1.
  static size_t index_of(uint64_t v) {
    if (v < sub)
      return v;
    unsigned e = 63 - static_cast<unsigned>(__builtin_clzll(v));
    unsigned shift = e - sub_bits;
    return (shift + 1) * sub + ((v >> shift) - sub);
  }

  static uint64_t midpoint_of(size_t index) {
    if (index < sub)
      return index;
    uint64_t shift = index / sub - 1;
    uint64_t low = (sub + index % sub) << shift;
    return low + ((uint64_t{1} << shift) >> 1);
  }

  std::vector<uint64_t> counts_ = std::vector<uint64_t>((64 - sub_bits + 1) * sub);
  uint64_t total_ = 0;
};

/// Reads a whole (small) file such as /proc/stat; empty if it cannot be read.
std::string read_small_file(const std::string& path) {
  std::string text;
  if (std::FILE* file = std::fopen(path.c_str(), "re")) {
    char chunk[4096];
    size_t n = 0;
    while ((n = std::fread(chunk, 1, sizeof chunk, file)) > 0)
      text.append(chunk, n);
    std::fclose(file);
  }
  return text;
}

/// CPU time counters at one moment, in seconds.
struct cpu_sample {
  clock_type::time_point when;
  double server = 0;  // utime + stime of --server-pid (all threads)
  double loadgen = 0; // user + system time of this process (all threads)
  double busy = 0;    // all CPUs: user, nice, system, irq, softirq
  double steal = 0;   // all CPUs
};

/// CPU use over the measured interval.
struct cpu_usage {
  double window = 0;
  double server = 0;
  double loadgen = 0;
  double other = 0; // busy time minus server and load generator
  double steal = 0;
};

/// Samples the counters; nothing if the server process or /proc/stat cannot
/// be read. /proc counts in clock ticks (10 ms with USER_HZ 100), so short
/// intervals are coarse.
std::optional<cpu_sample> sample_cpu(int server_pid) {
  cpu_sample result;
  result.when = clock_type::now();
  const double tick = 1.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  // "PID (COMMAND) STATE ...": utime and stime are the 12th and 13th fields
  // after the command name, which may contain spaces and parentheses.
  auto stat = read_small_file(fmt::format("/proc/{}/stat", server_pid));
  auto paren = stat.rfind(") ");
  if (paren == std::string::npos)
    return std::nullopt;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  if (std::sscanf(stat.c_str() + paren + 2, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu",
                  &utime, &stime) != 2)
    return std::nullopt;
  result.server = static_cast<double>(utime + stime) * tick;
  rusage self{};
  if (getrusage(RUSAGE_SELF, &self) != 0)
    return std::nullopt;
  auto to_s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  result.loadgen = to_s(self.ru_utime) + to_s(self.ru_stime);
  auto all = read_small_file("/proc/stat");
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  if (std::sscanf(all.c_str(), "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system,
                  &idle, &iowait, &irq, &softirq, &steal) != 8)
    return std::nullopt;
  result.busy = static_cast<double>(user + nice + system + irq + softirq) * tick;
  result.steal = static_cast<double>(steal) * tick;
  return result;
}

/// Counters of one thread (and, merged, of the run).
struct counters {
  /// Valid echoes in the measured interval.
  uint64_t echoes = 0;
  /// The rest are counted over the whole run, warm-up included.
  uint64_t all_echoes = 0;
  uint64_t lost = 0;
  uint64_t stale = 0;
  uint64_t mismatched = 0;
  uint64_t send_errors = 0;
  uint64_t recv_errors = 0;
  /// Length of the measured interval.
  double seconds = 0;

  void add(const counters& other) {
    echoes += other.echoes;
    all_echoes += other.all_echoes;
    lost += other.lost;
    stale += other.stale;
    mismatched += other.mismatched;
    send_errors += other.send_errors;
    recv_errors += other.recv_errors;
    seconds = std::max(seconds, other.seconds);
  }
};

/// What the threads share: the count of printed errors and the CPU samples
/// at the start and end of the measured interval.
class shared_state {
public:
  explicit shared_state(const options& opts) : opts_(opts) {}

  /// True if the caller may print one more error message.
  bool may_print_error() {
    int n = printed_errors_++;
    if (n == max_printed_errors)
      fmt::print(stderr, "atoll_udp_loadgen: further errors are only counted\n");
    return n < max_printed_errors;
  }

  /// The first thread to start measuring takes the start sample.
  void window_started() {
    std::lock_guard<std::mutex> guard{mutex_};
    if (started_++ == 0 && opts_.server_pid != 0)
      cpu_start_ = sample_cpu(opts_.server_pid);
  }

  /// The last thread to stop measuring takes the end sample.
  void window_ended() {
    std::lock_guard<std::mutex> guard{mutex_};
    if (++ended_ == opts_.threads && opts_.server_pid != 0)
      cpu_end_ = sample_cpu(opts_.server_pid);
  }

  std::optional<cpu_usage> cpu() const {
    if (!cpu_start_ || !cpu_end_)
      return std::nullopt;
    cpu_usage u;
    u.window = to_seconds(cpu_end_->when - cpu_start_->when);
    u.server = cpu_end_->server - cpu_start_->server;
    u.loadgen = cpu_end_->loadgen - cpu_start_->loadgen;
    u.other = std::max(0.0, cpu_end_->busy - cpu_start_->busy - u.server - u.loadgen);
    u.steal = cpu_end_->steal - cpu_start_->steal;
    return u;
  }

private:
  const options& opts_;
  std::atomic<int> printed_errors_{0};
  std::mutex mutex_;
  size_t started_ = 0;
  size_t ended_ = 0;
  std::optional<cpu_sample> cpu_start_;
  std::optional<cpu_sample> cpu_end_;
};

/// One datagram in flight: window slot k of a socket.
struct slot {
  /// Sequence number of the datagram in flight; n % window == k, and the
  /// next one is n + window.
  uint64_t seq = 0;
  clock_type::time_point sent;
};

/// The load generator of one thread: an epoll instance and its share of the
/// sockets, each with `window` slots.
class udp_load_generator {
public:
  udp_load_generator(const options& opts, const socket_address& addr, shared_state& shared,
                     const std::vector<unsigned char>& pattern, size_t count, size_t first_id)
    : opts_(opts), addr_(addr), shared_(shared), pattern_(pattern), first_id_(first_id),
      fds_(count, -1), slots_(count * opts.window),
      recv_stride_((opts.size + 1 + 63) / 64 * 64), // one byte more, to see longer echoes
      recv_buffers_(new unsigned char[max_batch * recv_stride_]) {}

  udp_load_generator(const udp_load_generator&) = delete;
  udp_load_generator& operator=(const udp_load_generator&) = delete;

  ~udp_load_generator() {
    for (int fd : fds_)
      if (fd >= 0)
        close(fd);
    if (epoll_fd_ >= 0)
      close(epoll_fd_);
  }

  /// Creates the epoll instance and the connected sockets. Prints the error
  /// and returns false on failure.
  bool init() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      fmt::print(stderr, "atoll_udp_loadgen: epoll_create1: {}\n", errno_text(errno));
      return false;
    }
    for (size_t i = 0; i < fds_.size(); ++i) {
      int fd = socket(addr_.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        fmt::print(stderr, "atoll_udp_loadgen: socket: {}\n", errno_text(errno));
        return false;
      }
      fds_[i] = fd;
      // connect() binds an ephemeral source port and makes the kernel drop
      // datagrams from any other peer, so send()/recv() need no addresses.
      if (connect(fd, addr_.get(), addr_.length) != 0) {
        fmt::print(stderr, "atoll_udp_loadgen: connect: {}\n", errno_text(errno));
        return false;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        fmt::print(stderr, "atoll_udp_loadgen: epoll_ctl(ADD): {}\n", errno_text(errno));
        return false;
      }
    }
    return true;
  }

  /// Runs the warm-up and the measured interval, both counted from `begin`;
  /// returns the counters. The latencies are in histogram().
  counters run(clock_type::time_point begin) {
    const auto warmup_end = begin + seconds(opts_.warmup);
    const auto end = warmup_end + seconds(opts_.duration);
    const auto loss_timeout = seconds(opts_.loss_timeout_ms / 1e3);
    // Scanning every slot for timeouts costs time proportional to sockets x
    // window, so it is done only every tenth of the timeout (a lost datagram
    // is thus detected between 1.0 and 1.1 timeouts after it was sent).
    const auto scan_interval = loss_timeout / 10;
    auto next_scan = clock_type::now() + scan_interval;
    bool measuring = false;
    clock_type::time_point window_start;

    // Start: every slot k of every socket sends sequence number k.
    for (size_t s = 0; s < fds_.size(); ++s) {
      for (size_t k = 0; k < opts_.window; ++k) {
        slots_[s * opts_.window + k].seq = k;
        queue_send(k);
      }
      flush_sends(s);
    }

    std::array<epoll_event, 256> events;
    for (;;) {
      auto now = clock_type::now();
      if (!measuring && now >= warmup_end) {
        // The warm-up is over: forget what it measured.
        measuring = true;
        window_start = now;
        counts_.echoes = 0;
        histogram_.clear();
        shared_.window_started();
      }
      if (now >= end) {
        counts_.seconds = to_seconds(now - window_start);
        shared_.window_ended();
        return counts_;
      }
      if (now >= next_scan) {
        resend_lost(now - loss_timeout);
        next_scan = now + scan_interval;
      }
      auto wake = std::min({next_scan, measuring ? end : warmup_end});
      auto wait_ms = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();
      int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                         static_cast<int>(wait_ms));
      if (n < 0 && errno != EINTR) {
        fmt::print(stderr, "atoll_udp_loadgen: epoll_wait: {}\n", errno_text(errno));
        counts_.seconds = measuring ? to_seconds(clock_type::now() - window_start) : 0;
        if (measuring)
          shared_.window_ended();
        return counts_;
      }
      for (int i = 0; i < n; ++i)
        on_readable(static_cast<size_t>(events[static_cast<size_t>(i)].data.u64), measuring);
    }
  }

  const histogram& latencies() const noexcept {
    return histogram_;
  }

private:
  /// Reads one batch of echoes from socket `s`, checks them and sends the
  /// datagrams that replace them. Level-triggered epoll reports the socket
  /// again if more is queued.
  void on_readable(size_t s, bool measuring) {
    const size_t batch = std::min(opts_.window, max_batch);
    std::array<iovec, max_batch> iovs;
    std::array<mmsghdr, max_batch> msgs;
    for (size_t i = 0; i < batch; ++i) {
      iovs[i].iov_base = recv_buffers_.get() + i * recv_stride_;
      iovs[i].iov_len = recv_stride_;
      msgs[i] = mmsghdr{};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fds_[s], msgs.data(), static_cast<unsigned>(batch), MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        // Typically ECONNREFUSED: an ICMP "port unreachable" came back
        // because nothing listens on the server's port.
        ++counts_.recv_errors;
        if (shared_.may_print_error())
          fmt::print(stderr, "atoll_udp_loadgen: socket {}: receive: {}\n", first_id_ + s,
                     errno_text(errno));
      }
      return;
    }
    auto now = clock_type::now();
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      const auto& msg = msgs[i];
      bool truncated = (msg.msg_hdr.msg_flags & MSG_TRUNC) != 0;
      size_t k = match(s, static_cast<const unsigned char*>(iovs[i].iov_base),
                       truncated ? recv_stride_ + 1 : msg.msg_len);
      if (k == no_slot)
        continue;
      auto& sl = slots_[s * opts_.window + k];
      ++counts_.all_echoes;
      if (measuring) {
        ++counts_.echoes;
        histogram_.record(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - sl.sent).count()));
      }
      sl.seq += opts_.window;
      // Until flush_sends() stamps the real send time: with --size below 8,
      // match() picks the oldest slot, which must not be this one again.
      sl.sent = now;
      queue_send(k);
    }
    flush_sends(s);
  }

  /// Result of `match` for an echo that answers no slot.
  static constexpr size_t no_slot = static_cast<size_t>(-1);

  /// Returns the window slot of socket `s` whose datagram the echo `data`
  /// (`length` bytes) answers, or `no_slot` after counting it as stale or
  /// mismatched.
  size_t match(size_t s, const unsigned char* data, size_t length) {
    const size_t size = opts_.size;
    const size_t w = opts_.window;
    slot* slots = &slots_[s * w];
    if (length != size)
      return mismatch(s, fmt::format("{} bytes instead of {}", length, size));
    if (size >= header_size) {
      uint64_t seq = 0;
      std::memcpy(&seq, data, header_size);
      size_t k = static_cast<size_t>(seq % w);
      if (seq > slots[k].seq)
        return mismatch(s, fmt::format("sequence number {} was never sent", seq));
      if (std::memcmp(data + header_size, pattern_for(s, seq), size - header_size) != 0)
        return mismatch(s, fmt::format("payload of datagram {} differs", seq));
      if (seq < slots[k].seq) {
        ++counts_.stale; // answered already, or replaced after a timeout
        return no_slot;
      }
      return k;
    }
    // Fewer than 8 bytes: only the low `size` bytes of the sequence number
    // travel (memcpy of the first bytes of the uint64_t on both sides), so
    // several slots may match; the oldest datagram wins.
    size_t best = no_slot;
    for (size_t k = 0; k < w; ++k)
      if (std::memcmp(&slots[k].seq, data, size) == 0 &&
          (best == no_slot || slots[k].sent < slots[best].sent))
        best = k;
    if (best == no_slot)
      ++counts_.stale; // or corrupted: with so few bytes they look alike
    return best;
  }

  /// Counts a mismatched echo (printing the first few); returns `no_slot`.
  size_t mismatch(size_t s, const std::string& what) {
    ++counts_.mismatched;
    if (shared_.may_print_error())
      fmt::print(stderr, "atoll_udp_loadgen: socket {}: mismatched echo: {}\n", first_id_ + s,
                 what);
    return no_slot;
  }

  /// The pattern bytes that follow the header of datagram `seq` of socket
  /// `s`. The socket takes part in the offset so that an echo delivered to
  /// the wrong socket most likely differs as well.
  const unsigned char* pattern_for(size_t s, uint64_t seq) const {
    return pattern_.data() + (seq + (first_id_ + s) * 7) % pattern_slack;
  }

  /// Marks slot `k` of the socket being handled to be sent by the next
  /// flush_sends().
  void queue_send(size_t k) {
    to_send_.push_back(k);
  }

  /// Sends the datagrams of the queued slots of socket `s` (sendmmsg(), up
  /// to max_batch per call) and stamps their send time.
  void flush_sends(size_t s) {
    const size_t w = opts_.window;
    const size_t size = opts_.size;
    slot* slots = &slots_[s * w];
    std::array<std::array<iovec, 2>, max_batch> iovs;
    std::array<mmsghdr, max_batch> msgs;
    for (size_t done = 0; done < to_send_.size();) {
      size_t batch = std::min(max_batch, to_send_.size() - done);
      auto now = clock_type::now();
      for (size_t i = 0; i < batch; ++i) {
        auto& sl = slots[to_send_[done + i]];
        sl.sent = now;
        // Gather write: the header straight from the slot's sequence
        // number, the rest from the shared pattern, so nothing is copied.
        iovs[i][0].iov_base = &sl.seq;
        iovs[i][0].iov_len = std::min(size, header_size);
        iovs[i][1].iov_base = const_cast<unsigned char*>(pattern_for(s, sl.seq));
        iovs[i][1].iov_len = size > header_size ? size - header_size : 0;
        msgs[i] = mmsghdr{};
        msgs[i].msg_hdr.msg_iov = iovs[i].data();
        msgs[i].msg_hdr.msg_iovlen = 2;
      }
      int sent = sendmmsg(fds_[s], msgs.data(), static_cast<unsigned>(batch), MSG_DONTWAIT);
      if (sent > 0) {
        done += static_cast<size_t>(sent);
      } else if (errno != EINTR) {
        // The first datagram of the batch was not sent; its slot waits for
        // the loss timeout, which sends it again.
        ++counts_.send_errors;
        if (shared_.may_print_error())
          fmt::print(stderr, "atoll_udp_loadgen: socket {}: send: {}\n", first_id_ + s,
                     errno_text(errno));
        ++done;
      }
    }
    to_send_.clear();
  }

  /// Counts every datagram sent before `deadline` and not yet answered as
  /// lost, and replaces it with a new one.
  void resend_lost(clock_type::time_point deadline) {
    const size_t w = opts_.window;
    for (size_t s = 0; s < fds_.size(); ++s) {
      for (size_t k = 0; k < w; ++k) {
        auto& sl = slots_[s * w + k];
        if (sl.sent < deadline) {
          ++counts_.lost;
          sl.seq += w; // a late echo of the old one is then "stale"
          queue_send(k);
        }
      }
      if (!to_send_.empty())
        flush_sends(s);
    }
  }

  const options& opts_;
  const socket_address& addr_;
  shared_state& shared_;
  const std::vector<unsigned char>& pattern_;
  size_t first_id_;
  int epoll_fd_ = -1;
  std::vector<int> fds_;
  /// Window slots, `window` per socket, socket by socket.
  std::vector<slot> slots_;
  /// Slots of the current socket to send by the next flush_sends().
  std::vector<size_t> to_send_;
  size_t recv_stride_;
  /// max_batch receive buffers of recv_stride_ bytes.
  std::unique_ptr<unsigned char[]> recv_buffers_;
  counters counts_;
  histogram histogram_;
};

/// Prints the report as one line of text (with --server-pid, a second one
/// with the CPU use) and, with --json, as one JSON object on its own line.
void print_report(const options& opts, const counters& c, const histogram& h,
                  const std::optional<cpu_usage>& cpu) {
  double rate = c.seconds > 0 ? double(c.echoes) / c.seconds : 0.0;
  double mb_per_s = rate * double(opts.size) / 1e6;
  double p50 = double(h.quantile(0.5)) / 1e3;
  double p99 = double(h.quantile(0.99)) / 1e3;
  double p999 = double(h.quantile(0.999)) / 1e3;
  auto threads = opts.threads > 1 ? fmt::format(" [{} threads]", opts.threads) : std::string{};
  fmt::print("udp echo{}: {} sockets x window {} x {} B, {:.2f} s: {} echoes, {:.0f} echoes/s, "
             "{:.2f} MB/s, p50 {:.1f} us, p99 {:.1f} us, p99.9 {:.1f} us, lost {}, stale {}, "
             "mismatched {}, send errors {}, receive errors {}\n",
             threads, opts.sockets, opts.window, opts.size, c.seconds, c.echoes, rate, mb_per_s,
             p50, p99, p999, c.lost, c.stale, c.mismatched, c.send_errors, c.recv_errors);
  if (opts.server_pid != 0 && !cpu) {
    fmt::print(stderr,
               "atoll_udp_loadgen: could not read the CPU time of process {} or of the machine "
               "(/proc/{}/stat, /proc/stat)\n",
               opts.server_pid, opts.server_pid);
  } else if (cpu) {
    fmt::print("cpu (measured interval, {:.2f} s): server {:.2f} s ({:.2f} us/echo), loadgen "
               "{:.2f} s, other processes {:.2f} s ({:.2f} cores), steal {:.2f} s\n",
               cpu->window, cpu->server, c.echoes > 0 ? cpu->server * 1e6 / double(c.echoes) : 0.0,
               cpu->loadgen, cpu->other, cpu->window > 0 ? cpu->other / cpu->window : 0.0,
               cpu->steal);
  }
  if (opts.json) {
    nlohmann::ordered_json j = {
        {"mode", "udp_echo"},
        {"sockets", opts.sockets},
        {"window", opts.window},
        {"size", opts.size},
        {"threads", opts.threads},
        {"echoes", c.echoes},
        {"seconds", round_to(c.seconds, 3)},
        {"echoes_per_s", round_to(rate, 1)},
        {"mb_per_s", round_to(mb_per_s, 3)},
        {"p50_us", round_to(p50, 1)},
        {"p99_us", round_to(p99, 1)},
        {"p999_us", round_to(p999, 1)},
        {"lost", c.lost},
        {"stale", c.stale},
        {"mismatched", c.mismatched},
        {"send_errors", c.send_errors},
        {"recv_errors", c.recv_errors},
        {"loss_timeout_ms", opts.loss_timeout_ms},
    };
    if (cpu) {
      j["window_s"] = round_to(cpu->window, 4);
      j["server_cpu_s"] = round_to(cpu->server, 3);
      j["loadgen_cpu_s"] = round_to(cpu->loadgen, 4);
      j["other_cpu_s"] = round_to(cpu->other, 3);
      j["steal_cpu_s"] = round_to(cpu->steal, 3);
      j["server_us_per_echo"] =
          c.echoes > 0 ? round_to(cpu->server * 1e6 / double(c.echoes), 3) : 0.0;
    }
    fmt::print("{}\n", j.dump());
  }
  std::fflush(stdout);
}

} // namespace

/// Parses the options, runs the closed loop against --host:--port and prints
/// the report. Exit codes: 0 the run completed (losses and mismatches are in
/// the report), 1 set-up failed or not a single echo came back, 2 invalid
/// arguments.
int main(int argc, char** argv) {
  options opts;
  CLI::App app{"Closed-loop load generator for UDP echo servers (epoll, one loop per thread)."};
  app.add_option("--host", opts.host, "Server address")->capture_default_str();
  app.add_option("--port", opts.port, "Server port")->required()->check(CLI::Range(1, 65535));
  app.add_option("--sockets", opts.sockets, "Connected UDP sockets, each on its own source port")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{60000}));
  app.add_option("--window", opts.window, "Datagrams in flight per socket")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{4096}));
  app.add_option("--size", opts.size,
                 "Bytes per datagram (0 allowed; below 8 the checks are weaker)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{65507}));
  app.add_option("--warmup", opts.warmup, "Unmeasured seconds before measuring")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--duration", opts.duration, "Measured seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--loss-timeout", opts.loss_timeout_ms,
                 "Milliseconds after which a datagram without echo is counted lost and replaced")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 60000.0));
  app.add_option("--threads", opts.threads,
                 "Threads, each with its own epoll loop and an equal share of the sockets")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{256}));
  app.add_option("--server-pid", opts.server_pid,
                 "Also report the CPU time of this process, of the load generator and of all "
                 "other processes during the measured interval")
      ->check(CLI::PositiveNumber);
  app.add_flag("--json", opts.json, "Also print the report as one JSON object");
  if (auto rc = parse_command_line(app, argc, argv))
    return *rc;
  if (opts.threads > opts.sockets) {
    fmt::print(stderr, "atoll_udp_loadgen: --threads ({}) must not exceed --sockets ({})\n",
               opts.threads, opts.sockets);
    return exit_bad_arguments;
  }

  auto fd_limit = raise_fd_limit();
  if (fd_limit < opts.sockets + 16) {
    fmt::print(stderr, "atoll_udp_loadgen: the open-file limit ({}) is too low for {} sockets\n",
               fd_limit, opts.sockets);
    return exit_no_echo;
  }
  std::string error;
  // resolve_address() asks for a stream socket; the address it returns is
  // the same for a datagram socket.
  auto addr = resolve_address(opts.host, static_cast<uint16_t>(opts.port), false, error);
  if (!addr) {
    fmt::print(stderr, "atoll_udp_loadgen: {}\n", error);
    return exit_bad_arguments;
  }
  // The pattern the payloads are cut from: a fixed xorshift sequence.
  std::vector<unsigned char> pattern(opts.size + pattern_slack);
  uint32_t x = 2463534242u;
  for (auto& byte : pattern) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    byte = static_cast<unsigned char>(x >> 24);
  }
  // Thread i drives sockets [first, first + count); the counts differ by at
  // most one.
  shared_state shared{opts};
  std::vector<std::unique_ptr<udp_load_generator>> generators;
  for (size_t i = 0, first = 0; i < opts.threads; ++i) {
    size_t count = opts.sockets / opts.threads + (i < opts.sockets % opts.threads ? 1 : 0);
    generators.push_back(
        std::make_unique<udp_load_generator>(opts, *addr, shared, pattern, count, first));
    first += count;
    if (!generators.back()->init())
      return exit_no_echo;
  }
  std::vector<counters> results(generators.size());
  auto begin = clock_type::now();
  std::vector<std::thread> threads;
  for (size_t i = 1; i < generators.size(); ++i)
    threads.emplace_back([&, i] { results[i] = generators[i]->run(begin); });
  results[0] = generators[0]->run(begin);
  for (auto& thread : threads)
    thread.join();
  counters total;
  histogram latencies;
  for (size_t i = 0; i < generators.size(); ++i) {
    total.add(results[i]);
    latencies.merge(generators[i]->latencies());
  }
  print_report(opts, total, latencies, shared.cpu());
  if (total.all_echoes == 0) {
    fmt::print(stderr, "atoll_udp_loadgen: no echo came back from {}\n",
               format_address(addr->get(), addr->length));
    return exit_no_echo;
  }
  return 0;
}
