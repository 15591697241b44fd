// The projection: the registry's state as a pure fold over real events
// appended to a real log (so that sequence numbers, times and hashes are
// the store's).
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"
#include "projection/state.h"
#include "projection_generated.h"
#include "support/temp_dir.h"

namespace modelreg::projection {
namespace {

constexpr TimeNs kT0 = 1'736'933'400'000'000'000LL;  // 2025-01-15T09:30:00Z
constexpr TimeNs kSec = 1'000'000'000LL;
constexpr char kRisk[] = "risk_model";
constexpr char kAlpha[] = "alpha_weights";

Envelope Env(const std::string& id) { return Envelope{"tester", id, 0}; }

std::string RegDraft(const std::string& type, const std::string& version, std::uint64_t seed) {
  const std::string id = NewEventId();
  return events::Draft(Env(id), events::SampleRegistration(type, version, seed));
}

std::string PromoteDraft(const std::string& type, const std::string& version,
                         const std::string& replaced = "", const std::string& reason = "") {
  events::Promotion p;
  p.model_type = type;
  p.version = version;
  p.replaced_version = replaced;
  p.reason = reason;
  const std::string id = NewEventId();
  return events::Draft(Env(id), p);
}

std::string ArchiveDraft(const std::string& type, const std::string& version,
                         const std::string& reason = "") {
  const std::string id = NewEventId();
  return events::Draft(Env(id), events::Archive{type, version, reason});
}

std::string FailDraft(const std::string& type, const std::string& version,
                      const std::string& reason = "broken") {
  const std::string id = NewEventId();
  return events::Draft(Env(id), events::Failure{type, version, reason});
}

std::string RollbackDraft(const std::string& type, const std::string& from, const std::string& to,
                          bool fail, const std::string& reason = "bad numbers") {
  const std::string id = NewEventId();
  return events::Draft(Env(id), events::Rollback{type, from, to, fail, reason});
}

std::string ValidateDraft(const std::string& type, const std::string& version, bool ok,
                          const std::string& detail = "") {
  events::Validation v;
  v.model_type = type;
  v.version = version;
  v.ok = ok;
  v.expected_sha256 = Sha256::Of("x");
  v.observed_sha256 = ok ? v.expected_sha256 : Sha256::Of("y");
  v.observed_size = 10;
  v.detail = detail;
  const std::string id = NewEventId();
  return events::Draft(Env(id), v);
}

std::string PurgeDraft(const std::string& type, const std::string& version) {
  events::Purge p;
  p.model_type = type;
  p.version = version;
  p.bytes_freed = 100;
  p.reason = "space";
  const std::string id = NewEventId();
  return events::Draft(Env(id), p);
}

// Applies rows the way the registry persists them: a "p/<type>" row with
// an empty value deletes the key.
void ApplyRows(std::map<std::string, std::string>& table, const Rows& rows) {
  for (const auto& [key, value] : rows) {
    if (key.rfind("p/", 0) == 0 && value.empty()) {
      table.erase(key);
    } else {
      table[key] = value;
    }
  }
}

Rows ToRows(const std::map<std::string, std::string>& table) {
  return Rows(table.begin(), table.end());
}

class ProjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions o;
    o.clock = &clock_;
    auto s = EventStore::Open(dir_.sub("log"), o);
    ASSERT_TRUE(s) << s.error().ToString();
    store_ = std::move(*s);
  }

  // Appends a draft one second after the previous one; returns its seq.
  Seq Append(const std::string& draft) {
    clock_.Advance(kSec);
    auto r = store_->Append({draft, std::nullopt, nullptr});
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? r->seq : 0;
  }

  std::vector<EventBuffer> Events(Seq from = 1, Seq to = ~Seq{0}) {
    std::vector<EventBuffer> out;
    Status st = store_->Scan(from, to, [&](Seq, const EventBuffer& e) {
      out.push_back(e);
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }

  State Fold(Seq to = ~Seq{0}) {
    State s;
    for (const EventBuffer& e : Events(1, to)) {
      Status st = Apply(s, e);
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    return s;
  }

  TimeNs TimeOf(Seq seq) { return kT0 + static_cast<TimeNs>(seq) * kSec; }

  // A log that exercises every payload type over two model types.
  void AppendVariedLog() {
    Append(RegDraft(kRisk, "v1.0.0", 1));            // 1
    Append(RegDraft(kRisk, "v1.1.0", 2));            // 2
    Append(RegDraft(kRisk, "v2.0.0", 3));            // 3
    Append(RegDraft(kAlpha, "v0.1.0", 4));           // 4
    Append(PromoteDraft(kRisk, "v1.0.0"));           // 5
    Append(PromoteDraft(kRisk, "v1.1.0", "v1.0.0"));  // 6
    Append(ValidateDraft(kRisk, "v1.1.0", true));    // 7
    Append(PromoteDraft(kAlpha, "v0.1.0"));          // 8
    Append(RollbackDraft(kRisk, "v1.1.0", "v1.0.0", true));  // 9
    Append(ArchiveDraft(kRisk, "v2.0.0", "superseded"));     // 10
    Append(PromoteDraft(kRisk, "v2.0.0", "v1.0.0"));          // 11
    Append(FailDraft(kAlpha, "v0.1.0", "drifted"));           // 12
    Append(ValidateDraft(kRisk, "v1.0.0", false, "sha256 mismatch"));  // 13
    Append(PurgeDraft(kRisk, "v1.1.0"));                      // 14
    Append(PromoteDraft(kRisk, "v9.9.9"));                    // 15: unknown, skipped
  }

  testing::TempDir dir_;
  ManualClock clock_{kT0};
  std::unique_ptr<EventStore> store_;
};

TEST_F(ProjectionTest, EmptyLogIsEmptyState) {
  const State s = Fold();
  EXPECT_EQ(s.seq, 0u);
  EXPECT_EQ(s.at, 0);
  EXPECT_TRUE(s.types.empty());
  const Rows rows = EncodeState(s);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].first, "s");
}

TEST_F(ProjectionTest, RegistrationIsStaged) {
  Append(RegDraft(kRisk, "v1.0.0", 7));
  const State s = Fold();
  EXPECT_EQ(s.seq, 1u);
  EXPECT_EQ(s.at, TimeOf(1));
  const VersionRecord* r = s.Find(kRisk, "v1.0.0");
  ASSERT_NE(r, nullptr);
  const events::Registration sample = events::SampleRegistration(kRisk, "v1.0.0", 7);
  EXPECT_EQ(r->status, ModelStatus::kStaged);
  EXPECT_EQ(r->model_type, kRisk);
  EXPECT_EQ(r->version, "v1.0.0");
  EXPECT_EQ(r->model_id, sample.model_id);
  EXPECT_EQ(r->registered_seq, 1u);
  EXPECT_EQ(r->registered_at, TimeOf(1));
  EXPECT_EQ(r->registered_by, "tester");
  EXPECT_EQ(r->status_seq, 1u);
  EXPECT_EQ(r->status_at, TimeOf(1));
  EXPECT_EQ(r->artifact_name, sample.artifact_name);
  EXPECT_EQ(r->artifact_size, sample.artifact_size);
  EXPECT_EQ(r->artifact_sha256, ToHex(sample.artifact_sha256));
  EXPECT_EQ(r->metrics, sample.metrics);
  EXPECT_EQ(r->dataset_version_ids, sample.dataset_version_ids);
  EXPECT_EQ(r->snapshot_id, sample.snapshot_id);
  EXPECT_EQ(r->config_hash, sample.config_hash);
  EXPECT_EQ(r->promoted_at, 0);
  EXPECT_EQ(r->demoted_at, 0);
  EXPECT_FALSE(r->purged);
  EXPECT_EQ(s.types.at(kRisk).production, "");
  EXPECT_TRUE(s.types.at(kRisk).history.empty());
  EXPECT_EQ(s.Find(kRisk, "v1.0.1"), nullptr);
  EXPECT_EQ(s.Find(kAlpha, "v1.0.0"), nullptr);
}

TEST_F(ProjectionTest, FirstRegistrationWins) {
  Append(RegDraft(kRisk, "v1.0.0", 1));
  Append(RegDraft(kRisk, "v1.0.0", 2));
  const State s = Fold();
  EXPECT_EQ(s.seq, 2u);
  const VersionRecord* r = s.Find(kRisk, "v1.0.0");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->registered_seq, 1u);
  EXPECT_EQ(r->artifact_sha256, ToHex(events::SampleRegistration(kRisk, "v1.0.0", 1).artifact_sha256));
}

