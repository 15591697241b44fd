#include "events/model_events.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include <flatbuffers/flatbuffers.h>

#include "common/json_input.h"
#include "common/utf8.h"

namespace modelreg::events {

namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

fb::Hash32 ToHash32(const Digest& d) {
  fb::Hash32 h;
  for (std::size_t i = 0; i < d.size(); ++i) h.mutable_bytes()->Mutate(i, d[i]);
  return h;
}

Digest FromHash32(const fb::Hash32* h) {
  Digest d{};
  if (h != nullptr) std::copy(h->bytes()->begin(), h->bytes()->end(), d.begin());
  return d;
}

Offset<flatbuffers::Vector<Offset<fb::KeyValue>>> KeyValues(
    FlatBufferBuilder& fbb, const std::map<std::string, std::string>& m) {
  std::vector<Offset<fb::KeyValue>> out;
  for (const auto& [k, v] : m) out.push_back(fb::CreateKeyValueDirect(fbb, k.c_str(), v.c_str()));
  return fbb.CreateVector(out);  // std::map iterates sorted: canonical order
}

// FlatBuffers strings are bytes; JSON needs UTF-8: invalid sequences
// become U+FFFD so that any caller can dump() the result.
std::string Utf8(std::string_view in) { return SanitizeUtf8(in); }

std::string Str(const flatbuffers::String* s) {
  return s == nullptr ? std::string() : Utf8(s->string_view());
}

nlohmann::json KeyValuesJson(const flatbuffers::Vector<Offset<fb::KeyValue>>* v) {
  nlohmann::json j = nlohmann::json::object();
  if (v != nullptr) {
    for (const auto* kv : *v) j[Str(kv->key())] = Str(kv->value());
  }
  return j;
}

// Embedded JSON documents are shown as JSON when they parse, else as text.
nlohmann::json EmbeddedJson(const flatbuffers::String* s) {
  if (s == nullptr) return nlohmann::json::object();
  auto parsed = ParseJsonOrDiscarded(std::string_view(s->c_str(), s->size()));
  if (parsed.is_discarded()) return Str(s);
  return parsed;
}

std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// A Hash32 field that may be absent: 64 hex characters, or null.
nlohmann::json OptionalHash(const fb::Hash32* h) {
  return h == nullptr ? nlohmann::json() : nlohmann::json(ToHex(FromHash32(h)));
}

nlohmann::json GatesJson(const flatbuffers::Vector<Offset<fb::GateResult>>* gates) {
  nlohmann::json arr = nlohmann::json::array();
  if (gates == nullptr) return arr;
  for (const auto* g : *gates) {
    nlohmann::json gj{{"name", Str(g->name())},
                      {"comparison", Str(g->comparison())},
                      {"threshold", g->threshold()},
                      {"passed", g->passed()},
                      {"detail", Str(g->detail())}};
    gj["observed"] = g->has_observed() ? nlohmann::json(g->observed()) : nlohmann::json();
    arr.push_back(gj);
  }
  return arr;
}

}  // namespace

bool PromotionEvidence(const EventBuffer& event, std::vector<Gate>* gates, std::string* policy,
                       std::string* policy_sha256) {
  const auto* p = event.event().payload_as_ModelPromoted();
  if (p == nullptr) return false;
  gates->clear();
  if (p->gates() != nullptr) {
    for (const auto* g : *p->gates()) {
      Gate out;
      out.name = Str(g->name());
      out.comparison = Str(g->comparison());
      out.threshold = g->threshold();
      out.observed = g->observed();
      out.has_observed = g->has_observed();
      out.passed = g->passed();
      out.detail = Str(g->detail());
      gates->push_back(std::move(out));
    }
  }
  *policy = Str(p->policy());
  if (policy_sha256 != nullptr) {
    *policy_sha256 =
        p->policy_sha256() == nullptr ? std::string() : ToHex(FromHash32(p->policy_sha256()));
  }
  return true;
}

