// Umbrella header of atl::runtime.
#pragma once

#include "atoll/runtime/adoption_batch.hpp"
#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/durations.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/runtime/io_scheduler.hpp"
#include "atoll/runtime/json_writer.hpp"
#include "atoll/runtime/logger.hpp"
#include "atoll/runtime/reactor.hpp"
#include "atoll/runtime/span.hpp"
#include "atoll/runtime/supervisor.hpp"
#include "atoll/runtime/supervisor_client.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "atoll/runtime/types.hpp"