TEST_F(ProjectionTest, PromotionDemotesPreviousProductionAndRecordsHistory) {
  Append(RegDraft(kRisk, "v1.0.0", 1));                       // 1
  Append(RegDraft(kRisk, "v2.0.0", 2));                       // 2
  Append(PromoteDraft(kRisk, "v1.0.0", "", "first"));          // 3
  {
    const State s = Fold();
    EXPECT_EQ(s.types.at(kRisk).production, "v1.0.0");
    EXPECT_EQ(s.Find(kRisk, "v1.0.0")->status, ModelStatus::kProduction);
    EXPECT_EQ(s.Find(kRisk, "v1.0.0")->promoted_at, TimeOf(3));
    EXPECT_EQ(s.Find(kRisk, "v2.0.0")->status, ModelStatus::kStaged);
  }
  Append(PromoteDraft(kRisk, "v2.0.0", "v1.0.0", "better"));  // 4
  const State s = Fold();
  const TypeState& ts = s.types.at(kRisk);
  EXPECT_EQ(ts.production, "v2.0.0");
  const VersionRecord* v1 = s.Find(kRisk, "v1.0.0");
  const VersionRecord* v2 = s.Find(kRisk, "v2.0.0");
  EXPECT_EQ(v1->status, ModelStatus::kArchived);
  EXPECT_EQ(v1->status_seq, 4u);
  EXPECT_EQ(v1->status_reason, "replaced by v2.0.0");
  EXPECT_EQ(v1->promoted_at, TimeOf(3));
  EXPECT_EQ(v1->demoted_at, TimeOf(4));
  EXPECT_EQ(v2->status, ModelStatus::kProduction);
  EXPECT_EQ(v2->status_reason, "better");
  EXPECT_EQ(v2->promoted_at, TimeOf(4));
  EXPECT_EQ(v2->demoted_at, 0);

  ASSERT_EQ(ts.history.size(), 2u);
  EXPECT_EQ(ts.history[0].seq, 3u);
  EXPECT_EQ(ts.history[0].at, TimeOf(3));
  EXPECT_EQ(ts.history[0].version, "v1.0.0");
  EXPECT_EQ(ts.history[0].replaced_version, "");
  EXPECT_EQ(ts.history[0].replaced_status, "");
  EXPECT_EQ(ts.history[0].reason, "first");
  EXPECT_FALSE(ts.history[0].rollback);
  EXPECT_EQ(ts.history[1].seq, 4u);
  EXPECT_EQ(ts.history[1].actor, "tester");
  EXPECT_EQ(ts.history[1].model_type, kRisk);
  EXPECT_EQ(ts.history[1].version, "v2.0.0");
  EXPECT_EQ(ts.history[1].replaced_version, "v1.0.0");
  EXPECT_EQ(ts.history[1].replaced_status, "archived");
  EXPECT_FALSE(ts.history[1].rollback);

  // Exactly one production record.
  int production = 0;
  for (const auto& [v, r] : ts.versions) production += r.status == ModelStatus::kProduction;
  EXPECT_EQ(production, 1);
}

TEST_F(ProjectionTest, PromotionOfOneTypeLeavesOthersAlone) {
  Append(RegDraft(kRisk, "v1.0.0", 1));
  Append(RegDraft(kAlpha, "v1.0.0", 2));
  Append(PromoteDraft(kRisk, "v1.0.0"));
  Append(PromoteDraft(kAlpha, "v1.0.0"));
  const State s = Fold();
  EXPECT_EQ(s.types.at(kRisk).production, "v1.0.0");
  EXPECT_EQ(s.types.at(kAlpha).production, "v1.0.0");
  EXPECT_EQ(s.Find(kRisk, "v1.0.0")->status, ModelStatus::kProduction);
  EXPECT_EQ(s.Find(kAlpha, "v1.0.0")->status, ModelStatus::kProduction);
  ASSERT_EQ(s.types.at(kAlpha).history.size(), 1u);
  EXPECT_EQ(s.types.at(kAlpha).history[0].replaced_version, "");
}