namespace {

nlohmann::json PayloadJson(const fb::Event& e) {
  nlohmann::json j;
  switch (e.payload_type()) {
    case fb::Payload::ModelRegistered: {
      const auto* p = e.payload_as_ModelRegistered();
      if (p == nullptr) break;
      j["model_id"] = Str(p->model_id());
      j["model_type"] = Str(p->model_type());
      j["version"] = Str(p->version());
      j["artifact_name"] = Str(p->artifact_name());
      j["artifact_size"] = p->artifact_size();
      j["artifact_sha256"] = ToHex(FromHash32(p->artifact_sha256()));
      if (p->artifact_kind() != nullptr && p->artifact_kind()->size() != 0) {
        // Only directory artifacts carry these: a file's event renders as before.
        j["artifact_kind"] = Str(p->artifact_kind());
        j["artifact_files"] = p->artifact_files();
      }
      j["dataset_version_ids"] = KeyValuesJson(p->dataset_version_ids());
      j["snapshot_id"] = Str(p->snapshot_id());
      j["factor_list"] = nlohmann::json::array();
      if (p->factor_list() != nullptr) {
        for (const auto* f : *p->factor_list()) j["factor_list"].push_back(Str(f));
      }
      j["parameters"] = EmbeddedJson(p->parameters_json());
      j["metrics"] = nlohmann::json::object();
      if (p->metrics() != nullptr) {
        for (const auto* m : *p->metrics()) j["metrics"][Str(m->name())] = m->value();
      }
      nlohmann::json env = nlohmann::json::object();
      if (const auto* en = p->env()) {
        env["hostname"] = Str(en->hostname());
        env["user"] = Str(en->user());
        env["os"] = Str(en->os());
        env["tool_version"] = Str(en->tool_version());
        env["git_commit"] = Str(en->git_commit());
        env["extra"] = KeyValuesJson(en->extra());
      }
      j["env"] = env;
      j["config"] = EmbeddedJson(p->config_json());
      j["config_hash"] = Str(p->config_hash());
      j["created_by"] = Str(p->created_by());
      j["created_at"] = FormatUtc(p->created_at());
      break;
    }
    case fb::Payload::ModelPromoted: {
      const auto* p = e.payload_as_ModelPromoted();
      if (p == nullptr) break;
      j["model_type"] = Str(p->model_type());
      j["version"] = Str(p->version());
      j["replaced_version"] = Str(p->replaced_version());
      j["gates"] = GatesJson(p->gates());
      j["gates_overridden"] = p->gates_overridden();
      j["override_reason"] = Str(p->override_reason());
      j["reason"] = Str(p->reason());
      j["policy"] = Str(p->policy());
      j["policy_sha256"] = OptionalHash(p->policy_sha256());
      break;
    }
    case fb::Payload::ModelArchived: {
      const auto* p = e.payload_as_ModelArchived();
      if (p == nullptr) break;
      j = {{"model_type", Str(p->model_type())}, {"version", Str(p->version())},
           {"reason", Str(p->reason())}};
      break;
    }
    case fb::Payload::ModelFailed: {
      const auto* p = e.payload_as_ModelFailed();
      if (p == nullptr) break;
      j = {{"model_type", Str(p->model_type())}, {"version", Str(p->version())},
           {"reason", Str(p->reason())}};
      break;
    }
    case fb::Payload::ModelRolledBack: {
      const auto* p = e.payload_as_ModelRolledBack();
      if (p == nullptr) break;
      j = {{"model_type", Str(p->model_type())},  {"from_version", Str(p->from_version())},
           {"to_version", Str(p->to_version())},  {"current_failed", p->current_failed()},
           {"reason", Str(p->reason())}};
      break;
    }
    case fb::Payload::ArtifactValidated: {
      const auto* p = e.payload_as_ArtifactValidated();
      if (p == nullptr) break;
      j = {{"model_type", Str(p->model_type())},
           {"version", Str(p->version())},
           {"ok", p->ok()},
           {"expected_sha256", ToHex(FromHash32(p->expected_sha256()))},
           {"observed_sha256", ToHex(FromHash32(p->observed_sha256()))},
           {"observed_size", p->observed_size()},
           {"detail", Str(p->detail())},
           {"result", Str(p->result())}};
      break;
    }
    case fb::Payload::ArtifactPurged: {
      const auto* p = e.payload_as_ArtifactPurged();
      if (p == nullptr) break;
      j = {{"model_type", Str(p->model_type())}, {"version", Str(p->version())},
           {"bytes_freed", p->bytes_freed()}, {"reason", Str(p->reason())}};
      break;
    }
    case fb::Payload::PromotionRejected: {
      const auto* p = e.payload_as_PromotionRejected();
      if (p == nullptr) break;
      j["model_type"] = Str(p->model_type());
      j["version"] = Str(p->version());
      j["current_version"] = Str(p->current_version());
      j["gates"] = GatesJson(p->gates());
      j["reason"] = Str(p->reason());
      j["policy"] = Str(p->policy());
      j["policy_sha256"] = OptionalHash(p->policy_sha256());
      break;
    }
    case fb::Payload::ConsumerAcknowledged: {
      const auto* p = e.payload_as_ConsumerAcknowledged();
      if (p == nullptr) break;
      j = {{"model_type", Str(p->model_type())},
           {"version", Str(p->version())},
           {"consumer_id", Str(p->consumer_id())},
           {"ok", p->ok()},
           {"attempted_version", Str(p->attempted_version())},
           {"detail", Str(p->detail())}};
      break;
    }
    case fb::Payload::PolicyChanged: {
      const auto* p = e.payload_as_PolicyChanged();
      if (p == nullptr) break;
      j = {{"text", Str(p->text())},
           {"sha256", OptionalHash(p->sha256())},
           {"reason", Str(p->reason())},
           {"source", Str(p->source())}};
      break;
    }
    case fb::Payload::ModelAnnotated: {
      const auto* p = e.payload_as_ModelAnnotated();
      if (p == nullptr) break;
      j["model_type"] = Str(p->model_type());
      j["version"] = Str(p->version());
      j["set_tags"] = KeyValuesJson(p->set_tags());
      j["removed_tags"] = nlohmann::json::array();
      if (p->removed_tags() != nullptr) {
        for (const auto* t : *p->removed_tags()) j["removed_tags"].push_back(Str(t));
      }
      // null: left as it was; "": cleared.
      j["description"] = p->has_description() ? nlohmann::json(Str(p->description()))
                                               : nlohmann::json();
      j["metrics"] = nlohmann::json::object();
      if (p->metrics() != nullptr) {
        for (const auto* m : *p->metrics()) j["metrics"][Str(m->name())] = m->value();
      }
      j["source"] = Str(p->source());
      j["reason"] = Str(p->reason());
      break;
    }
    default:
      break;
  }
  return j;
}


}  // namespace

