// The socket API a handler uses, over real loopback connections: sends
// (single, gathered, large with a slow reader), synchronous receives,
// sendfile, shutdown, close, statistics, options, addresses, TLS queries on
// clear TCP, the connection's telemetry, and errors after a peer reset.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <sys/resource.h>

#include "support/server_support.hpp"

using namespace atl;
using namespace atl::test;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t none_value = ~uint64_t{0};

/// "ok", the atoll error code's name, or the rendered error.
std::string outcome_of(const caf::error& err) {
  if (!err)
    return "ok";
  if (err.category() == caf::atom("atoll"))
    return to_string(static_cast<errc>(err.code()));
  return describe(err);
}

template <class T>
std::string outcome_of(const caf::expected<T>& x) {
  return x ? std::string{"ok"} : outcome_of(x.error());
}

/// `n` deterministic bytes (all 256 values occur) that differ per `seed`.
std::string pattern(size_t n, unsigned seed) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<char>((i * 131 + (i >> 9) + seed) & 0xff);
  return out;
}

/// Where two byte strings first differ (for failure messages).
std::string first_difference(const std::string& got, const std::string& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i])
    ++i;
  return "sizes " + std::to_string(got.size()) + " vs " + std::to_string(want.size())
         + ", first difference at byte " + std::to_string(i);
}

/// A field rendered as text, "<absent>" if missing.
std::string text_of(const telemetry::fields& f, const std::string& key) {
  auto ptr = f.find(key);
  return ptr ? telemetry::to_string(*ptr) : std::string{"<absent>"};
}

/// An unsigned field, `none_value` if missing or of another type.
uint64_t u64_of(const telemetry::fields& f, const std::string& key) {
  return f.get_or<uint64_t>(key, none_value);
}

/// The span context of an event (0 if missing).
uint64_t context_of(const telemetry::event& ev) {
  return ev.metadata.get_or<uint64_t>("telemetry_span_context", 0);
}

/// A telemetry recorder on the fixture's bus. It stops the fixture's servers
/// before it detaches, so that no connection emits into a dead recorder.
struct recording {
  server_fixture& fx;
  telemetry_recorder rec;

  explicit recording(server_fixture& f) : fx(f), rec(f.bus) {
  }

  ~recording() {
    for (auto& srv : fx.servers)
      static_cast<void>(srv.stop(10000ms));
  }
};

/// A temporary directory (mkdtemp), removed with its files.
struct temp_dir {
  std::string path;

  temp_dir() {
    auto tmpl = (std::filesystem::temp_directory_path() / "atoll-socket-test-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  /// Writes `content` to a file in the directory; returns its path.
  std::string file(const std::string& name, const std::string& content) const {
    auto full = path + "/" + name;
    std::ofstream out{full, std::ios::binary | std::ios::trunc};
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    BOOST_REQUIRE(out.good());
    return full;
  }
};

/// Socket statistics captured inside a handler, read by the test thread.
struct stats_box {
  std::mutex mtx;
  std::vector<socket_stats> snapshots;

  void add(const socket_stats& s) {
    std::lock_guard<std::mutex> guard{mtx};
    snapshots.push_back(s);
  }

  std::vector<socket_stats> all() {
    std::lock_guard<std::mutex> guard{mtx};
    return snapshots;
  }
};

/// The client side's local address.
endpoint local_address_of(const test_client& client) {
  auto ep = local_endpoint(client.fd());
  BOOST_REQUIRE(ep);
  return *ep;
}

/// Reads `n` bytes in small pieces, pausing now and then (a slow reader).
std::string read_slowly(test_client& client, size_t n) {
  std::string out;
  out.reserve(n);
  size_t since_pause = 0;
  while (out.size() < n) {
    auto piece = std::min<size_t>(16384, n - out.size());
    out += client.recv_exact(piece, 10000ms);
    since_pause += piece;
    if (since_pause >= 256 * 1024) {
      since_pause = 0;
      std::this_thread::sleep_for(2ms); // throttling only: nothing waits on it
    }
  }
  return out;
}


bool has_final_callback(const event_log& log) {
  for (auto& e : log.entries())
    if (e == "close" || e.rfind("error:", 0) == 0)
      return true;
  return false;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(socket_api, server_fixture)

// -- send ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(single_and_gathered_sends_arrive_in_order_byte_exact) {
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  auto many = std::make_shared<std::vector<std::string>>();
  for (int i = 0; i < 3000; ++i) // more parts than IOV_MAX (1024)
    many->push_back("p" + std::to_string(i) + ",");
  script->on_connection = [log{script->log}, many](atl::socket& sock) {
    std::string binary{"\0\x01\xff|", 4};
    log->add("single:" + outcome_of(sock.send("single|")));
    log->add("binary:" + outcome_of(sock.send(binary)));
    log->add("empty:" + outcome_of(sock.send(std::string_view{})));
    std::vector<std::string_view> parts{"vec-a|", "", "vec-b|", "vec-c|"};
    log->add("vector:" + outcome_of(sock.send(parts)));
    log->add("list:" + outcome_of(sock.send({"il-1|", "il-2|", "", "il-3|"})));
    std::vector<std::string_view> views(many->begin(), many->end());
    log->add("many:" + outcome_of(sock.send(views)));
    log->add("tail:" + outcome_of(sock.send("end")));
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  std::string many_joined;
  for (auto& p : *many)
    many_joined += p;
  auto want = std::string{"single|"} + std::string{"\0\x01\xff|", 4} + "vec-a|vec-b|vec-c|"
              + "il-1|il-2|il-3|" + many_joined + "end";
  auto got = client.recv_exact(want.size());
  BOOST_CHECK_MESSAGE(got == want, first_difference(got, want));
  BOOST_CHECK(client.silent_for(100ms)); // nothing more (no stray bytes)
  BOOST_REQUIRE(script->log->wait_for("tail:ok"));
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection", "single:ok", "binary:ok", "empty:ok",
                                           "vector:ok", "list:ok", "many:ok", "tail:ok"}));
  // One send event per non-empty send, carrying the bytes of the call.
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.send", 6));
  std::vector<std::string> sent;
  for (auto& ev : tel.rec.named("atoll.connection.send"))
    sent.push_back(text_of(ev.measurements, "data"));
  BOOST_CHECK((sent
               == std::vector<std::string>{"single|", std::string{"\0\x01\xff|", 4},
                                           "vec-a|vec-b|vec-c|", "il-1|il-2|il-3|", many_joined,
                                           "end"}));
}

