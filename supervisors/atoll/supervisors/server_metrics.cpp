#include "atoll/supervisors/server_metrics.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "atoll/runtime/reactor.hpp"

namespace atl {

namespace {

constexpr const char* close_reasons[] = {"peer_closed", "local_closed",    "handler_closed",
                                         "timeout",     "shutdown",        "error",
                                         "exception",   "handshake_error", "handshake_timeout",
                                         "proxy_error", "source_limit"};

constexpr const char* accept_error_kinds[] = {"econnaborted", "einval", "emfile", "accept_error"};

histogram_snapshot empty_histogram() {
  histogram_snapshot h;
  h.bounds = server_metrics::duration_bounds();
  h.buckets.assign(h.bounds.size(), 0);
  return h;
}

void observe(histogram_snapshot& h, double seconds) {
  auto first = std::lower_bound(h.bounds.begin(), h.bounds.end(), seconds);
  for (auto i = static_cast<size_t>(first - h.bounds.begin()); i < h.buckets.size(); ++i)
    ++h.buckets[i];
  ++h.count;
  h.sum += seconds;
}

double seconds_of(int64_t ns) {
  return static_cast<double>(std::max<int64_t>(ns, 0)) / 1e9;
}

uint64_t unsigned_of(const telemetry::fields& fs, const char* key) {
  if (auto v = fs.find(key)) {
    if (auto u = std::get_if<uint64_t>(v))
      return *u;
    if (auto i = std::get_if<int64_t>(v))
      return *i < 0 ? 0 : static_cast<uint64_t>(*i);
  }
  return 0;
}

/// Adds a stop's (or summary's) byte and packet counts.
void add_traffic(metrics_snapshot& values, const telemetry::fields& m) {
  values.bytes_received += unsigned_of(m, "recv_oct");
  values.bytes_sent += unsigned_of(m, "send_oct");
  values.packets_received += unsigned_of(m, "recv_cnt");
  values.packets_sent += unsigned_of(m, "send_cnt");
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void counter(std::string& out, const char* name, const char* help, uint64_t value) {
  header(out, name, "counter", help);
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
}

void labelled(std::string& out, const char* name, const char* help, const char* label,
              const std::map<std::string, uint64_t>& values) {
  header(out, name, "counter", help);
  for (const auto& [key, value] : values)
    fmt::format_to(std::back_inserter(out), "{}{{{}=\"{}\"}} {}\n", name, label, key, value);
}

void histogram(std::string& out, const char* name, const char* help, const histogram_snapshot& h) {
  header(out, name, "histogram", help);
  for (size_t i = 0; i < h.bounds.size(); ++i)
    fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds[i],
                   h.buckets[i]);
  fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n",
                 name, h.count, name, h.sum, name, h.count);
}

} // namespace

const std::vector<double>& server_metrics::duration_bounds() {
  static const std::vector<double> bounds{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                          1,      5,      10,    30,    60,   300,  900, 3600};
  return bounds;
}

std::string to_prometheus_text(const metrics_snapshot& snap) {
  std::string out;
  counter(out, "atoll_connections_accepted_total", "Connections accepted.",
          snap.connections_accepted);
  header(out, "atoll_connections_active", "gauge", "Connections open now.");
  fmt::format_to(std::back_inserter(out), "atoll_connections_active {}\n", snap.connections_active);
  labelled(out, "atoll_connections_closed_total", "Connections ended, by how they ended.", "reason",
           snap.connections_closed);
  counter(out, "atoll_received_bytes_total",
          "Bytes received; open TCP connections add theirs about once a second.",
          snap.bytes_received);
  counter(out, "atoll_sent_bytes_total",
          "Bytes sent; open TCP connections add theirs about once a second.", snap.bytes_sent);
  counter(out, "atoll_received_packets_total", "Reads that received data (TCP), datagrams (UDP).",
          snap.packets_received);
  counter(out, "atoll_sent_packets_total", "Writes that sent data (TCP), datagrams (UDP).",
          snap.packets_sent);
  counter(out, "atoll_handshake_failures_total", "TLS handshakes that failed or timed out.",
          snap.handshake_failures);
  counter(out, "atoll_spawn_errors_total", "Accepted connections that could not be started.",
          snap.spawn_errors);
  labelled(out, "atoll_accept_errors_total", "Accept errors, by kind.", "kind", snap.accept_errors);
  counter(out, "atoll_udp_handlers_started_total",
          "UDP handler sessions started: handler actors (per datagram or per peer), "
          "or datagrams handled in a listener (in_listener).",
          snap.udp_handlers_started);
  header(out, "atoll_udp_handlers_active", "gauge",
         "UDP handler sessions running now (see atoll_udp_handlers_started_total).");
  fmt::format_to(std::back_inserter(out), "atoll_udp_handlers_active {}\n",
                 snap.udp_handlers_active);
  labelled(out, "atoll_datagrams_dropped_total", "Datagrams UDP servers dropped, by reason.",
           "reason", snap.datagrams_dropped);
  histogram(out, "atoll_connection_duration_seconds", "Connection lifetimes.",
            snap.connection_duration);
  histogram(out, "atoll_time_to_first_byte_seconds",
            "Time from accept to the first bytes received.", snap.time_to_first_byte);
  return out;
}

