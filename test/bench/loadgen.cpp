// atoll_loadgen: an epoll load generator for echo servers, over TCP or
// (--tls) over TLS 1.3 with OpenSSL. By default a single thread; with
// --threads N, N threads each run their own epoll loop over their share of
// the connections, and the report merges them.
//
// Modes (see README.md in this folder):
//   pingpong   N connections, each in a strict request/response loop with
//              --size byte messages; reports req/s and latency percentiles.
//   bulk       the same with large messages (default 64 KiB); also MB/s.
//   idle       opens N connections, echoes --size bytes once on each, holds
//              them silently for --hold seconds, optionally checks them again.
//   handshake  N parallel slots, each looping connect (+ TLS handshake), one
//              --size byte echo, close (RST); reports handshakes/s.
//
// With --tls every connection does a non-blocking TLS handshake (no
// certificate verification, SNI "localhost") after connect(), and the data
// goes through SSL_write/SSL_read; either call may need the socket to become
// readable or writable, in either direction.
//
// Every request sends a window of a pseudo-random pattern that starts at a
// different offset for each request, and every echoed byte is compared with
// what was sent, so lost, duplicated or reordered bytes are detected without
// per-connection buffers.
//
// With --server-pid, the CPU time used during the measured interval by that
// process, by the load generator and by everything else on the machine is
// reported too (from /proc/PID/stat, getrusage() and /proc/stat).

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>

#include "bench_common.hpp"

namespace {

using namespace atl::bench;
using clock_type = std::chrono::steady_clock;

/// Exit code when no connection could be established.
constexpr int exit_no_connection = 1;

/// At most this many connections are between connect() and their first echo
/// at any time, so that set-up never overflows the server's listen queue.
constexpr size_t max_pending_setup = 256;

/// Extra pattern bytes beyond --size; the window offset cycles through them.
/// A prime, so consecutive requests of one connection use distinct offsets.
constexpr size_t pattern_slack = 251;

/// Maximum number of events taken from one epoll_wait().
constexpr int max_events = 1024;

/// Number of individual error messages printed to stderr per run.
constexpr int max_printed_errors = 5;

/// The workload.
enum class mode_type { pingpong, bulk, idle, handshake };

/// The server name the TLS client sends (SNI).
constexpr const char* tls_server_name = "localhost";

/// Command-line options.
struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string mode_name = "pingpong";
  mode_type mode = mode_type::pingpong;
  size_t connections = 50;
  size_t size = 64;
  double warmup = 1.0;
  double duration = 5.0;
  double hold = 3.0;
  double timeout = 30.0;
  bool check = false;
  bool tls = false;
  bool json = false;
  /// Threads, each with its own epoll loop and share of the connections.
  size_t threads = 1;
  /// Process whose CPU time is measured over the measured interval (0: none).
  int server_pid = 0;
  /// Close with a reset (SO_LINGER 0) at the end of the run in every mode.
  bool reset_close = false;
};

/// Seconds as a clock duration.
clock_type::duration seconds(double s) {
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
}

/// Clock duration as seconds.
double to_seconds(clock_type::duration d) {
  return std::chrono::duration<double>(d).count();
}

/// A latency histogram with log-linear buckets (like HdrHistogram): exact
/// below 256 ns, above that 128 buckets per power of two, i.e. a relative
/// error below 0.4% when reporting a bucket's midpoint. Fixed size (58 KiB),
/// O(1) recording.
class latency_histogram {
public:
  /// Records one latency in nanoseconds.
  void record(uint64_t ns) {
    ++counts_[bucket_of(ns)];
    ++total_;
  }

  /// Number of recorded values.
  uint64_t count() const noexcept {
    return total_;
  }

  /// Returns the value at quantile `q` (0 < q <= 1) in nanoseconds: the
  /// smallest recorded value that at least q * count() values do not exceed
  /// (0 if empty).
  uint64_t quantile(double q) const {
    if (total_ == 0)
      return 0;
    auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * double(total_))));
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank)
        return bucket_value(i);
    }
    return bucket_value(counts_.size() - 1);
  }

  /// Forgets all recorded values.
  void clear() {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
  }

  /// Adds the values recorded in `other`.
  void merge(const latency_histogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i)
      counts_[i] += other.counts_[i];
    total_ += other.total_;
  }

private:
  static constexpr unsigned sub_bits = 7;
  static constexpr uint64_t sub_buckets = uint64_t{1} << sub_bits;
  static constexpr size_t num_buckets = (64 - sub_bits + 1) * sub_buckets;

  /// Values below 2 * sub_buckets map to themselves; a larger value v with
  /// highest set bit e maps to shift * sub_buckets + (v >> shift), where
  /// shift = e - sub_bits keeps the top 8 bits of v.
  static size_t bucket_of(uint64_t v) {
    if (v < 2 * sub_buckets)
      return v;
    unsigned shift = 63 - static_cast<unsigned>(__builtin_clzll(v)) - sub_bits;
    return shift * sub_buckets + (v >> shift);
  }

  /// The midpoint of the values that map to bucket `index`.
  static uint64_t bucket_value(size_t index) {
    if (index < 2 * sub_buckets)
      return index;
    uint64_t shift = index / sub_buckets - 1;
    uint64_t low = (index - shift * sub_buckets) << shift;
    return low + ((uint64_t{1} << shift) >> 1);
  }

  std::vector<uint64_t> counts_ = std::vector<uint64_t>(num_buckets);
  uint64_t total_ = 0;
};

/// Kinds of errors a run counts.
/// unexpected_close: an orderly close (FIN, TLS close_notify) in the middle
/// of a run; reset: the server reset the connection (ECONNRESET).
enum class error_kind { connect_failed, unexpected_close, reset, mismatch, timeout, count };

