// A TCP transport that injects faults into chosen operations (in the manner
// of Beast's test::stream with fail-on-Nth): partial reads and writes,
// would-block results although the socket is ready, peer resets and system
// errors on the Nth read, write or handshake step. Plugged into a server
// through `server_options::transport_layer`, over plain TCP or around another
// transport (TLS), it drives the connection actor and its output queue
// through paths real sockets rarely take.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "atoll/all.hpp"

namespace atl::test {

/// What a faulty operation returns instead of doing its work.
enum class fault {
  would_block, ///< want_read (reads) or want_write (writes), the fd ready or not
  reset,       ///< the peer reset the connection (`io_status::closed`)
  failure,     ///< a system error (EIO)
};

/// The faults of one run, shared by every transport the server makes.
struct fault_plan {
  /// Reads return at most this many bytes (0: no limit).
  size_t max_read = 0;
  /// Writes take at most this many bytes (0: no limit).
  size_t max_write = 0;
  /// Every `would_block_every`-th read and write would block (0: never).
  size_t would_block_every = 0;
  /// A fault on the Nth read (1-based, counted per connection).
  std::map<size_t, fault> on_read;
  /// A fault on the Nth write (1-based, counted per connection).
  std::map<size_t, fault> on_write;
  /// A fault on the Nth handshake step (1-based, counted per connection);
  /// `would_block` answers want_write, which a writable socket repeats at once.
  std::map<size_t, fault> on_handshake;

  /// Faults injected so far (all connections).
  std::atomic<size_t> injected{0};
  /// Reads and writes done so far (all connections).
  std::atomic<size_t> reads{0};
  std::atomic<size_t> writes{0};
  std::atomic<size_t> handshakes{0};

  /// A transport factory for `server_options::transport_layer`: faults in
  /// plain TCP, or in the transport `under` makes (e.g. TLS) when given.
  static transport_factory factory(std::shared_ptr<fault_plan> plan,
                                   transport_factory under = {});
};

/// See `fault_plan`. Used by one connection actor at a time.
class faulty_transport final : public transport {
public:
  faulty_transport(std::unique_ptr<transport> inner, std::shared_ptr<fault_plan> plan)
    : inner_(std::move(inner)), plan_(std::move(plan)) {
  }

  int fd() const noexcept override {
    return inner_->fd();
  }

  const char* name() const noexcept override {
    return inner_->name();
  }

  bool secure() const noexcept override {
    return inner_->secure();
  }

  io_result handshake() override {
    auto n = ++handshakes_;
    ++plan_->handshakes;
    if (auto i = plan_->on_handshake.find(n); i != plan_->on_handshake.end())
      return inject(i->second, io_status::want_write);
    return inner_->handshake();
  }

  io_result read(char* buf, size_t len) override {
    auto n = ++reads_;
    ++plan_->reads;
    if (auto i = plan_->on_read.find(n); i != plan_->on_read.end())
      return inject(i->second, io_status::want_read);
    if (plan_->would_block_every != 0 && n % plan_->would_block_every == 0)
      return inject(fault::would_block, io_status::want_read);
    if (plan_->max_read != 0)
      len = std::min(len, plan_->max_read);
    return inner_->read(buf, len);
  }

  io_result write(const iovec* iov, size_t count) override {
    auto n = ++writes_;
    ++plan_->writes;
    if (auto i = plan_->on_write.find(n); i != plan_->on_write.end())
      return inject(i->second, io_status::want_write);
    if (plan_->would_block_every != 0 && n % plan_->would_block_every == 0)
      return inject(fault::would_block, io_status::want_write);
    if (plan_->max_write == 0)
      return inner_->write(iov, count);
    // Truncate the gather list to `max_write` bytes.
    std::vector<iovec> part;
    size_t left = plan_->max_write;
    for (size_t i = 0; i < count && left > 0; ++i) {
      auto len = std::min(left, iov[i].iov_len);
      part.push_back(iovec{iov[i].iov_base, len});
      left -= len;
    }
    return inner_->write(part.data(), part.size());
  }

  io_result sendfile(int file_fd, uint64_t offset, size_t count) override {
    return inner_->sendfile(file_fd, offset, count);
  }

  bool has_buffered_input() const noexcept override {
    return inner_->has_buffered_input();
  }

  bool handshake_begun() const noexcept override {
    return inner_->handshake_begun();
  }

  caf::error shutdown(shutdown_way way) override {
    return inner_->shutdown(way);
  }

  void close() noexcept override {
    inner_->close();
  }

  caf::expected<std::string> negotiated_protocol() const override {
    return inner_->negotiated_protocol();
  }

  caf::expected<connection_info> connection_information() const override {
    return inner_->connection_information();
  }

  caf::expected<std::string> peercert() const override {
    return inner_->peercert();
  }

  int release() noexcept override {
    return inner_->release();
  }

private:
  io_result inject(fault f, io_status wait) {
    ++plan_->injected;
    io_result res;
    switch (f) {
      case fault::would_block:
        res.status = wait;
        break;
      case fault::reset:
        res.status = io_status::closed;
        break;
      case fault::failure:
        res.status = io_status::failed;
        res.error = make_system_error("injected fault", EIO);
        break;
    }
    return res;
  }

  std::unique_ptr<transport> inner_;
  std::shared_ptr<fault_plan> plan_;
  size_t reads_ = 0;
  size_t writes_ = 0;
  size_t handshakes_ = 0;
};

inline transport_factory fault_plan::factory(std::shared_ptr<fault_plan> plan,
                                             transport_factory under) {
  return [plan, under](int fd) -> caf::expected<std::unique_ptr<transport>> {
    std::unique_ptr<transport> inner;
    if (under) {
      auto made = under(fd);
      if (!made)
        return made.error();
      inner = std::move(*made);
    } else {
      inner = std::make_unique<tcp_transport>(fd);
    }
    return std::unique_ptr<transport>{new faulty_transport(std::move(inner), plan)};
  };
}

} // namespace atl::test