BOOST_AUTO_TEST_CASE(a_large_send_to_a_slow_reader_arrives_whole_and_is_counted) {
  constexpr size_t total = 8u << 20; // 8 MiB
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  auto stats = std::make_shared<stats_box>();
  script->on_connection = [log{script->log}, stats](atl::socket& sock) {
    // A small send buffer: most of the data must wait in the output queue.
    log->add("sndbuf:" + outcome_of(sock.setopt(socket_option::sndbuf, 65536)));
    auto err = sock.send(pattern(total, 7));
    stats->add(sock.getstat());
    log->add("send:" + outcome_of(err));
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  // Read only once the handler returned from send (the rest is queued).
  BOOST_REQUIRE(script->log->wait_for("send:ok"));
  BOOST_CHECK_EQUAL(script->log->count("sndbuf:ok"), 1u);
  auto at_return = stats->all();
  BOOST_REQUIRE_EQUAL(at_return.size(), 1u);
  BOOST_CHECK_LT(at_return[0].send_oct, total); // not all written at once: queued
  BOOST_CHECK_EQUAL(at_return[0].send_pend, total - at_return[0].send_oct);
  BOOST_CHECK_GT(at_return[0].send_max, 0u);
  BOOST_CHECK_LE(at_return[0].send_max, at_return[0].send_oct);
  BOOST_CHECK_EQUAL(at_return[0].send_avg(), at_return[0].send_oct / at_return[0].send_cnt);
  auto got = read_slowly(client, total);
  auto want = pattern(total, 7);
  BOOST_CHECK_MESSAGE(got == want, first_difference(got, want));
  BOOST_CHECK(client.silent_for(50ms));
  client.close();
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop"));
  auto stop = tel.rec.named("atoll.connection.stop").front();
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "send_oct"), total);
  BOOST_CHECK_GT(u64_of(stop.measurements, "send_cnt"), 1u); // the queue wrote the rest
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "recv_oct"), 0u);
  BOOST_CHECK(!stop.metadata.contains("error"));
}

BOOST_AUTO_TEST_CASE(an_echo_of_a_large_stream_survives_back_pressure) {
  constexpr size_t total = 8u << 20; // 8 MiB each way
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  script->on_data = echo;
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  auto data = pattern(total, 9);
  if (tls_mode()) {
    // An OpenSSL session cannot be shared by two threads: echo in 256 KiB
    // rounds instead (still far more than the socket buffers hold).
    constexpr size_t round = 256u << 10;
    std::string got;
    for (size_t off = 0; off < total; off += round) {
      client.send(std::string_view{data}.substr(off, round));
      got += client.recv_exact(round, 30000ms);
    }
    BOOST_CHECK_MESSAGE(got == data, first_difference(got, data));
    client.close();
    BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop"));
    auto stop = tel.rec.named("atoll.connection.stop").front();
    BOOST_CHECK_EQUAL(u64_of(stop.measurements, "recv_oct"), total);
    BOOST_CHECK_EQUAL(u64_of(stop.measurements, "send_oct"), total);
    return;
  }
  // The client writes on its own thread while this one reads the echo.
  std::atomic<size_t> written{0};
  std::thread writer{[fd = client.fd(), &data, &written] {
    size_t off = 0;
    while (off < data.size()) {
      auto n = ::send(fd, data.data() + off, std::min<size_t>(65536, data.size() - off),
                      MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      off += static_cast<size_t>(n);
    }
    written = off;
  }};
  std::string got;
  got.reserve(total);
  std::string buf(65536, '\0');
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got.size() < total && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{client.fd(), POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0)
      continue;
    auto n = ::recv(client.fd(), buf.data(), buf.size(), 0);
    if (n <= 0)
      break;
    got.append(buf.data(), static_cast<size_t>(n));
  }
  ::shutdown(client.fd(), SHUT_RDWR); // unblocks the writer if it is stuck
  writer.join();
  BOOST_CHECK_EQUAL(written.load(), total);
  BOOST_CHECK_MESSAGE(got == data, first_difference(got, data));
  client.close();
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop"));
  auto stop = tel.rec.named("atoll.connection.stop").front();
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "recv_oct"), total);
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "send_oct"), total);
  BOOST_CHECK_GT(u64_of(stop.measurements, "recv_cnt"), 1u);
}

BOOST_AUTO_TEST_CASE(output_a_client_does_not_read_ends_the_connection_after_the_send_timeout) {
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    static_cast<void>(sock.setopt(socket_option::sndbuf, 65536));
    log->add("send:" + outcome_of(sock.send(pattern(8u << 20, 4))));
    return verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.transport.send_timeout = 300ms;
  opts.silent_terminate_on_error = true; // the expected error is not logged
  auto& srv = start(opts);
  auto started = std::chrono::steady_clock::now();
  auto client = connect(srv); // never reads
  BOOST_REQUIRE(script->log->wait_for("error:atoll error timeout: send timeout", 1, 10000ms));
  BOOST_CHECK(std::chrono::steady_clock::now() - started >= 300ms);
  BOOST_CHECK_EQUAL(script->log->count("send:ok"), 1u);
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop"));
  auto stop = tel.rec.named("atoll.connection.stop").front();
  BOOST_CHECK_NE(text_of(stop.metadata, "error").find("send timeout"), std::string::npos);
  BOOST_CHECK_LT(u64_of(stop.measurements, "send_oct"), 8u << 20);
  BOOST_REQUIRE(wait_until([&] { return srv.info()->active_connections == 0; }));
}