/// Name of an error kind, as printed and in the JSON output.
const char* error_name(error_kind kind) {
  switch (kind) {
    case error_kind::connect_failed: return "connect_failed";
    case error_kind::unexpected_close: return "unexpected_close";
    case error_kind::reset: return "reset";
    case error_kind::mismatch: return "mismatch";
    case error_kind::timeout: return "timeout";
    case error_kind::count: break;
  }
  return "?";
}

/// Life cycle of a connection.
enum class conn_state {
  unopened,    // not yet opened
  connecting,  // non-blocking connect() in progress
  handshaking, // TLS handshake in progress (--tls)
  busy,        // a request is being sent or its echo received
  quiet,       // open, no request in flight
  closed,      // closed (after an error or at the end of the run)
};

/// How a connection is closed.
enum class close_kind {
  error,    // after an error: just close()
  graceful, // TLS: close_notify first; then close(), the server sees EOF
  reset,    // TLS: close_notify first; then close() with SO_LINGER 0 (RST)
};

/// One client connection (in handshake mode: one slot, reused for each new
/// connection).
struct connection {
  uint32_t id = 0;
  int fd = -1;
  conn_state state = conn_state::unopened;
  /// The TLS session (--tls), from the end of connect() until closing.
  SSL* ssl = nullptr;
  /// TLS: the event the handshake waits for (EPOLLIN or EPOLLOUT).
  uint32_t handshake_wants = 0;
  /// TLS: SSL_write() waits for readability, SSL_read() for writability.
  bool write_wants_read = false;
  bool read_wants_write = false;
  /// When the connection was opened (handshake mode measures from here).
  clock_type::time_point opened;
  /// True once the first echo arrived.
  bool set_up = false;
  /// Events currently registered with epoll.
  uint32_t interest = 0;
  /// Number of requests started, selects the pattern window.
  uint64_t sequence = 0;
  /// The current request: its size, its bytes, progress and start time.
  size_t request_size = 0;
  const char* expected = nullptr;
  size_t sent = 0;
  size_t received = 0;
  clock_type::time_point started;
};

/// The result of one run, printed as text and JSON.
struct report {
  uint64_t requests = 0;
  /// Payload bytes echoed in the measured interval (not printed).
  uint64_t bytes = 0;
  double seconds = 0;
  double req_per_s = 0;
  /// Handshake mode: completed connect/handshake/echo/close cycles per second.
  double handshakes_per_s = 0;
  double mb_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  size_t established = 0;
  size_t alive = 0;
  std::array<uint64_t, static_cast<size_t>(error_kind::count)> errors{};

  uint64_t total_errors() const {
    uint64_t sum = 0;
    for (auto n : errors)
      sum += n;
    return sum;
  }
};

/// Rounds to `digits` decimals, for readable JSON numbers.
double round_to(double value, int digits) {
  double scale = std::pow(10.0, digits);
  return std::round(value * scale) / scale;
}

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
  /// utime + stime of the --server-pid process (all its threads).
  double server = 0;
  /// Its utime alone: user-space CPU time (the rest is the kernel's).
  double server_user = 0;
  /// user + system time of this process (all its threads).
  double loadgen = 0;
  /// Busy time of all CPUs from /proc/stat: user, nice, system, irq, softirq.
  double busy = 0;
  /// Time stolen by the hypervisor, all CPUs.
  double steal = 0;
};

/// CPU use over the measured interval: of the server, of the load generator
/// and of all other processes (the machine's busy time minus both).
struct cpu_usage {
  double window = 0;
  double server = 0;
  double server_user = 0; // of `server`, in user space
  double loadgen = 0;
  double other = 0;
  double steal = 0;
};

/// Samples the CPU time counters (see `cpu_sample`); nothing if the server
/// process or /proc/stat cannot be read. Times in /proc are in clock ticks,
/// that is 10 ms with the usual USER_HZ of 100.
std::optional<cpu_sample> sample_cpu(int server_pid) {
  cpu_sample result;
  result.when = clock_type::now();
  const double tick = 1.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  // /proc/PID/stat: "PID (COMMAND) STATE ..."; utime and stime are the 12th
  // and 13th fields after the command name, which may contain spaces.
  auto stat = read_small_file(fmt::format("/proc/{}/stat", server_pid));
  auto paren = stat.rfind(") ");
  if (paren == std::string::npos)
    return std::nullopt;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  if (std::sscanf(stat.c_str() + paren + 2,
                  "%*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &utime,
                  &stime) != 2)
    return std::nullopt;
  result.server = static_cast<double>(utime + stime) * tick;
  result.server_user = static_cast<double>(utime) * tick;
  rusage self{};
  if (getrusage(RUSAGE_SELF, &self) != 0)
    return std::nullopt;
  auto to_s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  result.loadgen = to_s(self.ru_utime) + to_s(self.ru_stime);
  // /proc/stat: "cpu  user nice system idle iowait irq softirq steal ...".
  auto all = read_small_file("/proc/stat");
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
                     softirq = 0, steal = 0;
  if (std::sscanf(all.c_str(), "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice,
                  &system, &idle, &iowait, &irq, &softirq, &steal) != 8)
    return std::nullopt;
  result.busy = static_cast<double>(user + nice + system + irq + softirq) * tick;
  result.steal = static_cast<double>(steal) * tick;
  return result;
}

/// What the threads of one run share: the count of printed errors, the
/// rendezvous after setting up idle connections, and the CPU samples at the
/// start and end of the measured interval.
class shared_state {
public:
  explicit shared_state(const options& opts) : opts_(opts) {
  }

  /// Returns true if the caller may print the next individual error
  /// message, false if only counting is left; prints a note once when the
  /// limit is reached.
  bool may_print_error() {
    int n = printed_errors_++;
    if (n == max_printed_errors)
      fmt::print(stderr, "atoll_loadgen: further errors are only counted\n");
    return n < max_printed_errors;
  }