TEST_F(ProjectionTest, RollbackWithCurrentFailed) {
  Append(RegDraft(kRisk, "v1.0.0", 1));                             // 1
  Append(RegDraft(kRisk, "v2.0.0", 2));                             // 2
  Append(PromoteDraft(kRisk, "v1.0.0"));                            // 3
  Append(PromoteDraft(kRisk, "v2.0.0", "v1.0.0"));                  // 4
  Append(RollbackDraft(kRisk, "v2.0.0", "v1.0.0", true, "ic fell"));  // 5
  const State s = Fold();
  const TypeState& ts = s.types.at(kRisk);
  EXPECT_EQ(ts.production, "v1.0.0");
  const VersionRecord* v1 = s.Find(kRisk, "v1.0.0");
  const VersionRecord* v2 = s.Find(kRisk, "v2.0.0");
  EXPECT_EQ(v1->status, ModelStatus::kProduction);
  EXPECT_EQ(v1->status_reason, "rollback: ic fell");
  EXPECT_EQ(v1->promoted_at, TimeOf(5));
  EXPECT_EQ(v2->status, ModelStatus::kFailed);
  EXPECT_EQ(v2->status_reason, "ic fell");
  EXPECT_EQ(v2->status_seq, 5u);
  EXPECT_EQ(v2->demoted_at, TimeOf(5));
  ASSERT_EQ(ts.history.size(), 3u);
  const PromotionRecord& h = ts.history[2];
  EXPECT_EQ(h.seq, 5u);
  EXPECT_TRUE(h.rollback);
  EXPECT_EQ(h.version, "v1.0.0");
  EXPECT_EQ(h.replaced_version, "v2.0.0");
  EXPECT_EQ(h.replaced_status, "failed");
  EXPECT_EQ(h.reason, "ic fell");
}

TEST_F(ProjectionTest, RollbackWithoutFailArchivesTheCurrent) {
  Append(RegDraft(kRisk, "v1.0.0", 1));
  Append(RegDraft(kRisk, "v2.0.0", 2));
  Append(PromoteDraft(kRisk, "v1.0.0"));
  Append(PromoteDraft(kRisk, "v2.0.0", "v1.0.0"));
  Append(RollbackDraft(kRisk, "v2.0.0", "v1.0.0", false));
  const State s = Fold();
  EXPECT_EQ(s.types.at(kRisk).production, "v1.0.0");
  EXPECT_EQ(s.Find(kRisk, "v2.0.0")->status, ModelStatus::kArchived);
  EXPECT_EQ(s.types.at(kRisk).history.back().replaced_status, "archived");
  EXPECT_TRUE(s.types.at(kRisk).history.back().rollback);
}

TEST_F(ProjectionTest, ArchiveOrFailOfProductionClearsProduction) {
  Append(RegDraft(kRisk, "v1.0.0", 1));   // 1
  Append(RegDraft(kAlpha, "v1.0.0", 2));  // 2
  Append(PromoteDraft(kRisk, "v1.0.0"));  // 3
  Append(PromoteDraft(kAlpha, "v1.0.0"));  // 4
  Append(ArchiveDraft(kRisk, "v1.0.0", "retired"));  // 5
  Append(FailDraft(kAlpha, "v1.0.0", "broken"));     // 6
  const State s = Fold();
  EXPECT_EQ(s.types.at(kRisk).production, "");
  EXPECT_EQ(s.types.at(kAlpha).production, "");
  EXPECT_EQ(s.Find(kRisk, "v1.0.0")->status, ModelStatus::kArchived);
  EXPECT_EQ(s.Find(kRisk, "v1.0.0")->demoted_at, TimeOf(5));
  EXPECT_EQ(s.Find(kRisk, "v1.0.0")->status_reason, "retired");
  EXPECT_EQ(s.Find(kAlpha, "v1.0.0")->status, ModelStatus::kFailed);
  EXPECT_EQ(s.Find(kAlpha, "v1.0.0")->demoted_at, TimeOf(6));
  // No "p/" rows remain.
  for (const auto& [key, value] : EncodeState(s)) EXPECT_NE(key.rfind("p/", 0), 0u) << key;
  // A new promotion after that replaces nothing.
  Append(RegDraft(kRisk, "v2.0.0", 3));
  Append(PromoteDraft(kRisk, "v2.0.0"));
  const State s2 = Fold();
  EXPECT_EQ(s2.types.at(kRisk).production, "v2.0.0");
  EXPECT_EQ(s2.types.at(kRisk).history.back().replaced_version, "");
  EXPECT_EQ(s2.Find(kRisk, "v1.0.0")->status, ModelStatus::kArchived);
}

TEST_F(ProjectionTest, ArchiveOrFailOfANonProductionVersionKeepsProduction) {
  Append(RegDraft(kRisk, "v1.0.0", 1));
  Append(RegDraft(kRisk, "v2.0.0", 2));
  Append(RegDraft(kRisk, "v3.0.0", 3));
  Append(PromoteDraft(kRisk, "v1.0.0"));
  Append(ArchiveDraft(kRisk, "v2.0.0"));
  Append(FailDraft(kRisk, "v3.0.0"));
  const State s = Fold();
  EXPECT_EQ(s.types.at(kRisk).production, "v1.0.0");
  EXPECT_EQ(s.Find(kRisk, "v2.0.0")->status, ModelStatus::kArchived);
  EXPECT_EQ(s.Find(kRisk, "v3.0.0")->status, ModelStatus::kFailed);
  EXPECT_EQ(s.Find(kRisk, "v2.0.0")->demoted_at, 0);
}

TEST_F(ProjectionTest, ValidationAndPurgeAreRecorded) {
  Append(RegDraft(kRisk, "v1.0.0", 1));
  Append(ValidateDraft(kRisk, "v1.0.0", false, "sha256 differs"));
  Append(PurgeDraft(kRisk, "v1.0.0"));
  const State s = Fold();
  const VersionRecord* r = s.Find(kRisk, "v1.0.0");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->validated_seq, 2u);
  EXPECT_FALSE(r->validation_ok);
  EXPECT_EQ(r->validation_detail, "sha256 differs");
  EXPECT_TRUE(r->purged);
  EXPECT_EQ(r->status, ModelStatus::kStaged);  // neither changes the status
  EXPECT_EQ(r->status_seq, 1u);
}

std::string AnnotateDraft(const events::Annotation& a) {
  return events::Draft(Env(NewEventId()), a);
}