BOOST_AUTO_TEST_CASE(a_send_timeout_without_close_keeps_the_connection_and_its_output) {
  // Regression: with send_timeout_close off, the passed send deadline was
  // re-armed at once, again and again: a poller spun at 100% CPU for as
  // long as the client did not read.
  auto script = std::make_shared<probe_script>();
  const auto data = pattern(8u << 20, 6);
  script->on_connection = [log{script->log}, &data](atl::socket& sock) {
    static_cast<void>(sock.setopt(socket_option::sndbuf, 65536));
    log->add("send:" + outcome_of(sock.send(data))); // most of it queued
    return verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.transport.send_timeout = 100ms;
  opts.transport.send_timeout_close = false;
  auto& srv = start(opts);
  auto client = connect(srv); // does not read yet
  BOOST_REQUIRE(script->log->wait_for("send:ok"));
  std::this_thread::sleep_for(300ms); // three send timeouts pass
  auto cpu_seconds = [] {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
           + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  auto cpu_before = cpu_seconds();
  std::this_thread::sleep_for(500ms);
  auto cpu_used = cpu_seconds() - cpu_before;
  // Idle, the process uses a few ms in 500 ms; a spinning poller uses ~500.
  BOOST_CHECK_LT(cpu_used, 0.2);
  for (const auto& entry : script->log->entries())
    BOOST_CHECK_MESSAGE(entry.rfind("error:", 0) != 0, entry);
  // Still open: the client reads all of it.
  std::string got;
  got.reserve(data.size());
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (got.size() < data.size() && std::chrono::steady_clock::now() < deadline) {
    auto chunk = client.recv_some(1000ms);
    if (!chunk || chunk->empty())
      break;
    got += *chunk;
  }
  BOOST_CHECK_EQUAL(got.size(), data.size());
  BOOST_CHECK(got == data);
  BOOST_CHECK_EQUAL(srv.info()->active_connections, 1u);
}

BOOST_AUTO_TEST_CASE(output_queued_by_messages_does_not_postpone_the_send_timeout) {
  // Regression: queuing more output counted as send progress, so a client
  // that never reads, fed by messages (a chat room), never timed out while
  // the server's memory grew.
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    static_cast<void>(sock.setopt(socket_option::sndbuf, 65536));
    log->add("send:" + outcome_of(sock.send(pattern(4u << 20, 5)))); // most of it queued
    return verdict::proceed();
  };
  script->messages = [](handler&, atl::socket& sock) {
    return caf::message_handler{
      [&sock](const std::string& line) { static_cast<void>(sock.send(line)); }};
  };
  auto opts = probe_options(script);
  opts.transport.send_timeout = 300ms;
  opts.silent_terminate_on_error = true;
  auto& srv = start(opts);
  auto client = connect(srv); // never reads
  BOOST_REQUIRE(script->log->wait_for("send:ok"));
  auto conns = srv.connections();
  BOOST_REQUIRE(conns && conns->size() == 1);
  auto conn = conns->front().handle;
  const std::string timed_out = "error:atoll error timeout: send timeout";
  auto started = std::chrono::steady_clock::now();
  // A line every 20 ms, as a chat room would deliver them.
  while (script->log->count(timed_out) == 0 && std::chrono::steady_clock::now() - started < 5s) {
    caf::anon_send(conn, std::string{"a line from someone else\n"});
    std::this_thread::sleep_for(20ms);
  }
  BOOST_CHECK_EQUAL(script->log->count(timed_out), 1u);
  BOOST_CHECK(std::chrono::steady_clock::now() - started < 3s);
}

BOOST_AUTO_TEST_CASE(a_send_past_the_output_limit_fails_whole_and_the_connection_goes_on) {
  constexpr size_t chunk = 64u << 10;
  constexpr uint64_t limit = 256u << 10;
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  auto accepted = std::make_shared<std::atomic<size_t>>(0);
  script->on_data = [log{script->log}, accepted](std::string_view data, atl::socket& sock) {
    if (data != "fill")
      return echo(data, sock);
    static_cast<void>(sock.setopt(socket_option::sndbuf, 65536));
    // The client does not read yet: the kernel's buffers fill, then the
    // queue, until a send would take it past the limit.
    caf::error err;
    size_t n = 0;
    while (n < 1000 && !(err = sock.send(std::string(chunk, 'x'))))
      ++n;
    *accepted = n;
    log->add("fill:" + outcome_of(err));
    return verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.transport.max_queued_output = limit;
  auto& srv = start(opts);
  auto client = connect(srv);
  client.send("fill");
  BOOST_REQUIRE(script->log->wait_for("fill:output_limit"));
  auto n = accepted->load();
  BOOST_TEST_MESSAGE(n << " sends of 64 KiB accepted before the limit");
  BOOST_CHECK_GT(n * chunk, limit - chunk); // the queue held about the limit
  // Every accepted byte arrives, nothing of the refused send; the
  // connection goes on.
  BOOST_CHECK(client.recv_exact(n * chunk, 30000ms) == std::string(n * chunk, 'x'));
  client.send("ping");
  BOOST_CHECK_EQUAL(client.recv_exact(4), "ping");
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.send_error"));
  auto ev = tel.rec.named("atoll.connection.send_error").front();
  BOOST_CHECK_NE(text_of(ev.measurements, "error").find("max_queued_output"), std::string::npos);
  BOOST_CHECK(text_of(ev.measurements, "data") == std::string(chunk, 'x')); // the refused send
}

BOOST_AUTO_TEST_CASE(a_queued_write_that_fails_emits_send_error_with_the_bytes_lost) {
  constexpr size_t total = 8u << 20;
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    static_cast<void>(sock.setopt(socket_option::sndbuf, 65536));
    log->add("send:" + outcome_of(sock.send(pattern(total, 5))));
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  // 8 MiB through TLS and a telemetry copy: 1.4-1.75 s alone under TSan, and
  // more than the default 5 s once under a parallel sanitizer run.
  BOOST_REQUIRE_MESSAGE(script->log->wait_for("send:ok", 1, 60000ms),
                        "callbacks: " << script->log->size());
  client.reset(); // never read; the queued rest cannot be written
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop", 1, 60000ms));
  auto errors = tel.rec.named("atoll.connection.send_error");
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  auto lost = u64_of(errors[0].measurements, "bytes_pending");
  BOOST_CHECK_GT(lost, 0u);
  BOOST_CHECK_LT(lost, total);
  BOOST_CHECK(!text_of(errors[0].measurements, "error").empty());
  BOOST_CHECK(errors[0].measurements.contains("monotonic_time"));
  auto stop = tel.rec.named("atoll.connection.stop").front();
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "send_oct") + lost, total);
}