  /// idle mode: called by every thread once its connections are set up.
  /// Waits for the others, then prints the total (once) and returns.
  void set_up_done(size_t established) {
    std::unique_lock<std::mutex> lock{mutex_};
    established_ += established;
    if (++arrived_ == opts_.threads) {
      fmt::print("idle: {} connections established\n", established_);
      std::fflush(stdout);
      changed_.notify_all();
    } else {
      changed_.wait(lock, [this] { return arrived_ == opts_.threads; });
    }
  }

  /// Called by each thread when its measured interval starts; the first one
  /// takes the CPU sample (with --server-pid).
  void window_started() {
    std::lock_guard<std::mutex> guard{mutex_};
    if (started_++ == 0 && opts_.server_pid != 0)
      cpu_start_ = sample_cpu(opts_.server_pid);
  }

  /// Called by each thread when its measured interval ends; the last one
  /// takes the CPU sample.
  void window_ended() {
    std::lock_guard<std::mutex> guard{mutex_};
    if (++ended_ == opts_.threads && opts_.server_pid != 0)
      cpu_end_ = sample_cpu(opts_.server_pid);
  }

  /// CPU use between the two samples, if both were taken.
  std::optional<cpu_usage> cpu() const {
    if (!cpu_start_ || !cpu_end_)
      return std::nullopt;
    cpu_usage u;
    u.window = to_seconds(cpu_end_->when - cpu_start_->when);
    u.server = cpu_end_->server - cpu_start_->server;
    u.server_user = cpu_end_->server_user - cpu_start_->server_user;
    u.loadgen = cpu_end_->loadgen - cpu_start_->loadgen;
    u.other = std::max(0.0, cpu_end_->busy - cpu_start_->busy - u.server - u.loadgen);
    u.steal = cpu_end_->steal - cpu_start_->steal;
    return u;
  }

private:
  const options& opts_;
  std::atomic<int> printed_errors_{0};
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t arrived_ = 0;
  size_t established_ = 0;
  size_t started_ = 0;
  size_t ended_ = 0;
  std::optional<cpu_sample> cpu_start_;
  std::optional<cpu_sample> cpu_end_;
};

