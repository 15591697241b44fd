#include "projection/state.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <iterator>

#include <nlohmann/json.hpp>

#include "common/bytes.h"

namespace modelreg::projection {

namespace {

using nlohmann::json;

std::string Str(const flatbuffers::String* s) { return s == nullptr ? std::string() : s->str(); }

std::string HexOf(const fb::Hash32* h) {
  Digest d{};
  if (h != nullptr) std::copy(h->bytes()->begin(), h->bytes()->end(), d.begin());
  return ToHex(d);
}

std::string ConsumerKey(const std::string& type, const std::string& consumer) {
  return "c/" + type + "/" + consumer;
}

std::string TimelineKey(const std::string& type, TimeNs at, Seq seq) {
  std::string k = TimelinePrefix(type);
  PutBe64(k, OrderedFromSigned(at));
  PutBe64(k, seq);
  return k;
}

// Collects changed records so that one event changing a record twice
// (e.g. demote then promote) yields its final value once.
class Planner {
 public:
  Planner(const State& state, Seq seq, TimeNs at) : state_(state) {
    delta_.seq = seq;
    delta_.at = at;
  }

  // Mutable view of a record as changed by this event; nullptr if unknown.
  // Pointers stay valid for the planner's life (a deque never moves them).
  VersionRecord* Get(const std::string& type, const std::string& version) {
    for (auto& r : versions_) {
      if (r.model_type == type && r.version == version) return &r;
    }
    const VersionRecord* base = state_.Find(type, version);
    if (base == nullptr) return nullptr;
    versions_.push_back(*base);
    return &versions_.back();
  }

  void Add(VersionRecord r) { versions_.push_back(std::move(r)); }

  Delta Finish() {
    delta_.versions.assign(std::make_move_iterator(versions_.begin()),
                           std::make_move_iterator(versions_.end()));
    return std::move(delta_);
  }

  std::string Production(const std::string& type) const {
    for (auto it = delta_.production.rbegin(); it != delta_.production.rend(); ++it) {
      if (it->first == type) return it->second;
    }
    auto t = state_.types.find(type);
    return t == state_.types.end() ? std::string() : t->second.production;
  }

  void SetStatus(VersionRecord* r, ModelStatus s, const std::string& actor,
                 const std::string& reason) {
    if (r->status == ModelStatus::kProduction && s != ModelStatus::kProduction) {
      r->demoted_at = delta_.at;
      if (Production(r->model_type) == r->version) SetProduction(r->model_type, "");
    }
    if (s == ModelStatus::kProduction) {
      r->promoted_at = delta_.at;
      SetProduction(r->model_type, r->version);
    }
    r->status = s;
    r->status_seq = delta_.seq;
    r->status_at = delta_.at;
    r->status_by = actor;
    r->status_reason = reason;
  }

  void SetProduction(const std::string& type, const std::string& version) {
    for (auto& [t, v] : delta_.production) {
      if (t == type) {
        v = version;
        return;
      }
    }
    delta_.production.emplace_back(type, version);
  }

  Delta& delta() { return delta_; }

