// The stored bytes of the projection rows: FlatBuffers tables
// (schemas/projection.fbs), one per row. Every row read back passes the
// Verifier first; a row that does not is reported as corrupt, never read.
// These bytes are storage only: the state digest is defined over the
// canonical encoding (canonical.cc), not over them.
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "projection/state.h"
#include "projection_generated.h"

namespace modelreg::projection {

namespace {

namespace fbr = modelreg::rows;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

// One builder per thread, reused: its buffer keeps its capacity, so a
// rebuild does not allocate per row.
FlatBufferBuilder& Builder() {
  thread_local FlatBufferBuilder fbb(1024);
  fbb.Clear();
  return fbb;
}

std::string Finish(FlatBufferBuilder& fbb) {
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

Offset<flatbuffers::String> Str(FlatBufferBuilder& fbb, const std::string& s) {
  return fbb.CreateString(s);
}

std::string Text(const flatbuffers::String* s) { return s == nullptr ? std::string() : s->str(); }

Offset<flatbuffers::Vector<Offset<fbr::Pair>>> Pairs(
    FlatBufferBuilder& fbb, const std::map<std::string, std::string>& map) {
  std::vector<Offset<fbr::Pair>> items;
  items.reserve(map.size());
  for (const auto& [k, v] : map) {
    const auto key = Str(fbb, k);
    const auto value = Str(fbb, v);
    items.push_back(fbr::CreatePair(fbb, key, value));
  }
  return fbb.CreateVector(items);
}

Offset<flatbuffers::Vector<Offset<fbr::Metric>>> Metrics(FlatBufferBuilder& fbb,
                                                         const std::map<std::string, double>& map) {
  std::vector<Offset<fbr::Metric>> items;
  items.reserve(map.size());
  for (const auto& [k, v] : map) {
    const auto name = Str(fbb, k);
    // A value equal to the default is normally left out, and -0.0 == 0.0:
    // stored always, so that its sign (and its digest) survives.
    fbb.ForceDefaults(true);
    items.push_back(fbr::CreateMetric(fbb, name, v));
    fbb.ForceDefaults(false);
  }
  return fbb.CreateVector(items);
}

Offset<fbr::Annotations> AnnotationsTable(FlatBufferBuilder& fbb, const Annotations& a) {
  const auto tags = Pairs(fbb, a.tags);
  const auto description = Str(fbb, a.description);
  std::vector<Offset<fbr::LateMetric>> metrics;
  metrics.reserve(a.metrics.size());
  for (const auto& [name, m] : a.metrics) {
    const auto n = Str(fbb, name);
    const auto source = Str(fbb, m.source);
    const auto actor = Str(fbb, m.actor);
    fbr::LateMetricBuilder b(fbb);
    b.add_name(n);
    fbb.ForceDefaults(true);  // the sign of -0.0 (Metrics above)
    b.add_value(m.value);
    fbb.ForceDefaults(false);
    b.add_source(source);
    b.add_actor(actor);
    b.add_at(m.at);
    b.add_seq(m.seq);
    metrics.push_back(b.Finish());
  }
  const auto metric_vec = fbb.CreateVector(metrics);
  fbr::AnnotationsBuilder b(fbb);
  b.add_tags(tags);
  b.add_description(description);
  b.add_metrics(metric_vec);
  b.add_seq(a.seq);
  return b.Finish();
}

// The row's bytes copied to 8-byte-aligned storage (RocksDB values are not
// aligned; the Verifier and the accessors expect them to be), verified as a
// T. nullptr if they are not one.
template <class T>
class Verified {
 public:
  explicit Verified(std::string_view bytes) {
    if (bytes.size() < 8 || bytes.size() > kMaxRowBytes) return;
    storage_.resize((bytes.size() + 7) / 8);
    std::memcpy(storage_.data(), bytes.data(), bytes.size());
    const auto* data = reinterpret_cast<const std::uint8_t*>(storage_.data());
    flatbuffers::Verifier verifier(data, bytes.size(), /*max_depth=*/8,
                                   /*max_tables=*/1000000);
    if (verifier.VerifyBuffer<T>(nullptr)) root_ = flatbuffers::GetRoot<T>(data);
  }
  const T* get() const { return root_; }

 private:
  std::vector<std::uint64_t> storage_;
  const T* root_ = nullptr;
};

Status Malformed(std::string_view what) {
  return Status::Corruption("projection " + std::string(what) +
                            " row is malformed (fails FlatBuffers verification)");
}

}  // namespace

std::string EncodeVersionRow(const VersionRecord& r) {
  FlatBufferBuilder& fbb = Builder();
  const auto model_type = Str(fbb, r.model_type);
  const auto version = Str(fbb, r.version);
  const auto model_id = Str(fbb, r.model_id);
  const auto registered_by = Str(fbb, r.registered_by);
  const auto artifact_name = Str(fbb, r.artifact_name);
  const auto artifact_sha256 = Str(fbb, r.artifact_sha256);
  const auto metrics = Metrics(fbb, r.metrics);
  const auto datasets = Pairs(fbb, r.dataset_version_ids);
  const auto snapshot_id = Str(fbb, r.snapshot_id);
  const auto config_hash = Str(fbb, r.config_hash);
  const auto status_by = Str(fbb, r.status_by);
  const auto status_reason = Str(fbb, r.status_reason);
  const auto validation_detail = Str(fbb, r.validation_detail);
  Offset<fbr::Annotations> annotations;
  if (!r.annotations.empty()) annotations = AnnotationsTable(fbb, r.annotations);
  fbr::VersionRowBuilder b(fbb);
  b.add_model_type(model_type);
  b.add_version(version);
  b.add_model_id(model_id);
  b.add_status(static_cast<fbr::ModelStatus>(r.status));
  b.add_registered_seq(r.registered_seq);
  b.add_registered_at(r.registered_at);
  b.add_registered_by(registered_by);
  b.add_artifact_kind(r.artifact_kind == ArtifactKind::kDirectory ? fbr::ArtifactKind::Directory
                                                                  : fbr::ArtifactKind::File);
  b.add_artifact_name(artifact_name);
  b.add_artifact_size(r.artifact_size);
  b.add_artifact_sha256(artifact_sha256);
  b.add_metrics(metrics);
  b.add_dataset_version_ids(datasets);
  b.add_snapshot_id(snapshot_id);
  b.add_config_hash(config_hash);
  b.add_status_seq(r.status_seq);
  b.add_status_at(r.status_at);
  b.add_status_by(status_by);
  b.add_status_reason(status_reason);
  b.add_promoted_at(r.promoted_at);
  b.add_demoted_at(r.demoted_at);
  b.add_validated_seq(r.validated_seq);
  b.add_validation_ok(r.validation_ok);
  b.add_validation_detail(validation_detail);
  b.add_purged(r.purged);
  if (!r.annotations.empty()) b.add_annotations(annotations);
  fbb.Finish(b.Finish());
  return Finish(fbb);
}

Result<VersionRecord> DecodeVersionRow(std::string_view value) {
  Verified<fbr::VersionRow> row(value);
  const fbr::VersionRow* v = row.get();
  if (v == nullptr) return Err(Malformed("version record"));
  VersionRecord r;
  r.model_type = Text(v->model_type());
  r.version = Text(v->version());
  r.model_id = Text(v->model_id());
  const auto status = static_cast<unsigned>(v->status());
  if (status > static_cast<unsigned>(ModelStatus::kFailed)) {
    return Err(Status::Corruption("projection version record row has an unknown status (" +
                                  std::to_string(status) + ")"));
  }
  r.status = static_cast<ModelStatus>(status);
  r.registered_seq = v->registered_seq();
  r.registered_at = v->registered_at();
  r.registered_by = Text(v->registered_by());
  switch (v->artifact_kind()) {
    case fbr::ArtifactKind::File:
      r.artifact_kind = ArtifactKind::kFile;
      break;
    case fbr::ArtifactKind::Directory:
      r.artifact_kind = ArtifactKind::kDirectory;
      break;
    default:
      return Err(Status::Corruption("projection version record row has an unknown artifact kind"));
  }
  r.artifact_name = Text(v->artifact_name());
  r.artifact_size = v->artifact_size();
  r.artifact_sha256 = Text(v->artifact_sha256());
  if (const auto* m = v->metrics()) {
    for (const fbr::Metric* x : *m) r.metrics[Text(x->name())] = x->value();
  }
  if (const auto* d = v->dataset_version_ids()) {
    for (const fbr::Pair* x : *d) r.dataset_version_ids[Text(x->key())] = Text(x->value());
  }
  r.snapshot_id = Text(v->snapshot_id());
  r.config_hash = Text(v->config_hash());
  r.status_seq = v->status_seq();
  r.status_at = v->status_at();
  r.status_by = Text(v->status_by());
  r.status_reason = Text(v->status_reason());
  r.promoted_at = v->promoted_at();
  r.demoted_at = v->demoted_at();
  r.validated_seq = v->validated_seq();
  r.validation_ok = v->validation_ok();
  r.validation_detail = Text(v->validation_detail());
  r.purged = v->purged();
  if (const fbr::Annotations* a = v->annotations()) {
    if (a->seq() == 0) {
      return Err(Status::Corruption("projection version record row has annotations without an "
                                    "event"));
    }
    r.annotations.seq = a->seq();
    r.annotations.description = Text(a->description());
    if (const auto* tags = a->tags()) {
      for (const fbr::Pair* x : *tags) r.annotations.tags[Text(x->key())] = Text(x->value());
    }
    if (const auto* metrics = a->metrics()) {
      for (const fbr::LateMetric* x : *metrics) {
        r.annotations.metrics[Text(x->name())] =
            LateMetric{x->value(), Text(x->source()), Text(x->actor()), x->at(), x->seq()};
      }
    }
  }
  return r;
}

std::string EncodeHistoryRow(const PromotionRecord& p) {
  FlatBufferBuilder& fbb = Builder();
  const auto actor = Str(fbb, p.actor);
  const auto model_type = Str(fbb, p.model_type);
  const auto version = Str(fbb, p.version);
  const auto replaced_version = Str(fbb, p.replaced_version);
  const auto replaced_status = Str(fbb, p.replaced_status);
  const auto reason = Str(fbb, p.reason);
  const auto override_reason = Str(fbb, p.override_reason);
  fbr::PromotionRowBuilder b(fbb);
  b.add_seq(p.seq);
  b.add_at(p.at);
  b.add_actor(actor);
  b.add_model_type(model_type);
  b.add_version(version);
  b.add_replaced_version(replaced_version);
  b.add_replaced_status(replaced_status);
  b.add_rollback(p.rollback);
  b.add_gates_overridden(p.gates_overridden);
  b.add_reason(reason);
  b.add_override_reason(override_reason);
  b.add_gates_passed(p.gates_passed);
  b.add_gates_total(p.gates_total);
  fbb.Finish(b.Finish());
  return Finish(fbb);
}

Result<PromotionRecord> DecodeHistoryRow(std::string_view value) {
  Verified<fbr::PromotionRow> row(value);
  const fbr::PromotionRow* h = row.get();
  if (h == nullptr) return Err(Malformed("promotion history"));
  PromotionRecord p;
  p.seq = h->seq();
  p.at = h->at();
  p.actor = Text(h->actor());
  p.model_type = Text(h->model_type());
  p.version = Text(h->version());
  p.replaced_version = Text(h->replaced_version());
  p.replaced_status = Text(h->replaced_status());
  p.rollback = h->rollback();
  p.gates_overridden = h->gates_overridden();
  p.reason = Text(h->reason());
  p.override_reason = Text(h->override_reason());
  p.gates_passed = h->gates_passed();
  p.gates_total = h->gates_total();
  return p;
}

std::string EncodePolicyRow(const PolicyRecord& p) {
  FlatBufferBuilder& fbb = Builder();
  const auto actor = Str(fbb, p.actor);
  const auto reason = Str(fbb, p.reason);
  const auto source = Str(fbb, p.source);
  const auto sha256 = Str(fbb, p.sha256);
  const auto text = Str(fbb, p.text);
  fbr::PolicyRowBuilder b(fbb);
  b.add_seq(p.seq);
  b.add_at(p.at);
  b.add_actor(actor);
  b.add_reason(reason);
  b.add_source(source);
  b.add_sha256(sha256);
  b.add_text(text);
  fbb.Finish(b.Finish());
  return Finish(fbb);
}

Result<PolicyRecord> DecodePolicyRow(std::string_view value) {
  Verified<fbr::PolicyRow> row(value);
  const fbr::PolicyRow* g = row.get();
  if (g == nullptr) return Err(Malformed("gate policy"));
  PolicyRecord p;
  p.seq = g->seq();
  p.at = g->at();
  p.actor = Text(g->actor());
  p.reason = Text(g->reason());
  p.source = Text(g->source());
  p.sha256 = Text(g->sha256());
  p.text = Text(g->text());
  return p;
}

std::string EncodeConsumerRow(const ConsumerRecord& c) {
  FlatBufferBuilder& fbb = Builder();
  const auto consumer_id = Str(fbb, c.consumer_id);
  const auto version = Str(fbb, c.version);
  const auto attempted = Str(fbb, c.attempted_version);
  const auto detail = Str(fbb, c.detail);
  fbr::ConsumerRowBuilder b(fbb);
  b.add_consumer_id(consumer_id);
  b.add_version(version);
  b.add_ok(c.ok);
  b.add_attempted_version(attempted);
  b.add_detail(detail);
  b.add_seq(c.seq);
  b.add_at(c.at);
  fbb.Finish(b.Finish());
  return Finish(fbb);
}

Result<ConsumerRecord> DecodeConsumerRow(std::string_view value) {
  Verified<fbr::ConsumerRow> row(value);
  const fbr::ConsumerRow* r = row.get();
  if (r == nullptr) return Err(Malformed("consumer"));
  ConsumerRecord c;
  c.consumer_id = Text(r->consumer_id());
  c.version = Text(r->version());
  c.ok = r->ok();
  c.attempted_version = Text(r->attempted_version());
  c.detail = Text(r->detail());
  c.seq = r->seq();
  c.at = r->at();
  return c;
}

std::string EncodeTypeRow(const std::string& version) {
  FlatBufferBuilder& fbb = Builder();
  const auto v = Str(fbb, version);
  fbr::TypeRowBuilder b(fbb);
  b.add_version(v);
  fbb.Finish(b.Finish());
  return Finish(fbb);
}

Result<std::string> DecodeTypeRow(std::string_view value) {
  Verified<fbr::TypeRow> row(value);
  if (row.get() == nullptr) return Err(Malformed("production"));
  return Text(row.get()->version());
}

std::string EncodeHeadRow(Seq seq, TimeNs at) {
  FlatBufferBuilder& fbb = Builder();
  fbr::HeadBuilder b(fbb);
  b.add_seq(seq);
  b.add_at(at);
  fbb.Finish(b.Finish());
  return Finish(fbb);
}

Result<std::pair<Seq, TimeNs>> DecodeHeadRow(std::string_view value) {
  Verified<fbr::Head> row(value);
  if (row.get() == nullptr) return Err(Malformed("head (\"s\")"));
  return std::make_pair(Seq{row.get()->seq()}, TimeNs{row.get()->at()});
}

}  // namespace modelreg::projection