/// The load generator of one thread: owns an epoll instance and its share of
/// the connections (all of them with one thread), and drives them through
/// the phases of the selected mode.
class load_generator {
public:
  /// Drives `count` connections, numbered from `first_id` in messages.
  load_generator(const options& opts, const socket_address& addr, shared_state& shared,
                 size_t count, size_t first_id)
    : opts_(opts), addr_(addr), shared_(shared), first_id_(first_id), connections_(count) {
    for (size_t i = 0; i < connections_.size(); ++i)
      connections_[i].id = static_cast<uint32_t>(i);
    // Pseudo-random bytes (xorshift64), so that shifted windows differ.
    pattern_.resize(opts.size + pattern_slack);
    uint64_t state = 0x9e3779b97f4a7c15;
    for (auto& byte : pattern_) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      byte = static_cast<char>(state >> 56);
    }
  }

  load_generator(const load_generator&) = delete;
  load_generator& operator=(const load_generator&) = delete;

  ~load_generator() {
    close_all(close_kind::error);
    if (epoll_fd_ >= 0)
      close(epoll_fd_);
    SSL_CTX_free(tls_);
  }

  /// Creates the epoll instance and, with --tls, the TLS 1.3 client context;
  /// returns false (after printing why) on error.
  bool init() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      fmt::print(stderr, "atoll_loadgen: epoll_create1: {}\n", errno_text(errno));
      return false;
    }
    if (opts_.tls) {
      tls_ = SSL_CTX_new(TLS_client_method());
      if (tls_ == nullptr || SSL_CTX_set_min_proto_version(tls_, TLS1_3_VERSION) != 1 ||
          SSL_CTX_set_max_proto_version(tls_, TLS1_3_VERSION) != 1) {
        fmt::print(stderr, "atoll_loadgen: TLS client context: {}\n", openssl_error_text());
        return false;
      }
      // A benchmark: the server's certificate is not verified.
      SSL_CTX_set_verify(tls_, SSL_VERIFY_NONE, nullptr);
      // SSL_write() may complete a part of a request, and is retried with the
      // same bytes (from the same pattern window) after WANT_READ/WANT_WRITE.
      SSL_CTX_set_mode(tls_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    return true;
  }

  /// Runs the selected mode, which began at `begin` (the warm-up ends
  /// --warmup seconds later), and returns its report.
  report run(clock_type::time_point begin) {
    return opts_.mode == mode_type::idle ? run_idle() : run_traffic(begin);
  }

  /// Number of connections whose connect() (and TLS handshake) succeeded.
  size_t connected() const noexcept {
    return connected_;
  }

  /// The latencies behind the report: of the measured interval, or in idle
  /// mode of the set-up echoes.
  const latency_histogram& histogram() const noexcept {
    return reported_histogram_;
  }

private:
  // -- phases -----------------------------------------------------------------

  /// pingpong and bulk: every connection loops request/echo. handshake:
  /// every slot loops connect/handshake/echo/close. The first --warmup
  /// seconds are not measured, then --duration seconds are.
  report run_traffic(clock_type::time_point begin) {
    const bool handshake = opts_.mode == mode_type::handshake;
    keep_sending_ = true;
    auto all_closed = [this] { return live_ == 0 && next_to_open_ == connections_.size(); };
    run_until(begin + seconds(opts_.warmup), all_closed);
    reset_measurements();
    shared_.window_started();
    auto start = clock_type::now();
    run_until(start + seconds(opts_.duration), all_closed);
    auto end = clock_type::now();
    shared_.window_ended();
    auto result = make_report(to_seconds(end - start));
    reported_histogram_ = histogram_;
    if (handshake)
      result.handshakes_per_s = result.req_per_s;
    else
      fail_unfinished_setups(); // a handshake slot is always in some set-up
    result.alive = live_;
    close_all(handshake || opts_.reset_close ? close_kind::reset : close_kind::graceful);
    result.errors = errors_;
    return result;
  }

  /// idle: set every connection up with one echo, announce it on stdout,
  /// hold the connections silently, optionally check them with a one-byte
  /// echo each, then close them.
  report run_idle() {
    keep_sending_ = false;
    shared_.window_started(); // CPU use is measured over the whole run
    auto start = clock_type::now();
    run_until(start + seconds(opts_.timeout),
              [this] { return next_to_open_ == connections_.size() && pending_setup_ == 0; });
    auto result = make_report(to_seconds(clock_type::now() - start));
    reported_histogram_ = histogram_; // the check echoes are not reported
    fail_unfinished_setups();
    // Prints "idle: N connections established" once all threads are here.
    shared_.set_up_done(established_);

    run_until(clock_type::now() + seconds(opts_.hold), [this] { return live_ == 0; });
    if (opts_.check) {
      auto before = requests_;
      for (auto& conn : connections_)
        if (conn.state == conn_state::quiet)
          start_request(conn, 1);
      run_until(clock_type::now() + seconds(opts_.timeout), [this] { return in_flight_ == 0; });
      for (auto& conn : connections_)
        if (conn.state == conn_state::busy)
          fail(conn, error_kind::timeout, "no echo for the check byte");
      result.alive = requests_ - before;
    } else {
      result.alive = live_;
    }
    shared_.window_ended();
    close_all(opts_.reset_close ? close_kind::reset : close_kind::graceful);
    result.errors = errors_;
    return result;
  }

  /// Counts the connections that are not yet opened, still connecting or
  /// waiting for their first echo as timed out, closes them and opens no
  /// further ones.
  void fail_unfinished_setups() {
    for (auto& conn : connections_) {
      if (conn.state == conn_state::unopened) {
        conn.state = conn_state::closed;
        count_error(conn, error_kind::timeout, "not opened: set-up too slow");
      } else if (conn.fd >= 0 && !conn.set_up) {
        fail(conn, error_kind::timeout, "not set up in time");
      }
    }
    next_to_open_ = connections_.size();
  }

  /// Starts a new measurement interval.
  void reset_measurements() {
    requests_ = 0;
    bytes_ = 0;
    histogram_.clear();
  }

  /// Summarizes the measurement interval of `secs` seconds.
  report make_report(double secs) const {
    report r;
    r.requests = requests_;
    r.bytes = bytes_;
    r.seconds = secs;
    if (secs > 0) {
      r.req_per_s = double(requests_) / secs;
      r.mb_per_s = double(bytes_) / secs / 1e6;
    }
    r.p50_us = double(histogram_.quantile(0.5)) / 1e3;
    r.p99_us = double(histogram_.quantile(0.99)) / 1e3;
    r.p999_us = double(histogram_.quantile(0.999)) / 1e3;
    r.established = established_;
    return r;
  }

  // -- event loop -------------------------------------------------------------

  /// Processes events (and opens connections as set-up capacity frees up)
  /// until `done()` holds or `deadline` passes. Returns whether `done()` held.
  template <class Predicate> bool run_until(clock_type::time_point deadline, Predicate done) {
    for (;;) {
      open_more();
      if (done())
        return true;
      auto now = clock_type::now();
      if (now >= deadline)
        return false;
      // Round up so that we never spin with a zero timeout before a deadline.
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
      poll(static_cast<int>(std::min<long long>(wait.count(), 1000)));
    }
  }

  /// Waits up to `timeout_ms` for events and handles them.
  void poll(int timeout_ms) {
    std::array<epoll_event, max_events> events;
    int n = epoll_wait(epoll_fd_, events.data(), max_events, timeout_ms);
    if (n < 0 && errno != EINTR) {
      fmt::print(stderr, "atoll_loadgen: epoll_wait: {}\n", errno_text(errno));
      return;
    }
    for (int i = 0; i < n; ++i)
      handle_event(connections_[events[i].data.u64], events[i].events);
  }

  /// Dispatches one epoll event of a connection. Over TLS, a write that
  /// waits for readability is retried on EPOLLIN, and a read that waits for
  /// writability on EPOLLOUT.
  void handle_event(connection& conn, uint32_t events) {
    const bool readable = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0;
    const bool writable = (events & EPOLLOUT) != 0;
    switch (conn.state) {
      case conn_state::connecting: finish_connect(conn); return;
      case conn_state::handshaking: continue_handshake(conn); return;
      case conn_state::busy:
        if (conn.sent < conn.request_size && (conn.write_wants_read ? readable : writable))
          flush_send(conn);
        break;
      case conn_state::quiet: break;
      case conn_state::unopened:
      case conn_state::closed: return; // stale event
    }
    if (conn.state != conn_state::closed && (readable || (conn.read_wants_write && writable)))
      handle_readable(conn);
  }

  // -- connections ------------------------------------------------------------

  /// Opens further connections while fewer than `max_pending_setup` are
  /// being set up.
  void open_more() {
    while (next_to_open_ < connections_.size() && pending_setup_ < max_pending_setup)
      open_connection(connections_[next_to_open_++]);
  }

  /// Starts a non-blocking connect() on a new TCP_NODELAY socket.
  void open_connection(connection& conn) {
    conn.opened = clock_type::now();
    conn.fd = socket(addr_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (conn.fd < 0) {
      conn.state = conn_state::closed;
      count_error(conn, error_kind::connect_failed, "socket: " + errno_text(errno));
      return;
    }
    ++live_;
    ++pending_setup_;
    conn.state = conn_state::connecting;
    set_tcp_nodelay(conn.fd);
    epoll_event ev{};
    ev.events = conn.interest = EPOLLOUT;
    ev.data.u64 = conn.id;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, conn.fd, &ev) != 0) {
      fail(conn, error_kind::connect_failed, "epoll_ctl: " + errno_text(errno));
      return;
    }
    if (connect(conn.fd, addr_.get(), addr_.length) == 0)
      finish_connect(conn);
    else if (errno != EINPROGRESS)
      fail(conn, error_kind::connect_failed, "connect: " + errno_text(errno));
  }

  /// Completes a connect() and starts the first request, or with --tls the
  /// TLS handshake.
  void finish_connect(connection& conn) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(conn.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err != 0) {
      fail(conn, error_kind::connect_failed, "connect: " + errno_text(err));
      return;
    }
    if (tls_ == nullptr) {
      ++connected_;
      start_request(conn, opts_.size);
      return;
    }
    conn.ssl = SSL_new(tls_);
    if (conn.ssl == nullptr || SSL_set_fd(conn.ssl, conn.fd) != 1 ||
        SSL_set_tlsext_host_name(conn.ssl, server_name_.data()) != 1) {
      fail(conn, error_kind::connect_failed, "TLS set-up: " + openssl_error_text());
      return;
    }
    SSL_set_connect_state(conn.ssl);
    conn.state = conn_state::handshaking;
    continue_handshake(conn);
  }

  /// Advances the TLS handshake as far as the socket allows; starts the
  /// first request once it is complete.
  void continue_handshake(connection& conn) {
    ERR_clear_error();
    int rc = SSL_do_handshake(conn.ssl);
    if (rc == 1) {
      ++connected_;
      conn.handshake_wants = 0;
      start_request(conn, opts_.size);
      return;
    }
    int saved_errno = errno;
    switch (int err = SSL_get_error(conn.ssl, rc)) {
      case SSL_ERROR_WANT_READ: conn.handshake_wants = EPOLLIN; break;
      case SSL_ERROR_WANT_WRITE: conn.handshake_wants = EPOLLOUT; break;
      default:
        fail(conn, error_kind::connect_failed,
             "TLS handshake: " + ssl_failure_text(err, saved_errno));
        return;
    }
    update_interest(conn);
  }

  /// Starts a request of `size` bytes and sends as much of it as possible.
  void start_request(connection& conn, size_t size) {
    conn.request_size = size;
    conn.expected =
        pattern_.data() + ((first_id_ + conn.id) * 7 + conn.sequence++) % pattern_slack;
    conn.sent = 0;
    conn.received = 0;
    conn.started = clock_type::now();
    conn.state = conn_state::busy;
    ++in_flight_;
    flush_send(conn);
  }

  /// Sends the unsent rest of the current request until the socket is full.
  void flush_send(connection& conn) {
    if (conn.ssl != nullptr) {
      flush_send_tls(conn);
      return;
    }
    while (conn.sent < conn.request_size) {
      ssize_t n =
          send(conn.fd, conn.expected + conn.sent, conn.request_size - conn.sent, MSG_NOSIGNAL);
      if (n >= 0) {
        conn.sent += static_cast<size_t>(n);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      } else if (errno != EINTR) {
        fail(conn, errno == ECONNRESET ? error_kind::reset : error_kind::unexpected_close,
             "send: " + errno_text(errno));
        return;
      }
    }
    update_interest(conn);
  }

  /// TLS: writes the unsent rest of the current request until SSL_write()
  /// wants the socket to become writable (or readable). A retry passes the
  /// same bytes as the call that could not complete, as OpenSSL requires.
  void flush_send_tls(connection& conn) {
    conn.write_wants_read = false;
    while (conn.sent < conn.request_size) {
      size_t written = 0;
      ERR_clear_error();
      int rc = SSL_write_ex(conn.ssl, conn.expected + conn.sent, conn.request_size - conn.sent,
                            &written);
      if (rc == 1) {
        conn.sent += written;
        continue;
      }
      int saved_errno = errno;
      int err = SSL_get_error(conn.ssl, rc);
      if (err == SSL_ERROR_WANT_WRITE)
        break;
      if (err == SSL_ERROR_WANT_READ) {
        conn.write_wants_read = true;
        break;
      }
      fail(conn, error_kind::unexpected_close, "SSL_write: " + ssl_failure_text(err, saved_errno));
      return;
    }
    update_interest(conn);
  }

  /// Reads (once over TCP; over TLS until SSL_read() wants more from the
  /// socket) and checks the bytes against what was sent.
  void handle_readable(connection& conn) {
    if (conn.ssl != nullptr) {
      read_tls(conn);
      return;
    }
    ssize_t n = recv(conn.fd, read_buffer_.data(), read_buffer_.size(), 0);
    if (n == 0) {
      fail(conn, error_kind::unexpected_close, "closed by the server");
      return;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        fail(conn, errno == ECONNRESET ? error_kind::reset : error_kind::unexpected_close,
             "recv: " + errno_text(errno));
      return;
    }
    check_echo(conn, static_cast<size_t>(n));
  }

  /// TLS: reads until SSL_read() wants the socket to become readable (or
  /// writable). Records without application data (session tickets) are
  /// handled by OpenSSL.
  void read_tls(connection& conn) {
    conn.read_wants_write = false;
    for (;;) {
      size_t got = 0;
      ERR_clear_error();
      int rc = SSL_read_ex(conn.ssl, read_buffer_.data(), read_buffer_.size(), &got);
      if (rc == 1) {
        if (!check_echo(conn, got))
          return;
        continue;
      }
      int saved_errno = errno;
      int err = SSL_get_error(conn.ssl, rc);
      if (err == SSL_ERROR_WANT_READ)
        break;
      if (err == SSL_ERROR_WANT_WRITE) {
        conn.read_wants_write = true;
        break;
      }
      fail(conn,
           err == SSL_ERROR_SYSCALL && saved_errno == ECONNRESET ? error_kind::reset
                                                                  : error_kind::unexpected_close,
           err == SSL_ERROR_ZERO_RETURN ? std::string{"closed by the server (close_notify)"}
                                        : "SSL_read: " + ssl_failure_text(err, saved_errno));
      return;
    }
    update_interest(conn);
  }

  /// Checks `got` received bytes in `read_buffer_` against what was sent and
  /// completes the request once all are back. Returns false if the
  /// connection was closed or (handshake mode) replaced by a new one.
  bool check_echo(connection& conn, size_t got) {
    if (conn.state != conn_state::busy || conn.received + got > conn.sent) {
      fail(conn, error_kind::mismatch, "received more bytes than were sent");
      return false;
    }
    if (std::memcmp(read_buffer_.data(), conn.expected + conn.received, got) != 0) {
      fail(conn, error_kind::mismatch, "echoed bytes differ from the sent ones");
      return false;
    }
    conn.received += got;
    if (conn.received == conn.request_size)
      return complete_request(conn);
    return true;
  }

  /// Records a completed request. pingpong and bulk start the next one;
  /// handshake mode closes the connection with a reset and opens the next
  /// one in its slot. Returns false if the connection is gone.
  bool complete_request(connection& conn) {
    const bool handshake = opts_.mode == mode_type::handshake;
    auto latency = clock_type::now() - (handshake ? conn.opened : conn.started);
    histogram_.record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count()));
    ++requests_;
    bytes_ += conn.request_size;
    --in_flight_;
    conn.state = conn_state::quiet;
    if (!conn.set_up) {
      conn.set_up = true;
      --pending_setup_;
      ++established_;
    }
    if (handshake) {
      close_connection(conn, close_kind::reset);
      if (keep_sending_) {
        conn.set_up = false;
        conn.state = conn_state::unopened;
        open_connection(conn);
      }
      return false;
    }
    if (keep_sending_)
      start_request(conn, opts_.size);
    else
      update_interest(conn);
    return conn.state != conn_state::closed;
  }

  /// Registers the events the connection's state needs: EPOLLOUT while
  /// connecting, what the TLS handshake waits for while handshaking, and
  /// otherwise EPOLLIN (also when quiet, to notice a close by the server)
  /// plus EPOLLOUT while request bytes are unsent (unless the TLS write
  /// waits for readability) or while a TLS read waits for writability.
  void update_interest(connection& conn) {
    uint32_t wanted = EPOLLIN;
    if (conn.state == conn_state::connecting)
      wanted = EPOLLOUT;
    else if (conn.state == conn_state::handshaking)
      wanted = conn.handshake_wants;
    else if ((conn.state == conn_state::busy && conn.sent < conn.request_size &&
              !conn.write_wants_read) ||
             conn.read_wants_write)
      wanted |= EPOLLOUT;
    if (wanted == conn.interest)
      return;
    epoll_event ev{};
    ev.events = wanted;
    ev.data.u64 = conn.id;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn.fd, &ev) != 0) {
      fail(conn, error_kind::unexpected_close, "epoll_ctl: " + errno_text(errno));
      return;
    }
    conn.interest = wanted;
  }

  /// Counts an error of a connection and closes it.
  void fail(connection& conn, error_kind kind, const std::string& what) {
    count_error(conn, kind, what);
    close_connection(conn, close_kind::error);
  }

  /// Counts an error and prints the first few to stderr.
  void count_error(const connection& conn, error_kind kind, const std::string& what) {
    ++errors_[static_cast<size_t>(kind)];
    if (shared_.may_print_error())
      fmt::print(stderr, "atoll_loadgen: connection {}: {}: {}\n", first_id_ + conn.id,
                 error_name(kind), what);
  }

  /// Closes a connection. Unless closing after an error, a TLS connection
  /// whose handshake is complete first sends close_notify (without waiting
  /// for the server's). `close_kind::reset` closes with an RST, so that no
  /// TIME_WAIT socket is left behind.
  void close_connection(connection& conn, close_kind how) {
    if (conn.fd < 0)
      return;
    if (conn.ssl != nullptr) {
      if (how != close_kind::error && SSL_is_init_finished(conn.ssl)) {
        SSL_shutdown(conn.ssl); // best effort; the socket is non-blocking
        ERR_clear_error();
      }
      SSL_free(conn.ssl); // does not close the socket
      conn.ssl = nullptr;
    }
    conn.handshake_wants = 0;
    conn.write_wants_read = false;
    conn.read_wants_write = false;
    if (how == close_kind::reset)
      set_reset_on_close(conn.fd);
    close(conn.fd);
    conn.fd = -1;
    --live_;
    if (!conn.set_up)
      --pending_setup_;
    if (conn.state == conn_state::busy)
      --in_flight_;
    conn.state = conn_state::closed;
  }

  /// Closes all open connections.
  void close_all(close_kind how) {
    for (auto& conn : connections_)
      close_connection(conn, how);
  }

  const options& opts_;
  socket_address addr_;
  shared_state& shared_;
  /// Number of this thread's first connection, in messages.
  size_t first_id_;
  int epoll_fd_ = -1;
  /// The TLS client context (--tls), or null.
  SSL_CTX* tls_ = nullptr;
  /// The SNI name (OpenSSL takes it as a non-const pointer).
  std::string server_name_ = tls_server_name;
  std::vector<connection> connections_;
  std::vector<char> pattern_;
  std::array<char, 64 * 1024> read_buffer_{};
  /// Whether a completed request is followed by the next one.
  bool keep_sending_ = true;
  /// Index of the next connection to open.
  size_t next_to_open_ = 0;
  /// Open connections; those not yet set up; requests in flight.
  size_t live_ = 0;
  size_t pending_setup_ = 0;
  size_t in_flight_ = 0;
  /// Connections whose connect() succeeded; that got their first echo.
  size_t connected_ = 0;
  size_t established_ = 0;
  /// Measurements of the current interval.
  uint64_t requests_ = 0;
  uint64_t bytes_ = 0;
  latency_histogram histogram_;
  /// A copy of `histogram_` taken with the report, for merging (--threads).
  latency_histogram reported_histogram_;
  /// Errors of the whole run, by kind.
  std::array<uint64_t, static_cast<size_t>(error_kind::count)> errors_{};
};

