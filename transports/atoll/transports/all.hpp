// Umbrella header of atoll::transports.
#pragma once

#include "atoll/transports/datagram_socket.hpp"
#include "atoll/transports/endpoint.hpp"
#include "atoll/transports/listen_socket.hpp"
#include "atoll/transports/output_queue.hpp"
#include "atoll/transports/owned_fd.hpp"
#include "atoll/transports/proxy_protocol.hpp"
#include "atoll/transports/socket_option.hpp"
#include "atoll/transports/tcp_options.hpp"
#include "atoll/transports/tls.hpp"
#include "atoll/transports/transport.hpp"
