// Realistic sample registrations (the spec's full metadata) for the demo,
// tests and benchmarks. Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <string>

#include "events/model_events.h"

namespace modelreg::events {

// A registration of `model_type` `version` with a plausible artifact hash,
// dataset versions, factor list, parameters, metrics, environment and
// config; `seed` varies the numbers. About 1.5 KiB as an event.
Registration SampleRegistration(const std::string& model_type, const std::string& version,
                                std::uint64_t seed);

}  // namespace modelreg::events
