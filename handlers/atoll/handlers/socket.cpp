#include "atoll/handlers/socket.hpp"

#include <cerrno>
#include <chrono>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atoll/handlers/detail/connection_actor.hpp"
#include "atoll/handlers/detail/socket_access.hpp"
#include "atoll/runtime/error.hpp"

namespace atl {

namespace detail {

socket_host::~socket_host() = default;

} // namespace detail

namespace {

using clock_type = std::chrono::steady_clock;

/// Milliseconds left until `deadline` for poll(2); -1 for no deadline.
int poll_timeout(const std::optional<clock_type::time_point>& deadline) {
  if (!deadline)
    return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock_type::now());
  return left.count() > 0 ? static_cast<int>(std::min<int64_t>(left.count(), INT32_MAX)) : 0;
}

std::optional<clock_type::time_point> deadline_after(std::chrono::milliseconds timeout) {
  if (timeout == infinite)
    return std::nullopt;
  return clock_type::now() + timeout;
}

} // namespace

socket::socket(detail::socket_key) noexcept
  : conf_(nullptr), read_timeout_(std::chrono::milliseconds{0}), host_(nullptr) {}

bool socket::wait_ready(io_status status, const std::optional<clock_type::time_point>& deadline,
                        caf::error& why) {
  pollfd pfd{};
  pfd.fd = stream_->fd();
  pfd.events = status == io_status::want_write ? POLLOUT : POLLIN;
  // Wait in slices so that a stopping server can end the wait.
  constexpr int slice_ms = 50;
  for (;;) {
    if (const auto* give_up_at = conf_->give_up_at.get()) {
      auto limit = give_up_at->load(std::memory_order_relaxed);
      if (limit != 0 && telemetry::monotonic_time() >= limit) {
        why = caf::make_error(errc::closed, "the server is stopping");
        return false;
      }
    }
    auto left = poll_timeout(deadline);
    if (left == 0) {
      why = caf::make_error(errc::timeout, status == io_status::want_write ? "send timeout"
                                                                           : "recv timeout");
      return false;
    }
    auto n = ::poll(&pfd, 1, left < 0 ? slice_ms : std::min(left, slice_ms));
    if (n > 0 || (n < 0 && errno != EINTR))
      return true; // ready, or let the next I/O call report the error
  }
}

socket::~socket() {
  close_now();
}

caf::error socket::closed_error() const {
  return caf::make_error(errc::closed);
}

void socket::emit_error(const char* event, const caf::error& err, telemetry::fields m) {
  if (!span_.enabled())
    return;
  m.set("monotonic_time", telemetry::monotonic_time());
  m.set("error", describe(err));
  span_.emit(event, std::move(m));
}

caf::error socket::send(std::string_view data) {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  return send_iov(&iov, 1, data.size());
}

caf::error socket::send(std::initializer_list<std::string_view> parts) {
  return send(std::vector<std::string_view>(parts));
}

caf::error socket::send(const std::vector<std::string_view>& parts) {
  std::vector<iovec> iov;
  iov.reserve(parts.size());
  size_t total = 0;
  for (auto part : parts) {
    if (part.empty())
      continue;
    iov.push_back(iovec{const_cast<char*>(part.data()), part.size()});
    total += part.size();
  }
  return send_iov(iov.data(), iov.size(), total);
}