/// Merges the reports of several threads: counts are added up, the
/// percentiles come from the merged histogram, and the rates are the totals
/// over the longest thread's interval.
report merge_reports(const options& opts, const std::vector<report>& parts,
                     const latency_histogram& histogram) {
  report r;
  for (const auto& part : parts) {
    r.requests += part.requests;
    r.bytes += part.bytes;
    r.seconds = std::max(r.seconds, part.seconds);
    r.established += part.established;
    r.alive += part.alive;
    for (size_t i = 0; i < r.errors.size(); ++i)
      r.errors[i] += part.errors[i];
  }
  if (r.seconds > 0) {
    r.req_per_s = double(r.requests) / r.seconds;
    r.mb_per_s = double(r.bytes) / r.seconds / 1e6;
  }
  if (opts.mode == mode_type::handshake)
    r.handshakes_per_s = r.req_per_s;
  r.p50_us = double(histogram.quantile(0.5)) / 1e3;
  r.p99_us = double(histogram.quantile(0.99)) / 1e3;
  r.p999_us = double(histogram.quantile(0.999)) / 1e3;
  return r;
}

/// Prints the report as one human-readable line (with --server-pid, a
/// second one with the CPU use), and as one JSON object on its own line if
/// --json was given.
void print_report(const options& opts, const report& r, const std::optional<cpu_usage>& cpu) {
  std::string errors = fmt::format("errors {}", r.total_errors());
  if (r.total_errors() > 0) {
    std::vector<std::string> parts;
    for (size_t i = 0; i < r.errors.size(); ++i)
      if (r.errors[i] > 0)
        parts.push_back(fmt::format("{} {}", error_name(static_cast<error_kind>(i)), r.errors[i]));
    errors += fmt::format(" ({})", fmt::join(parts, ", "));
  }
  auto latency =
      fmt::format("p50 {:.1f} us, p99 {:.1f} us, p99.9 {:.1f} us", r.p50_us, r.p99_us, r.p999_us);
  auto mode = opts.mode_name + (opts.tls ? " (TLS)" : "");
  if (opts.threads > 1)
    mode += fmt::format(" [{} threads]", opts.threads);
  if (opts.mode == mode_type::idle) {
    fmt::print("{}: {}/{} connections set up in {:.2f} s ({:.0f} conn/s; echo {}), {} alive "
               "after {:.1f} s hold{}, {}\n",
               mode, r.established, opts.connections, r.seconds, r.req_per_s, latency, r.alive,
               opts.hold, opts.check ? " (checked)" : "", errors);
  } else if (opts.mode == mode_type::handshake) {
    fmt::print("{}: {} slots x ({}connect, {} B echo, close), {:.2f} s: {} handshakes, {:.0f} "
               "handshakes/s, cycle {}, {}\n",
               mode, opts.connections, opts.tls ? "TLS " : "", opts.size, r.seconds, r.requests,
               r.handshakes_per_s, latency, errors);
  } else {
    fmt::print("{}: {} connections x {} B, {:.2f} s: {} requests, {:.0f} req/s, {:.2f} MB/s, {}, "
               "{}\n",
               mode, opts.connections, opts.size, r.seconds, r.requests, r.req_per_s, r.mb_per_s,
               latency, errors);
  }
  if (opts.server_pid != 0 && !cpu) {
    fmt::print(stderr, "atoll_loadgen: could not read the CPU time of process {} or of the "
                       "machine (/proc/{}/stat, /proc/stat)\n",
               opts.server_pid, opts.server_pid);
  } else if (cpu) {
    auto per_request =
        opts.mode == mode_type::idle || r.requests == 0
            ? std::string{}
            : fmt::format(" ({:.1f} us/{})", cpu->server * 1e6 / double(r.requests),
                          opts.mode == mode_type::handshake ? "connection" : "request");
    fmt::print("cpu ({}, {:.2f} s): server {:.2f} s{} of which user space {:.2f} s, loadgen "
               "{:.2f} s, other processes {:.2f} s ({:.2f} cores), steal {:.2f} s\n",
               opts.mode == mode_type::idle ? "whole run" : "measured interval", cpu->window,
               cpu->server, per_request, cpu->server_user, cpu->loadgen, cpu->other,
               cpu->window > 0 ? cpu->other / cpu->window : 0.0, cpu->steal);
  }
  if (opts.json) {
    nlohmann::ordered_json error_kinds;
    for (size_t i = 0; i < r.errors.size(); ++i)
      error_kinds[error_name(static_cast<error_kind>(i))] = r.errors[i];
    nlohmann::ordered_json j = {
        {"mode", opts.mode_name},
        {"connections", opts.connections},
        {"size", opts.size},
        {"requests", r.requests},
        {"seconds", round_to(r.seconds, 3)},
        {"req_per_s", round_to(r.req_per_s, 1)},
        {"mb_per_s", round_to(r.mb_per_s, 3)},
        {"p50_us", round_to(r.p50_us, 1)},
        {"p99_us", round_to(r.p99_us, 1)},
        {"p999_us", round_to(r.p999_us, 1)},
        {"errors", r.total_errors()},
        {"error_kinds", error_kinds},
        {"established", r.established},
        {"alive", r.alive},
    };
    if (opts.mode == mode_type::handshake)
      j["handshakes_per_s"] = round_to(r.handshakes_per_s, 1);
    if (opts.threads > 1)
      j["threads"] = opts.threads;
    if (cpu) {
      j["window_s"] = round_to(cpu->window, 4);
      j["server_cpu_s"] = round_to(cpu->server, 3);
      j["server_user_cpu_s"] = round_to(cpu->server_user, 3);
      j["loadgen_cpu_s"] = round_to(cpu->loadgen, 4);
      j["other_cpu_s"] = round_to(cpu->other, 3);
      j["steal_cpu_s"] = round_to(cpu->steal, 3);
    }
    fmt::print("{}\n", j.dump());
  }
  std::fflush(stdout);
}

} // namespace