TEST_F(ProjectionTest, AnnotationsFoldTagsDescriptionAndLateMetrics) {
  Append(RegDraft(kRisk, "v1.0.0", 1));  // 1
  Append(RegDraft(kRisk, "v1.1.0", 2));  // 2
  const State registered = Fold();
  const std::map<std::string, double> registration_metrics =
      registered.Find(kRisk, "v1.0.0")->metrics;
  events::Annotation a;
  a.model_type = kRisk;
  a.version = "v1.0.0";
  a.set_tags = {{"desk", "eq"}, {"stage", "paper"}};
  a.description = "momentum";
  a.metrics = {{"hit_rate", 0.52}, {"sharpe", 9.5}};
  a.source = "paper-trading";
  a.reason = "first week";
  Append(AnnotateDraft(a));  // 3
  events::Annotation b;
  b.model_type = kRisk;
  b.version = "v1.0.0";
  b.removed_tags = {"stage", "never-set"};
  b.set_tags = {{"desk", "fx"}};
  b.description = "";
  b.metrics = {{"hit_rate", 0.56}};
  b.source = "live-shadow";
  b.reason = "second week";
  Append(AnnotateDraft(b));  // 4
  events::Annotation unknown = a;
  unknown.version = "v9.9.9";
  Append(AnnotateDraft(unknown));  // 5: skipped

  const State s = Fold();
  const VersionRecord* r = s.Find(kRisk, "v1.0.0");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->annotations.tags, (std::map<std::string, std::string>{{"desk", "fx"}}));
  EXPECT_EQ(r->annotations.description, "");
  EXPECT_EQ(r->annotations.seq, 4u);
  ASSERT_EQ(r->annotations.metrics.size(), 2u);
  EXPECT_EQ(r->annotations.metrics.at("hit_rate"),
            (LateMetric{0.56, "live-shadow", "tester", TimeOf(4), 4}));
  EXPECT_EQ(r->annotations.metrics.at("sharpe"),
            (LateMetric{9.5, "paper-trading", "tester", TimeOf(3), 3}));
  // The registration's metrics never change; gates see the late values.
  EXPECT_EQ(r->metrics, registration_metrics);
  std::map<std::string, double> effective = registration_metrics;
  effective["hit_rate"] = 0.56;
  effective["sharpe"] = 9.5;
  EXPECT_EQ(EffectiveMetrics(*r), effective);
  // Nothing else about the version changed: status, its time, validation.
  VersionRecord without = *r;
  without.annotations = Annotations{};
  EXPECT_EQ(without, *registered.Find(kRisk, "v1.0.0"));
  EXPECT_TRUE(s.Find(kRisk, "v1.1.0")->annotations.empty());
  EXPECT_EQ(s.Find(kRisk, "v9.9.9"), nullptr);

  // Rows: the annotated record carries its annotations, the other none;
  // both decode back to the same state.
  const Rows rows = EncodeState(s);
  int seen = 0;
  for (const auto& [key, value] : rows) {
    if (key == VersionKey(kRisk, "v1.0.0") || key == VersionKey(kRisk, "v1.1.0")) {
      auto row = DecodeVersionRow(value);
      ASSERT_TRUE(row) << row.error().ToString();
      EXPECT_EQ(row->annotations.empty(), key == VersionKey(kRisk, "v1.1.0")) << key;
      ++seen;
    }
  }
  EXPECT_EQ(seen, 2);
  auto decoded = DecodeState(rows);
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_EQ(*decoded->Find(kRisk, "v1.0.0"), *r);
  EXPECT_EQ(StateDigest(*decoded), StateDigest(s));
}

TEST_F(ProjectionTest, EventsNamingUnknownVersionsAreSkipped) {
  Append(RegDraft(kRisk, "v1.0.0", 1));  // 1
  Append(PromoteDraft(kRisk, "v1.0.0"));  // 2
  const State before = Fold();
  Append(PromoteDraft(kRisk, "v9.0.0", "v1.0.0"));           // 3
  Append(PromoteDraft(kAlpha, "v1.0.0"));                    // 4: unknown type
  Append(ArchiveDraft(kRisk, "v9.0.0"));                     // 5
  Append(FailDraft(kRisk, "v9.0.0"));                        // 6
  Append(RollbackDraft(kRisk, "v1.0.0", "v9.0.0", true));    // 7: unknown target
  Append(ValidateDraft(kRisk, "v9.0.0", false));             // 8
  Append(PurgeDraft(kRisk, "v9.0.0"));                       // 9
  Append(ArchiveDraft(kAlpha, "v1.0.0"));                    // 10
  const State after = Fold();
  EXPECT_EQ(after.seq, 10u);
  EXPECT_EQ(after.at, TimeOf(10));
  ASSERT_EQ(after.types.size(), 1u) << "an unknown type gained an entry";
  EXPECT_EQ(after.types.count(kAlpha), 0u);
  const TypeState& ts = after.types.at(kRisk);
  const TypeState& ts0 = before.types.at(kRisk);
  EXPECT_EQ(ts.production, "v1.0.0");
  EXPECT_EQ(ts.versions, ts0.versions);
  EXPECT_EQ(ts.history, ts0.history);
  EXPECT_EQ(after.Find(kRisk, "v9.0.0"), nullptr);

  // Same rows as the state before, apart from "s".
  Rows a = EncodeState(before), b = EncodeState(after);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].first == "s") continue;
    EXPECT_EQ(a[i], b[i]);
  }
}

TEST_F(ProjectionTest, RollbackFromAnUnknownVersionStillPromotesTheTarget) {
  Append(RegDraft(kRisk, "v1.0.0", 1));
  Append(RollbackDraft(kRisk, "v0.9.0", "v1.0.0", true));
  const State s = Fold();
  EXPECT_EQ(s.types.at(kRisk).production, "v1.0.0");
  ASSERT_EQ(s.types.at(kRisk).history.size(), 1u);
  EXPECT_EQ(s.types.at(kRisk).history[0].replaced_version, "");
  EXPECT_EQ(s.types.at(kRisk).history[0].replaced_status, "");
}