 private:
  const State& state_;
  std::deque<VersionRecord> versions_;
  Delta delta_;
};

}  // namespace

void to_json(json& j, const LateMetric& m) {
  j = json{{"value", m.value}, {"source", m.source}, {"actor", m.actor}, {"at", m.at},
           {"seq", m.seq}};
}

void from_json(const json& j, LateMetric& m) {
  m.value = j.at("value").get<double>();
  m.source = j.at("source").get<std::string>();
  m.actor = j.at("actor").get<std::string>();
  m.at = j.at("at").get<TimeNs>();
  m.seq = j.at("seq").get<Seq>();
}

void to_json(json& j, const Annotations& a) {
  j = json{{"tags", a.tags}, {"description", a.description}, {"metrics", a.metrics},
           {"seq", a.seq}};
}

void from_json(const json& j, Annotations& a) {
  a.tags = j.at("tags").get<std::map<std::string, std::string>>();
  a.description = j.at("description").get<std::string>();
  a.metrics = j.at("metrics").get<std::map<std::string, LateMetric>>();
  a.seq = j.at("seq").get<Seq>();
  if (a.seq == 0) throw std::runtime_error("annotations without an event");
}

std::map<std::string, double> EffectiveMetrics(const VersionRecord& r) {
  std::map<std::string, double> out = r.metrics;
  for (const auto& [name, m] : r.annotations.metrics) out[name] = m.value;
  return out;
}

std::string VersionKey(const std::string& type, const std::string& version) {
  return "v/" + type + "/" + version;
}
std::string HistoryKey(const std::string& type, Seq seq) { return "h/" + type + "/" + Be64(seq); }
std::string PolicyKey(Seq seq) { return kPolicyPrefix + Be64(seq); }
std::string TimelinePrefix(const std::string& type) { return "t/" + type + "/"; }
std::string TimelineSeekKey(const std::string& type, TimeNs t) {
  return TimelineKey(type, t, ~Seq{0});
}

Result<bool> ParseTimelineRow(const std::string& type, std::string_view key,
                              std::string_view value, ProductionChange* out) {
  const std::string prefix = TimelinePrefix(type);
  if (key.size() != prefix.size() + 16 || key.substr(0, prefix.size()) != prefix) return false;
  auto version = DecodeTypeRow(value);
  if (!version) return Err(version.error());
  out->at = SignedFromOrdered(GetBe64(key.substr(prefix.size())));
  out->seq = GetBe64(key.substr(prefix.size() + 8));
  out->version = std::move(*version);
  return true;
}

std::string_view KindName(ArtifactKind k) {
  return k == ArtifactKind::kDirectory ? "directory" : "file";
}

std::string_view StatusName(ModelStatus s) {
  switch (s) {
    case ModelStatus::kStaged: return "staged";
    case ModelStatus::kProduction: return "production";
    case ModelStatus::kArchived: return "archived";
    case ModelStatus::kFailed: return "failed";
  }
  return "unknown";
}

bool ParseStatus(std::string_view name, ModelStatus* out) {
  for (ModelStatus s : {ModelStatus::kStaged, ModelStatus::kProduction, ModelStatus::kArchived,
                        ModelStatus::kFailed}) {
    if (StatusName(s) == name) {
      *out = s;
      return true;
    }
  }
  return false;
}

const VersionRecord* State::Find(const std::string& type, const std::string& version) const {
  auto t = types.find(type);
  if (t != types.end()) {
    auto v = t->second.versions.find(version);
    if (v != t->second.versions.end()) return &v->second;
  }
  return records == nullptr ? nullptr : records->Load(type, version);
}

const PolicyRecord* State::PolicyAt(Seq seq) const {
  auto after = std::upper_bound(policies.begin(), policies.end(), seq,
                                [](Seq s, const PolicyRecord& p) { return s < p.seq; });
  return after == policies.begin() ? nullptr : &*std::prev(after);
}

Result<Delta> Plan(const State& state, const EventBuffer& event) {
  const fb::Event& e = event.event();
  if (e.sequence() != state.seq + 1) {
    return Err(Status::Internal("projection at event " + std::to_string(state.seq) +
                                " cannot fold event " + std::to_string(e.sequence())));
  }
  return PlanUnchecked(state, event);
}

Result<Delta> PlanUnchecked(const State& state, const EventBuffer& event) {
  const fb::Event& e = event.event();
  Planner plan(state, e.sequence(), e.recorded_at());
  const std::string actor = Str(e.actor());
  switch (e.payload_type()) {
    case fb::Payload::ModelRegistered: {
      const auto* p = e.payload_as_ModelRegistered();
      if (p == nullptr) break;
      const std::string type = Str(p->model_type()), version = Str(p->version());
      if (state.Find(type, version) != nullptr) break;  // first registration wins
      VersionRecord r;
      r.model_type = type;
      r.version = version;
      r.model_id = Str(p->model_id());
      r.registered_seq = r.status_seq = e.sequence();
      r.registered_at = r.status_at = e.recorded_at();
      r.registered_by = r.status_by = actor;
      // Only "directory" is written; any other kind (none exists) reads
      // as what the event always meant without one: a file.
      r.artifact_kind = Str(p->artifact_kind()) == KindName(ArtifactKind::kDirectory)
                            ? ArtifactKind::kDirectory
                            : ArtifactKind::kFile;
      r.artifact_name = Str(p->artifact_name());
      r.artifact_size = p->artifact_size();
      r.artifact_sha256 = HexOf(p->artifact_sha256());
      if (p->metrics() != nullptr) {
        // Non-finite values cannot be written by the registry; from any
        // other writer they are dropped (JSON rows cannot carry them).
        for (const auto* m : *p->metrics()) {
          if (std::isfinite(m->value())) r.metrics[Str(m->name())] = m->value();
        }
      }
      if (p->dataset_version_ids() != nullptr) {
        for (const auto* kv : *p->dataset_version_ids()) {
          r.dataset_version_ids[Str(kv->key())] = Str(kv->value());
        }
      }
      r.snapshot_id = Str(p->snapshot_id());
      r.config_hash = Str(p->config_hash());
      plan.Add(std::move(r));
      break;
    }
    case fb::Payload::ModelPromoted: {
      const auto* p = e.payload_as_ModelPromoted();
      if (p == nullptr) break;
      const std::string type = Str(p->model_type()), version = Str(p->version());
      VersionRecord* target = plan.Get(type, version);
      if (target == nullptr) break;
      const std::string previous = plan.Production(type);
      PromotionRecord h;
      if (!previous.empty() && previous != version) {
        if (VersionRecord* old = plan.Get(type, previous)) {
          plan.SetStatus(old, ModelStatus::kArchived, actor, "replaced by " + version);
          h.replaced_version = previous;
          h.replaced_status = "archived";
        }
      }
      plan.SetStatus(target, ModelStatus::kProduction, actor, Str(p->reason()));
      h.seq = e.sequence();
      h.at = e.recorded_at();
      h.actor = actor;
      h.model_type = type;
      h.version = version;
      h.gates_overridden = p->gates_overridden();
      h.reason = Str(p->reason());
      h.override_reason = Str(p->override_reason());
      if (p->gates() != nullptr) {
        h.gates_total = static_cast<int>(p->gates()->size());
        for (const auto* g : *p->gates()) h.gates_passed += g->passed() ? 1 : 0;
      }
      plan.delta().history.push_back(std::move(h));
      break;
    }
    case fb::Payload::ModelArchived: {
      const auto* p = e.payload_as_ModelArchived();
      if (p == nullptr) break;
      if (VersionRecord* r = plan.Get(Str(p->model_type()), Str(p->version()))) {
        plan.SetStatus(r, ModelStatus::kArchived, actor, Str(p->reason()));
      }
      break;
    }
    case fb::Payload::ModelFailed: {
      const auto* p = e.payload_as_ModelFailed();
      if (p == nullptr) break;
      if (VersionRecord* r = plan.Get(Str(p->model_type()), Str(p->version()))) {
        plan.SetStatus(r, ModelStatus::kFailed, actor, Str(p->reason()));
      }
      break;
    }
    case fb::Payload::ModelRolledBack: {
      const auto* p = e.payload_as_ModelRolledBack();
      if (p == nullptr) break;
      const std::string type = Str(p->model_type());
      VersionRecord* to = plan.Get(type, Str(p->to_version()));
      if (to == nullptr) break;
      PromotionRecord h;
      if (VersionRecord* from = plan.Get(type, Str(p->from_version()))) {
        const bool failed = p->current_failed();
        plan.SetStatus(from, failed ? ModelStatus::kFailed : ModelStatus::kArchived, actor,
                       Str(p->reason()));
        h.replaced_version = from->version;
        h.replaced_status = failed ? "failed" : "archived";
      }
      plan.SetStatus(to, ModelStatus::kProduction, actor, "rollback: " + Str(p->reason()));
      h.seq = e.sequence();
      h.at = e.recorded_at();
      h.actor = actor;
      h.model_type = type;
      h.version = to->version;
      h.rollback = true;
      h.reason = Str(p->reason());
      plan.delta().history.push_back(std::move(h));
      break;
    }
    case fb::Payload::ArtifactValidated: {
      const auto* p = e.payload_as_ArtifactValidated();
      if (p == nullptr) break;
      if (VersionRecord* r = plan.Get(Str(p->model_type()), Str(p->version()))) {
        r->validated_seq = e.sequence();
        r->validation_ok = p->ok();
        r->validation_detail = Str(p->detail());
      }
      break;
    }
    case fb::Payload::ArtifactPurged: {
      const auto* p = e.payload_as_ArtifactPurged();
      if (p == nullptr) break;
      if (VersionRecord* r = plan.Get(Str(p->model_type()), Str(p->version()))) r->purged = true;
      break;
    }
    case fb::Payload::ConsumerAcknowledged: {
      const auto* p = e.payload_as_ConsumerAcknowledged();
      if (p == nullptr) break;
      ConsumerRecord c;
      c.consumer_id = Str(p->consumer_id());
      if (c.consumer_id.empty()) break;
      c.version = Str(p->version());
      c.ok = p->ok();
      c.attempted_version = Str(p->attempted_version());
      c.detail = Str(p->detail());
      c.seq = e.sequence();
      c.at = e.recorded_at();
      plan.delta().consumers.emplace_back(Str(p->model_type()), std::move(c));
      break;
    }
    case fb::Payload::PolicyChanged: {
      const auto* p = e.payload_as_PolicyChanged();
      if (p == nullptr) break;
      PolicyRecord r;
      r.seq = e.sequence();
      r.at = e.recorded_at();
      r.actor = actor;
      r.reason = Str(p->reason());
      r.source = Str(p->source());
      r.text = Str(p->text());
      // The text's own hash: the event's field is what the writer computed
      // from the same bytes (a writer that left it out changes nothing).
      r.sha256 = ToHex(Sha256::Of(r.text));
      plan.delta().policy = std::move(r);
      break;
    }
    case fb::Payload::ModelAnnotated: {
      const auto* p = e.payload_as_ModelAnnotated();
      if (p == nullptr) break;
      VersionRecord* r = plan.Get(Str(p->model_type()), Str(p->version()));
      if (r == nullptr) break;
      Annotations& a = r->annotations;
      // Removals first, then the tags set: an event that does both to one
      // key (the registry never writes one) leaves it set.
      if (p->removed_tags() != nullptr) {
        for (const auto* t : *p->removed_tags()) a.tags.erase(Str(t));
      }
      if (p->set_tags() != nullptr) {
        for (const auto* kv : *p->set_tags()) a.tags[Str(kv->key())] = Str(kv->value());
      }
      if (p->has_description()) a.description = Str(p->description());
      if (p->metrics() != nullptr) {
        for (const auto* m : *p->metrics()) {
          // As at registration: non-finite values cannot be stored in rows.
          if (!std::isfinite(m->value())) continue;
          a.metrics[Str(m->name())] =
              LateMetric{m->value(), Str(p->source()), actor, e.recorded_at(), e.sequence()};
        }
      }
      a.seq = e.sequence();
      break;
    }
    default:
      break;  // newer payload types change nothing this version knows about
  }
  return plan.Finish();
}

void Commit(State& state, const Delta& delta) {
  for (const VersionRecord& r : delta.versions) {
    state.types[r.model_type].versions[r.version] = r;
  }
  for (const auto& [type, version] : delta.production) {
    TypeState& ts = state.types[type];
    ts.production = version;
    ts.timeline.push_back(ProductionChange{delta.seq, delta.at, version});
  }
  for (const PromotionRecord& h : delta.history) state.types[h.model_type].history.push_back(h);
  for (const auto& [type, c] : delta.consumers) state.types[type].consumers[c.consumer_id] = c;
  if (delta.policy) state.policies.push_back(*delta.policy);
  state.seq = delta.seq;
  state.at = delta.at;
}

Status Apply(State& state, const EventBuffer& event) {
  auto delta = Plan(state, event);
  if (!delta) return delta.error();
  Commit(state, *delta);
  return Status::OK();
}

namespace {

// The rows of a delta that a projection rewrite also writes as it folds:
// production (and its timeline), history, consumers, record rows.
void AppendLogRows(const Delta& delta, Rows& rows) {
  for (const auto& [type, version] : delta.production) {
    // An empty "p/" value deletes the row (no production version).
    rows.emplace_back("p/" + type, version.empty() ? std::string() : EncodeTypeRow(version));
    rows.emplace_back(TimelineKey(type, delta.at, delta.seq), EncodeTypeRow(version));
  }
  for (const PromotionRecord& h : delta.history) {
    rows.emplace_back(HistoryKey(h.model_type, h.seq), EncodeHistoryRow(h));
  }
  for (const auto& [type, c] : delta.consumers) {
    rows.emplace_back(ConsumerKey(type, c.consumer_id), EncodeConsumerRow(c));
  }
  if (delta.policy) rows.emplace_back(PolicyKey(delta.policy->seq), EncodePolicyRow(*delta.policy));
  for (const VersionRecord& r : delta.versions) {
    rows.emplace_back(RecordKey(r.model_type, r.version, delta.seq), EncodeVersionRow(r));
  }
}

}  // namespace

Rows EncodeDelta(const Delta& delta) {
  Rows rows;
  for (const VersionRecord& r : delta.versions) {
    rows.emplace_back(VersionKey(r.model_type, r.version), EncodeVersionRow(r));
  }
  rows.emplace_back("s", EncodeHeadRow(delta.seq, delta.at));
  AppendLogRows(delta, rows);
  return rows;
}

Rows EncodeDeltaWithoutState(const Delta& delta) {
  Rows rows;
  AppendLogRows(delta, rows);
  return rows;
}

Rows RecordRows(const Delta& delta) {
  Rows rows;
  for (const VersionRecord& r : delta.versions) {
    rows.emplace_back(RecordKey(r.model_type, r.version, delta.seq), EncodeVersionRow(r));
  }
  return rows;
}

std::string RecordPrefix(const std::string& type) {
  return type.empty() ? std::string("r/") : "r/" + type + "/";
}
std::string RecordPrefix(const std::string& type, const std::string& version) {
  return "r/" + type + "/" + version + "/";
}
std::string RecordKey(const std::string& type, const std::string& version, Seq seq) {
  return RecordPrefix(type, version) + Be64(seq);
}

bool ParseRecordKey(std::string_view key, std::string* type, std::string* version, Seq* seq) {
  // "r/" type "/" version "/" be64 — the sequence bytes may hold '/', so
  // split from both ends.
  if (key.size() < 2 + 1 + 1 + 1 + 1 + 8 || key.substr(0, 2) != "r/") return false;
  const std::string_view body = key.substr(2, key.size() - 2 - 9);
  if (key[key.size() - 9] != '/') return false;
  const std::size_t slash = body.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == body.size()) return false;
  *type = std::string(body.substr(0, slash));
  *version = std::string(body.substr(slash + 1));
  *seq = GetBe64(key.substr(key.size() - 8));
  return true;
}

