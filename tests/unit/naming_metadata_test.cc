// Names, versions and registration metadata: what the registry accepts
// before anything touches the disk.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "artifacts/artifact_store.h"
#include "common/decimal.h"
#include "common/sha256.h"
#include "model/naming.h"
#include "registry/metadata.h"

namespace modelreg::registry {
namespace {

using nlohmann::json;

constexpr TimeNs kNow = 1'736'933'400'000'000'000LL;  // 2025-01-15T09:30:00Z

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// --- ValidateModelType ---

TEST(ValidateModelType, AcceptsTheFourTypes) {
  for (const char* t : {"risk_model", "alpha_weights", "factor_definitions", "feature_transforms"}) {
    Status st = model::ValidateModelType(t);
    EXPECT_TRUE(st.ok()) << t << ": " << st.ToString();
  }
}

TEST(ValidateModelType, AnyNameOfTheGrammarIsAccepted) {
  for (const char* t : {"alpha_momentum", "alpha_value", "a", "risk_models", "x1", "a-b_c-9",
                        "credit-risk-2", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789ab"}) {
    Status st = model::ValidateModelType(t);
    EXPECT_TRUE(st.ok()) << t << ": " << st.ToString();
  }
  EXPECT_TRUE(model::IsWellKnownType("risk_model"));
  EXPECT_FALSE(model::IsWellKnownType("alpha_momentum"));
}

TEST(ValidateModelType, BadNamesAreRefusedStatingTheGrammar) {
  for (const std::string& t :
       {std::string("../x"), std::string("/"), std::string(""), std::string("risk_model/"),
        std::string("risk_model/../x"), std::string("."), std::string(".."),
        std::string("Risk_Model"), std::string("Alpha"), std::string(" risk_model"),
        std::string("risk model"), std::string("a/b"), std::string("-x"), std::string("_x"),
        std::string("9lives"), std::string("a.b"), std::string("alpha\nbeta"),
        std::string("caf\xc3\xa9"), std::string(65, 'a'), std::string("default"),
        std::string("a\0b", 3)}) {
    Status st = model::ValidateModelType(t);
    EXPECT_FALSE(st.ok()) << "'" << t << "'";
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << "'" << t << "'";
    EXPECT_TRUE(Contains(st.message(), "lowercase letters a-z, digits 0-9, '_' and '-'"))
        << st.message();
    EXPECT_TRUE(Contains(st.message(), "starting with a letter")) << st.message();
  }
  // 64 is the limit; 65 is one too many, and the message says so.
  EXPECT_TRUE(model::ValidateModelType(std::string(64, 'a')).ok());
  EXPECT_TRUE(Contains(model::ValidateModelType(std::string(65, 'a')).message(), "65 characters"));
  // Control characters are shown escaped, never raw.
  EXPECT_FALSE(Contains(model::ValidateModelType("a\x1b[31m").message(), "\x1b["));
  EXPECT_TRUE(Contains(model::ValidateModelType("a\x1b[31m").message(), "\\x1b"));
}

// --- ValidateVersion ---

TEST(ValidateVersion, AcceptsSemanticVersions) {
  for (const char* v : {"v1.2.0", "v2.0.0-rc.1", "v0.0.0", "v10.20.30", "v1.0.0-alpha",
                        "v1.0.0-alpha.beta.1", "v1.0.0-x-y-z.0", "v999999999.0.0"}) {
    Status st = model::ValidateVersion(v);
    EXPECT_TRUE(st.ok()) << v << ": " << st.ToString();
  }
}

TEST(ValidateVersion, RejectsEverythingElse) {
  const std::vector<std::string> bad = {
      "1.2.0",       "v1.2",         "v01.2.0",     "v1.02.0",    "v1.2.00",
      "v1.2.0-",     "../v1.0.0",    "v1.0.0/..",   "v1.0.0\n",   std::string("v1.0.0\0", 7),
      "",            "v",            "V1.0.0",      "v1.0.0.0",   "v1..0",
      "v1.0.0+b1",   "v1.0.0-rc..1", "v1.0.0-01",   "v1.0.0-rc/1", "v-1.0.0",
      " v1.0.0",     "v1.0.0 ",      "v1.0.a",      "v1000000000.0.0",
      "v1.0.0-" + std::string(60, 'a')};
  for (const std::string& v : bad) {
    Status st = model::ValidateVersion(v);
    EXPECT_FALSE(st.ok()) << "'" << v << "'";
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << "'" << v << "'";
  }
}

TEST(ValidateVersion, ErrorSaysWhatAVersionLooksLike) {
  Status st = model::ValidateVersion("1.2.0");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(Contains(st.message(), "'1.2.0'")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "v1.2.0")) << st.message();
}

// --- CompareVersions ---

int Sign(int c) { return c < 0 ? -1 : (c > 0 ? 1 : 0); }

TEST(CompareVersions, NumericNotLexicalOrder) {
  EXPECT_GT(model::CompareVersions("v1.10.0", "v1.9.0"), 0);
  EXPECT_LT(model::CompareVersions("v1.9.0", "v1.10.0"), 0);
  EXPECT_GT(model::CompareVersions("v10.0.0", "v9.99.99"), 0);
  EXPECT_GT(model::CompareVersions("v1.0.10", "v1.0.9"), 0);
  EXPECT_EQ(model::CompareVersions("v1.2.3", "v1.2.3"), 0);
  EXPECT_LT(model::CompareVersions("v1.2.3", "v1.3.0"), 0);
  EXPECT_GT(model::CompareVersions("v2.0.0", "v1.99.99"), 0);
}

TEST(CompareVersions, SemverPrecedenceChain) {
  // The example chain from semver.org section 11, plus releases around it.
  const std::vector<std::string> ordered = {
      "v0.9.9",         "v1.0.0-0",      "v1.0.0-1",     "v1.0.0-2",      "v1.0.0-10",
      "v1.0.0-alpha",   "v1.0.0-alpha.1", "v1.0.0-alpha.beta", "v1.0.0-beta",
      "v1.0.0-beta.2",  "v1.0.0-beta.11", "v1.0.0-rc.1",  "v1.0.0",        "v1.0.1-rc.1",
      "v1.0.1",         "v1.10.0",       "v2.0.0-rc.1",  "v2.0.0"};
  for (const auto& v : ordered) ASSERT_TRUE(model::ValidateVersion(v).ok()) << v;
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    for (std::size_t j = 0; j < ordered.size(); ++j) {
      const int expected = i < j ? -1 : (i > j ? 1 : 0);
      EXPECT_EQ(Sign(model::CompareVersions(ordered[i], ordered[j])), expected)
          << ordered[i] << " vs " << ordered[j];
    }
  }
}

TEST(CompareVersions, PreReleaseRules) {
  // A pre-release ranks below its release.
  EXPECT_LT(model::CompareVersions("v2.0.0-rc.1", "v2.0.0"), 0);
  EXPECT_GT(model::CompareVersions("v2.0.0", "v2.0.0-rc.1"), 0);
  // ...but above the previous release.
  EXPECT_GT(model::CompareVersions("v2.0.0-rc.1", "v1.99.0"), 0);
  // Numeric identifiers compare numerically.
  EXPECT_LT(model::CompareVersions("v1.0.0-rc.2", "v1.0.0-rc.10"), 0);
  // Numeric identifiers rank below alphanumeric ones.
  EXPECT_LT(model::CompareVersions("v1.0.0-1", "v1.0.0-a"), 0);
  EXPECT_GT(model::CompareVersions("v1.0.0-rc", "v1.0.0-99"), 0);
  // Alphanumeric identifiers compare in ASCII order.
  EXPECT_LT(model::CompareVersions("v1.0.0-Beta", "v1.0.0-alpha"), 0);
  EXPECT_LT(model::CompareVersions("v1.0.0-rc1", "v1.0.0-rc2"), 0);
  // A larger set of identifiers ranks higher when the prefix is equal.
  EXPECT_LT(model::CompareVersions("v1.0.0-alpha", "v1.0.0-alpha.0"), 0);
  EXPECT_EQ(model::CompareVersions("v1.0.0-alpha.1", "v1.0.0-alpha.1"), 0);
}

TEST(CompareVersions, IsAStrictWeakOrderOverASortedList) {
  std::vector<std::string> vs = {"v1.10.0", "v1.2.0", "v1.9.0", "v1.2.0-rc.1", "v0.1.0",
                                 "v1.2.0-beta", "v11.0.0", "v2.0.0"};
  std::sort(vs.begin(), vs.end(), [](const std::string& a, const std::string& b) {
    return model::CompareVersions(a, b) < 0;
  });
  const std::vector<std::string> expected = {"v0.1.0", "v1.2.0-beta", "v1.2.0-rc.1", "v1.2.0",
                                             "v1.9.0", "v1.10.0",     "v2.0.0",      "v11.0.0"};
  EXPECT_EQ(vs, expected);
}

// --- ConfigHash / CanonicalJson ---

TEST(ConfigHash, IsKeyOrderIndependent) {
  const json a = json::parse(R"({"b":1,"a":{"y":[1,2,3],"x":"s"},"c":null})");
  const json b = json::parse(R"({ "c" : null, "a" : { "x" : "s", "y" : [1, 2, 3] }, "b" : 1 })");
  EXPECT_EQ(CanonicalJson(a), CanonicalJson(b));
  EXPECT_EQ(CanonicalJson(a), R"({"a":{"x":"s","y":[1,2,3]},"b":1,"c":null})");
  EXPECT_EQ(ConfigHash(a), ConfigHash(b));
  EXPECT_EQ(ConfigHash(a), ToHex(Sha256::Of(R"({"a":{"x":"s","y":[1,2,3]},"b":1,"c":null})")));
  EXPECT_EQ(ConfigHash(a).size(), 64u);
  // Array order and values do matter.
  const json c = json::parse(R"({"b":1,"a":{"y":[3,2,1],"x":"s"},"c":null})");
  EXPECT_NE(ConfigHash(a), ConfigHash(c));
  EXPECT_NE(ConfigHash(json::parse(R"({"lr":0.01})")), ConfigHash(json::parse(R"({"lr":0.02})")));
}

// --- SplitAssignment / ParseFiniteNumber ---

TEST(SplitAssignment, SplitsAtTheFirstEquals) {
  auto kv = SplitAssignment("sharpe=1.5", "--metric");
  ASSERT_TRUE(kv) << kv.error().ToString();
  EXPECT_EQ(kv->first, "sharpe");
  EXPECT_EQ(kv->second, "1.5");
  auto multi = SplitAssignment("expr=a=b", "--param");
  ASSERT_TRUE(multi);
  EXPECT_EQ(multi->first, "expr");
  EXPECT_EQ(multi->second, "a=b");
  auto empty_value = SplitAssignment("k=", "--param");
  ASSERT_TRUE(empty_value);
  EXPECT_EQ(empty_value->first, "k");
  EXPECT_EQ(empty_value->second, "");
}

TEST(SplitAssignment, ErrorsNameTheFlag) {
  for (const char* text : {"novalue", "=value", "", "="}) {
    auto r = SplitAssignment(text, "--dataset");
    ASSERT_FALSE(r) << "'" << text << "'";
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_TRUE(Contains(r.error().message(), "--dataset")) << r.error().message();
    EXPECT_TRUE(Contains(r.error().message(), "NAME=VALUE")) << r.error().message();
  }
}

TEST(ParseFiniteNumber, AcceptsFiniteNumbers) {
  EXPECT_EQ(*ParseFiniteNumber("1.5", "m"), 1.5);
  EXPECT_EQ(*ParseFiniteNumber("-2e3", "m"), -2000.0);
  EXPECT_EQ(*ParseFiniteNumber("0", "m"), 0.0);
  EXPECT_EQ(*ParseFiniteNumber("1e308", "m"), 1e308);
}

TEST(ParseFiniteNumber, RejectsNanInfOverflowAndJunk) {
  for (const char* text : {"nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e999",
                           "abc", "", "1.5x", "1,5", "0x"}) {
    auto r = ParseFiniteNumber(text, "metric sharpe");
    ASSERT_FALSE(r) << "'" << text << "' parsed as " << *r;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_TRUE(Contains(r.error().message(), "metric sharpe")) << r.error().message();
    EXPECT_TRUE(Contains(r.error().message(), "finite")) << r.error().message();
  }
}

// One strict decimal grammar (common/decimal.h, docs/cli.md "Numbers"):
// exactly a JSON number, finite, subnormals included.
TEST(ParseFiniteNumber, StrictDecimalGrammarAccepts) {
  const std::vector<std::pair<std::string, double>> accepted = {
      {"0", 0.0},
      {"-0", -0.0},
      {"7", 7.0},
      {"-12", -12.0},
      {"0.5", 0.5},
      {"-0.02", -0.02},
      {"10.25", 10.25},
      {"1e3", 1000.0},
      {"1E3", 1000.0},
      {"1e+3", 1000.0},
      {"2.5e-3", 0.0025},
      {"-1.5E-2", -0.015},
      {"0e0", 0.0},
      {"1e308", 1e308},
      {"1.7976931348623157e308", std::numeric_limits<double>::max()},
      {"2.2250738585072014e-308", std::numeric_limits<double>::min()},
      // Subnormals, down to the smallest one (strtod reported ERANGE).
      {"1e-310", 1e-310},
      {"4.9e-324", std::numeric_limits<double>::denorm_min()},
      {"5e-324", std::numeric_limits<double>::denorm_min()},
      {"-4.9e-324", -std::numeric_limits<double>::denorm_min()},
      {"0.1000000000000000055511151231257827021181583404541015625", 0.1},
  };
  for (const auto& [text, want] : accepted) {
    auto r = ParseFiniteNumber(text, "metric m");
    ASSERT_TRUE(r) << "'" << text << "': " << r.error().ToString();
    EXPECT_EQ(*r, want) << text;
    EXPECT_EQ(std::signbit(*r), std::signbit(want)) << text;
    EXPECT_TRUE(IsDecimalNumber(text)) << text;
    EXPECT_EQ(ParseDecimal(text), want) << text;
  }
}

TEST(ParseFiniteNumber, StrictDecimalGrammarRefuses) {
  for (const std::string text : {
           // whitespace anywhere (strtod skipped a leading one)
           " 1", "1 ", " 1 ", "\t1", "1\n", "- 1", "1 e3",
           // hex and other bases (strtod read 0x10 as 16)
           "0x10", "0X1p3", "0x", "0b1", "0o7",
           // no infinities or NaNs in any spelling
           "inf", "-inf", "+inf", "Infinity", "nan", "NaN", "-nan", "nan(1)",
           // out of range: overflow, and non-zero values that round to 0
           "1e309", "-1e309", "1e999", "2e-324", "1e-400", "-1e-400",
           // not this grammar: '+', leading zeros, bare points, empty parts
           "+1", "007", "-01", "00", "01.5", ".5", "-.5", "5.", "5.e3", "1e", "1e+", "e3",
           "1.2.3", "1,5", "1_000", "--1", "-", "", ".", "1.5x", "abc", "１"}) {
    auto r = ParseFiniteNumber(text, "metric sharpe");
    ASSERT_FALSE(r) << "'" << text << "' parsed as " << *r;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_TRUE(Contains(r.error().message(), "metric sharpe")) << r.error().message();
    EXPECT_TRUE(Contains(r.error().message(), "finite number")) << r.error().message();
    EXPECT_TRUE(Contains(r.error().message(), "'" + text + "'")) << r.error().message();
    EXPECT_FALSE(ParseDecimal(text).has_value()) << text;
  }
  // The grammar and the range are told apart in the message.
  EXPECT_TRUE(Contains(ParseFiniteNumber("1e309", "m").error().message(), "range"));
  EXPECT_TRUE(Contains(ParseFiniteNumber("1e-400", "m").error().message(), "range"));
  EXPECT_TRUE(Contains(ParseFiniteNumber("0x10", "m").error().message(), "not a decimal"));
}

// --- ValidateFileName ---

TEST(ValidateFileName, AcceptsOrdinaryNames) {
  for (const char* n : {"model.pkl", "weights.bin", ".hidden", "a..b", "...", "model v2.onnx",
                        "metadata.json.bak", "staging"}) {
    Status st = artifacts::ValidateFileName(n);
    EXPECT_TRUE(st.ok()) << n << ": " << st.ToString();
  }
  EXPECT_TRUE(artifacts::ValidateFileName(std::string(255, 'a')).ok());
}

TEST(ValidateFileName, RejectsReservedSeparatorsControlsAndDots) {
  const std::vector<std::string> bad = {"",
                                        ".",
                                        "..",
                                        "a/b",
                                        "/",
                                        "../model.pkl",
                                        "metadata.json",
                                        "checksum.sha256",
                                        ".staging",
                                        ".staging-abc",
                                        "model\n.pkl",
                                        "model\t.pkl",
                                        std::string("model\0.pkl", 10),
                                        "model\x7f",
                                        "\x1b[31m",
                                        std::string(256, 'a')};
  for (const std::string& n : bad) {
    Status st = artifacts::ValidateFileName(n);
    EXPECT_FALSE(st.ok()) << "'" << n << "'";
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << "'" << n << "'";
  }
  EXPECT_TRUE(Contains(artifacts::ValidateFileName("metadata.json").message(), "reserved"));
}

// --- BuildRegistration ---

Result<events::Registration> Build(const MetadataInput& in, const std::string& type = "risk_model",
                                   const std::string& version = "v1.0.0") {
  return BuildRegistration(type, version, in, "alice", kNow);
}

MetadataInput WithFile(const std::string& text) {
  MetadataInput in;
  in.metadata_json = text;
  return in;
}

void ExpectInvalid(const MetadataInput& in, const std::string& needle,
                   const std::string& type = "risk_model", const std::string& version = "v1.0.0") {
  auto r = Build(in, type, version);
  ASSERT_FALSE(r) << "accepted; expected an error mentioning '" << needle << "'";
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
  EXPECT_TRUE(Contains(r.error().message(), needle))
      << "'" << r.error().message() << "' does not mention '" << needle << "'";
}

const char kFullMetadata[] = R"({
  "model_id": "mdl_risk_0001",
  "model_type": "risk_model",
  "version": "v1.0.0",
  "dataset_version_ids": {"crsp": "v1.2.3", "compustat": "v4.5.6"},
  "snapshot_id": "snap_20250115",
  "factor_list": ["momentum_12m", "value_bm"],
  "parameters": {"halflife_days": 90, "universe": "us_top3000"},
  "metrics": {"sharpe": 1.25, "ic": 0.05, "max_drawdown": -0.12},
  "env": {"hostname": "trainer-01", "user": "pipeline", "os": "Linux", "tool_version": "t 1",
          "git_commit": "abc123", "python": "3.11.7", "threads": 8},
  "config": {"seed": 7, "epochs": 100},
  "created_by": "training_pipeline",
  "created_at": "2025-01-14T08:00:00Z"
})";

