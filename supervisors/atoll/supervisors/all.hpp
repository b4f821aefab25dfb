// Umbrella header of atoll::supervisors.
#pragma once

#include "atoll/supervisors/listener.hpp"
#include "atoll/supervisors/server.hpp"
#include "atoll/supervisors/metrics_endpoint.hpp"
#include "atoll/supervisors/server_log_levels.hpp"
#include "atoll/supervisors/server_metrics.hpp"
#include "atoll/supervisors/server_options.hpp"
