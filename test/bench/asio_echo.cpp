// atoll_asio_echo: a TCP echo server written the way a Boost.Asio user
// would write it, as a second point of comparison next to the raw epoll
// baseline (atoll_baseline_echo). No CAF, no TLS.
//
// One `session` object per connection, owned by the handlers in flight
// through a shared_ptr (enable_shared_from_this). It owns a receive buffer of
// --buffer-size bytes (default 64 KiB, the size of the baseline's read
// buffer; allocated uninitialized, so only the pages a connection touches
// become resident) and loops: async_read_some() into the buffer, then
// async_write() of exactly the bytes received, then the next read. Accepted
// sockets get TCP_NODELAY.
//
// Threads (--threads N): one io_context per thread, each run by its own
// thread and created with concurrency hint 1, and each with its own acceptor
// on the same address with SO_REUSEPORT, so that the kernel spreads new
// connections over the threads and a connection stays on one thread (the
// "io_context per CPU" design from Asio's examples, with the kernel doing the
// distribution). With the default of one thread this is the classic
// single-threaded Asio server. SIGINT/SIGTERM (asio::signal_set) stop every
// io_context.

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>

#include "bench_common.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace atl::bench;

/// SO_REUSEPORT, which Asio has no named option for.
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

/// Length of the listen queue (as in the baseline).
constexpr int listen_backlog = 1024;

/// One connection: reads into its buffer and writes back what it got.
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket socket, size_t buffer_size)
    : socket_(std::move(socket)), buffer_(new char[buffer_size]), buffer_size_(buffer_size) {
  }

  void start() {
    read();
  }

private:
  void read() {
    socket_.async_read_some(asio::buffer(buffer_.get(), buffer_size_),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              if (!ec)
                                self->write(n);
                              // On EOF or an error the session is released
                              // with its last handler, closing the socket.
                            });
  }

  void write(size_t n) {
    asio::async_write(socket_, asio::buffer(buffer_.get(), n),
                      [self = shared_from_this()](error_code ec, size_t) {
                        if (!ec)
                          self->read();
                      });
  }

  tcp::socket socket_;
  std::unique_ptr<char[]> buffer_; // deliberately uninitialized
  size_t buffer_size_;
};

/// Accepts connections on one io_context and starts a session for each.
class server {
public:
  server(asio::io_context& io, size_t buffer_size) : acceptor_(io), buffer_size_(buffer_size) {
  }

  /// Opens, binds and listens; with `reuseport`, sets SO_REUSEPORT first so
  /// that further acceptors can bind the same address. Returns an error
  /// description, empty on success.
  std::string listen(const tcp::endpoint& endpoint, bool reuseport) {
    error_code ec;
    const char* step = "open";
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
      step = "setsockopt(SO_REUSEADDR)";
      acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    }
    if (!ec && reuseport) {
      step = "setsockopt(SO_REUSEPORT)";
      acceptor_.set_option(reuse_port(true), ec);
    }
    if (!ec) {
      step = "bind";
      acceptor_.bind(endpoint, ec);
    }
    if (!ec) {
      step = "listen";
      acceptor_.listen(listen_backlog, ec);
    }
    return ec ? std::string{step} + ": " + ec.message() : std::string{};
  }

  /// The bound address.
  tcp::endpoint local_endpoint() const {
    return acceptor_.local_endpoint();
  }

  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted)
        return; // the acceptor was closed
      if (!ec) {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<session>(std::move(socket), buffer_size_)->start();
      } else if (!reported_) {
        reported_ = true; // e.g. out of descriptors: report once, keep going
        fmt::print(stderr, "atoll_asio_echo: accept: {}\n", ec.message());
      }
      accept();
    });
  }

private:
  tcp::acceptor acceptor_;
  size_t buffer_size_;
  bool reported_ = false;
};

/// Formats an endpoint as "HOST:PORT" (IPv6 in brackets).
std::string format_endpoint(const tcp::endpoint& endpoint) {
  auto host = endpoint.address().to_string();
  if (endpoint.address().is_v6())
    return fmt::format("[{}]:{}", host, endpoint.port());
  return fmt::format("{}:{}", host, endpoint.port());
}

} // namespace

/// Parses the options, listens, prints "listening on HOST:PORT" and echoes
/// until SIGINT/SIGTERM. Exit codes: 0 stopped by a signal, 1 set-up failure,
/// 2 invalid arguments.
int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  unsigned threads = 1;
  size_t buffer_size = 64 * 1024;
  CLI::App app{"Boost.Asio TCP echo server (async_read_some/async_write per session), for "
               "comparison with the raw epoll baseline."};
  app.add_option("--host", host, "Address to bind to")->capture_default_str();
  app.add_option("--port", port, "Port to bind to (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--threads", threads,
                 "Threads, each with its own io_context and SO_REUSEPORT acceptor")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  app.add_option("--buffer-size", buffer_size, "Receive buffer per session, in bytes")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{64} << 20));
  if (auto rc = parse_command_line(app, argc, argv))
    return *rc;

  raise_fd_limit();
  std::string error;
  auto addr = resolve_address(host, static_cast<uint16_t>(port), true, error);
  if (!addr) {
    fmt::print(stderr, "atoll_asio_echo: {}\n", error);
    return 1;
  }
  tcp::endpoint endpoint;
  endpoint.resize(addr->length);
  std::memcpy(endpoint.data(), addr->get(), addr->length);

  // One io_context per thread, each run by exactly one thread.
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::unique_ptr<server>> servers;
  for (unsigned i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));
    servers.push_back(std::make_unique<server>(*contexts.back(), buffer_size));
    // With --port=0 the first acceptor picks the port; the others join it.
    if (error = servers.back()->listen(endpoint, threads > 1); !error.empty()) {
      fmt::print(stderr, "atoll_asio_echo: {}\n", error);
      return 1;
    }
    endpoint = servers.back()->local_endpoint();
    servers.back()->accept();
  }

  // asio::signal_set installs its own handlers; SIGPIPE cannot occur (Asio
  // sends with MSG_NOSIGNAL) but is ignored anyway, as in the other tools.
  std::signal(SIGPIPE, SIG_IGN);
  asio::signal_set signals(*contexts.front(), SIGINT, SIGTERM);
  signals.async_wait([&contexts](error_code, int) {
    for (auto& io : contexts)
      io->stop();
  });

  fmt::print("listening on {}\n", format_endpoint(endpoint));
  std::fflush(stdout);

  std::vector<std::thread> workers;
  for (size_t i = 1; i < contexts.size(); ++i)
    workers.emplace_back([&io = *contexts[i]] { io.run(); });
  contexts.front()->run();
  for (auto& worker : workers)
    worker.join();
  // Sessions still open are destroyed with their pending handlers when the
  // io_contexts go away (after `signals` and `servers`, in reverse order of
  // declaration).
  return 0;
}