// Found by fuzz_metadata: a parameter (name or value) that is not UTF-8 made
// the JSON library throw inside BuildRegistration (std::terminate). The CLI
// refuses such arguments earlier, but every library caller (the HTTP server,
// later bindings) gets an error instead of an abort.
TEST(BuildRegistration, ParametersThatAreNotUtf8AreAnErrorNotAnAbort) {
  MetadataInput bad_value;
  bad_value.params["p"] = "caf\xe9";
  ExpectInvalid(bad_value, "parameter 'p' is not valid UTF-8");
  MetadataInput bad_name;
  bad_name.params["caf\xe9"] = "1";
  ExpectInvalid(bad_name, "is not valid UTF-8");
}

TEST(BuildRegistration, ReadsEveryFieldOfTheMetadataFile) {
  auto r = Build(WithFile(kFullMetadata));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->model_type, "risk_model");
  EXPECT_EQ(r->version, "v1.0.0");
  EXPECT_EQ(r->model_id, "mdl_risk_0001");
  const std::map<std::string, std::string> datasets = {{"crsp", "v1.2.3"},
                                                       {"compustat", "v4.5.6"}};
  EXPECT_EQ(r->dataset_version_ids, datasets);
  EXPECT_EQ(r->snapshot_id, "snap_20250115");
  EXPECT_EQ(r->factor_list, (std::vector<std::string>{"momentum_12m", "value_bm"}));
  EXPECT_EQ(json::parse(r->parameters_json), json::parse(R"({"halflife_days":90,"universe":"us_top3000"})"));
  EXPECT_EQ(r->parameters_json, R"({"halflife_days":90,"universe":"us_top3000"})");
  const std::map<std::string, double> metrics = {{"sharpe", 1.25}, {"ic", 0.05},
                                                 {"max_drawdown", -0.12}};
  EXPECT_EQ(r->metrics, metrics);
  EXPECT_EQ(r->env.hostname, "trainer-01");
  EXPECT_EQ(r->env.user, "pipeline");
  EXPECT_EQ(r->env.os, "Linux");
  EXPECT_EQ(r->env.tool_version, "t 1");
  EXPECT_EQ(r->env.git_commit, "abc123");
  const std::map<std::string, std::string> extra = {{"python", "3.11.7"}, {"threads", "8"}};
  EXPECT_EQ(r->env.extra, extra);
  EXPECT_EQ(r->config_json, R"({"epochs":100,"seed":7})");
  EXPECT_EQ(r->config_hash, ToHex(Sha256::Of(R"({"epochs":100,"seed":7})")));
  EXPECT_EQ(r->config_hash, ConfigHash(json::parse(R"({"seed":7,"epochs":100})")));
  EXPECT_EQ(r->created_by, "training_pipeline");
  EXPECT_EQ(r->created_at, *ParseTime("2025-01-14T08:00:00Z"));
  EXPECT_EQ(r->artifact_sha256, Digest{});  // not given
}