bool IsIndexRow(std::string_view key) {
  return key.substr(0, 2) == "r/" || key.substr(0, 2) == "x/";
}

void RowSetDigest::Add(std::string_view key, std::string_view stored_value) {
  auto canonical = CanonicalFromStored(key, stored_value);
  if (canonical) {
    AddCanonical(key, *canonical);
  } else {
    // Never equal to a canonical value's contribution: the key is tagged.
    AddCanonical("!undecodable:" + std::string(key), stored_value);
  }
}

void RowSetDigest::AddCanonical(std::string_view key, std::string_view canonical_value) {
  Sha256 h;
  h.Update(Be64(key.size()));
  h.Update(key);
  h.Update(Be64(canonical_value.size()));
  h.Update(canonical_value);
  const Digest d = h.Finish();
  std::uint64_t carry = 0;
  for (int limb = 0; limb < 4; ++limb) {
    std::uint64_t v = 0;
    for (int b = 0; b < 8; ++b) v |= std::uint64_t{d[limb * 8 + b]} << (8 * b);
    const std::uint64_t partial = sum_[limb] + v;
    const std::uint64_t total = partial + carry;
    carry = (partial < v || total < partial) ? 1 : 0;
    sum_[limb] = total;
  }
  ++rows_;
}

Digest RowSetDigest::Finish() const {
  Sha256 h;
  for (std::uint64_t limb : sum_) h.Update(Be64(limb));
  h.Update(Be64(rows_));
  return h.Finish();
}

