// Umbrella header of atoll::supervisors.
#pragma once

#include "atoll/supervisors/inspector.hpp"
#include "atoll/supervisors/server.hpp"
#include "atoll/supervisors/server_actor.hpp"
#include "atoll/supervisors/metrics_endpoint.hpp"
#include "atoll/supervisors/observer_page.hpp"
#include "atoll/supervisors/server_log_levels.hpp"
#include "atoll/supervisors/server_metrics.hpp"
#include "atoll/supervisors/server_options.hpp"
#include "atoll/supervisors/rate_limiter.hpp"
#include "atoll/supervisors/udp_server.hpp"
#include "atoll/supervisors/udp_server_options.hpp"