TEST(BuildRegistration, DefaultsWithoutAFile) {
  auto r = Build(MetadataInput{});
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->model_type, "risk_model");
  EXPECT_EQ(r->version, "v1.0.0");
  EXPECT_EQ(r->model_id.rfind("mdl_", 0), 0u) << r->model_id;
  EXPECT_GT(r->model_id.size(), 4u);
  EXPECT_TRUE(r->dataset_version_ids.empty());
  EXPECT_TRUE(r->metrics.empty());
  EXPECT_TRUE(r->factor_list.empty());
  EXPECT_EQ(r->parameters_json, "{}");
  EXPECT_EQ(r->config_json, "{}");
  EXPECT_EQ(r->config_hash, ToHex(Sha256::Of("{}")));
  EXPECT_EQ(r->created_by, "alice");
  EXPECT_EQ(r->created_at, kNow);
  // The environment is captured where the registration runs.
  EXPECT_EQ(r->env.tool_version, "modelreg " MODELREG_VERSION);
  EXPECT_FALSE(r->env.os.empty());
  // Two registrations get different generated model ids.
  auto r2 = Build(MetadataInput{});
  ASSERT_TRUE(r2);
  EXPECT_NE(r->model_id, r2->model_id);
}

TEST(BuildRegistration, FlagsOverrideFileValues) {
  MetadataInput in = WithFile(kFullMetadata);
  in.metrics = {{"sharpe", 2.5}, {"turnover", 0.3}};
  in.datasets = {{"crsp", "v9.9.9"}, {"taq", "v1.0.0"}};
  in.snapshot_id = "snap_override";
  in.factors = {"size_log_mcap"};
  in.params = {{"halflife_days", "30"}, {"note", "not json"}, {"list", "[1,2]"}};
  auto r = Build(in);
  ASSERT_TRUE(r) << r.error().ToString();
  const std::map<std::string, double> metrics = {
      {"sharpe", 2.5}, {"ic", 0.05}, {"max_drawdown", -0.12}, {"turnover", 0.3}};
  EXPECT_EQ(r->metrics, metrics);
  const std::map<std::string, std::string> datasets = {
      {"crsp", "v9.9.9"}, {"compustat", "v4.5.6"}, {"taq", "v1.0.0"}};
  EXPECT_EQ(r->dataset_version_ids, datasets);
  EXPECT_EQ(r->snapshot_id, "snap_override");
  EXPECT_EQ(r->factor_list, std::vector<std::string>{"size_log_mcap"});
  EXPECT_EQ(json::parse(r->parameters_json),
            json::parse(R"({"halflife_days":30,"universe":"us_top3000","note":"not json",
                            "list":[1,2]})"));
  // An empty snapshot flag still overrides (it is given).
  MetadataInput empty_snapshot = WithFile(kFullMetadata);
  empty_snapshot.snapshot_id = "";
  EXPECT_EQ(Build(empty_snapshot)->snapshot_id, "");
}