/// Parses the options, runs one workload against --host:--port and prints
/// its report. Exit codes: 0 the run completed (even with errors, which are
/// reported), 1 no connection could be established (or set-up failed),
/// 2 invalid arguments.
int main(int argc, char** argv) {
  options opts;
  CLI::App app{"Load generator for echo servers (epoll, one loop per thread; TCP or TLS 1.3)."};
  app.add_option("--host", opts.host, "Server address")->capture_default_str();
  app.add_option("--port", opts.port, "Server port")->required()->check(CLI::Range(1, 65535));
  app.add_option("--mode", opts.mode_name, "Workload: pingpong, bulk, idle or handshake")
      ->capture_default_str()
      ->check(CLI::IsMember({"pingpong", "bulk", "idle", "handshake"}));
  app.add_flag("--tls", opts.tls,
               "Use TLS 1.3 (OpenSSL; no certificate verification, SNI \"localhost\")");
  app.add_option("--connections", opts.connections,
                 "Number of connections (handshake: parallel slots)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  auto* size_opt =
      app.add_option("--size", opts.size, "Bytes per request (default 64; 65536 in bulk mode)")
          ->check(CLI::Range(size_t{1}, size_t{64} << 20));
  app.add_option("--warmup", opts.warmup,
                 "Unmeasured seconds before measuring (pingpong, bulk, handshake)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--duration", opts.duration, "Measured seconds (pingpong, bulk, handshake)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--hold", opts.hold, "Seconds to hold the idle connections (idle)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--check", opts.check, "After holding, require a one-byte echo on each (idle)");
  app.add_option("--timeout", opts.timeout,
                 "Seconds allowed for setting up all connections, and for the check (idle)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", opts.threads,
                 "Threads, each with its own epoll loop and an equal share of the connections")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{256}));
  app.add_option("--server-pid", opts.server_pid,
                 "Also report the CPU time of this process, of the load generator and of "
                 "all other processes during the measured interval (idle: the whole run)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--reset-close", opts.reset_close,
               "Close the connections with a reset at the end (no TIME_WAIT left behind)");
  app.add_flag("--json", opts.json, "Also print the report as one JSON object");
  if (auto rc = parse_command_line(app, argc, argv))
    return *rc;
  if (opts.threads > opts.connections) {
    fmt::print(stderr, "atoll_loadgen: --threads ({}) must not exceed --connections ({})\n",
               opts.threads, opts.connections);
    return exit_bad_arguments;
  }
  opts.mode = opts.mode_name == "idle"        ? mode_type::idle
              : opts.mode_name == "bulk"      ? mode_type::bulk
              : opts.mode_name == "handshake" ? mode_type::handshake
                                              : mode_type::pingpong;
  if (opts.mode == mode_type::bulk && size_opt->count() == 0)
    opts.size = 64 * 1024;

  std::signal(SIGPIPE, SIG_IGN);
  auto fd_limit = raise_fd_limit();
  if (fd_limit < opts.connections + 16)
    fmt::print(stderr,
               "atoll_loadgen: warning: the open-file limit ({}) is too low for {} "
               "connections; the excess will fail\n",
               fd_limit, opts.connections);
  std::string error;
  auto addr = resolve_address(opts.host, static_cast<uint16_t>(opts.port), false, error);
  if (!addr) {
    fmt::print(stderr, "atoll_loadgen: {}\n", error);
    return exit_bad_arguments;
  }
  // Thread i drives connections [first, first + count), the counts differing
  // by at most one.
  shared_state shared{opts};
  std::vector<std::unique_ptr<load_generator>> generators;
  for (size_t i = 0, first = 0; i < opts.threads; ++i) {
    size_t count = opts.connections / opts.threads + (i < opts.connections % opts.threads ? 1 : 0);
    generators.push_back(std::make_unique<load_generator>(opts, *addr, shared, count, first));
    first += count;
    if (!generators.back()->init())
      return exit_no_connection;
  }
  std::vector<report> results(generators.size());
  auto begin = clock_type::now();
  std::vector<std::thread> threads;
  for (size_t i = 1; i < generators.size(); ++i)
    threads.emplace_back([&, i] { results[i] = generators[i]->run(begin); });
  results[0] = generators[0]->run(begin);
  for (auto& thread : threads)
    thread.join();
  size_t connected = 0;
  for (const auto& gen : generators)
    connected += gen->connected();
  if (generators.size() == 1) {
    print_report(opts, results[0], shared.cpu());
  } else {
    latency_histogram histogram;
    for (const auto& gen : generators)
      histogram.merge(gen->histogram());
    print_report(opts, merge_reports(opts, results, histogram), shared.cpu());
  }
  if (connected == 0) {
    fmt::print(stderr, "atoll_loadgen: could not {} {}\n",
               opts.tls ? "complete a TLS handshake with" : "connect to",
               format_address(addr->get(), addr->length));
    return exit_no_connection;
  }
  return 0;
}