// -- recv ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(recv_exact_length_next_chunk_timeout_and_closed) {
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  auto big = std::make_shared<std::string>(pattern(200000, 3));
  script->on_connection = [log{script->log}, big](atl::socket& sock) {
    sock.send("r1");
    auto exact = sock.recv(5, 5000ms);
    log->add("exact:" + (exact ? *exact : outcome_of(exact)));
    auto chunk = sock.recv(0, 5000ms); // the rest of the client's second send
    log->add("chunk:" + (chunk ? *chunk : outcome_of(chunk)));
    sock.send("r2");
    auto large = sock.recv(big->size(), 5000ms); // across many reads
    log->add("large:" + std::string{large && *large == *big ? "equal" : outcome_of(large)});
    sock.send("r3");
    auto started = std::chrono::steady_clock::now();
    auto silent = sock.recv(4, 200ms);
    auto waited = std::chrono::steady_clock::now() - started;
    log->add("silent:" + outcome_of(silent));
    log->add(std::string{"waited>=200ms:"} + (waited >= 195ms ? "yes" : "no"));
    sock.send("r4");
    auto gone = sock.recv(0, 5000ms);
    log->add("gone:" + outcome_of(gone));
    auto again = sock.recv(1, 1000ms);
    log->add("again:" + outcome_of(again));
    return verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.detached_connections = true; // recv blocks the connection's thread
  auto& srv = start(opts);
  auto client = connect(srv);
  BOOST_REQUIRE_EQUAL(client.recv_exact(2), "r1");
  client.send("hel");
  client.send("lo!!");
  BOOST_REQUIRE_EQUAL(client.recv_exact(2), "r2");
  client.send(*big);
  BOOST_REQUIRE_EQUAL(client.recv_exact(2), "r3");
  BOOST_REQUIRE_EQUAL(client.recv_exact(2), "r4"); // after the 200 ms timeout
  client.close();
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection", "exact:hello", "chunk:!!", "large:equal",
                                           "silent:timeout", "waited>=200ms:yes", "gone:closed",
                                           "again:closed", "close"}));
  // recv events carry the bytes; failures emit recv_error with the error.
  auto recvs = tel.rec.named("atoll.connection.recv");
  BOOST_REQUIRE_EQUAL(recvs.size(), 3u);
  BOOST_CHECK_EQUAL(text_of(recvs[0].measurements, "data"), "hello");
  BOOST_CHECK_EQUAL(text_of(recvs[1].measurements, "data"), "!!");
  BOOST_CHECK(text_of(recvs[2].measurements, "data") == *big);
  auto errors = tel.rec.named("atoll.connection.recv_error");
  BOOST_REQUIRE_EQUAL(errors.size(), 3u);
  BOOST_CHECK_NE(text_of(errors[0].measurements, "error").find("timeout"), std::string::npos);
  BOOST_CHECK_NE(text_of(errors[1].measurements, "error").find("closed"), std::string::npos);
  auto ctx = context_of(tel.rec.named("atoll.connection.start").front());
  for (auto& ev : recvs)
    BOOST_CHECK_EQUAL(context_of(ev), ctx);
  // The bytes read by recv count in the statistics.
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop"));
  auto stop = tel.rec.named("atoll.connection.stop").front();
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "recv_oct"), 7u + big->size());
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "send_oct"), 8u);
}

// -- sendfile --------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(sendfile_sends_whole_files_and_slices_and_reports_errors) {
  temp_dir dir;
  auto small = pattern(100, 11);
  auto big = pattern(5u << 20, 13); // 5 MiB
  auto small_path = dir.file("small.bin", small);
  auto big_path = dir.file("big.bin", big);
  auto missing_path = dir.path + "/missing.bin";
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}, small_path, big_path,
                           missing_path](atl::socket& sock) {
    auto report = [&](const std::string& what, const caf::expected<uint64_t>& r) {
      log->add(what + ":" + (r ? std::to_string(*r) : outcome_of(r)));
    };
    report("whole", sock.sendfile(small_path));
    sock.send("|");
    report("slice", sock.sendfile(small_path, 10, 20));
    sock.send("|");
    report("clamped", sock.sendfile(small_path, 95, 100)); // only 5 bytes remain
    sock.send("|");
    report("at_end", sock.sendfile(small_path, 100));
    report("past_end", sock.sendfile(small_path, 101));
    report("missing", sock.sendfile(missing_path));
    report("big", sock.sendfile(big_path));
    sock.send("|end");
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  auto want = small + "|" + small.substr(10, 20) + "|" + small.substr(95) + "|" + big + "|end";
  auto got = client.recv_exact(want.size(), 10000ms);
  BOOST_CHECK_MESSAGE(got == want, first_difference(got, want));
  BOOST_CHECK(client.silent_for(50ms));
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection", "whole:100", "slice:20", "clamped:5",
                                           "at_end:0", "past_end:invalid_option",
                                           "missing:system_error",
                                           "big:" + std::to_string(big.size())}));
  // Telemetry: one sendfile event per success, sendfile_error per failure.
  auto ok = tel.rec.named("atoll.connection.sendfile");
  BOOST_REQUIRE_EQUAL(ok.size(), 5u);
  std::vector<std::string> seen;
  for (auto& ev : ok)
    seen.push_back(text_of(ev.measurements, "filename") + "@" + text_of(ev.measurements, "offset")
                   + "+" + text_of(ev.measurements, "bytes_written"));
  BOOST_CHECK((seen
               == std::vector<std::string>{small_path + "@0+100", small_path + "@10+20",
                                           small_path + "@95+5", small_path + "@100+0",
                                           big_path + "@0+" + std::to_string(big.size())}));
  auto failed = tel.rec.named("atoll.connection.sendfile_error");
  BOOST_REQUIRE_EQUAL(failed.size(), 2u);
  BOOST_CHECK_EQUAL(text_of(failed[0].measurements, "filename"), small_path);
  BOOST_CHECK_EQUAL(u64_of(failed[0].measurements, "offset"), 101u);
  BOOST_CHECK_NE(text_of(failed[0].measurements, "error").find("invalid_option"),
                 std::string::npos);
  BOOST_CHECK_EQUAL(text_of(failed[1].measurements, "filename"), missing_path);
  BOOST_CHECK_NE(text_of(failed[1].measurements, "error").find("system_error"),
                 std::string::npos);
  // getstat counts the file bytes.
  client.close();
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop"));
  auto stop = tel.rec.named("atoll.connection.stop").front();
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "send_oct"), want.size());
}

// -- shutdown and close ----------------------------------------------------------

BOOST_AUTO_TEST_CASE(shutdown_write_sends_eof_while_the_client_can_still_send) {
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    sock.send("hello");
    log->add("shutdown:" + outcome_of(sock.shutdown(shutdown_way::write)));
    return verdict::proceed();
  };
  script->on_data = [log{script->log}](std::string_view, atl::socket& sock) {
    log->add("late_send:" + outcome_of(sock.send("too late")));
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "hello"); // EOF after the data
  client.send("still talking");
  BOOST_REQUIRE(script->log->wait_for("data:still talking"));
  BOOST_REQUIRE(script->log->wait_for("late_send:closed"));
  client.close();
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection", "shutdown:ok", "data:still talking",
                                           "late_send:closed", "close"}));
  auto events = tel.rec.named("atoll.connection.socket_shutdown");
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  BOOST_CHECK_EQUAL(text_of(events[0].measurements, "way"), "write");
  BOOST_CHECK(events[0].measurements.contains("monotonic_time"));
  BOOST_REQUIRE_EQUAL(tel.rec.count("atoll.connection.send_error"), 1u);
  BOOST_CHECK_EQUAL(text_of(tel.rec.named("atoll.connection.send_error")[0].measurements, "data"),
                    "too late");
}

