// Internal: how often connections and UDP sessions report their traffic
// (the `progress` event of their spans) at most. Not part of the public API.
#pragma once

#include <cstdint>

namespace atl::detail {

/// At most one traffic report per connection or session per this many
/// nanoseconds (one second); the first comes this long after the start.
constexpr int64_t traffic_report_period_ns = 1'000'000'000;

} // namespace atl::detail