TEST(BuildRegistration, ConfigFileReplacesTheMetadataConfig) {
  MetadataInput in = WithFile(kFullMetadata);
  in.config_json = R"({"z": 1, "a": [true, false]})";
  auto r = Build(in);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->config_json, R"({"a":[true,false],"z":1})");
  EXPECT_EQ(r->config_hash, ToHex(Sha256::Of(R"({"a":[true,false],"z":1})")));
  MetadataInput bad = WithFile(kFullMetadata);
  bad.config_json = "[1]";
  ExpectInvalid(bad, "config file");
  bad.config_json = "{oops";
  ExpectInvalid(bad, "config file");
}

TEST(BuildRegistration, ConfigHashMustMatchTheConfig) {
  const std::string good_hash = ConfigHash(json::parse(R"({"epochs":100,"seed":7})"));
  auto ok = Build(WithFile(R"({"config":{"seed":7,"epochs":100},"config_hash":")" + good_hash +
                           R"("})"));
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(ok->config_hash, good_hash);

  ExpectInvalid(WithFile(R"({"config":{"seed":7,"epochs":100},"config_hash":")" +
                         std::string(64, 'a') + R"("})"),
                "config_hash");
  ExpectInvalid(WithFile(R"({"config":{"seed":8},"config_hash":")" + good_hash + R"("})"),
                "config_hash");
  // No config at all hashes "{}".
  ExpectInvalid(WithFile(R"({"config_hash":")" + good_hash + R"("})"), "config_hash");
  ExpectInvalid(WithFile(R"({"config_hash":5})"), "config_hash");
}