BOOST_AUTO_TEST_CASE(shutdown_read_write_ends_the_connection_with_handle_close) {
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  script->on_data = [log{script->log}](std::string_view data, atl::socket& sock) {
    sock.send(data);
    log->add("shutdown:" + outcome_of(sock.shutdown(shutdown_way::read_write)));
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  client.send("bye");
  BOOST_CHECK_EQUAL(client.recv_until_closed(), "bye");
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_CHECK_EQUAL(script->log->count("shutdown:ok"), 1u);
  auto events = tel.rec.named("atoll.connection.socket_shutdown");
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  BOOST_CHECK_EQUAL(text_of(events[0].measurements, "way"), "read_write");
}

BOOST_AUTO_TEST_CASE(shutdown_write_first_writes_the_queued_output) {
  constexpr size_t total = 4u << 20;
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    static_cast<void>(sock.setopt(socket_option::sndbuf, 65536));
    sock.send(pattern(total, 6)); // mostly queued
    log->add("shutdown:" + outcome_of(sock.shutdown(shutdown_way::write)));
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  auto got = client.recv_until_closed(20000ms);
  auto want = pattern(total, 6);
  BOOST_CHECK_MESSAGE(got == want, first_difference(got, want));
  BOOST_REQUIRE(script->log->wait_for("shutdown:ok"));
  client.close();
  BOOST_REQUIRE(script->log->wait_for("close"));
}

// A closed fd number can be reused by the next accept at once: the
// registration must be gone before the close, or that connection could not
// register its fd.
BOOST_AUTO_TEST_CASE(close_takes_the_fd_out_of_the_reactor_before_closing_it) {
  auto io = reactor::of(sys);
  BOOST_REQUIRE(io);
  auto script = std::make_shared<probe_script>();
  script->on_data = [log{script->log}, io{*io}](std::string_view, atl::socket& sock) {
    auto before = io->size();
    static_cast<void>(sock.close());
    log->add("registrations:-" + std::to_string(before - io->size()));
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto before_connect = (*io)->size();
  auto client = connect(srv);
  // A request that comes with the connection is read before its fd is
  // registered (the speculative first read): send once it is.
  BOOST_REQUIRE(wait_until([&] { return (*io)->size() > before_connect; }));
  client.send("go");
  BOOST_CHECK(client.closed_within(5000ms));
  BOOST_REQUIRE(script->log->wait_for("registrations:-1"));
}

BOOST_AUTO_TEST_CASE(close_in_handle_data_delivers_queued_bytes_then_eof) {
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  auto payload = std::make_shared<std::string>(pattern(2u << 20, 5)); // 2 MiB: queued
  script->on_data = [log{script->log}, payload](std::string_view, atl::socket& sock) {
    sock.send("head:");
    sock.send(*payload);
    sock.send(":tail");
    log->add("close:" + outcome_of(sock.close()));
    log->add(std::string{"closed:"} + (sock.closed() ? "yes" : "no"));
    log->add("close_again:" + outcome_of(sock.close()));
    log->add("send:" + outcome_of(sock.send("x")));
    log->add("recv:" + outcome_of(sock.recv(0, 100ms)));
    log->add("sendfile:" + outcome_of(sock.sendfile("/nonexistent/file")));
    log->add("shutdown:" + outcome_of(sock.shutdown(shutdown_way::write)));
    log->add("getopt:" + outcome_of(sock.getopt(socket_option::nodelay)));
    log->add("setopt:" + outcome_of(sock.setopt(socket_option::nodelay, 1)));
    log->add("peername:" + outcome_of(sock.peername()));
    log->add("sockname:" + outcome_of(sock.sockname()));
    return verdict::proceed(); // ignored: the socket is closed
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  client.send("go");
  auto got = client.recv_until_closed(10000ms);
  auto want = "head:" + *payload + ":tail";
  BOOST_CHECK_MESSAGE(got == want, first_difference(got, want));
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection", "data:go", "close:ok", "closed:yes",
                                           "close_again:ok", "send:closed", "recv:closed",
                                           "sendfile:closed", "shutdown:closed", "getopt:closed",
                                           "setopt:closed", "peername:closed",
                                           "sockname:closed"}));
  auto stop = tel.rec.named("atoll.connection.stop").front();
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "send_oct"), want.size());
  BOOST_CHECK(!stop.metadata.contains("error"));
  BOOST_CHECK_EQUAL(tel.rec.count("atoll.connection.stop"), 1u);
}