namespace {

// Every row of the state, its value encoded by `enc` (the stored bytes or
// the canonical encoding: the same rows, two encodings).
template <class Enc>
void EmitState(const State& state, const Enc& enc,
               const std::function<void(std::string&& key, std::string&& value)>& emit) {
  emit("s", enc.Head(state.seq, state.at));
  for (const auto& [type, ts] : state.types) {
    for (const auto& [version, r] : ts.versions) emit(VersionKey(type, version), enc.Record(r));
    if (!ts.production.empty()) emit("p/" + type, enc.Version(ts.production));
    for (const PromotionRecord& h : ts.history) emit(HistoryKey(type, h.seq), enc.Record(h));
    for (const ProductionChange& c : ts.timeline) {
      emit(TimelineKey(type, c.at, c.seq), enc.Version(c.version));
    }
    for (const auto& [id, c] : ts.consumers) emit(ConsumerKey(type, id), enc.Record(c));
  }
  for (const PolicyRecord& p : state.policies) emit(PolicyKey(p.seq), enc.Record(p));
}

struct StoredEncoding {
  std::string Head(Seq seq, TimeNs at) const { return EncodeHeadRow(seq, at); }
  std::string Version(const std::string& v) const { return EncodeTypeRow(v); }
  std::string Record(const VersionRecord& r) const { return EncodeVersionRow(r); }
  std::string Record(const PromotionRecord& p) const { return EncodeHistoryRow(p); }
  std::string Record(const ConsumerRecord& c) const { return EncodeConsumerRow(c); }
  std::string Record(const PolicyRecord& p) const { return EncodePolicyRow(p); }
};

struct CanonicalEncoding {
  std::string Head(Seq seq, TimeNs at) const { return CanonicalHead(seq, at); }
  std::string Version(const std::string& v) const { return CanonicalString(v); }
  template <class R>
  std::string Record(const R& r) const {
    return CanonicalValue(r);
  }
};

void HashRow(Sha256& h, std::string_view key, std::string_view canonical_value) {
  h.Update(Be64(key.size()));
  h.Update(key);
  h.Update(Be64(canonical_value.size()));
  h.Update(canonical_value);
}

}  // namespace

