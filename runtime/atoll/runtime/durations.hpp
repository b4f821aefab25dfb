// The time vocabulary shared by every layer: the "never" timeout and the
// supervision defaults OTP documents.
#pragma once

#include <chrono>

namespace atl {

/// A timeout that never passes (read, send, handshake and drain timeouts
/// accept it).
inline constexpr std::chrono::milliseconds infinite = std::chrono::milliseconds::max();

/// OTP's default shutdown time of a worker child, 5 s: how long a supervisor
/// waits for the child to stop before it kills it.
inline constexpr std::chrono::milliseconds default_worker_shutdown{5000};

/// OTP's default restart intensity period, 5 s.
inline constexpr std::chrono::milliseconds default_restart_period{5000};

/// How long a blocking stop waits beyond a server's shutdown timeout, 5 s:
/// time for the tree's own exits after the connections' drain ended.
inline constexpr std::chrono::milliseconds default_stop_grace{5000};

} // namespace atl