// -- statistics ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(getstat_counts_both_directions_and_the_stop_event_reports_them) {
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  auto stats = std::make_shared<stats_box>();
  script->on_data = [stats](std::string_view data, atl::socket& sock) {
    sock.send(data);
    stats->add(sock.getstat());
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  auto me = local_address_of(client);
  const std::vector<size_t> sizes{1, 10, 100, 1000};
  size_t n = 0;
  for (auto size : sizes) {
    auto msg = pattern(size, static_cast<unsigned>(size));
    client.send(msg);
    BOOST_REQUIRE(client.recv_exact(size) == msg);
    n += size;
  }
  BOOST_REQUIRE(wait_until([&] {
    auto all = stats->all();
    return !all.empty() && all.back().recv_oct == n;
  }));
  auto last = stats->all().back();
  size_t data_calls = 0;
  for (auto& e : script->log->entries())
    if (e.rfind("data:", 0) == 0)
      ++data_calls;
  BOOST_CHECK_EQUAL(last.recv_oct, n);
  BOOST_CHECK_EQUAL(last.send_oct, n);
  BOOST_CHECK_EQUAL(last.recv_cnt, data_calls); // one read per handle_data
  BOOST_CHECK_GE(last.recv_cnt, 1u);
  BOOST_CHECK_GE(last.send_cnt, 1u);
  BOOST_CHECK_LE(last.send_cnt, n);
  // Each message was read and written whole: the largest call is the
  // largest message; nothing is left queued.
  BOOST_CHECK_EQUAL(last.recv_max, 1000u);
  BOOST_CHECK_EQUAL(last.send_max, 1000u);
  BOOST_CHECK_EQUAL(last.recv_avg(), last.recv_oct / last.recv_cnt);
  BOOST_CHECK_EQUAL(last.send_pend, 0u);
  client.close();
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop"));
  auto start_ev = tel.rec.named("atoll.connection.start").front();
  auto stop = tel.rec.named("atoll.connection.stop").front();
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "recv_oct"), last.recv_oct);
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "recv_cnt"), last.recv_cnt);
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "send_oct"), last.send_oct);
  BOOST_CHECK_EQUAL(u64_of(stop.measurements, "send_cnt"), last.send_cnt);
  BOOST_CHECK(stop.measurements.get_or<int64_t>("duration", -1) > 0);
  BOOST_CHECK_EQUAL(text_of(stop.metadata, "remote_address"), me.address);
  BOOST_CHECK_EQUAL(u64_of(stop.metadata, "remote_port"), me.port);
  BOOST_CHECK_EQUAL(text_of(stop.metadata, "handler"), "probe");
  BOOST_CHECK_NE(context_of(stop), 0u);
  BOOST_CHECK_EQUAL(context_of(stop), context_of(start_ev));
  // The parent is the acceptor that accepted the connection.
  auto parent = u64_of(stop.metadata, "parent_telemetry_span_context");
  BOOST_CHECK_EQUAL(parent, u64_of(start_ev.metadata, "parent_telemetry_span_context"));
  std::set<uint64_t> acceptors;
  for (auto& ev : tel.rec.named("atoll.acceptor.start"))
    acceptors.insert(context_of(ev));
  BOOST_CHECK(acceptors.count(parent) == 1);
  BOOST_CHECK(!stop.metadata.contains("error")); // a clean close
}

// -- options ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(getopt_and_setopt_read_change_and_validate_options) {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    auto get = [&](const char* name, socket_option opt) {
      auto v = sock.getopt(opt);
      log->add(std::string{name} + "=" + (v ? std::to_string(*v) : outcome_of(v)));
    };
    auto set = [&](const char* name, socket_option opt, int value) {
      log->add(std::string{"set "} + name + " " + std::to_string(value) + ":"
               + outcome_of(sock.setopt(opt, value)));
    };
    get("nodelay", socket_option::nodelay); // the server's default: on
    set("nodelay", socket_option::nodelay, 0);
    get("nodelay", socket_option::nodelay);
    set("sndbuf", socket_option::sndbuf, 65536);
    auto sndbuf = sock.getopt(socket_option::sndbuf);
    log->add(std::string{"sndbuf>=65536:"} + (sndbuf && *sndbuf >= 65536 ? "yes" : "no"));
    set("keepalive", socket_option::keepalive, 1);
    get("keepalive", socket_option::keepalive);
    set("tos", socket_option::tos, 0x10);
    get("tos", socket_option::tos);
    set("linger", socket_option::linger, 3);
    get("linger", socket_option::linger);
    set("linger", socket_option::linger, -1);
    get("linger", socket_option::linger);
    set("nodelay", socket_option::nodelay, 2);
    set("keepalive", socket_option::keepalive, -1);
    set("tos", socket_option::tos, 300);
    set("tos", socket_option::tos, -1);
    set("recbuf", socket_option::recbuf, 0);
    set("linger", socket_option::linger, -2);
    get("nodelay", socket_option::nodelay); // unchanged by the failed set
    static_cast<void>(sock.close());
    get("nodelay", socket_option::nodelay);
    set("nodelay", socket_option::nodelay, 1);
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  BOOST_CHECK(client.closed_within(5000ms));
  BOOST_REQUIRE(script->log->wait_for("set nodelay 1:closed"));
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection",
                                           "nodelay=1",
                                           "set nodelay 0:ok",
                                           "nodelay=0",
                                           "set sndbuf 65536:ok",
                                           "sndbuf>=65536:yes",
                                           "set keepalive 1:ok",
                                           "keepalive=1",
                                           "set tos 16:ok",
                                           "tos=16",
                                           "set linger 3:ok",
                                           "linger=3",
                                           "set linger -1:ok",
                                           "linger=-1",
                                           "set nodelay 2:invalid_option",
                                           "set keepalive -1:invalid_option",
                                           "set tos 300:invalid_option",
                                           "set tos -1:invalid_option",
                                           "set recbuf 0:invalid_option",
                                           "set linger -2:invalid_option",
                                           "nodelay=0",
                                           "nodelay=closed",
                                           "set nodelay 1:closed"}));
}