caf::error socket::send_iov(const iovec* iov, size_t count, size_t total) {
  auto joined = [&] {
    std::string data;
    data.reserve(total);
    for (size_t i = 0; i < count; ++i)
      data.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    return data;
  };
  // The seed's send_error carries the data that was being sent.
  auto fail = [&](caf::error err) {
    if (span_.enabled())
      emit_error("send_error", err, {{"data", joined()}});
    return err;
  };
  auto emit_sent = [&] {
    const auto* events = conf_->data_events.get(); // null: whenever the bus is enabled
    if (!span_.enabled() || (events != nullptr && !span_.enabled(events->send)))
      return;
    auto data = joined();
    if (events != nullptr)
      span_.emit(events->send, {{"data", std::move(data)}});
    else
      span_.emit("send", {{"data", std::move(data)}});
  };
  if (closed())
    return fail(closed_error());
  if (total == 0)
    return caf::none;
  if (!out_.empty() && conf_->transport.max_queued_output != 0
      && out_.buffered_bytes() + total > conf_->transport.max_queued_output) {
    return fail(caf::make_error(errc::output_limit,
                                "queued output would exceed transport.max_queued_output ("
                                  + std::to_string(conf_->transport.max_queued_output) + " bytes)"));
  }
  size_t written = 0;
  bool started = out_.empty();
  if (out_.empty()) {
    // Limit a single gathered write to what sendmsg takes (IOV_MAX).
    size_t batch = std::min<size_t>(count, 1024);
    auto res = stream_->write(iov, batch);
    if (res.status == io_status::closed || res.status == io_status::failed)
      return fail(res.status == io_status::closed ? closed_error() : res.error);
    written = res.bytes;
    if (written > 0) {
      stats_.count_send(written);
    }
  }
  if (written < total) {
    // Queue the rest in order.
    size_t skip = written;
    for (size_t i = 0; i < count; ++i) {
      auto len = iov[i].iov_len;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      out_.append({static_cast<const char*>(iov[i].iov_base) + skip, len - skip});
      skip = 0;
    }
    host_->output_pending(started);
  }
  if (written > 0 && span_.enabled())
    host_->wrote(); // a traffic report may be due (only for subscribers)
  emit_sent();
  return caf::none;
}

caf::error socket::flush_blocking() {
  if (out_.empty() || closed())
    return caf::none;
  auto deadline = deadline_after(conf_->transport.send_timeout);
  for (;;) {
    auto res = out_.flush(*stream_, stats_);
    switch (res.status) {
      case io_status::done:
        if (span_.enabled())
          host_->wrote(); // a traffic report may be due
        return caf::none;
      case io_status::want_read:
      case io_status::want_write: {
        caf::error why;
        if (!wait_ready(res.status, deadline, why))
          return why;
        break;
      }
      case io_status::closed:
        return closed_error();
      case io_status::failed:
        return res.error;
    }
  }
}

caf::expected<std::string> socket::recv(size_t length,
                                        std::optional<std::chrono::milliseconds> timeout) {
  if (closed()) {
    auto err = closed_error();
    emit_error("recv_error", err);
    return err;
  }
  if (auto err = flush_blocking()) {
    emit_error("recv_error", err);
    return err;
  }
  auto deadline = deadline_after(timeout ? *timeout : read_timeout_);
  std::string result;
  constexpr size_t chunk = 65536;
  for (;;) {
    auto want = length == 0 ? chunk : length - result.size();
    auto old_size = result.size();
    result.resize(old_size + want);
    auto res = stream_->read(result.data() + old_size, want);
    result.resize(old_size + res.bytes);
    if (res.bytes > 0) {
      stats_.count_recv(res.bytes);
    }
    if (res.status == io_status::done && res.bytes > 0) {
      if (length == 0 || result.size() == length) {
        if (span_.enabled())
          host_->wrote(); // a traffic report may be due
        const auto* events = conf_->data_events.get();
        if (events != nullptr && span_.enabled(events->recv))
          span_.emit(events->recv, {{"data", result}});
        else if (events == nullptr && span_.enabled())
          span_.emit("recv", {{"data", result}});
        return result;
      }
      continue;
    }
    caf::error err;
    switch (res.status) {
      case io_status::done: // zero bytes: treat like would-block
      case io_status::want_read:
      case io_status::want_write:
        if (wait_ready(res.status == io_status::want_write ? res.status : io_status::want_read,
                       deadline, err))
          continue;
        break;
      case io_status::closed:
        err = closed_error();
        break;
      case io_status::failed:
        err = res.error;
        break;
    }
    emit_error("recv_error", err);
    return err;
  }
}