TEST_F(ProjectionTest, FoldIsDeterministicAndRoundTripsThroughRows) {
  AppendVariedLog();
  const State a = Fold();
  const State b = Fold();
  EXPECT_EQ(StateDigest(a), StateDigest(b));
  EXPECT_EQ(EncodeState(a), EncodeState(b));

  const Rows rows = EncodeState(a);
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  auto decoded = DecodeState(rows);
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_EQ(StateDigest(*decoded), StateDigest(a));
  EXPECT_EQ(decoded->seq, a.seq);
  EXPECT_EQ(decoded->at, a.at);
  ASSERT_EQ(decoded->types.size(), a.types.size());
  for (const auto& [type, ts] : a.types) {
    const TypeState& dt = decoded->types.at(type);
    EXPECT_EQ(dt.versions, ts.versions) << type;
    EXPECT_EQ(dt.production, ts.production) << type;
    EXPECT_EQ(dt.history, ts.history) << type;
  }
  // Row order does not matter to DecodeState.
  Rows reversed(rows.rbegin(), rows.rend());
  auto decoded2 = DecodeState(reversed);
  ASSERT_TRUE(decoded2);
  EXPECT_EQ(StateDigest(*decoded2), StateDigest(a));
  EXPECT_EQ(RowsDigest(reversed), StateDigest(a));

  // Spot checks of the varied log's final state.
  EXPECT_EQ(a.seq, 15u);
  EXPECT_EQ(a.types.at(kRisk).production, "v2.0.0");
  EXPECT_EQ(a.types.at(kAlpha).production, "");
  EXPECT_EQ(a.Find(kRisk, "v1.1.0")->status, ModelStatus::kFailed);
  EXPECT_TRUE(a.Find(kRisk, "v1.1.0")->purged);
  EXPECT_EQ(a.Find(kRisk, "v1.0.0")->status, ModelStatus::kArchived);
  EXPECT_EQ(a.Find(kAlpha, "v0.1.0")->status, ModelStatus::kFailed);

  // Every prefix digest differs from the next (each event changes "s").
  Digest prev = StateDigest(State{});
  for (Seq n = 1; n <= a.seq; ++n) {
    const Digest d = StateDigest(Fold(n));
    EXPECT_NE(d, prev) << n;
    prev = d;
  }
}

TEST_F(ProjectionTest, DeltaRowsAppliedIncrementallyEqualTheEncodedState) {
  AppendVariedLog();
  // A few more production changes through archive/fail of production.
  Append(ArchiveDraft(kRisk, "v2.0.0"));                 // 16: clears production
  Append(PromoteDraft(kRisk, "v1.0.0"));                 // 17
  Append(FailDraft(kRisk, "v1.0.0"));                    // 18: clears production
  Append(RegDraft(kRisk, "v3.0.0", 9));                  // 19
  Append(PromoteDraft(kRisk, "v3.0.0"));                 // 20

  State state;
  std::map<std::string, std::string> table;
  for (const EventBuffer& e : Events()) {
    const State before = state;
    const Digest before_digest = StateDigest(state);
    auto delta = Plan(state, e);
    ASSERT_TRUE(delta) << delta.error().ToString();
    // Plan alone does not touch the state it is given.
    EXPECT_EQ(StateDigest(state), before_digest);
    ApplyRows(table, EncodeDelta(*delta));
    Commit(state, *delta);
    Rows state_rows, record_rows;
    for (auto& row : ToRows(table)) {
      (IsIndexRow(row.first) ? record_rows : state_rows).push_back(row);
    }
    EXPECT_EQ(state_rows, EncodeState(state)) << "after event " << e.event().sequence();
    EXPECT_EQ(RowsDigest(ToRows(table)), StateDigest(state));  // index rows do not count
    // The newest record row of every version is its current record; every
    // record row names a real event at or before this one.
    for (const auto& [type, ts] : state.types) {
      for (const auto& [version, rec] : ts.versions) {
        auto it = table.lower_bound(RecordKey(type, version, ~Seq{0}));
        ASSERT_NE(it, table.begin());
        --it;
        ASSERT_EQ(it->first.rfind(RecordPrefix(type, version), 0), 0u) << type << ' ' << version;
        EXPECT_EQ(it->second, table.at(VersionKey(type, version)));
      }
    }
    for (const auto& [key, value] : record_rows) {
      std::string type, version;
      Seq seq = 0;
      ASSERT_TRUE(ParseRecordKey(key, &type, &version, &seq));
      EXPECT_LE(seq, e.event().sequence());
    }
    // Apply gives the same state as Plan + Commit.
    State applied = before;
    ASSERT_TRUE(Apply(applied, e).ok());
    EXPECT_EQ(StateDigest(applied), StateDigest(state));
  }
  EXPECT_EQ(state.seq, 20u);
  EXPECT_EQ(StateDigest(state), StateDigest(Fold()));
  EXPECT_EQ(table.count("p/risk_model"), 1u);
  EXPECT_EQ(DecodeTypeRow(table.at("p/risk_model")).value_or(""), "v3.0.0");
  EXPECT_EQ(table.count("p/alpha_weights"), 0u);
}

TEST_F(ProjectionTest, PlanDoesNotModifyTheState) {
  Append(RegDraft(kRisk, "v1.0.0", 1));
  Append(PromoteDraft(kRisk, "v1.0.0"));
  const auto events = Events();
  State s;
  ASSERT_TRUE(Apply(s, events[0]).ok());
  const Digest before = StateDigest(s);
  auto delta = Plan(s, events[1]);
  ASSERT_TRUE(delta);
  EXPECT_EQ(StateDigest(s), before);
  EXPECT_EQ(s.Find(kRisk, "v1.0.0")->status, ModelStatus::kStaged);
  EXPECT_EQ(delta->seq, 2u);
  ASSERT_EQ(delta->versions.size(), 1u);
  EXPECT_EQ(delta->versions[0].status, ModelStatus::kProduction);
  ASSERT_EQ(delta->production.size(), 1u);
  EXPECT_EQ(delta->production[0], std::make_pair(std::string(kRisk), std::string("v1.0.0")));
  ASSERT_EQ(delta->history.size(), 1u);
}