BOOST_AUTO_TEST_CASE(getopts_and_setopts_take_lists_names_and_raw_options) {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    auto show = [&](const std::string& what,
                    const caf::expected<std::vector<socket_option_value>>& got) {
      std::string text = what + ":";
      if (!got) {
        log->add(text + describe(got.error()));
        return;
      }
      for (auto& [opt, value] : *got)
        text += " " + to_string(opt) + "=" + std::to_string(value);
      log->add(text);
    };
    auto check = [&](const std::string& what, const caf::error& err) {
      log->add(what + ":" + (err ? describe(err) : std::string{"ok"}));
    };
    check("setopts", sock.setopts({{socket_option::keepalive, 1},
                                   {socket_option::keepidle, 30},
                                   {socket_option::keepintvl, 5},
                                   {socket_option::keepcnt, 4},
                                   {socket_option::user_timeout, 20000},
                                   {socket_option::ttl, 33},
                                   {socket_option::priority, 3},
                                   {socket_option::nodelay, 0}}));
    show("getopts", sock.getopts({socket_option::keepalive, socket_option::keepidle,
                                  socket_option::keepintvl, socket_option::keepcnt,
                                  socket_option::user_timeout, socket_option::ttl,
                                  socket_option::priority, socket_option::nodelay}));
    // One bad value: nothing of the list is set.
    check("bad list", sock.setopts({{socket_option::nodelay, 1}, {socket_option::keepcnt, 500}}));
    show("after", sock.getopts({socket_option::nodelay, socket_option::keepcnt}));
    // A list that fails in the kernel names the option (IPV6_TCLASS on IPv4).
    check("tclass", sock.setopts({{socket_option::tclass, 8}}));
    // By name, as a configuration file would give them.
    auto named = parse_socket_option("keepidle");
    log->add("parse keepidle:" + (named ? to_string(*named) : describe(named.error())));
    auto unknown = parse_socket_option("bogus");
    log->add("parse bogus:" + (unknown ? to_string(*unknown) : describe(unknown.error())));
    // Raw: any integer option by level and name.
    check("raw set", sock.setopt_raw(SOL_SOCKET, SO_RCVLOWAT, 7));
    auto lowat = sock.getopt_raw(SOL_SOCKET, SO_RCVLOWAT);
    log->add("raw get:" + (lowat ? std::to_string(*lowat) : describe(lowat.error())));
    auto bad = sock.getopt_raw(SOL_SOCKET, 12345);
    log->add(std::string{"raw bad:"} + (bad ? "ok" : to_string(static_cast<errc>(bad.error().code()))));
    return verdict::close();
  };
  auto opts = probe_options(script);
  opts.tls.reset(); // options of the TCP socket: the same under TLS
  auto& srv = start(opts);
  test_client client;
  BOOST_REQUIRE(client.try_connect(address_of(srv)));
  BOOST_CHECK(client.closed_within(5000ms));
  BOOST_REQUIRE(script->log->wait_for("close"));
  auto known = std::string{"nodelay, keepalive, recbuf, sndbuf, linger, tos, tclass, ttl, "
                           "priority, dontroute, reuseaddr, reuseport, ipv6_v6only, keepidle, "
                           "keepintvl, keepcnt, user_timeout, cork, quickack, rcvlowat"};
  std::vector<std::string> expected{
    "connection",
    "setopts:ok",
    "getopts: keepalive=1 keepidle=30 keepintvl=5 keepcnt=4 user_timeout=20000 ttl=33 "
    "priority=3 nodelay=0",
    "bad list:atoll error invalid_option: keepcnt must be within 1..127, got 500",
    "after: nodelay=0 keepcnt=4",
    "tclass:atoll error system_error: setsockopt(tclass): Protocol not available",
    "parse keepidle:keepidle",
    "parse bogus:atoll error invalid_option: unknown socket option 'bogus' (known: " + known + ")",
    "raw set:ok",
    "raw get:7",
    "raw bad:system_error",
    "close"};
  auto seen = script->log->entries();
  BOOST_CHECK_EQUAL_COLLECTIONS(seen.begin(), seen.end(), expected.begin(), expected.end());
}

BOOST_AUTO_TEST_CASE(server_tcp_options_apply_to_accepted_sockets) {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    auto keepalive = sock.getopt(socket_option::keepalive);
    log->add("keepalive=" + (keepalive ? std::to_string(*keepalive) : outcome_of(keepalive)));
    auto linger = sock.getopt(socket_option::linger);
    log->add("linger=" + (linger ? std::to_string(*linger) : outcome_of(linger)));
    auto recbuf = sock.getopt(socket_option::recbuf);
    log->add(std::string{"recbuf>=32768:"} + (recbuf && *recbuf >= 32768 ? "yes" : "no"));
    return verdict::close();
  };
  auto opts = probe_options(script);
  opts.transport.keepalive = true;
  opts.transport.linger = 2;
  opts.transport.recbuf = 32768;
  auto& srv = start(opts);
  auto client = connect(srv);
  BOOST_CHECK(client.closed_within(5000ms));
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection", "keepalive=1", "linger=2",
                                           "recbuf>=32768:yes", "close"}));
}

// -- addresses and TLS information ------------------------------------------------

BOOST_AUTO_TEST_CASE(peername_is_the_client_and_sockname_the_listener) {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    auto peer = sock.peername();
    auto local = sock.sockname();
    log->add("peer:" + (peer ? to_string(*peer) : outcome_of(peer)));
    log->add("local:" + (local ? to_string(*local) : outcome_of(local)));
    return verdict::proceed();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  BOOST_REQUIRE(script->log->wait_for_size(3));
  auto me = local_address_of(client);
  auto listener = address_of(srv);
  BOOST_CHECK_EQUAL(me.address, "127.0.0.1");
  BOOST_CHECK_EQUAL(listener.address, "127.0.0.1");
  BOOST_CHECK_NE(listener.port, 0u);
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection", "peer:" + to_string(me),
                                           "local:" + to_string(listener)}));
  // A second client: another peer port, the same local address.
  auto other = connect(srv);
  BOOST_REQUIRE(script->log->wait_for_size(6));
  auto other_me = local_address_of(other);
  BOOST_CHECK_NE(other_me.port, me.port);
  BOOST_CHECK((script->log->since(3)
               == std::vector<std::string>{"connection", "peer:" + to_string(other_me),
                                           "local:" + to_string(listener)}));
}

BOOST_AUTO_TEST_CASE(security_queries_match_the_transport) {
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}](atl::socket& sock) {
    log->add(std::string{"secure:"} + (sock.secure() ? "yes" : "no"));
    log->add("alpn:" + outcome_of(sock.negotiated_protocol()));
    log->add("info:" + outcome_of(sock.connection_information()));
    log->add("cert:" + outcome_of(sock.peercert()));
    return verdict::close();
  };
  auto& srv = start(probe_options(script));
  auto client = connect(srv);
  BOOST_CHECK(client.closed_within(5000ms));
  BOOST_REQUIRE(script->log->wait_for("close"));
  if (tls_mode()) // TLS without ALPN and without a client certificate
    BOOST_CHECK((script->log->entries()
                 == std::vector<std::string>{"connection", "secure:yes",
                                             "alpn:protocol_not_negotiated", "info:ok",
                                             "cert:not_found", "close"}));
  else
    BOOST_CHECK((script->log->entries()
                 == std::vector<std::string>{"connection", "secure:no",
                                             "alpn:protocol_not_negotiated", "info:not_secure",
                                             "cert:not_secure", "close"}));
}

