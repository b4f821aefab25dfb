// Telemetry spans: a start event, events within, and one stop event with the
// duration, all carrying the span's context id.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "atoll/runtime/telemetry.hpp"

namespace atl::telemetry {

/// A span such as a listener's, an acceptor's or a connection's life. Events
/// are named `prefix + {"start"}`, `prefix + {name}` and `prefix + {"stop"}`.
/// Every event's metadata carries `telemetry_span_context` (and the start and
/// stop events `parent_telemetry_span_context` when there is a parent). The
/// stop event's measurements carry `monotonic_time` and `duration` (ns), its
/// metadata the start metadata merged with the stop metadata.
///
/// A span is owned by one actor or thread at a time (not thread-safe). When
/// nobody listens it costs a context id and a few words; the start metadata
/// is kept only if the bus was enabled when the span started.
class span {
public:
  /// An inactive span: every operation is a no-op.
  span() = default;

  /// Starts a span and emits its start event (measurement `monotonic_time` =
  /// `start_time`, plus `measurements`). `events` and `prefix` are not
  /// copied: they must outlive the span (servers keep them in their shared
  /// configuration), which keeps a span small and cheap to start.
  static span start(bus* events, const event_name* prefix, fields measurements, fields metadata,
                    uint64_t parent_context = 0, int64_t start_time = monotonic_time());

  /// Emits the stop event once; later calls do nothing.
  void stop(fields measurements = {}, fields metadata = {});

  /// Emits `prefix + {name}` with `measurements` and `metadata` plus the
  /// span's context id.
  void emit(const std::string& name, fields measurements = {}, fields metadata = {}) const;

  /// Emits `what.name()` (which must extend this span's prefix) if it has
  /// a subscriber, with the span's context id; the fields are built by the
  /// caller only after checking `enabled(what)`.
  void emit(const interest& what, fields measurements, fields metadata = {}) const;

  /// True if the span is started and `what` has a subscriber (cheap).
  bool enabled(const interest& what) const noexcept {
    return context_ != 0 && events_ != nullptr && what.enabled();
  }

  /// True if events of this span have a subscriber (cheap; check before
  /// building fields).
  bool enabled() const noexcept {
    return events_ != nullptr && events_->enabled();
  }

  /// The span's context id (0 if inactive).
  uint64_t context() const noexcept {
    return context_;
  }

  /// The start time (ns on the monotonic clock).
  int64_t start_time() const noexcept {
    return start_time_;
  }

  /// True if started and not yet stopped.
  bool active() const noexcept {
    return context_ != 0 && !stopped_;
  }

  /// The bus the span emits to (null for an inactive span).
  bus* events() const noexcept {
    return events_;
  }

private:
  bus* events_ = nullptr;
  const event_name* prefix_ = nullptr;
  std::unique_ptr<fields> start_metadata_;
  uint64_t context_ = 0;
  uint64_t parent_ = 0;
  int64_t start_time_ = 0;
  bool stopped_ = false;
};

/// Builds `prefix + {suffix}`.
event_name join(const event_name& prefix, const std::string& suffix);

} // namespace atl::telemetry
