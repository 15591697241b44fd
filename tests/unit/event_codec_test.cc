// Drafts of every payload type round-trip through the verifier and the
// JSON rendering; damaged buffers are errors, never crashes.
#include <gtest/gtest.h>

#include <random>

#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_buffer.h"
#include "projection/state.h"

namespace modelreg {
namespace {

const Envelope kEnv{"alice", "evt-1", 0};

nlohmann::json RoundTrip(const std::string& draft, fb::Payload expected_type) {
  auto buf = EventBuffer::Parse(draft);
  EXPECT_TRUE(buf) << buf.error().ToString();
  if (!buf) return {};
  EXPECT_EQ(buf->event().payload_type(), expected_type);
  EXPECT_EQ(buf->event().actor()->str(), "alice");
  EXPECT_EQ(buf->event().event_id()->str(), "evt-1");
  EXPECT_EQ(buf->event().schema_version(), kSchemaVersion);
  auto j = events::ToJson(*buf);
  EXPECT_EQ(j["actor"], "alice");
  EXPECT_EQ(j["type"], PayloadTypeName(expected_type));
  return j["payload"];
}

TEST(EventCodec, RegistrationKeepsFullMetadata) {
  events::Registration r = events::SampleRegistration("risk_model", "v1.2.0", 3);
  auto p = RoundTrip(events::Draft(kEnv, r), fb::Payload::ModelRegistered);
  EXPECT_EQ(p["model_id"], r.model_id);
  EXPECT_EQ(p["model_type"], "risk_model");
  EXPECT_EQ(p["version"], "v1.2.0");
  EXPECT_EQ(p["artifact_name"], "model.pkl");
  EXPECT_EQ(p["artifact_size"], r.artifact_size);
  EXPECT_EQ(p["artifact_sha256"], ToHex(r.artifact_sha256));
  EXPECT_EQ(p["dataset_version_ids"]["crsp"], r.dataset_version_ids.at("crsp"));
  EXPECT_EQ(p["snapshot_id"], r.snapshot_id);
  EXPECT_EQ(p["factor_list"].size(), r.factor_list.size());
  EXPECT_EQ(p["factor_list"][0], r.factor_list[0]);
  EXPECT_TRUE(p["parameters"].is_object());
  EXPECT_EQ(p["parameters"]["universe"], "us_top3000");
  EXPECT_DOUBLE_EQ(p["metrics"]["sharpe"].get<double>(), r.metrics.at("sharpe"));
  EXPECT_DOUBLE_EQ(p["metrics"]["ic"].get<double>(), r.metrics.at("ic"));
  EXPECT_EQ(p["env"]["hostname"], r.env.hostname);
  EXPECT_EQ(p["env"]["git_commit"], r.env.git_commit);
  EXPECT_EQ(p["env"]["extra"]["python"], "3.11.7");
  EXPECT_EQ(p["config"]["seed"], 3);
  EXPECT_EQ(p["config_hash"], r.config_hash);
  EXPECT_EQ(p["created_by"], "training_pipeline");
  EXPECT_EQ(p["created_at"], FormatUtc(r.created_at));
}

TEST(EventCodec, PromotionKeepsGateEvidence) {
  events::Promotion pr{"alpha_weights", "v2.0.0", "v1.0.0",
                       {{"ic", ">", 0.02, 0.05, true, true, ""},
                        {"sharpe", ">", 0.5, 0, false, false, "metric missing"}},
                       true, "desk head approved", "weekly", "default policy",
                       Sha256::Of("[default]\n")};
  auto p = RoundTrip(events::Draft(kEnv, pr), fb::Payload::ModelPromoted);
  EXPECT_EQ(p["version"], "v2.0.0");
  EXPECT_EQ(p["replaced_version"], "v1.0.0");
  ASSERT_EQ(p["gates"].size(), 2u);
  EXPECT_EQ(p["gates"][0]["name"], "ic");
  EXPECT_DOUBLE_EQ(p["gates"][0]["observed"].get<double>(), 0.05);
  EXPECT_TRUE(p["gates"][1]["observed"].is_null());
  EXPECT_EQ(p["gates"][1]["passed"], false);
  EXPECT_EQ(p["gates_overridden"], true);
  EXPECT_EQ(p["override_reason"], "desk head approved");
  EXPECT_EQ(p["policy"], "default policy");
  EXPECT_EQ(p["policy_sha256"], ToHex(Sha256::Of("[default]\n")));
  // Under the built-in defaults (or written before the field): null.
  pr.policy_sha256.reset();
  EXPECT_TRUE(RoundTrip(events::Draft(kEnv, pr), fb::Payload::ModelPromoted)["policy_sha256"]
                  .is_null());
  auto rej = RoundTrip(events::Draft(kEnv, events::Rejection{"risk_model", "v1.0.0", "", {},
                                                             "try", "p", Sha256::Of("x")}),
                       fb::Payload::PromotionRejected);
  EXPECT_EQ(rej["policy_sha256"], ToHex(Sha256::Of("x")));
}

TEST(EventCodec, ModelAnnotatedIsPayloadElevenAndRendersAbsentVersusEmpty) {
  // Member 11 of the union, after PolicyChanged, for ever.
  EXPECT_EQ(static_cast<int>(fb::Payload::ModelAnnotated), 11);
  events::Annotation a;
  a.model_type = "risk_model";
  a.version = "v1.0.0";
  a.set_tags = {{"desk", "eq"}};
  a.removed_tags = {"stage", "old", "stage"};
  a.metrics = {{"hit_rate", 0.56}};
  a.source = "paper-trading";
  a.reason = "ten days";
  auto buf = EventBuffer::Parse(events::Draft(kEnv, a));
  ASSERT_TRUE(buf) << buf.error().ToString();
  EXPECT_EQ(PayloadTypeName(buf->event().payload_type()), "ModelAnnotated");
  nlohmann::json j = events::ToJson(*buf);
  EXPECT_EQ(j["payload"]["set_tags"], nlohmann::json({{"desk", "eq"}}));
  EXPECT_EQ(j["payload"]["removed_tags"], nlohmann::json({"old", "stage"}));  // sorted, unique
  EXPECT_TRUE(j["payload"]["description"].is_null());  // left as it was
  EXPECT_EQ(j["payload"]["metrics"]["hit_rate"], 0.56);
  EXPECT_EQ(j["payload"]["source"], "paper-trading");
  const std::string line = events::Summary(*buf);
  EXPECT_NE(line.find("annotated risk_model v1.0.0 (tag desk=eq, untag old, untag stage, "
                      "hit_rate=0.56) from paper-trading: ten days"),
            std::string::npos)
      << line;
  a.description = "";  // cleared: present and empty
  buf = EventBuffer::Parse(events::Draft(kEnv, a));
  ASSERT_TRUE(buf);
  j = events::ToJson(*buf);
  EXPECT_EQ(j["payload"]["description"], "");
  EXPECT_NE(events::Summary(*buf).find("description cleared"), std::string::npos);
}

TEST(EventCodec, PolicyChangedHoldsTheWholeTextAndItsHash) {
  const std::string text = "[default]\nic = \"> 0.03\"\n# a comment\n";
  auto buf = EventBuffer::Parse(
      events::Draft(kEnv, events::PolicyChange{text, "stricter IC", "risk.toml"}));
  ASSERT_TRUE(buf) << buf.error().ToString();
  EXPECT_EQ(buf->event().payload_type(), fb::Payload::PolicyChanged);
  EXPECT_EQ(PayloadTypeName(buf->event().payload_type()), "PolicyChanged");
  const nlohmann::json j = events::ToJson(*buf);
  EXPECT_EQ(j["type"], "PolicyChanged");
  EXPECT_EQ(j["payload"]["text"], text);
  EXPECT_EQ(j["payload"]["sha256"], ToHex(Sha256::Of(text)));
  EXPECT_EQ(j["payload"]["reason"], "stricter IC");
  EXPECT_EQ(j["payload"]["source"], "risk.toml");
  const std::string line = events::Summary(*buf);
  EXPECT_NE(line.find("set the gate policy to sha256 " + ToHex(Sha256::Of(text)).substr(0, 12) +
                      " (from risk.toml): stricter IC"),
            std::string::npos)
      << line;
  // Its fold: the policy in force from this event on.
  projection::State s;
  auto delta = projection::PlanUnchecked(s, *buf);
  ASSERT_TRUE(delta) << delta.error().ToString();
  ASSERT_TRUE(delta->policy.has_value());
  EXPECT_EQ(delta->policy->text, text);
  EXPECT_EQ(delta->policy->sha256, ToHex(Sha256::Of(text)));
  EXPECT_EQ(delta->policy->reason, "stricter IC");
  EXPECT_EQ(delta->policy->actor, "alice");
  EXPECT_TRUE(delta->versions.empty());
}

TEST(EventCodec, OtherPayloadsRoundTrip) {
  auto a = RoundTrip(events::Draft(kEnv, events::Archive{"risk_model", "v1", "old"}),
                     fb::Payload::ModelArchived);
  EXPECT_EQ(a["reason"], "old");
  auto f = RoundTrip(events::Draft(kEnv, events::Failure{"risk_model", "v2", "NaN"}),
                     fb::Payload::ModelFailed);
  EXPECT_EQ(f["reason"], "NaN");
  auto rb = RoundTrip(
      events::Draft(kEnv, events::Rollback{"risk_model", "v3", "v2", true, "losing money"}),
      fb::Payload::ModelRolledBack);
  EXPECT_EQ(rb["from_version"], "v3");
  EXPECT_EQ(rb["to_version"], "v2");
  EXPECT_EQ(rb["current_failed"], true);
  const Digest want = Sha256::Of("a");
  const Digest got = Sha256::Of("b");
  auto v = RoundTrip(events::Draft(kEnv, events::Validation{"risk_model", "v2", false, want, got,
                                                             17, "bad", "mismatch"}),
                     fb::Payload::ArtifactValidated);
  EXPECT_EQ(v["ok"], false);
  EXPECT_EQ(v["expected_sha256"], ToHex(want));
  EXPECT_EQ(v["observed_sha256"], ToHex(got));
  EXPECT_EQ(v["observed_size"], 17);
  EXPECT_EQ(v["result"], "mismatch");
  // Written before the field existed (nothing recorded): "".
  auto old = RoundTrip(
      events::Draft(kEnv, events::Validation{"risk_model", "v2", true, want, want, 1, "", ""}),
      fb::Payload::ArtifactValidated);
  EXPECT_EQ(old["result"], "");
  auto missing = EventBuffer::Parse(events::Draft(
      kEnv, events::Validation{"risk_model", "v2", false, want, {}, 0, "gone", "missing"}));
  ASSERT_TRUE(missing);
  EXPECT_NE(events::Summary(*missing).find("validated risk_model v2 MISSING"), std::string::npos)
      << events::Summary(*missing);
  auto pu = RoundTrip(events::Draft(kEnv, events::Purge{"risk_model", "v1", 4096, "gc"}),
                      fb::Payload::ArtifactPurged);
  EXPECT_EQ(pu["bytes_freed"], 4096);
}

// A registration whose parameters were stored 50,000 levels deep (by a
// version from before the 64-level input limit) is shown with its
// parameters as text instead of crashing the reader on a small stack.
TEST(EventCodec, DeeplyNestedStoredJsonIsShownAsText) {
  events::Registration r = events::SampleRegistration("risk_model", "v1.0.0", 1);
  r.parameters_json = std::string(50000, '[') + std::string(50000, ']');
  auto buf = EventBuffer::Parse(events::Draft(kEnv, r));
  ASSERT_TRUE(buf) << buf.error().ToString();
  nlohmann::json j = events::ToJson(*buf);
  ASSERT_TRUE(j["payload"]["parameters"].is_string());
  EXPECT_EQ(j["payload"]["parameters"].get<std::string>().size(), 100000u);
}

TEST(EventCodec, SummaryNamesTheAction) {
  auto buf = EventBuffer::Parse(
      events::Draft(kEnv, events::Rollback{"risk_model", "v3", "v2", false, "bug"}));
  ASSERT_TRUE(buf);
  const std::string s = events::Summary(*buf);
  EXPECT_NE(s.find("rolled back risk_model v3 -> v2: bug"), std::string::npos) << s;
}

TEST(EventCodec, GarbageAndTruncationAreErrors) {
  const std::string good =
      events::Draft(kEnv, events::SampleRegistration("risk_model", "v1.0.0", 1));
  EXPECT_EQ(EventBuffer::Parse("").error().code(), Code::kCorruption);
  EXPECT_EQ(EventBuffer::Parse("short").error().code(), Code::kCorruption);
  const auto good_json = events::ToJson(*EventBuffer::Parse(good));
  for (std::size_t n = 0; n < good.size(); ++n) {
    // Cutting only trailing alignment padding leaves a complete event;
    // anything else must be rejected, never read as different data.
    auto r = EventBuffer::Parse(good.substr(0, n));
    if (r) {
      EXPECT_EQ(events::ToJson(*r), good_json) << "truncated to " << n;
    }
    if (n + 8 < good.size()) {
      EXPECT_FALSE(r) << "truncated to " << n << " of " << good.size();
    }
  }
  std::string wrong_id = good;
  wrong_id[4] = 'X';  // file identifier lives at bytes 4..7
  EXPECT_NE(EventBuffer::Parse(wrong_id).error().message().find("identifier"),
            std::string::npos);
  EXPECT_FALSE(EventBuffer::Parse(std::string(kMaxEventBytes + 1, '\0')));

  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(8 + rng() % 256, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    junk.replace(4, 4, "MREV");
    auto r = EventBuffer::Parse(junk);  // must not crash; usually an error
    if (r) (void)events::ToJson(*r);
  }
  // Single flipped bytes: either rejected or still safely readable.
  for (std::size_t i = 0; i < good.size(); ++i) {
    std::string flipped = good;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x5a);
    auto r = EventBuffer::Parse(flipped);
    if (r) (void)events::ToJson(*r);
  }
}

TEST(EventCodec, UnknownPayloadTypeIsNamed) {
  EXPECT_EQ(PayloadTypeName(static_cast<fb::Payload>(200)), "unknown(200)");
  EXPECT_EQ(PayloadTypeName(fb::Payload::ModelFailed), "ModelFailed");
}

}  // namespace
}  // namespace modelreg