TEST_F(ProjectionTest, PlanOnAWrongSequenceNumberIsAnError) {
  Append(RegDraft(kRisk, "v1.0.0", 1));
  Append(RegDraft(kRisk, "v2.0.0", 2));
  Append(PromoteDraft(kRisk, "v1.0.0"));
  const auto events = Events();
  ASSERT_EQ(events.size(), 3u);

  State empty;
  auto skip = Plan(empty, events[1]);  // event 2 on an empty state
  ASSERT_FALSE(skip);
  EXPECT_EQ(skip.error().code(), Code::kInternal);

  State s;
  ASSERT_TRUE(Apply(s, events[0]).ok());
  const Digest d1 = StateDigest(s);
  // The same event again.
  auto again = Plan(s, events[0]);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kInternal);
  // Skipping ahead.
  Status st = Apply(s, events[2]);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kInternal);
  EXPECT_EQ(StateDigest(s), d1) << "a rejected Apply changed the state";
  // In order it works.
  EXPECT_TRUE(Apply(s, events[1]).ok());
  EXPECT_TRUE(Apply(s, events[2]).ok());
  EXPECT_EQ(s.seq, 3u);

  // A draft that was never appended has sequence 0: refused too.
  auto draft = EventBuffer::Parse(RegDraft(kRisk, "v3.0.0", 3));
  ASSERT_TRUE(draft) << draft.error().ToString();
  ASSERT_EQ(draft->event().sequence(), 0u);
  State fresh;
  auto unsequenced = Plan(fresh, *draft);
  ASSERT_FALSE(unsequenced);
  EXPECT_EQ(unsequenced.error().code(), Code::kInternal);
}

TEST_F(ProjectionTest, DecodeStateRejectsMalformedRows) {
  Append(RegDraft(kRisk, "v1.0.0", 1));
  Rows rows = EncodeState(Fold());
  Rows unknown = rows;
  unknown.emplace_back("z/whatever", "1");
  auto a = DecodeState(unknown);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), Code::kCorruption);

  Rows not_a_row = rows;
  for (auto& [k, v] : not_a_row) {
    if (k.rfind("v/", 0) == 0) v = "{\"model_type\":\"risk_model\"}";  // format 1's JSON
  }
  auto b = DecodeState(not_a_row);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), Code::kCorruption);

  // A prefix of a valid row is refused, never read past its end (the
  // verifier; ASan checks the reads); only a cut of trailing padding may
  // still decode, and then to the same record.
  int refused = 0;
  for (auto& [k, v] : rows) {
    if (k.rfind("v/", 0) != 0) continue;
    auto whole = DecodeVersionRow(v);
    ASSERT_TRUE(whole) << whole.error().ToString();
    for (std::size_t n = 0; n < v.size(); ++n) {
      auto cut = DecodeVersionRow(std::string_view(v).substr(0, n));
      if (!cut) {
        ++refused;
        EXPECT_EQ(cut.error().code(), Code::kCorruption);
      } else {
        EXPECT_EQ(*cut, *whole) << "a " << n << "-byte prefix of a " << v.size() << "-byte row";
        EXPECT_GE(n, v.size() - 8) << "more than padding was cut";
      }
    }
    EXPECT_GE(refused, static_cast<int>(v.size()) - 8);
  }

  // A well-formed table with a status no release writes.
  flatbuffers::FlatBufferBuilder fbb;
  const auto type = fbb.CreateString("risk_model");
  modelreg::rows::VersionRowBuilder vb(fbb);
  vb.add_model_type(type);
  vb.add_status(static_cast<modelreg::rows::ModelStatus>(9));
  fbb.Finish(vb.Finish());
  Rows bad_status = rows;
  for (auto& [k, v] : bad_status) {
    if (k.rfind("v/", 0) == 0) {
      v.assign(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    }
  }
  auto d = DecodeState(bad_status);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), Code::kCorruption);
  EXPECT_NE(d.error().message().find("unknown status"), std::string::npos)
      << d.error().ToString();
}

// Rows store every value exactly: awkward strings (control bytes, invalid
// UTF-8, NUL), extreme integers and doubles come back equal.
TEST(RowEncoding, AwkwardValuesRoundTripExactly) {
  const std::vector<std::string> texts = {
      "",        "plain text",  "quote \" and backslash \\", "tab\tnewline\ncr\r",
      "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac", "bad utf-8 \xe9 here", "\xff\xfe",
      std::string("nul \0 inside", 13)};
  const std::vector<double> numbers = {0.0,    -0.0,   1.0,      0.05,  -1.5,   1e-7,
                                       1e21,   123456789.123, 0.1 + 0.2, 2.5e-308, 1.7976931348623157e308};
  int checked = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    VersionRecord r;
    r.model_type = "risk_model";
    r.version = "v1." + std::to_string(i) + ".0";
    r.model_id = texts[i];
    r.status = static_cast<ModelStatus>(i % 4);
    r.registered_seq = i * 1'000'000'007ULL;
    r.registered_at = i % 2 == 0 ? -static_cast<TimeNs>(i) * 1'000'000'000 : static_cast<TimeNs>(i);
    r.registered_by = texts[(i + 1) % texts.size()];
    r.artifact_kind = i % 2 == 0 ? ArtifactKind::kFile : ArtifactKind::kDirectory;
    r.artifact_name = "model.pkl";
    r.artifact_size = ~std::uint64_t{0} - i;
    r.artifact_sha256 = std::string(64, 'a');
    for (std::size_t m = 0; m < numbers.size(); ++m) {
      if (m % (i + 1) == 0) r.metrics[texts[m % texts.size()] + std::to_string(m)] = numbers[m];
    }
    if (i % 3 != 0) r.dataset_version_ids = {{"crsp", "v1.2.3"}, {texts[i], texts[(i + 2) % texts.size()]}};
    r.snapshot_id = texts[(i + 3) % texts.size()];
    r.config_hash = "cfg";
    r.status_seq = i;
    r.status_at = std::numeric_limits<TimeNs>::min() + static_cast<TimeNs>(i);
    r.status_by = texts[i];
    r.status_reason = texts[(i + 4) % texts.size()];
    r.promoted_at = std::numeric_limits<TimeNs>::max() - static_cast<TimeNs>(i);
    r.validated_seq = i;
    r.validation_ok = i % 2 == 1;
    r.validation_detail = texts[(i + 5) % texts.size()];
    r.purged = i % 2 == 0;
    if (i % 3 != 1) {
      r.annotations.seq = i + 1;
      r.annotations.description = texts[(i + 6) % texts.size()];
      r.annotations.tags = {{"desk", texts[i]}, {texts[(i + 1) % texts.size()], "v"}};
      for (std::size_t m = 0; m < numbers.size(); m += i + 1) {
        r.annotations.metrics[texts[m % texts.size()] + std::to_string(m)] =
            LateMetric{numbers[m], texts[(m + 2) % texts.size()], texts[i],
                       -static_cast<TimeNs>(m), m};
      }
    }
    auto rb = DecodeVersionRow(EncodeVersionRow(r));
    ASSERT_TRUE(rb) << rb.error().ToString();
    EXPECT_EQ(*rb, r) << "record " << i;
    // -0.0 == 0.0: the bits must survive too (the digest sees them).
    EXPECT_EQ(CanonicalValue(*rb), CanonicalValue(r)) << "record " << i;

    PromotionRecord p;
    p.seq = r.registered_seq;
    p.at = r.status_at;
    p.actor = texts[i];
    p.model_type = r.model_type;
    p.version = r.version;
    p.replaced_version = texts[(i + 1) % texts.size()];
    p.replaced_status = i % 2 == 0 ? "archived" : "";
    p.rollback = i % 2 == 1;
    p.gates_overridden = i % 3 == 0;
    p.reason = texts[(i + 2) % texts.size()];
    p.override_reason = texts[(i + 6) % texts.size()];
    p.gates_passed = -static_cast<int>(i);
    p.gates_total = static_cast<int>(i);
    auto pb = DecodeHistoryRow(EncodeHistoryRow(p));
    ASSERT_TRUE(pb) << pb.error().ToString();
    EXPECT_EQ(*pb, p) << "history " << i;

    ConsumerRecord c{texts[i], texts[(i + 1) % texts.size()], i % 2 == 0,
                     texts[(i + 2) % texts.size()], texts[(i + 3) % texts.size()], i,
                     -static_cast<TimeNs>(i)};
    auto cb = DecodeConsumerRow(EncodeConsumerRow(c));
    ASSERT_TRUE(cb) << cb.error().ToString();
    EXPECT_EQ(*cb, c) << "consumer " << i;

    PolicyRecord g{i, static_cast<TimeNs>(i), texts[i], texts[(i + 1) % texts.size()],
                   texts[(i + 2) % texts.size()], std::string(64, 'c'), texts[(i + 3) % texts.size()]};
    auto gb = DecodePolicyRow(EncodePolicyRow(g));
    ASSERT_TRUE(gb) << gb.error().ToString();
    EXPECT_EQ(*gb, g) << "policy " << i;

    auto tb = DecodeTypeRow(EncodeTypeRow(texts[i]));
    ASSERT_TRUE(tb) << tb.error().ToString();
    EXPECT_EQ(*tb, texts[i]);
    checked += 5;
  }
  EXPECT_EQ(checked, 45);
  auto head = DecodeHeadRow(EncodeHeadRow(~Seq{0}, std::numeric_limits<TimeNs>::min()));
  ASSERT_TRUE(head) << head.error().ToString();
  EXPECT_EQ(head->first, ~Seq{0});
  EXPECT_EQ(head->second, std::numeric_limits<TimeNs>::min());
}