std::string Draft(const Envelope& env, const Registration& p) {
  FlatBufferBuilder fbb(1024);
  auto model_id = fbb.CreateString(p.model_id);
  auto model_type = fbb.CreateString(p.model_type);
  auto version = fbb.CreateString(p.version);
  auto artifact_name = fbb.CreateString(p.artifact_name);
  auto datasets = KeyValues(fbb, p.dataset_version_ids);
  auto snapshot = fbb.CreateString(p.snapshot_id);
  auto factors = fbb.CreateVectorOfStrings(p.factor_list);
  auto params = fbb.CreateString(p.parameters_json);
  std::vector<Offset<fb::Metric>> metric_offsets;
  for (const auto& [name, value] : p.metrics) {
    metric_offsets.push_back(fb::CreateMetricDirect(fbb, name.c_str(), value));
  }
  auto metrics = fbb.CreateVector(metric_offsets);
  auto envo = fb::CreateEnvironment(
      fbb, fbb.CreateString(p.env.hostname), fbb.CreateString(p.env.user),
      fbb.CreateString(p.env.os), fbb.CreateString(p.env.tool_version),
      fbb.CreateString(p.env.git_commit), KeyValues(fbb, p.env.extra));
  auto config = fbb.CreateString(p.config_json);
  auto config_hash = fbb.CreateString(p.config_hash);
  auto created_by = fbb.CreateString(p.created_by);
  // A file artifact writes neither of the later fields: its bytes are what
  // they were before directories existed.
  const Offset<flatbuffers::String> kind =
      p.artifact_kind.empty() ? Offset<flatbuffers::String>() : fbb.CreateString(p.artifact_kind);
  const fb::Hash32 sha = ToHash32(p.artifact_sha256);
  auto payload = fb::CreateModelRegistered(fbb, model_id, model_type, version, artifact_name,
                                           p.artifact_size, &sha, datasets, snapshot, factors,
                                           params, metrics, envo, config, config_hash,
                                           created_by, p.created_at, kind,
                                           p.artifact_kind.empty() ? 0 : p.artifact_files);
  return FinishDraft(fbb, env, fb::Payload::ModelRegistered, payload.Union());
}