void EncodeState(const State& state,
                 const std::function<void(std::string&& key, std::string&& value)>& emit) {
  EmitState(state, StoredEncoding{}, emit);
}

Rows EncodeState(const State& state) {
  Rows rows;
  EncodeState(state, [&rows](std::string&& key, std::string&& value) {
    rows.emplace_back(std::move(key), std::move(value));
  });
  std::sort(rows.begin(), rows.end());
  return rows;
}

Result<State> DecodeState(const Rows& rows) {
  State state;
  std::vector<PromotionRecord> history;
  std::vector<std::pair<std::string, ProductionChange>> timeline;
  for (const auto& [key, value] : rows) {
    if (IsIndexRow(key)) continue;
    if (key == "s") {
      auto head = DecodeHeadRow(value);
      if (!head) return Err(head.error());
      state.seq = head->first;
      state.at = head->second;
    } else if (key.rfind("v/", 0) == 0) {
      auto r = DecodeVersionRow(value);
      if (!r) return Err(r.error());
      state.types[r->model_type].versions[r->version] = std::move(*r);
    } else if (key.rfind("p/", 0) == 0) {
      auto v = DecodeTypeRow(value);
      if (!v) return Err(v.error());
      state.types[key.substr(2)].production = std::move(*v);
    } else if (key.rfind("c/", 0) == 0) {
      const std::size_t slash = key.find('/', 2);
      if (slash == std::string::npos) {
        return Err(Status::Corruption("projection consumer row is malformed"));
      }
      auto c = DecodeConsumerRow(value);
      if (!c) return Err(c.error());
      state.types[key.substr(2, slash - 2)].consumers[c->consumer_id] = std::move(*c);
    } else if (key.rfind("h/", 0) == 0) {
      auto h = DecodeHistoryRow(value);
      if (!h) return Err(h.error());
      history.push_back(std::move(*h));
    } else if (key.rfind(kPolicyPrefix, 0) == 0) {
      auto g = DecodePolicyRow(value);
      if (!g) return Err(g.error());
      state.policies.push_back(std::move(*g));
    } else if (key.rfind("t/", 0) == 0 && key.size() > 18) {
      const std::string type = key.substr(2, key.size() - 2 - 17);
      ProductionChange c;
      auto parsed = ParseTimelineRow(type, key, value, &c);
      if (!parsed) return Err(parsed.error());
      if (!*parsed) return Err(Status::Corruption("projection timeline row is malformed"));
      timeline.emplace_back(type, std::move(c));
    } else {
      return Err(Status::Corruption("projection row with unknown key '" + key + "'"));
    }
  }
  std::sort(history.begin(), history.end(),
            [](const PromotionRecord& a, const PromotionRecord& b) { return a.seq < b.seq; });
  for (auto& h : history) state.types[h.model_type].history.push_back(std::move(h));
  std::sort(state.policies.begin(), state.policies.end(),
            [](const PolicyRecord& a, const PolicyRecord& b) { return a.seq < b.seq; });
  std::sort(timeline.begin(), timeline.end(),
            [](const auto& a, const auto& b) { return a.second.seq < b.second.seq; });
  for (auto& [type, c] : timeline) state.types[type].timeline.push_back(std::move(c));
  return state;
}

void RowsDigester::Add(std::string_view key, std::string_view stored_value) {
  if (IsIndexRow(key)) return;
  auto canonical = CanonicalFromStored(key, stored_value);
  if (canonical) {
    HashRow(h_, key, *canonical);
  } else {
    HashRow(h_, "!undecodable:" + std::string(key), stored_value);
  }
}

Digest RowsDigester::Finish() { return h_.Finish(); }

Digest RowsDigest(Rows rows) {
  std::sort(rows.begin(), rows.end());
  RowsDigester d;
  for (const auto& [key, value] : rows) d.Add(key, value);
  return d.Finish();
}

Digest StateDigest(const State& state) {
  Rows rows;
  EmitState(state, CanonicalEncoding{}, [&rows](std::string&& key, std::string&& value) {
    rows.emplace_back(std::move(key), std::move(value));
  });
  std::sort(rows.begin(), rows.end());
  Sha256 h;
  for (const auto& [key, value] : rows) HashRow(h, key, value);
  return h.Finish();
}

}  // namespace modelreg::projection