// The canonical encoding is the digest's definition (docs/pointintime.md,
// "State digest"). These bytes are written out by hand from that text, not
// by the encoder: a change to the encoder that changes every registry's
// digest fails here.
std::string U64(std::uint64_t v) {
  std::string out;
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}
std::string Text(const std::string& s) { return U64(s.size()) + s; }

TEST(CanonicalEncoding, MatchesTheDocumentedLayout) {
  EXPECT_EQ(CanonicalHead(17, -2), U64(17) + U64(~std::uint64_t{0} - 1));
  EXPECT_EQ(CanonicalString("v1"), U64(2) + "v1");
  // Consumer: at, attempted_version, consumer_id, detail, ok, seq, version.
  ConsumerRecord c{"svc-1", "v2", false, "v3", "load failed", 9, 1000};
  EXPECT_EQ(CanonicalValue(c), U64(1000) + Text("v3") + Text("svc-1") + Text("load failed") +
                                   std::string(1, '\0') + U64(9) + Text("v2"));
  // Promotion: actor, at, gates_overridden, gates_passed, gates_total,
  // model_type, override_reason, reason, replaced_status, replaced_version,
  // rollback, seq, version; an int is widened to 8 bytes.
  PromotionRecord p;
  p.seq = 5;
  p.at = 6;
  p.actor = "alice";
  p.model_type = "m";
  p.version = "v2";
  p.replaced_version = "v1";
  p.replaced_status = "archived";
  p.gates_overridden = true;
  p.reason = "r";
  p.gates_passed = -1;
  p.gates_total = 3;
  EXPECT_EQ(CanonicalValue(p), Text("alice") + U64(6) + std::string(1, '\1') +
                                   U64(~std::uint64_t{0}) + U64(3) + Text("m") + Text("") +
                                   Text("r") + Text("archived") + Text("v1") +
                                   std::string(1, '\0') + U64(5) + Text("v2"));
  // A version record: doubles as their IEEE-754 bits, maps as a count then
  // sorted entries, enums as one byte, annotations behind a presence byte.
  VersionRecord r;
  r.model_type = "m";
  r.version = "v1";
  r.status = ModelStatus::kArchived;
  r.metrics = {{"sharpe", 1.5}, {"ic", -0.0}};
  r.artifact_kind = ArtifactKind::kDirectory;
  std::string expected;
  expected += std::string(1, '\0');                          // annotations: none
  expected += std::string(1, '\1');                          // artifact_kind: directory
  expected += Text("") + Text("") + U64(0) + Text("");        // name, sha256, size, config_hash
  expected += U64(0);                                        // dataset_version_ids: empty
  expected += U64(0);                                        // demoted_at
  expected += U64(2) + Text("ic") + U64(0x8000000000000000ULL) + Text("sharpe") +
              U64(0x3FF8000000000000ULL);                    // metrics
  expected += Text("") + Text("m");                          // model_id, model_type
  expected += U64(0) + std::string(1, '\0');                 // promoted_at, purged
  expected += U64(0) + Text("") + U64(0);                    // registered_at, _by, _seq
  expected += Text("");                                      // snapshot_id
  expected += std::string(1, '\2');                          // status: archived
  expected += U64(0) + Text("") + Text("") + U64(0);         // status_at, _by, _reason, _seq
  expected += U64(0) + Text("") + std::string(1, '\0');      // validated_seq, _detail, _ok
  expected += Text("v1");                                    // version
  EXPECT_EQ(CanonicalValue(r), expected);
  r.annotations.seq = 4;
  r.annotations.tags = {{"desk", "eq"}};
  const std::string annotated = std::string(1, '\1') + Text("") + U64(0) + U64(4) + U64(1) +
                                Text("desk") + Text("eq");
  EXPECT_EQ(CanonicalValue(r), annotated + expected.substr(1));
}