caf::expected<uint64_t> socket::sendfile(const std::string& path, uint64_t offset,
                                         uint64_t length) {
  auto fail = [&](caf::error err) -> caf::expected<uint64_t> {
    emit_error("sendfile_error", err,
               {{"filename", path}, {"offset", offset}, {"length", length}});
    return err;
  };
  if (closed())
    return fail(closed_error());
  auto file = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file < 0)
    return fail(make_system_error(("open " + path).c_str(), errno));
  struct stat st {};
  if (::fstat(file, &st) != 0) {
    auto err = make_system_error(("fstat " + path).c_str(), errno);
    ::close(file);
    return fail(err);
  }
  auto size = static_cast<uint64_t>(st.st_size);
  if (offset > size) {
    ::close(file);
    return fail(caf::make_error(errc::invalid_option, "sendfile offset past the end of " + path));
  }
  auto count = length == 0 ? size - offset : std::min(length, size - offset);
  bool started = out_.empty();
  out_.append_file(file, offset, count); // the queue owns the file now
  auto res = out_.flush(*stream_, stats_);
  if (res.status == io_status::closed || res.status == io_status::failed) {
    out_.clear();
    return fail(res.status == io_status::closed ? closed_error() : res.error);
  }
  if (!out_.empty())
    host_->output_pending(started);
  if (span_.enabled()) {
    host_->wrote();
    span_.emit("sendfile", {{"filename", path}, {"offset", offset}, {"bytes_written", count}});
  }
  return count;
}

caf::error socket::shutdown(shutdown_way way) {
  if (closed())
    return closed_error();
  if (way != shutdown_way::read)
    if (auto err = flush_blocking())
      return err;
  if (auto err = stream_->shutdown(way))
    return err;
  if (span_.enabled())
    span_.emit("socket_shutdown", {{"monotonic_time", telemetry::monotonic_time()},
                                   {"way", to_string(way)}});
  return caf::none;
}

caf::error socket::close() {
  if (closed())
    return caf::none;
  auto err = flush_blocking();
  closed_by_handler_ = true;
  host_->releasing_fd();
  close_now();
  return err;
}

void socket::close_now() noexcept {
  out_.clear();
  if (stream_)
    stream_->close();
}

caf::expected<endpoint> socket::peername() const {
  if (closed())
    return closed_error();
  return peer_.to_endpoint();
}

caf::expected<proxy_header> socket::proxy_info() const {
  if (!proxy_)
    return caf::make_error(errc::not_found, "the connection came without a PROXY header");
  return proxy_->first;
}

caf::expected<endpoint> socket::via() const {
  if (closed())
    return closed_error();
  return proxy_ ? proxy_->second : peer_.to_endpoint();
}

void socket::set_proxy(proxy_header header) {
  auto real = peer_.to_endpoint();
  if (header.proxied && header.source)
    peer_ = peer_address{*header.source};
  proxy_ = std::make_unique<std::pair<proxy_header, endpoint>>(std::move(header), std::move(real));
}

caf::expected<endpoint> socket::sockname() const {
  if (closed())
    return closed_error();
  return local_endpoint(stream_->fd());
}

caf::expected<int> socket::getopt(socket_option opt) const {
  if (closed())
    return closed_error();
  return get_socket_option(stream_->fd(), opt);
}

caf::error socket::setopt(socket_option opt, int value) {
  if (closed())
    return closed_error();
  return set_socket_option(stream_->fd(), opt, value);
}

caf::expected<std::vector<socket_option_value>>
socket::getopts(const std::vector<socket_option>& opts) const {
  if (closed())
    return closed_error();
  return get_socket_options(stream_->fd(), opts);
}

caf::error socket::setopts(const std::vector<socket_option_value>& opts) {
  if (closed())
    return closed_error();
  return set_socket_options(stream_->fd(), opts);
}

caf::expected<int> socket::getopt_raw(int level, int name) const {
  if (closed())
    return closed_error();
  return get_raw_socket_option(stream_->fd(), level, name);
}

caf::error socket::setopt_raw(int level, int name, int value) {
  if (closed())
    return closed_error();
  return set_raw_socket_option(stream_->fd(), level, name, value);
}

bool socket::secure() const noexcept {
  return stream_ && stream_->secure();
}

caf::expected<std::string> socket::negotiated_protocol() const {
  if (!stream_)
    return closed_error();
  return stream_->negotiated_protocol();
}

caf::expected<connection_info> socket::connection_information() const {
  if (!stream_)
    return closed_error();
  return stream_->connection_information();
}

caf::expected<std::string> socket::peercert() const {
  if (!stream_)
    return closed_error();
  return stream_->peercert();
}

} // namespace atl