namespace {
Offset<flatbuffers::Vector<Offset<fb::GateResult>>> Gates(FlatBufferBuilder& fbb,
                                                         const std::vector<Gate>& gates) {
  std::vector<Offset<fb::GateResult>> offsets;
  for (const Gate& g : gates) {
    offsets.push_back(fb::CreateGateResultDirect(fbb, g.name.c_str(), g.comparison.c_str(),
                                                 g.threshold, g.observed, g.has_observed,
                                                 g.passed, g.detail.c_str()));
  }
  return fbb.CreateVector(offsets);
}
}  // namespace

std::string Draft(const Envelope& env, const Promotion& p) {
  FlatBufferBuilder fbb(512);
  auto model_type = fbb.CreateString(p.model_type);
  auto version = fbb.CreateString(p.version);
  auto replaced = fbb.CreateString(p.replaced_version);
  auto gates = Gates(fbb, p.gates);
  auto override_reason = fbb.CreateString(p.override_reason);
  auto reason = fbb.CreateString(p.reason);
  auto policy = fbb.CreateString(p.policy);
  const fb::Hash32 policy_sha = ToHash32(p.policy_sha256.value_or(Digest{}));
  auto payload = fb::CreateModelPromoted(fbb, model_type, version, replaced, gates,
                                         p.gates_overridden, override_reason, reason, policy,
                                         p.policy_sha256 ? &policy_sha : nullptr);
  return FinishDraft(fbb, env, fb::Payload::ModelPromoted, payload.Union());
}

std::string Draft(const Envelope& env, const Archive& p) {
  FlatBufferBuilder fbb(256);
  auto payload = fb::CreateModelArchivedDirect(fbb, p.model_type.c_str(), p.version.c_str(),
                                               p.reason.c_str());
  return FinishDraft(fbb, env, fb::Payload::ModelArchived, payload.Union());
}

std::string Draft(const Envelope& env, const Failure& p) {
  FlatBufferBuilder fbb(256);
  auto payload = fb::CreateModelFailedDirect(fbb, p.model_type.c_str(), p.version.c_str(),
                                             p.reason.c_str());
  return FinishDraft(fbb, env, fb::Payload::ModelFailed, payload.Union());
}

std::string Draft(const Envelope& env, const Rollback& p) {
  FlatBufferBuilder fbb(256);
  auto payload = fb::CreateModelRolledBackDirect(fbb, p.model_type.c_str(),
                                                 p.from_version.c_str(), p.to_version.c_str(),
                                                 p.current_failed, p.reason.c_str());
  return FinishDraft(fbb, env, fb::Payload::ModelRolledBack, payload.Union());
}

std::string Draft(const Envelope& env, const Validation& p) {
  FlatBufferBuilder fbb(256);
  const fb::Hash32 expected = ToHash32(p.expected_sha256);
  const fb::Hash32 observed = ToHash32(p.observed_sha256);
  auto payload = fb::CreateArtifactValidatedDirect(fbb, p.model_type.c_str(), p.version.c_str(),
                                                   p.ok, &expected, &observed, p.observed_size,
                                                   p.detail.c_str(), p.result.c_str());
  return FinishDraft(fbb, env, fb::Payload::ArtifactValidated, payload.Union());
}

std::string Draft(const Envelope& env, const Purge& p) {
  FlatBufferBuilder fbb(256);
  auto payload = fb::CreateArtifactPurgedDirect(fbb, p.model_type.c_str(), p.version.c_str(),
                                                p.bytes_freed, p.reason.c_str());
  return FinishDraft(fbb, env, fb::Payload::ArtifactPurged, payload.Union());
}

std::string Draft(const Envelope& env, const ConsumerAck& p) {
  FlatBufferBuilder fbb(256);
  auto payload = fb::CreateConsumerAcknowledgedDirect(
      fbb, p.model_type.c_str(), p.version.c_str(), p.consumer_id.c_str(), p.ok,
      p.attempted_version.c_str(), p.detail.c_str());
  return FinishDraft(fbb, env, fb::Payload::ConsumerAcknowledged, payload.Union());
}