TEST(BuildRegistration, CreatedAtMustParse) {
  auto with_zone = Build(WithFile(R"({"created_at":"2025-01-15T09:30:00.5+02:00"})"));
  ASSERT_TRUE(with_zone) << with_zone.error().ToString();
  EXPECT_EQ(with_zone->created_at, *ParseTime("2025-01-15T07:30:00.5Z"));
  for (const char* bad : {R"({"created_at":"yesterday"})", R"({"created_at":"2025-13-01T00:00:00Z"})",
                          R"({"created_at":"2025-01-15T09:30:00"})"}) {
    ExpectInvalid(WithFile(bad), "created_at");
  }
  ExpectInvalid(WithFile(R"({"created_at":1736933400})"), "created_at");
}

TEST(BuildRegistration, ChecksumMustBeHex) {
  const std::string hex = ToHex(Sha256::Of("artifact"));
  auto ok = Build(WithFile(R"({"checksum_sha256":")" + hex + R"("})"));
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(ToHex(ok->artifact_sha256), hex);
  std::string upper = hex;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  auto ok_upper = Build(WithFile(R"({"checksum_sha256":")" + upper + R"("})"));
  ASSERT_TRUE(ok_upper) << ok_upper.error().ToString();
  EXPECT_EQ(ToHex(ok_upper->artifact_sha256), hex);

  ExpectInvalid(WithFile(R"({"checksum_sha256":")" + hex.substr(0, 63) + R"("})"),
                "checksum_sha256");
  ExpectInvalid(WithFile(R"({"checksum_sha256":")" + hex.substr(0, 63) + R"(g"})"),
                "checksum_sha256");
  ExpectInvalid(WithFile(R"({"checksum_sha256":")" + hex + R"(0"})"), "checksum_sha256");
  ExpectInvalid(WithFile(R"({"checksum_sha256":"sha256:abc"})"), "checksum_sha256");
}

