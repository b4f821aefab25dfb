#include "atoll/handlers/detail/connection_common.hpp"
#include "atoll/handlers/detail/socket_access.hpp"

#include <unistd.h>

#include <algorithm>

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/logger.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/transports/endpoint.hpp"

namespace atl::detail {

using access = socket_access;

namespace {

/// The peer of `fd` by getpeername (when accept did not report it).
caf::expected<peer_address> asked_peer(int fd) {
  auto ep = remote_endpoint(fd);
  if (!ep)
    return std::move(ep.error());
  return peer_address{std::move(*ep)};
}

} // namespace

std::optional<taken_connection> take_connection(const connection_config& conf,
                                                accepted_connection& hand_off, caf::error& why) {
  int fd = hand_off.fd ? hand_off.fd->release() : -1;
  hand_off.fd.reset();
  if (fd < 0)
    return std::nullopt;
  // A client that is already gone gets no callback and no span.
  auto peer = hand_off.peer_len > 0 ? peer_address::from(hand_off.peer, hand_off.peer_len)
                                    : asked_peer(fd);
  if (!peer) {
    ::close(fd);
    return std::nullopt;
  }
  // Best effort: a connection works without these options.
  static_cast<void>(configure_accepted(fd, conf.transport));
  caf::expected<std::unique_ptr<transport>> stream{caf::error{}};
  if (conf.make_transport)
    stream = conf.make_transport(fd);
  else
    stream = std::unique_ptr<transport>{new tcp_transport(fd)};
  if (!stream) {
    log(log_level::error, "atoll: cannot set up the transport of a connection from "
                            + to_string(peer->to_endpoint()) + ": " + describe(stream.error()));
    why = stream.error();
    return std::nullopt;
  }
  return taken_connection{std::move(*stream), std::move(*peer)};
}

void start_connection_span(socket& sock, const connection_config& conf,
                           const accepted_connection& hand_off) {
  telemetry::fields meta;
  if (conf.events->enabled()) {
    auto peer = sock.peername();
    meta.set("remote_address", peer->address);
    meta.set("remote_port", uint64_t{peer->port});
    if (auto local = sock.sockname()) {
      meta.set("local_address", local->address);
      meta.set("local_port", uint64_t{local->port});
    }
    if (access::has_proxy_header(sock))
      if (auto via = sock.via()) {
        meta.set("proxy_address", via->address);
        meta.set("proxy_port", uint64_t{via->port});
      }
    meta.set("handler", conf.handler_name);
  }
  access::span(sock) = telemetry::span::start(conf.events.get(), conf.span_prefix.get(), {},
                                       std::move(meta), hand_off.acceptor_span,
                                       hand_off.start_time);
  if (access::span(sock).enabled())
    access::span(sock).emit("ready", {{"monotonic_time", telemetry::monotonic_time()}});
}

void stop_connection_span(socket& sock, const char* reason, const std::string& error,
                          int64_t first_byte_at) {
  auto& span = access::span(sock);
  if (!span.active())
    return;
  if (!span.enabled()) {
    span.stop(); // nobody listens: build nothing
    return;
  }
  auto stats = sock.getstat();
  telemetry::fields m{{"send_oct", stats.send_oct},
                      {"send_cnt", stats.send_cnt},
                      {"recv_oct", stats.recv_oct},
                      {"recv_cnt", stats.recv_cnt}};
  if (first_byte_at != 0)
    m.set("time_to_first_byte", first_byte_at - span.start_time());
  telemetry::fields meta;
  if (span.enabled())
    meta.set("reason", std::string{reason});
  if (!error.empty())
    meta.set("error", error);
  span.stop(std::move(m), std::move(meta));
}

connection_record make_record(socket& sock, const connection_config& conf, caf::actor self,
                              connection_state state, int64_t accepted_at) {
  connection_record rec;
  rec.handle = std::move(self);
  if (auto peer = sock.peername())
    rec.peer = std::move(*peer);
  if (auto local = sock.sockname())
    rec.local = std::move(*local);
  if (auto& stream = access::stream_ptr(sock))
    rec.transport = stream->name();
  rec.handler = conf.handler_name;
  rec.state = state;
  auto stats = sock.getstat();
  rec.recv_oct = stats.recv_oct;
  rec.recv_cnt = stats.recv_cnt;
  rec.send_oct = stats.send_oct;
  rec.send_cnt = stats.send_cnt;
  rec.send_pend = stats.send_pend;
  if (accepted_at != 0)
    rec.age = std::chrono::nanoseconds{telemetry::monotonic_time() - accepted_at};
  return rec;
}

void notify_started(socket& sock, const connection_config& conf, caf::actor self,
                    connection_state state) {
  if (!conf.watchers || !conf.watchers->any())
    return;
  connection_event ev;
  ev.kind = connection_event::kind_t::started;
  ev.connection =
    make_record(sock, conf, std::move(self), state, access::span(sock).start_time());
  conf.watchers->notify(ev);
}

void notify_stopped(socket& sock, const connection_config& conf, caf::actor self,
                    const char* reason, const std::string& error) {
  if (!conf.watchers || !conf.watchers->any() || !access::span(sock).active())
    return; // no stop without a start
  connection_event ev;
  ev.kind = connection_event::kind_t::stopped;
  ev.connection = make_record(sock, conf, std::move(self), connection_state::closed,
                              access::span(sock).start_time());
  ev.reason = reason;
  ev.error = error;
  conf.watchers->notify(ev);
}

bool trusted_proxy_source(const proxy_protocol_options& proxy, const endpoint& peer) {
  if (!peer.is_ip())
    return true;
  for (auto& net : proxy.trusted)
    if (net.contains(peer))
      return true;
  return false;
}

bool drop_input(transport& stream, int64_t& quiet_until) {
  static thread_local char buf[read_buffer_size];
  for (int i = 0; i < max_reads_per_event; ++i) {
    auto res = stream.read(buf, sizeof(buf));
    if (res.bytes > 0) {
      quiet_until = telemetry::monotonic_time() + half_close_quiet_ns;
      continue;
    }
    return res.status == io_status::want_read || res.status == io_status::want_write
           || res.status == io_status::done;
  }
  return true;
}

caf::error begin_proxy(const connection_config& conf, socket& sock,
                       std::unique_ptr<proxy_header_reader>& reader,
                       connection_deadlines& deadlines) {
  auto peer = *sock.peername();
  if (!trusted_proxy_source(*conf.proxy, peer))
    return caf::make_error(errc::untrusted_source,
                           "PROXY header from an untrusted source " + to_string(peer));
  reader = std::make_unique<proxy_header_reader>(conf.proxy->version);
  deadlines.setup = connection_deadlines::from_now(conf.proxy->timeout);
  return caf::none;
}

step_result proxy_step(std::unique_ptr<proxy_header_reader>& reader, socket& sock,
                       connection_deadlines& deadlines) {
  auto res = reader->read(access::stream(sock).fd());
  switch (res.status) {
    case io_status::done:
      access::set_proxy(sock, reader->header());
      reader.reset();
      deadlines.setup = 0;
      return {};
    case io_status::want_read:
    case io_status::want_write:
      return {step_result::wait, io_events::readable, {}};
    case io_status::closed:
      return {step_result::failed, 0,
              caf::make_error(errc::proxy_header,
                              "PROXY header: the client closed before the header ended")};
    case io_status::failed:
      break;
  }
  return {step_result::failed, 0, std::move(res.error)};
}

step_result handshake_step(const connection_config& conf, socket& sock,
                           connection_deadlines& deadlines, uint32_t& interest) {
  auto res = access::stream(sock).handshake();
  switch (res.status) {
    case io_status::done:
      return {};
    case io_status::want_read:
    case io_status::want_write:
      interest = res.status == io_status::want_read ? io_events::readable : io_events::writable;
      if (deadlines.setup == 0)
        deadlines.setup = connection_deadlines::from_now(conf.handshake_timeout);
      return {step_result::wait, interest, {}};
    case io_status::closed:
      return {step_result::failed, 0, caf::make_error(errc::closed, "handshake: peer closed")};
    case io_status::failed:
      break;
  }
  return {step_result::failed, 0, std::move(res.error)};
}

void note_received(socket& sock, const connection_config& conf, std::string_view data,
                   bool async, int64_t& first_byte_at) {
  auto& stats = access::stats(sock);
  stats.count_recv(data.size());
  auto& span = access::span(sock);
  if (!span.enabled())
    return; // nobody subscribed: one relaxed load (and no clock read)
  if (stats.recv_cnt == 1)
    first_byte_at = telemetry::monotonic_time();
  if (conf.data_events) {
    const auto& event = async ? conf.data_events->async_recv : conf.data_events->recv;
    if (span.enabled(event))
      span.emit(event, {{"data", std::string{data}}});
  } else if (span.enabled()) {
    span.emit(async ? "async_recv" : "recv", {{"data", std::string{data}}});
  }
}

bool traffic_reports::after_io_subscribed(socket& sock, const connection_config& conf,
                                          int64_t& due) {
  if (!conf.data_events || !conf.data_events->progress.enabled())
    return false;
  auto& span = access::span(sock);
  if (!span.active())
    return false;
  const auto& stats = access::stats(sock);
  if (stats.recv_cnt + stats.send_cnt == reported_)
    return false;
  if (last_ == 0)
    last_ = span.start_time();
  auto now = telemetry::monotonic_time();
  if (now - last_ >= traffic_report_period_ns) {
    report(sock, conf.data_events->progress, now);
    return false;
  }
  due = last_ + traffic_report_period_ns;
  return true;
}

void traffic_reports::on_timer(socket& sock, const connection_config& conf, int64_t& due,
                               int64_t now) {
  if (due == 0 || now < due)
    return;
  due = 0;
  if (conf.data_events && access::span(sock).enabled(conf.data_events->progress))
    report(sock, conf.data_events->progress, now);
}

void traffic_reports::report(socket& sock, const telemetry::interest& what, int64_t now) {
  const auto& stats = access::stats(sock);
  last_ = now;
  reported_ = stats.recv_cnt + stats.send_cnt;
  access::span(sock).emit(what, {{"recv_oct", stats.recv_oct},
                                       {"recv_cnt", stats.recv_cnt},
                                       {"send_oct", stats.send_oct},
                                       {"send_cnt", stats.send_cnt}});
}

void release_fd(const connection_config& conf, fd_registration& reg, uint32_t& armed) noexcept {
  if (!reg)
    return;
  conf.io->remove(reg, true);
  reg = fd_registration{};
  armed = 0;
}

step_result flush_step(socket& sock, bool& progressed) {
  auto& out = access::pending(sock);
  auto before = out.pending_bytes();
  auto res = out.flush(access::stream(sock), access::stats(sock));
  progressed = out.pending_bytes() < before;
  switch (res.status) {
    case io_status::done:
      return {};
    case io_status::want_read:
    case io_status::want_write:
      return {step_result::wait, io_events::writable, {}};
    case io_status::closed:
    case io_status::failed:
      break;
  }
  // Queued output that cannot be written: the bytes lost, not the data (it
  // went out in its `send` event).
  auto err = res.status == io_status::closed
               ? caf::make_error(errc::closed, "queued output: peer closed")
               : std::move(res.error);
  access::emit_error(sock, "send_error", err, {{"bytes_pending", out.pending_bytes()}});
  return {step_result::failed, 0, std::move(err), res.status == io_status::closed};
}

caf::error acquire_source(const connection_config& conf, socket& sock,
                          std::unique_ptr<std::string>& key) {
  if (!conf.sources)
    return {};
  auto name = source_limiter::key_of(*sock.peername());
  if (!conf.sources->acquire(name))
    return caf::make_error(errc::source_limit,
                           name + " has reached max_connections_per_source = "
                             + std::to_string(conf.sources->limit()));
  key = std::make_unique<std::string>(std::move(name));
  return {};
}

caf::error proxy_timeout_error(const connection_config& conf) {
  return caf::make_error(errc::proxy_header, "PROXY header: none within "
                                               + std::to_string(conf.proxy->timeout.count())
                                               + " ms");
}

void log_refused(const connection_config& conf, socket& sock, const caf::error& reason) {
  if (conf.silent_terminate_on_error)
    return;
  auto peer = sock.via();
  log(log_level::error, "atoll: connection from " + (peer ? to_string(*peer) : "?")
                          + " refused: " + describe(reason));
}

caf::error arm_fd(const connection_config& conf, socket& sock, fd_registration& reg,
                  caf::abstract_actor* owner, io_sink* sink, uint32_t interest,
                  uint32_t& armed) {
  if (interest == 0 || interest == armed)
    return {};
  if (!reg) {
    auto added = conf.io->add(access::stream(sock).fd(),
                              caf::actor_cast<caf::strong_actor_ptr>(owner), sink, interest);
    if (!added)
      return std::move(added.error());
    reg = *added;
  } else if (auto err = conf.io->rearm(reg, interest)) {
    return err;
  }
  armed = interest;
  return {};
}

bool bound_handshake_by_drain(const connection_config& conf, connection_deadlines& deadlines) {
  auto give_up = conf.give_up_at ? conf.give_up_at->load() : 0;
  if (give_up != 0 && (deadlines.setup == 0 || give_up < deadlines.setup))
    deadlines.setup = give_up;
  return deadlines.setup != 0;
}

bool drain_deadline_passed(const connection_config& conf) {
  auto give_up = conf.give_up_at ? conf.give_up_at->load() : 0;
  return give_up != 0 && telemetry::monotonic_time() >= give_up;
}

bool begin_half_close(const connection_config& conf, socket& sock, int64_t& until,
                      int64_t& quiet_until) {
  if (sock.closed() || !access::pending(sock).empty())
    return false;
  if (access::stream(sock).shutdown(shutdown_way::write))
    return false;
  auto now = telemetry::monotonic_time();
  until = now + half_close_limit_ns;
  if (auto give_up = conf.give_up_at ? conf.give_up_at->load() : 0; give_up != 0)
    until = std::min(until, give_up);
  quiet_until = now + half_close_quiet_ns;
  return true;
}

std::string exception_text(std::exception_ptr ep) {
  try {
    if (ep)
      std::rethrow_exception(ep);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "non-standard exception";
  }
  return "unknown exception";
}

namespace {

/// Outcomes of the speculative first reads on this thread; halved at
/// `decay_at` tries so that recent connections count most.
struct first_read_outcomes {
  uint32_t tries = 0;
  uint32_t found = 0;
  uint32_t skipped = 0;
};

thread_local first_read_outcomes first_reads;

constexpr uint32_t first_read_learning = 16;
constexpr uint32_t first_read_decay_at = 64;
constexpr uint32_t first_read_probe_every = 16;

} // namespace

bool first_read_worth_trying() noexcept {
  auto& st = first_reads;
  if (st.tries < first_read_learning || st.found * 4 >= st.tries)
    return true;
  if (++st.skipped < first_read_probe_every)
    return false;
  st.skipped = 0;
  return true;
}

void first_read_tried(bool found) noexcept {
  auto& st = first_reads;
  if (found && st.tries >= first_read_learning && st.found * 4 < st.tries) {
    st = {}; // a probe paid: the clients may have changed, learn again
    return;
  }
  ++st.tries;
  if (found)
    ++st.found;
  if (st.tries >= first_read_decay_at) {
    st.tries /= 2;
    st.found /= 2;
  }
}

} // namespace atl::detail
