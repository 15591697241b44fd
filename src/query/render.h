// The one JSON rendering of the query layer's results (src/query/query.h),
// used by the CLI's --json output and the HTTP API alike, so that the same
// question gets the same answer from both (docs/cli.md, docs/api.md).
// Times are ISO-8601 UTC strings with nanoseconds; an unset time is null.
#pragma once

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "query/query.h"
#include "registry/registry.h"

namespace modelreg::query {

// One version's record.
nlohmann::json RecordJson(const VersionRecord& r);
// One promotion or rollback.
nlohmann::json PromotionJson(const PromotionRecord& p);
// One gate as evaluated by a promotion.
nlohmann::json GateJson(const events::Gate& g);
// {"model_type", "production" (version or null), "record", "promotion"
// (PromotionJson plus "gates", "policy" and "policy_sha256"; null if
// unknown)}; "record" and
// "promotion" are absent when there is no production version.
nlohmann::json ProductionJson(const Production& p);
// {"at", "seq", "models": [ProductionJson...], "policy": PolicyRecordJson or null}
nlohmann::json AuditJson(const AuditResult& a);
// One recorded gate policy: {"seq", "at", "actor", "reason", "source",
// "sha256", "text"}.
nlohmann::json PolicyRecordJson(const PolicyRecord& p);
// {"at" (or null for now), "seq", "built_in_defaults", "policy":
// PolicyRecordJson or null (none recorded: the built-in defaults)}
nlohmann::json PolicyJson(const PolicyResult& p);
// RecordJson plus "registration" (the registration event's payload).
nlohmann::json ShowJson(const ShowResult& s);
// {"model_type" (or null for every type), "at" (or null for now), "versions"}
nlohmann::json ListJson(const ListResult& l, const std::string& model_type);
// {"model_type", "history": [PromotionJson...]}
nlohmann::json HistoryJson(const HistoryResult& h);
// {"from", "to", "production": {type: {"from", "to"}}, "events": [...]}
nlohmann::json DiffJson(const DiffResult& d);
// {"model_type", "production", "production_since", "consumers": [{...,
// "current", "behind_seconds"}]}; lag is measured against `now`.
nlohmann::json ConsumersJson(const ConsumersResult& c, TimeNs now);
// How long a consumer has run something other than production at `now`
// (0 when it runs production).
double BehindSeconds(const ConsumersResult& c, const ConsumerRecord& r, TimeNs now);
// {"seq", "at", "hash"}
nlohmann::json HeadJson(const HeadResult& h);

// Replies of two writes, the same from `modelreg --json` and the API.
// {"seq" (0 for a dry run), "summary", "model_type", "from", "to",
//  "current_becomes" ("archived" | "failed"), "dry_run"}
nlohmann::json RollbackJson(const registry::RollbackResult& r);
// {"ok", "detail", "seq", "result" ("ok" | "mismatch" | "validator_failed" | "missing")}
nlohmann::json ValidateJson(const registry::ValidateResult& r);

// Replies of the admin commands (backup create, gc), the same from
// `modelreg --json` and the API.
// {"id", "created_at", "head_seq", "head_hash", "state_digest", "versions",
//  "artifact_files_linked", "directory" (<root>/backups on the host that made it)}
nlohmann::json BackupJson(const registry::Registry::BackupSummary& b);
// {"dry_run", "items": [{"model_type", "version" (null: an interrupted
//  registration), "path", "bytes", "why"}], "bytes" (the total)}
nlohmann::json GcJson(const std::vector<registry::Registry::GcItem>& items, bool dry_run);

}  // namespace modelreg::query