TEST(BuildRegistration, MetadataFileMustBeAJsonObject) {
  for (const char* text : {"[]", "[1,2]", "\"text\"", "42", "null", "true"}) {
    ExpectInvalid(WithFile(text), "must be a JSON object");
  }
  for (const char* text : {"", "{", "{\"a\":}", "{'a':1}", "{\"metrics\":{\"x\":NaN}}",
                           "{\"metrics\":{\"x\":Infinity}}", "{} trailing"}) {
    ExpectInvalid(WithFile(text), "not valid JSON");
  }
  ExpectInvalid(WithFile(std::string(kMaxMetadataBytes + 1, ' ')), "1 MiB");
}

TEST(BuildRegistration, FieldsOfTheWrongShapeAreRejected) {
  ExpectInvalid(WithFile(R"({"model_id": 7})"), "model_id");
  ExpectInvalid(WithFile(R"({"snapshot_id": ["a"]})"), "snapshot_id");
  ExpectInvalid(WithFile(R"({"created_by": {}})"), "created_by");
  ExpectInvalid(WithFile(R"({"dataset_version_ids": ["crsp"]})"), "dataset_version_ids");
  ExpectInvalid(WithFile(R"({"dataset_version_ids": {"crsp": 1}})"), "dataset_version_ids.crsp");
  ExpectInvalid(WithFile(R"({"factor_list": "momentum"})"), "factor_list");
  ExpectInvalid(WithFile(R"({"factor_list": ["momentum", 3]})"), "factor_list");
  ExpectInvalid(WithFile(R"({"parameters": [1]})"), "parameters");
  ExpectInvalid(WithFile(R"({"metrics": [1.0]})"), "metrics");
  ExpectInvalid(WithFile(R"({"metrics": {"sharpe": "1.2"}})"), "sharpe");
  ExpectInvalid(WithFile(R"({"metrics": {"sharpe": null}})"), "sharpe");
  ExpectInvalid(WithFile(R"({"config": "epochs=3"})"), "config");
  ExpectInvalid(WithFile(R"({"env": "linux"})"), "env");
}

