#include "atoll/runtime/span.hpp"

namespace atl::telemetry {

event_name join(const event_name& prefix, const std::string& suffix) {
  event_name out;
  out.reserve(prefix.size() + 1);
  out = prefix;
  out.push_back(suffix);
  return out;
}

span span::start(bus* events, const event_name* prefix, fields measurements, fields metadata,
                 uint64_t parent_context, int64_t start_time) {
  span result;
  result.events_ = events;
  result.prefix_ = prefix;
  result.context_ = make_span_context();
  result.parent_ = parent_context;
  result.start_time_ = start_time;
  if (!result.enabled())
    return result;
  metadata.set("telemetry_span_context", result.context_);
  if (parent_context != 0)
    metadata.set("parent_telemetry_span_context", parent_context);
  result.start_metadata_ = std::make_unique<fields>(metadata);
  fields m;
  m.set("monotonic_time", start_time);
  m.merge(measurements);
  result.events_->emit(join(*result.prefix_, "start"), std::move(m), std::move(metadata));
  return result;
}

void span::stop(fields measurements, fields metadata) {
  if (!active())
    return;
  stopped_ = true;
  if (!enabled())
    return;
  auto now = monotonic_time();
  fields m;
  m.set("monotonic_time", now);
  m.set("duration", now - start_time_);
  m.merge(measurements);
  fields md;
  if (start_metadata_) {
    md = *start_metadata_;
  } else {
    md.set("telemetry_span_context", context_);
    if (parent_ != 0)
      md.set("parent_telemetry_span_context", parent_);
  }
  md.merge(metadata);
  events_->emit(join(*prefix_, "stop"), std::move(m), std::move(md));
  start_metadata_.reset();
}

void span::emit(const std::string& name, fields measurements, fields metadata) const {
  if (context_ == 0 || !enabled())
    return;
  metadata.set("telemetry_span_context", context_);
  events_->emit(join(*prefix_, name), std::move(measurements), std::move(metadata));
}

void span::emit(const interest& what, fields measurements, fields metadata) const {
  if (!enabled(what))
    return;
  metadata.set("telemetry_span_context", context_);
  events_->emit(what.name(), std::move(measurements), std::move(metadata));
}

} // namespace atl::telemetry