std::string to_prometheus_text(const scheduler_stats& stats) {
  std::string out;
  auto gauge = [&out](const char* name, const char* help, uint64_t value) {
    header(out, name, "gauge", help);
    fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
  };
  gauge("atoll_scheduler_workers", "Scheduler worker threads, each with its epoll instance.",
        stats.workers);
  gauge("atoll_scheduler_active_workers",
        "Workers taking new work now (load compaction parks the others).",
        stats.active_workers);
  gauge("atoll_scheduler_compaction", "1 if load compaction is on, else 0.",
        stats.compaction ? 1 : 0);
  counter(out, "atoll_scheduler_worker_activations_total",
          "Workers made active by load compaction.", stats.activations);
  counter(out, "atoll_scheduler_worker_deactivations_total",
          "Workers parked by load compaction.", stats.deactivations);
  counter(out, "atoll_scheduler_spin_waits_total",
          "Busy waits of workers that ran out of work, before sleeping.", stats.spin_waits);
  counter(out, "atoll_scheduler_memory_releases_total",
          "Free heap memory given back to the operating system after a rest.",
          stats.memory_releases);
  header(out, "atoll_scheduler_registrations", "gauge",
         "Registered file descriptors, by the worker whose poller they are assigned to.");
  for (size_t i = 0; i < stats.registrations_per_poller.size(); ++i)
    fmt::format_to(std::back_inserter(out), "atoll_scheduler_registrations{{poller=\"{}\"}} {}\n",
                   i, stats.registrations_per_poller[i]);
  return out;
}

server_metrics::server_metrics(std::shared_ptr<telemetry::bus> events)
  : events_(std::move(events)) {
  for (auto reason : close_reasons)
    values_.connections_closed[reason] = 0;
  for (auto kind : accept_error_kinds)
    values_.accept_errors[kind] = 0;
  values_.connection_duration = empty_histogram();
  values_.time_to_first_byte = empty_histogram();
  for (auto reason : {"rate_limited", "too_large", "no_handler"})
    values_.datagrams_dropped[reason] = 0;
  auto count = [this](const telemetry::event& ev) { on_event(ev); };
  for (auto prefix : {telemetry::event_name{"atoll", "connection", "start"},
                      telemetry::event_name{"atoll", "connection", "progress"},
                      telemetry::event_name{"atoll", "connection", "stop"},
                      telemetry::event_name{"atoll", "acceptor"},
                      telemetry::event_name{"atoll", "udp", "listener", "handled"},
                      telemetry::event_name{"atoll", "udp", "connection", "progress"},
                      telemetry::event_name{"atoll", "udp", "listener", "rate_limit_exceeded"},
                      telemetry::event_name{"atoll", "udp", "listener", "packet_too_large"},
                      telemetry::event_name{"atoll", "udp", "acceptor", "spawn_error"}})
    subs_.push_back(events_->attach(prefix, count));
  // An in_listener UDP server may summarize its datagrams' sessions in
  // `handled` instead: counting needs no span per datagram.
  for (auto prefix : {telemetry::event_name{"atoll", "udp", "connection", "start"},
                      telemetry::event_name{"atoll", "udp", "connection", "stop"}})
    subs_.push_back(events_->attach(prefix, count, telemetry::delivery::summaries));
}