TEST(BuildRegistration, NonFiniteMetricsAreRejected) {
  // JSON has no NaN or infinity literal; an overflowing number is the
  // nearest a file can come, and it must not become +inf (the JSON parser
  // refuses it as a number overflow).
  for (const char* text : {R"({"metrics": {"sharpe": 1e999}})", R"({"metrics": {"sharpe": -1e999}})"}) {
    auto r = Build(WithFile(text));
    ASSERT_FALSE(r) << text << " accepted, sharpe = " << r->metrics.at("sharpe");
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
  }
  // Flags go through ParseFiniteNumber; a non-finite value that reaches
  // MetadataInput anyway is still refused.
  for (double bad : {std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
    MetadataInput in;
    in.metrics = {{"ic", bad}};
    ExpectInvalid(in, "ic");
  }
}

TEST(BuildRegistration, TypeAndVersionMustMatchTheCommandLine) {
  ExpectInvalid(WithFile(R"({"model_type":"alpha_weights"})"), "model_type");
  ExpectInvalid(WithFile(R"({"version":"v1.0.1"})"), "v1.0.1");
  ExpectInvalid(WithFile(R"({"version":"v1.0.1"})"), "v1.0.0");
  ExpectInvalid(WithFile(R"({"model_type":3})"), "model_type");
  // Matching values, null and absent are all fine.
  EXPECT_TRUE(Build(WithFile(R"({"model_type":"risk_model","version":"v1.0.0"})")));
  EXPECT_TRUE(Build(WithFile(R"({"model_type":null,"version":null})")));
  auto alpha = Build(WithFile(R"({"model_type":"alpha_weights","version":"v2.0.0-rc.1"})"),
                     "alpha_weights", "v2.0.0-rc.1");
  ASSERT_TRUE(alpha) << alpha.error().ToString();
  EXPECT_EQ(alpha->model_type, "alpha_weights");
  EXPECT_EQ(alpha->version, "v2.0.0-rc.1");
}

}  // namespace
}  // namespace modelreg::registry
