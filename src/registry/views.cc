#include "registry/views.h"

#include "events/model_events.h"
#include "registry/registry.h"

namespace modelreg::registry {

using nlohmann::json;

namespace {
json TimeJson(TimeNs t) { return t == 0 ? json() : json(FormatUtc(t)); }
}  // namespace

json RecordJson(const projection::VersionRecord& r) {
  return json{{"model_type", r.model_type},
              {"version", r.version},
              {"model_id", r.model_id},
              {"status", projection::StatusName(r.status)},
              {"registered_at", TimeJson(r.registered_at)},
              {"registered_by", r.registered_by},
              {"registered_seq", r.registered_seq},
              {"artifact_name", r.artifact_name},
              {"artifact_size", r.artifact_size},
              {"artifact_sha256", r.artifact_sha256},
              {"metrics", r.metrics},
              {"dataset_version_ids", r.dataset_version_ids},
              {"snapshot_id", r.snapshot_id},
              {"config_hash", r.config_hash},
              {"status_at", TimeJson(r.status_at)},
              {"status_by", r.status_by},
              {"status_reason", r.status_reason},
              {"status_seq", r.status_seq},
              {"promoted_at", TimeJson(r.promoted_at)},
              {"demoted_at", TimeJson(r.demoted_at)},
              {"purged", r.purged}};
}

json PromotionJson(const projection::PromotionRecord& h) {
  return json{{"seq", h.seq},
              {"at", FormatUtc(h.at)},
              {"actor", h.actor},
              {"model_type", h.model_type},
              {"version", h.version},
              {"replaced_version", h.replaced_version.empty() ? json() : json(h.replaced_version)},
              {"replaced_status", h.replaced_status.empty() ? json() : json(h.replaced_status)},
              {"kind", h.rollback ? "rollback" : "promotion"},
              {"gates_overridden", h.gates_overridden},
              {"override_reason", h.override_reason},
              {"reason", h.reason},
              {"gates_passed", h.gates_passed},
              {"gates_total", h.gates_total}};
}

json ConsumerJson(const projection::ConsumerRecord& c) {
  return json{{"consumer_id", c.consumer_id},
              {"version", c.version.empty() ? json() : json(c.version)},
              {"ok", c.ok},
              {"attempted_version", c.attempted_version.empty() ? json() : json(c.attempted_version)},
              {"detail", c.detail},
              {"seq", c.seq},
              {"at", TimeJson(c.at)}};
}

Result<json> AuditEntry(const Registry& reg, const std::string& type, TimeNs at) {
  auto prod = reg.ProductionAtTime(type, at);
  if (!prod) return Err(prod.error());
  if (prod->version.empty() || !prod->record) {
    return json{{"model_type", type}, {"production", nullptr}};
  }
  json j{{"model_type", type}, {"production", prod->version}, {"record", RecordJson(*prod->record)}};
  j["promotion"] = json();
  if (prod->promotion) {
    const projection::PromotionRecord& p = *prod->promotion;
    json gates = json::array();
    std::string policy;
    if (!p.rollback) {
      if (auto ev = reg.log().Get(p.seq); ev) {
        const json payload = events::ToJson(*ev)["payload"];
        if (payload.contains("gates") && payload["gates"].is_array()) gates = payload["gates"];
        if (payload.contains("policy") && payload["policy"].is_string()) policy = payload["policy"];
      }
    }
    j["promotion"] = PromotionJson(p);
    j["promotion"]["gates"] = gates;
    j["promotion"]["policy"] = policy;
  }
  return j;
}

}  // namespace modelreg::registry