server_metrics::~server_metrics() {
  for (auto sub : subs_)
    events_->detach(sub);
}

metrics_snapshot server_metrics::snapshot() const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto result = values_;
  result.connections_active = live_.size();
  result.udp_handlers_active = live_udp_.size();
  return result;
}

void server_metrics::on_udp_event(const telemetry::event& ev) {
  const auto& span = ev.name[2];
  const auto& what = ev.name[3];
  std::lock_guard<std::mutex> guard{mtx_};
  if (span == "connection") {
    auto ctx = ev.metadata.get_or<uint64_t>("telemetry_span_context", 0);
    if (what == "start") {
      ++values_.udp_handlers_started;
      live_udp_.insert(ctx);
    } else if (what == "progress") {
      add_connection_traffic(ev.measurements, &reported_[ctx]);
    } else if (what == "stop") {
      live_udp_.erase(ctx);
      add_final_traffic(ctx, ev.measurements);
    }
  } else if (what == "handled") {
    values_.udp_handlers_started += unsigned_of(ev.measurements, "sessions");
    add_traffic(values_, ev.measurements);
  } else if (what == "rate_limit_exceeded") {
    ++values_.datagrams_dropped["rate_limited"];
  } else if (what == "packet_too_large") {
    ++values_.datagrams_dropped["too_large"];
  } else if (what == "spawn_error") {
    ++values_.datagrams_dropped["no_handler"];
  }
}

void server_metrics::add_connection_traffic(const telemetry::fields& m, traffic* last) {
  // Totals only grow; a report never takes back what an earlier one added.
  auto more = [&m](const char* key, uint64_t& seen) {
    auto now = unsigned_of(m, key);
    auto added = now > seen ? now - seen : 0;
    seen = std::max(seen, now);
    return added;
  };
  values_.bytes_received += more("recv_oct", last->recv_oct);
  values_.packets_received += more("recv_cnt", last->recv_cnt);
  values_.bytes_sent += more("send_oct", last->send_oct);
  values_.packets_sent += more("send_cnt", last->send_cnt);
}

void server_metrics::add_final_traffic(uint64_t ctx, const telemetry::fields& m) {
  auto i = reported_.find(ctx);
  if (i == reported_.end()) {
    add_traffic(values_, m);
    return;
  }
  add_connection_traffic(m, &i->second);
  reported_.erase(i);
}

void server_metrics::on_event(const telemetry::event& ev) {
  if (ev.name.size() == 4 && ev.name[1] == "udp") {
    on_udp_event(ev);
    return;
  }
  if (ev.name.size() != 3)
    return;
  const auto& span = ev.name[1];
  const auto& what = ev.name[2];
  auto ctx = ev.metadata.get_or<uint64_t>("telemetry_span_context", 0);
  if (span == "connection") {
    if (what == "start") {
      std::lock_guard<std::mutex> guard{mtx_};
      ++values_.connections_accepted;
      live_.insert(ctx);
    } else if (what == "stop") {
      auto reason = ev.metadata.get_or<std::string>("reason", "error");
      std::lock_guard<std::mutex> guard{mtx_};
      live_.erase(ctx);
      ++values_.connections_closed[reason];
      if (reason.rfind("handshake_", 0) == 0)
        ++values_.handshake_failures;
      add_final_traffic(ctx, ev.measurements);
      observe(values_.connection_duration,
              seconds_of(ev.measurements.get_or<int64_t>("duration", 0)));
      if (auto ttfb = ev.measurements.find("time_to_first_byte"))
        if (auto ns = std::get_if<int64_t>(ttfb))
          observe(values_.time_to_first_byte, seconds_of(*ns));
    } else if (what == "progress") {
      std::lock_guard<std::mutex> guard{mtx_};
      add_connection_traffic(ev.measurements, &reported_[ctx]);
    }
    return;
  }
  if (span != "acceptor")
    return;
  if (what == "spawn_error") {
    std::lock_guard<std::mutex> guard{mtx_};
    ++values_.spawn_errors;
    return;
  }
  for (auto kind : accept_error_kinds)
    if (what == kind) {
      std::lock_guard<std::mutex> guard{mtx_};
      ++values_.accept_errors[what];
      return;
    }
}

} // namespace atl
