// Metrics: a telemetry subscriber that aggregates a server's events into
// counters, gauges and histograms, readable as a snapshot or as Prometheus
// text.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "atoll/runtime/telemetry.hpp"

namespace atl {

struct scheduler_stats;

/// A histogram's state: cumulative counts per upper bound, as Prometheus
/// shows them.
struct histogram_snapshot {
  /// Upper bounds in seconds, ascending (the implicit last one is +Inf).
  std::vector<double> bounds;
  /// `buckets[i]`: observations <= `bounds[i]` (cumulative).
  std::vector<uint64_t> buckets;
  /// All observations (the +Inf bucket).
  uint64_t count = 0;
  /// Their sum, in seconds.
  double sum = 0;
};

/// Serializes a histogram for CAF messages.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, histogram_snapshot& x) {
  return f(caf::meta::type_name("atl::histogram_snapshot"), x.bounds, x.buckets, x.count, x.sum);
}

/// The values of a `server_metrics` at one moment. Byte and packet counts
/// of TCP connections and UDP handler sessions are added from their
/// `progress` reports (at most one a second while they move data) and
/// from their stop events, and from UDP listeners' `handled` summaries.
struct metrics_snapshot {
  /// Connections accepted (connection spans started).
  uint64_t connections_accepted = 0;
  /// Connections started and not yet ended.
  uint64_t connections_active = 0;
  /// Connections ended, by the stop event's `reason`: peer_closed,
  /// local_closed, handler_closed, timeout, shutdown, error, exception,
  /// handshake_error, handshake_timeout.
  std::map<std::string, uint64_t> connections_closed;
  /// Bytes received (application data).
  uint64_t bytes_received = 0;
  /// Bytes sent (application data).
  uint64_t bytes_sent = 0;
  /// Packets received: reads that moved data (TCP), datagrams (UDP).
  uint64_t packets_received = 0;
  /// Packets sent: writes that moved data (TCP), datagrams (UDP).
  uint64_t packets_sent = 0;
  /// TLS handshakes that failed or timed out.
  uint64_t handshake_failures = 0;
  /// Connections the acceptors could not start (`acceptor.spawn_error`).
  uint64_t spawn_errors = 0;
  /// Accept errors by kind: econnaborted, einval, emfile, accept_error.
  std::map<std::string, uint64_t> accept_errors;
  /// UDP handler sessions started (`atoll.udp.connection` spans): one per
  /// handler actor (per datagram or per peer); with `in_listener`, one per
  /// datagram (counted from the listener's `handled` summaries, or from
  /// the datagrams' spans when another subscriber asks for those).
  uint64_t udp_handlers_started = 0;
  /// UDP handler sessions started and not yet ended.
  uint64_t udp_handlers_active = 0;
  /// Datagrams UDP servers dropped, by reason: rate_limited, too_large,
  /// no_handler (the connection limit held after the retries).
  std::map<std::string, uint64_t> datagrams_dropped;
  /// Seconds from accept to the end of each connection.
  histogram_snapshot connection_duration;
  /// Seconds from accept to the first bytes received, per connection that
  /// received any.
  histogram_snapshot time_to_first_byte;
};

/// Serializes a snapshot for CAF messages.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, metrics_snapshot& x) {
  return f(caf::meta::type_name("atl::metrics_snapshot"), x.connections_accepted,
           x.connections_active, x.connections_closed, x.bytes_received, x.bytes_sent,
           x.packets_received, x.packets_sent, x.handshake_failures, x.spawn_errors,
           x.accept_errors, x.udp_handlers_started, x.udp_handlers_active, x.datagrams_dropped,
           x.connection_duration, x.time_to_first_byte);
}

/// Renders a snapshot in Prometheus' text exposition format (version
/// 0.0.4): metrics named `atoll_*`, each with HELP and TYPE lines.
std::string to_prometheus_text(const metrics_snapshot& snap);

/// Renders the scheduler's state (see `reactor::stats`) in the same format:
/// `atoll_scheduler_workers`, `atoll_scheduler_active_workers`,
/// `atoll_scheduler_compaction` (1 or 0) and
/// `atoll_scheduler_registrations{poller="i"}` (gauges),
/// `atoll_scheduler_worker_activations_total`,
/// `atoll_scheduler_worker_deactivations_total`,
/// `atoll_scheduler_spin_waits_total` and
/// `atoll_scheduler_memory_releases_total` (counters).
std::string to_prometheus_text(const scheduler_stats& stats);

/// Aggregates the events of one bus (the servers that emit to it) while
/// alive. It subscribes to connection start, progress and stop and to the
/// acceptor's events only, so connections do not build their per-I/O data
/// events for it; each event is counted on the emitting thread under one lock. UDP
/// servers' handler spans and dropped datagrams are counted too; it takes
/// UDP connection spans with `telemetry::delivery::summaries`, so an
/// `in_listener` server reports one `handled` event per receive batch to it
/// instead of a span per datagram. The
/// time to first byte comes from the stop event's `time_to_first_byte`
/// (bytes delivered to `handle_data`; measured for connections whose first
/// bytes arrived while the server's events had a subscriber).
class server_metrics {
public:
  /// Attaches to the events of `events` under the prefix `atoll`.
  explicit server_metrics(std::shared_ptr<telemetry::bus> events);

  /// Detaches; nothing is counted once it returns.
  ~server_metrics();

  server_metrics(const server_metrics&) = delete;
  server_metrics& operator=(const server_metrics&) = delete;

  /// The current values. Thread-safe.
  metrics_snapshot snapshot() const;

  /// The current values as Prometheus text. Thread-safe.
  std::string prometheus_text() const {
    return to_prometheus_text(snapshot());
  }

  /// The histograms' upper bounds in seconds: 100 µs to 1 h.
  static const std::vector<double>& duration_bounds();

private:
  /// Byte and packet counts, each way.
  struct traffic {
    uint64_t recv_oct = 0;
    uint64_t recv_cnt = 0;
    uint64_t send_oct = 0;
    uint64_t send_cnt = 0;
  };

  /// Adds what a connection's totals `m` (from `progress` or `stop`) have
  /// more than its last report; `last` (if any) becomes `m`.
  void add_connection_traffic(const telemetry::fields& m, traffic* last);

  /// Adds a stop's totals `m`, less what the reports of span `ctx` added.
  void add_final_traffic(uint64_t ctx, const telemetry::fields& m);

  void on_event(const telemetry::event& ev);
  void on_udp_event(const telemetry::event& ev);

  std::shared_ptr<telemetry::bus> events_;
  std::vector<telemetry::subscription> subs_;
  mutable std::mutex mtx_;
  metrics_snapshot values_;
  // Open connections (span contexts).
  std::unordered_set<uint64_t> live_;
  // Traffic already counted from open connections' and UDP sessions'
  // `progress` reports (their totals at the last report), by span context.
  std::unordered_map<uint64_t, traffic> reported_;
  // Live UDP handler actors (span contexts).
  std::unordered_set<uint64_t> live_udp_;
};

} // namespace atl
