// The JSON shapes of registry records, shared by the CLI (--json) and the
// HTTP API so that both answer with the same objects (docs/cli.md,
// docs/api.md).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "projection/state.h"

namespace modelreg::registry {

class Registry;

// One version's record.
nlohmann::json RecordJson(const projection::VersionRecord& r);
// What one consuming service last reported.
nlohmann::json ConsumerJson(const projection::ConsumerRecord& c);
// One promotion or rollback.
nlohmann::json PromotionJson(const projection::PromotionRecord& h);
// "What was live for TYPE at T, and why": {"model_type", "production"
// (version or null), "record", "promotion" (with its "gates" and "policy")}.
Result<nlohmann::json> AuditEntry(const Registry& reg, const std::string& type, TimeNs at);

}  // namespace modelreg::registry
