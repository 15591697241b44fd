#include "query/render.h"

#include <algorithm>

namespace modelreg::query {

using nlohmann::json;

namespace {
json TimeJson(TimeNs t) { return t == 0 ? json() : json(FormatUtc(t)); }
json OrNull(const std::string& s) { return s.empty() ? json() : json(s); }

// A record field as the API shows it: times (a record's TimeNs fields, its
// only signed 64-bit ones) as UTC text or null for never, the status by
// name, everything else as it is.
template <class T>
json FieldJson(const T& v) {
  return json(v);
}
json FieldJson(TimeNs t) { return TimeJson(t); }
json FieldJson(projection::ModelStatus s) { return json(projection::StatusName(s)); }
// Always an object, also for a version never annotated.
json FieldJson(const projection::Annotations& a) {
  json metrics = json::object();
  for (const auto& [name, m] : a.metrics) {
    metrics[name] = json{{"value", m.value}, {"source", m.source}, {"actor", m.actor},
                         {"at", TimeJson(m.at)}, {"seq", m.seq}};
  }
  return json{{"tags", a.tags},
              {"description", OrNull(a.description)},
              {"metrics", std::move(metrics)},
              {"seq", a.seq == 0 ? json() : json(a.seq)}};
}
json FieldJson(projection::ArtifactKind k) { return json(projection::KindName(k)); }
}  // namespace

json RecordJson(const VersionRecord& r) {
  json j = json::object();
  projection::ForEachField(r, [&j](const char* key, const auto& field) {
    j[key] = FieldJson(field);
  });
  if (r.validated_seq == 0) j["validation_ok"] = nullptr;  // never validated
  j["effective_metrics"] = projection::EffectiveMetrics(r);  // what gates see
  // Where the artifact (file or directory) is, relative to the registry root.
  j["artifact_path"] = "artifacts/" + r.model_type + "/" + r.version + "/" + r.artifact_name;
  return j;
}

json PromotionJson(const PromotionRecord& h) {
  return json{{"seq", h.seq},
              {"at", FormatUtc(h.at)},
              {"actor", h.actor},
              {"model_type", h.model_type},
              {"version", h.version},
              {"replaced_version", OrNull(h.replaced_version)},
              {"replaced_status", OrNull(h.replaced_status)},
              {"kind", h.rollback ? "rollback" : "promotion"},
              {"gates_overridden", h.gates_overridden},
              {"override_reason", h.override_reason},
              {"reason", h.reason},
              {"gates_passed", h.gates_passed},
              {"gates_total", h.gates_total}};
}

json GateJson(const events::Gate& g) {
  return json{{"name", g.name},
              {"comparison", g.comparison},
              {"threshold", g.threshold},
              {"passed", g.passed},
              {"detail", g.detail},
              {"observed", g.has_observed ? json(g.observed) : json()}};
}

json ProductionJson(const Production& p) {
  if (!p.record) return json{{"model_type", p.model_type}, {"production", nullptr}};
  json j{{"model_type", p.model_type},
         {"production", p.record->version},
         {"record", RecordJson(*p.record)},
         {"promotion", nullptr}};
  if (p.promotion) {
    json pj = PromotionJson(p.promotion->promotion);
    json gates = json::array();
    for (const auto& g : p.promotion->gates) gates.push_back(GateJson(g));
    pj["gates"] = std::move(gates);
    pj["policy"] = p.promotion->policy;
    pj["policy_sha256"] = OrNull(p.promotion->policy_sha256);
    j["promotion"] = std::move(pj);
  }
  return j;
}

json AuditJson(const AuditResult& a) {
  json models = json::array();
  for (const auto& m : a.models) models.push_back(ProductionJson(m));
  return json{{"at", FormatUtc(a.at)},
              {"seq", a.seq},
              {"models", std::move(models)},
              {"policy", a.policy ? PolicyRecordJson(*a.policy) : json()}};
}

json PolicyRecordJson(const PolicyRecord& p) {
  return json{{"seq", p.seq},         {"at", FormatUtc(p.at)}, {"actor", p.actor},
              {"reason", p.reason},   {"source", p.source},    {"sha256", p.sha256},
              {"text", p.text}};
}

json PolicyJson(const PolicyResult& p) {
  return json{{"at", p.at ? json(FormatUtc(*p.at)) : json()},
              {"seq", p.seq},
              {"built_in_defaults", !p.policy.has_value()},
              {"policy", p.policy ? PolicyRecordJson(*p.policy) : json()}};
}

json ShowJson(const ShowResult& s) {
  json j = RecordJson(s.record);
  j["registration"] = events::ToJson(s.registration)["payload"];
  return j;
}

json ListJson(const ListResult& l, const std::string& model_type) {
  json arr = json::array();
  for (const auto& r : l.versions) arr.push_back(RecordJson(r));
  return json{{"model_type", OrNull(model_type)},
              {"at", l.at ? json(FormatUtc(*l.at)) : json()},
              {"versions", std::move(arr)}};
}

json HistoryJson(const HistoryResult& h) {
  json arr = json::array();
  for (const auto& p : h.promotions) arr.push_back(PromotionJson(p));
  return json{{"model_type", h.model_type}, {"history", std::move(arr)}};
}

json DiffJson(const DiffResult& d) {
  json production = json::object();
  for (const auto& e : d.production) {
    production[e.model_type] = {{"from", OrNull(e.from)}, {"to", OrNull(e.to)}};
  }
  json evs = json::array();
  for (const auto& e : d.events) evs.push_back(events::ToJson(e));
  return json{{"from", FormatUtc(d.from)},
              {"to", FormatUtc(d.to)},
              {"production", std::move(production)},
              {"events", std::move(evs)}};
}

double BehindSeconds(const ConsumersResult& c, const ConsumerRecord& r, TimeNs now) {
  if (r.version == c.production) return 0;
  return static_cast<double>(std::max<TimeNs>(0, now - c.production_since)) / 1e9;
}

json ConsumersJson(const ConsumersResult& c, TimeNs now) {
  json arr = json::array();
  for (const auto& r : c.consumers) {
    arr.push_back(json{{"consumer_id", r.consumer_id},
                       {"version", OrNull(r.version)},
                       {"ok", r.ok},
                       {"attempted_version", OrNull(r.attempted_version)},
                       {"detail", r.detail},
                       {"seq", r.seq},
                       {"at", TimeJson(r.at)},
                       {"current", r.version == c.production},
                       {"behind_seconds", BehindSeconds(c, r, now)}});
  }
  return json{{"model_type", c.model_type},
              {"production", OrNull(c.production)},
              {"production_since", TimeJson(c.production_since)},
              {"consumers", std::move(arr)}};
}

json HeadJson(const HeadResult& h) {
  return json{{"seq", h.seq}, {"at", TimeJson(h.at)}, {"hash", ToHex(h.hash)}};
}

json RollbackJson(const registry::RollbackResult& r) {
  return json{{"seq", r.seq},
              {"summary", r.summary},
              {"model_type", r.model_type},
              {"from", r.from},
              {"to", r.to},
              {"current_becomes", r.fail_current ? "failed" : "archived"},
              {"dry_run", r.dry_run}};
}

json ValidateJson(const registry::ValidateResult& r) {
  return json{{"ok", r.ok}, {"detail", r.detail}, {"seq", r.seq}, {"result", r.result}};
}

json BackupJson(const registry::Registry::BackupSummary& b) {
  json j{{"id", b.id},
              {"created_at", b.created_at},
              {"head_seq", b.head_seq},
              {"head_hash", b.head_hash},
              {"state_digest", b.state_digest},
              {"versions", b.versions},
              {"artifact_files_linked", b.artifact_files_linked},
              {"directory", b.directory},
              {"tree_root", b.tree_root}};
  if (!b.checkpoint.empty()) j["checkpoint"] = b.checkpoint;
  return j;
}

json GcJson(const std::vector<registry::Registry::GcItem>& items, bool dry_run) {
  std::uint64_t total = 0;
  json arr = json::array();
  for (const auto& i : items) {
    total += i.bytes;
    arr.push_back({{"model_type", i.model_type},
                   {"version", i.version.empty() ? json() : json(i.version)},
                   {"path", i.path},
                   {"bytes", i.bytes},
                   {"why", i.why}});
  }
  return json{{"dry_run", dry_run}, {"items", std::move(arr)}, {"bytes", total}};
}

}  // namespace modelreg::query
