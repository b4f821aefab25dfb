// Atoll's umbrella header: the whole public API.
#pragma once

#include "atoll/handlers/all.hpp"
#include "atoll/runtime/all.hpp"
#include "atoll/supervisors/all.hpp"
#include "atoll/transports/all.hpp"