std::string Draft(const Envelope& env, const Rejection& p) {
  FlatBufferBuilder fbb(512);
  auto model_type = fbb.CreateString(p.model_type);
  auto version = fbb.CreateString(p.version);
  auto current = fbb.CreateString(p.current_version);
  auto gates = Gates(fbb, p.gates);
  auto reason = fbb.CreateString(p.reason);
  auto policy = fbb.CreateString(p.policy);
  const fb::Hash32 policy_sha = ToHash32(p.policy_sha256.value_or(Digest{}));
  auto payload = fb::CreatePromotionRejected(fbb, model_type, version, current, gates, reason,
                                             policy, p.policy_sha256 ? &policy_sha : nullptr);
  return FinishDraft(fbb, env, fb::Payload::PromotionRejected, payload.Union());
}

std::string Draft(const Envelope& env, const PolicyChange& p) {
  FlatBufferBuilder fbb(256 + p.text.size());
  auto text = fbb.CreateString(p.text);  // not CreateStringDirect: bytes, whatever they hold
  auto reason = fbb.CreateString(p.reason);
  auto source = fbb.CreateString(p.source);
  const fb::Hash32 sha = ToHash32(Sha256::Of(p.text));
  auto payload = fb::CreatePolicyChanged(fbb, text, &sha, reason, source);
  return FinishDraft(fbb, env, fb::Payload::PolicyChanged, payload.Union());
}

std::string Draft(const Envelope& env, const Annotation& p) {
  FlatBufferBuilder fbb(512);
  auto model_type = fbb.CreateString(p.model_type);
  auto version = fbb.CreateString(p.version);
  auto set_tags = KeyValues(fbb, p.set_tags);
  std::vector<std::string> removed = p.removed_tags;
  std::sort(removed.begin(), removed.end());
  removed.erase(std::unique(removed.begin(), removed.end()), removed.end());
  auto removed_tags = fbb.CreateVectorOfStrings(removed);
  auto description = fbb.CreateString(p.description.value_or(std::string()));
  std::vector<Offset<fb::Metric>> metric_offsets;
  for (const auto& [name, value] : p.metrics) {
    metric_offsets.push_back(fb::CreateMetricDirect(fbb, name.c_str(), value));
  }
  auto metrics = fbb.CreateVector(metric_offsets);
  auto source = fbb.CreateString(p.source);
  auto reason = fbb.CreateString(p.reason);
  auto payload =
      fb::CreateModelAnnotated(fbb, model_type, version, set_tags, removed_tags,
                               p.description.has_value(), description, metrics, source, reason);
  return FinishDraft(fbb, env, fb::Payload::ModelAnnotated, payload.Union());
}

nlohmann::json ToJson(const EventBuffer& event) {
  const fb::Event& e = event.event();
  nlohmann::json j;
  j["seq"] = e.sequence();
  j["recorded_at"] = FormatUtc(e.recorded_at());
  j["actor"] = Str(e.actor());
  j["event_id"] = Str(e.event_id());
  j["schema_version"] = e.schema_version();
  j["type"] = PayloadTypeName(e.payload_type());
  j["prev_hash"] = ToHex(FromHash32(e.prev_hash()));
  if (e.occurred_at() != 0) j["occurred_at"] = FormatUtc(e.occurred_at());
  j["payload"] = PayloadJson(e);
  return j;
}

