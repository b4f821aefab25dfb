// Umbrella header of atoll::handlers.
#pragma once

#include "atoll/handlers/basic_handler.hpp"
#include "atoll/handlers/connection_record.hpp"
#include "atoll/handlers/handler.hpp"
#include "atoll/handlers/socket.hpp"
#include "atoll/handlers/stream_connection.hpp"
#include "atoll/handlers/udp_handler.hpp"
#include "atoll/handlers/verdict.hpp"
