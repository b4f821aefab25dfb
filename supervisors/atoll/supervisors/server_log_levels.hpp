// The log level of every telemetry event a TCP/TLS server emits.
#pragma once

#include "atoll/runtime/logger.hpp"

namespace atl {

/// Thousand Island's level for each server event: `error` for the acceptor's
/// errors (`spawn_error`, `econnaborted`, and Atoll's `einval`, `emfile` and
/// `accept_error`), `info` for listener start and stop, `debug` for acceptor
/// and connection start and stop, `trace` for every other connection event
/// (`ready`, `async_recv`, `recv`, `recv_error`, `send`, `send_error`,
/// `sendfile`, `sendfile_error`, `socket_shutdown`). Every server registers
/// it with `register_log_levels` before it emits anything.
const log_level_table& server_log_levels();

} // namespace atl