// The digest of stored rows is the digest of the state they hold, whatever
// their bytes: a row rewritten with other bytes but the same record (e.g.
// by another FlatBuffers version, or fields in another order) keeps it.
TEST(CanonicalEncoding, DigestDependsOnRecordsNotStoredBytes) {
  State s;
  s.seq = 3;
  s.at = 30;
  VersionRecord r;
  r.model_type = "m";
  r.version = "v1";
  r.metrics = {{"ic", 0.05}};
  s.types["m"].versions["v1"] = r;
  s.types["m"].production = "v1";
  s.types["m"].timeline.push_back(ProductionChange{2, 20, "v1"});
  Rows rows = EncodeState(s);
  EXPECT_EQ(RowsDigest(rows), StateDigest(s));
  // The same record built in another field order gives other bytes.
  flatbuffers::FlatBufferBuilder fbb;
  const auto name = fbb.CreateString("ic");
  const auto metric = modelreg::rows::CreateMetric(fbb, name, 0.05);
  const auto metrics = fbb.CreateVector(std::vector<flatbuffers::Offset<modelreg::rows::Metric>>{metric});
  const auto version = fbb.CreateString("v1");
  const auto type = fbb.CreateString("m");
  modelreg::rows::VersionRowBuilder vb(fbb);
  vb.add_version(version);
  vb.add_metrics(metrics);
  vb.add_model_type(type);
  fbb.Finish(vb.Finish());
  const std::string other(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  for (auto& [k, v] : rows) {
    if (k == "v/m/v1") {
      ASSERT_NE(v, other);
      v = other;
    }
  }
  EXPECT_EQ(RowsDigest(rows), StateDigest(s));
  // A different value is a different digest; so is an undecodable row.
  s.types["m"].versions["v1"].metrics["ic"] = 0.06;
  EXPECT_NE(RowsDigest(rows), StateDigest(s));
  for (auto& [k, v] : rows) {
    if (k == "v/m/v1") v = "garbage";
  }
  s.types["m"].versions["v1"].metrics["ic"] = 0.05;
  EXPECT_NE(RowsDigest(rows), StateDigest(s));
}

// ForEachField is the one list of a record's fields: the canonical encoding
// writes fields in its order (documented as sorted by name), and a field
// missing from the row tables would silently not be stored (a record with
// every field set must come back equal: operator== compares every member).
template <class Record>
std::vector<std::string> FieldKeys(const Record& r) {
  std::vector<std::string> keys;
  ForEachField(r, [&keys](const char* key, const auto&) { keys.emplace_back(key); });
  return keys;
}

TEST(RowEncoding, FieldListIsSortedAndComplete) {
  VersionRecord r;
  r.model_type = "risk_model";
  r.version = "v1.2.3";
  r.model_id = "mdl_1";
  r.status = ModelStatus::kArchived;
  r.registered_seq = 3;
  r.registered_at = 4;
  r.registered_by = "alice";
  r.artifact_name = "model.pkl";
  r.artifact_size = 5;
  r.artifact_sha256 = std::string(64, 'b');
  r.metrics = {{"sharpe", 1.5}};
  r.dataset_version_ids = {{"crsp", "v2"}};
  r.snapshot_id = "snap";
  r.config_hash = "cfg";
  r.status_seq = 6;
  r.status_at = 7;
  r.status_by = "bob";
  r.status_reason = "why";
  r.promoted_at = 8;
  r.demoted_at = 9;
  r.validated_seq = 10;
  r.validation_ok = true;
  r.validation_detail = "ok";
  r.purged = true;
  r.annotations.tags = {{"desk", "eq"}};
  r.annotations.description = "about";
  r.annotations.metrics["hit_rate"] = LateMetric{0.56, "paper-trading", "carol", 11, 12};
  r.annotations.seq = 12;
  r.artifact_kind = ArtifactKind::kDirectory;
  auto back = DecodeVersionRow(EncodeVersionRow(r));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, r);
  std::vector<std::string> keys = FieldKeys(r);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(std::adjacent_find(keys.begin(), keys.end()), keys.end());

  PromotionRecord p;
  p.seq = 1;
  p.at = 2;
  p.actor = "alice";
  p.model_type = "risk_model";
  p.version = "v1.2.3";
  p.replaced_version = "v1.0.0";
  p.replaced_status = "failed";
  p.rollback = true;
  p.gates_overridden = true;
  p.reason = "r";
  p.override_reason = "o";
  p.gates_passed = 3;
  p.gates_total = 4;
  auto back_p = DecodeHistoryRow(EncodeHistoryRow(p));
  ASSERT_TRUE(back_p) << back_p.error().ToString();
  EXPECT_EQ(*back_p, p);
  keys = FieldKeys(p);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(std::adjacent_find(keys.begin(), keys.end()), keys.end());
  for (const auto& k : {FieldKeys(ConsumerRecord{}), FieldKeys(PolicyRecord{})}) {
    EXPECT_TRUE(std::is_sorted(k.begin(), k.end()));
    EXPECT_EQ(std::adjacent_find(k.begin(), k.end()), k.end());
  }
  EXPECT_EQ(FieldKeys(ConsumerRecord{}).size(), 7u);
  EXPECT_EQ(FieldKeys(PolicyRecord{}).size(), 7u);
}

TEST(StatusNames, RoundTrip) {
  for (ModelStatus s : {ModelStatus::kStaged, ModelStatus::kProduction, ModelStatus::kArchived,
                        ModelStatus::kFailed}) {
    ModelStatus parsed = ModelStatus::kStaged;
    ASSERT_TRUE(ParseStatus(StatusName(s), &parsed)) << StatusName(s);
    EXPECT_EQ(parsed, s);
  }
  ModelStatus out = ModelStatus::kFailed;
  EXPECT_FALSE(ParseStatus("Production", &out));
  EXPECT_FALSE(ParseStatus("", &out));
  EXPECT_EQ(out, ModelStatus::kFailed);
  EXPECT_EQ(StatusName(ModelStatus::kProduction), "production");
}

}  // namespace
}  // namespace modelreg::projection