BOOST_AUTO_TEST_CASE(unix_domain_sockets_report_paths_and_support_sendfile) {
  temp_dir dir;
  auto content = pattern(300000, 8);
  auto file_path = dir.file("data.bin", content);
  auto sock_path = dir.path + "/server.sock";
  auto script = std::make_shared<probe_script>();
  script->on_connection = [log{script->log}, file_path](atl::socket& sock) {
    auto peer = sock.peername();
    log->add(std::string{"peer_is_local:"}
             + (peer && peer->family == endpoint::family_type::local ? "yes" : "no"));
    auto local = sock.sockname();
    log->add("local:" + (local ? to_string(*local) : outcome_of(local)));
    log->add("nodelay:" + outcome_of(sock.getopt(socket_option::nodelay)));
    auto sent = sock.sendfile(file_path);
    log->add("sendfile:" + (sent ? std::to_string(*sent) : outcome_of(sent)));
    return verdict::close();
  };
  auto opts = probe_options(script);
  opts.address = bind_address::local(sock_path);
  auto& srv = start(opts);
  auto listener = address_of(srv);
  BOOST_CHECK(listener.family == endpoint::family_type::local);
  BOOST_CHECK_EQUAL(listener.address, sock_path);
  auto client = connect(srv);
  auto got = client.recv_until_closed(10000ms);
  BOOST_CHECK_MESSAGE(got == content, first_difference(got, content));
  BOOST_REQUIRE(script->log->wait_for("close"));
  BOOST_CHECK((script->log->entries()
               == std::vector<std::string>{"connection", "peer_is_local:yes",
                                           "local:" + sock_path, "nodelay:system_error",
                                           "sendfile:" + std::to_string(content.size()),
                                           "close"}));
}

// -- telemetry -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(each_connection_has_one_span_with_its_events) {
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  script->on_data = echo;
  auto& srv = start(probe_options(script));
  constexpr size_t count = 5;
  std::vector<test_client> clients;
  std::set<uint64_t> ports;
  for (size_t i = 0; i < count; ++i) {
    clients.push_back(connect(srv));
    ports.insert(local_address_of(clients.back()).port);
  }
  for (size_t i = 0; i < count; ++i) {
    auto msg = "msg-" + std::to_string(i);
    clients[i].send(msg);
    BOOST_REQUIRE_EQUAL(clients[i].recv_exact(msg.size()), msg);
  }
  for (auto& c : clients)
    c.close();
  BOOST_REQUIRE(script->log->wait_for("close", count));
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop", count));
  BOOST_REQUIRE(!srv.stop()); // nothing more can be emitted after this
  auto starts = tel.rec.named("atoll.connection.start");
  auto stops = tel.rec.named("atoll.connection.stop");
  auto readies = tel.rec.named("atoll.connection.ready");
  BOOST_CHECK_EQUAL(starts.size(), count);
  BOOST_CHECK_EQUAL(stops.size(), count);
  BOOST_CHECK_EQUAL(readies.size(), count);
  std::set<uint64_t> start_ctx, stop_ctx, ready_ctx, start_ports;
  for (auto& ev : starts) {
    start_ctx.insert(context_of(ev));
    start_ports.insert(u64_of(ev.metadata, "remote_port"));
    BOOST_CHECK_EQUAL(text_of(ev.metadata, "remote_address"), "127.0.0.1");
    BOOST_CHECK(ev.measurements.contains("monotonic_time"));
  }
  for (auto& ev : stops) {
    stop_ctx.insert(context_of(ev));
    BOOST_CHECK(!ev.metadata.contains("error"));
  }
  for (auto& ev : readies)
    ready_ctx.insert(context_of(ev));
  BOOST_CHECK_EQUAL(stop_ctx.size(), count); // distinct
  BOOST_CHECK(start_ctx == stop_ctx);
  BOOST_CHECK(ready_ctx == stop_ctx);
  BOOST_CHECK(start_ctx.count(0) == 0);
  BOOST_CHECK(ports == start_ports); // one span per client
  // async_recv carries the bytes read, send the bytes sent, in each span.
  std::set<std::string> received, sent;
  for (auto& ev : tel.rec.named("atoll.connection.async_recv")) {
    received.insert(text_of(ev.measurements, "data"));
    BOOST_CHECK(stop_ctx.count(context_of(ev)) == 1);
  }
  for (auto& ev : tel.rec.named("atoll.connection.send")) {
    sent.insert(text_of(ev.measurements, "data"));
    BOOST_CHECK(stop_ctx.count(context_of(ev)) == 1);
  }
  std::set<std::string> want;
  for (size_t i = 0; i < count; ++i)
    want.insert("msg-" + std::to_string(i));
  BOOST_CHECK(received == want);
  BOOST_CHECK(sent == want);
}

// -- errors after a peer reset ---------------------------------------------------

BOOST_AUTO_TEST_CASE(operations_on_a_reset_connection_fail_with_closed) {
  temp_dir dir;
  auto file_path = dir.file("data.bin", pattern(1u << 20, 1));
  recording tel{*this};
  auto script = std::make_shared<probe_script>();
  auto reset_done = std::make_shared<std::atomic<bool>>(false);
  script->on_data = [log{script->log}, reset_done, file_path](std::string_view data,
                                                              atl::socket& sock) {
    if (data != "trigger")
      return echo(data, sock);
    if (!wait_until([&] { return reset_done->load(); }, 5000ms)) {
      log->add("no reset");
      return verdict::proceed();
    }
    auto chunk = pattern(1u << 20, 2);
    std::string result = "no error";
    for (int i = 0; i < 64; ++i) {
      auto err = sock.send(chunk);
      if (err) {
        result = outcome_of(err);
        break;
      }
    }
    log->add("send:" + result);
    log->add("sendfile:" + outcome_of(sock.sendfile(file_path)));
    log->add("recv:" + outcome_of(sock.recv(0, 1000ms)));
    return verdict::proceed();
  };
  auto opts = probe_options(script);
  opts.detached_connections = true; // the handler waits on its thread
  auto& srv = start(opts);
  auto client = connect(srv);
  client.send("trigger");
  BOOST_REQUIRE(script->log->wait_for("data:trigger"));
  client.reset();
  reset_done->store(true);
  BOOST_REQUIRE(wait_until([&] { return has_final_callback(*script->log); }, 10000ms));
  auto entries = script->log->entries();
  BOOST_CHECK_EQUAL(script->log->count("send:closed"), 1u);
  BOOST_CHECK_EQUAL(script->log->count("sendfile:closed"), 1u);
  BOOST_CHECK_EQUAL(script->log->count("recv:closed"), 1u);
  BOOST_TEST_MESSAGE("callbacks: " << entries.size() << ", last: " << entries.back());
  BOOST_REQUIRE(tel.rec.wait_for("atoll.connection.stop"));
  BOOST_CHECK_GE(tel.rec.count("atoll.connection.send_error"), 1u);
  BOOST_CHECK_EQUAL(tel.rec.count("atoll.connection.sendfile_error"), 1u);
  // The server is unharmed.
  auto fresh = connect(srv);
  fresh.send("ping");
  BOOST_CHECK_EQUAL(fresh.recv_exact(4), "ping");
  BOOST_CHECK(srv.status() == server_status::running);
}

BOOST_AUTO_TEST_SUITE_END()