std::string Summary(const EventBuffer& event) {
  const fb::Event& e = event.event();
  const nlohmann::json p = PayloadJson(e);
  auto field = [&p](const char* k) {
    return p.contains(k) && p[k].is_string() ? p[k].get<std::string>() : std::string();
  };
  // p is null when the payload is missing: value() would throw.
  auto flag = [&p](const char* k) { return p.contains(k) && p[k].is_boolean() && p[k].get<bool>(); };
  std::string what;
  switch (e.payload_type()) {
    case fb::Payload::ModelRegistered:
      what = "registered " + field("model_type") + " " + field("version") +
             (field("artifact_kind").empty() ? "" : " (" + field("artifact_kind") + ")") +
             " sha256 " + field("artifact_sha256").substr(0, 12);
      break;
    case fb::Payload::ModelPromoted:
      what = "promoted " + field("model_type") + " " + field("version");
      if (!field("replaced_version").empty()) what += " (replaces " + field("replaced_version") + ")";
      if (flag("gates_overridden")) what += " [gates overridden]";
      break;
    case fb::Payload::ModelArchived:
      what = "archived " + field("model_type") + " " + field("version");
      break;
    case fb::Payload::ModelFailed:
      what = "failed " + field("model_type") + " " + field("version");
      break;
    case fb::Payload::ModelRolledBack:
      what = "rolled back " + field("model_type") + " " + field("from_version") + " -> " +
             field("to_version");
      break;
    case fb::Payload::ArtifactValidated:
      what = std::string("validated ") + field("model_type") + " " + field("version") +
             (flag("ok") ? " ok" : field("result") == "missing" ? " MISSING" : " FAILED");
      break;
    case fb::Payload::ArtifactPurged:
      what = "purged " + field("model_type") + " " + field("version");
      break;
    case fb::Payload::ConsumerAcknowledged:
      what = "consumer " + field("consumer_id") +
             (flag("ok") ? " runs " + field("model_type") + " " +
                               (field("version").empty() ? std::string("nothing") : field("version"))
                         : " FAILED to load " + field("model_type") + " " +
                               field("attempted_version") + ", still runs " +
                               (field("version").empty() ? std::string("nothing") : field("version")) +
                               ": " + field("detail"));
      break;
    case fb::Payload::PromotionRejected: {
      what = "promotion of " + field("model_type") + " " + field("version") +
             " REJECTED by gates:";
      if (p.contains("gates") && p["gates"].is_array()) {
        for (const auto& g : p["gates"]) {
          if (g.value("passed", true)) continue;
          what += " " + g.value("name", std::string()) + " (" +
                  (g["observed"].is_number() ? Fmt(g["observed"].get<double>())
                                             : std::string("missing")) +
                  ", needs " + g.value("comparison", std::string()) + " " +
                  Fmt(g.value("threshold", 0.0)) + ")";
        }
      }
      break;
    }
    case fb::Payload::PolicyChanged: {
      const nlohmann::json sha = p.contains("sha256") ? p["sha256"] : nlohmann::json();
      what = "set the gate policy to sha256 " +
             (sha.is_string() ? sha.get<std::string>().substr(0, 12) : std::string("?"));
      if (!field("source").empty()) what += " (from " + field("source") + ")";
      break;
    }
    case fb::Payload::ModelAnnotated: {
      what = "annotated " + field("model_type") + " " + field("version");
      std::string changes;
      auto add = [&changes](const std::string& c) { changes += (changes.empty() ? "" : ", ") + c; };
      if (p.contains("set_tags") && p["set_tags"].is_object()) {
        for (const auto& [k, v] : p["set_tags"].items()) {
          add("tag " + k + "=" + (v.is_string() ? v.get<std::string>() : std::string()));
        }
      }
      if (p.contains("removed_tags") && p["removed_tags"].is_array()) {
        for (const auto& t : p["removed_tags"]) {
          add("untag " + (t.is_string() ? t.get<std::string>() : std::string()));
        }
      }
      if (p.contains("description") && p["description"].is_string()) {
        add(p["description"].get<std::string>().empty() ? "description cleared"
                                                        : "description set");
      }
      if (p.contains("metrics") && p["metrics"].is_object()) {
        for (const auto& [k, v] : p["metrics"].items()) {
          add(k + "=" + (v.is_number() ? Fmt(v.get<double>()) : std::string("?")));
        }
      }
      if (!changes.empty()) what += " (" + changes + ")";
      if (!field("source").empty()) what += " from " + field("source");
      break;
    }
    default:
      what = PayloadTypeName(e.payload_type());
  }
  const std::string reason = field("reason");
  if (!reason.empty()) what += ": " + reason;
  // One line whatever the actor or reason holds (control characters escaped).
  return Printable("#" + std::to_string(e.sequence()) + " " + FormatUtc(e.recorded_at()) + " " +
                   Str(e.actor()) + " " + what);
}

}  // namespace modelreg::events
