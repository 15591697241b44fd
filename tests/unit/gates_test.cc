// Promotion gates, the policy file, dataset-version compatibility and the
// validator command: the pure functions at their boundaries, then the
// registry enforcing them over a real log and real artifact files in a
// temporary directory, with a ManualClock for the paper-trading time.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/sha256.h"
#include "compat/compatibility.h"
#include "events/model_events.h"
#include "log/event_buffer.h"
#include "log/event_store.h"
#include "policy/policy.h"
#include "projection/state.h"
#include "query/query.h"
#include "registry/registry.h"
#include "support/temp_dir.h"
#include "validation/validator.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr TimeNs kT0 = 1'736'933'400'000'000'000LL;  // 2025-01-15T09:30:00Z
constexpr TimeNs kNs = 1;
constexpr TimeNs kSec = 1'000'000'000LL;
constexpr TimeNs kMin = 60 * kSec;
constexpr TimeNs kHour = 60 * kMin;
constexpr char kRisk[] = "risk_model";

template <typename T>
Code CodeOf(const Result<T>& r) {
  return r ? Code::kOk : r.error().code();
}

template <typename T>
std::string ErrorOf(const Result<T>& r) {
  return r ? std::string("(ok)") : r.error().ToString();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void WriteAll(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

// ============================================================================
// 1. EvaluateGates / DescribeFailures
// ============================================================================

policy::TypePolicy OneGate(const std::string& name, const std::string& op, double threshold) {
  policy::TypePolicy p;
  p.gates.push_back(policy::GateSpec{name, op, threshold});
  return p;
}

// Evaluates a single metric gate against a single observed value.
events::Gate EvalOne(const std::string& op, double threshold, double observed) {
  auto gates = policy::EvaluateGates(OneGate("m", op, threshold), {{"m", observed}}, kT0, kT0);
  EXPECT_EQ(gates.size(), 1u);
  return gates.empty() ? events::Gate{} : gates[0];
}

TEST(EvaluateGates, IcExactlyAtThresholdFailsStrictGreater) {
  const auto p = OneGate("ic", ">", 0.02);
  auto at = policy::EvaluateGates(p, {{"ic", 0.02}}, kT0, kT0);
  ASSERT_EQ(at.size(), 1u);
  EXPECT_FALSE(at[0].passed) << "ic == 0.02 must fail '> 0.02'";
  EXPECT_TRUE(at[0].has_observed);
  EXPECT_DOUBLE_EQ(at[0].observed, 0.02);
  EXPECT_EQ(at[0].name, "ic");
  EXPECT_EQ(at[0].comparison, ">");
  EXPECT_DOUBLE_EQ(at[0].threshold, 0.02);

  auto above = policy::EvaluateGates(p, {{"ic", 0.0200001}}, kT0, kT0);
  ASSERT_EQ(above.size(), 1u);
  EXPECT_TRUE(above[0].passed) << "ic == 0.0200001 must pass '> 0.02'";

  auto below = policy::EvaluateGates(p, {{"ic", 0.0199999}}, kT0, kT0);
  ASSERT_EQ(below.size(), 1u);
  EXPECT_FALSE(below[0].passed);
}

TEST(EvaluateGates, SharpeAtThresholdFailsGreaterButPassesGreaterOrEqual) {
  EXPECT_FALSE(EvalOne(">", 0.5, 0.5).passed);
  EXPECT_TRUE(EvalOne(">", 0.5, 0.5000001).passed);
  EXPECT_TRUE(EvalOne(">=", 0.5, 0.5).passed) << "'>=' is inclusive";
  EXPECT_TRUE(EvalOne(">=", 0.5, 0.6).passed);
  EXPECT_FALSE(EvalOne(">=", 0.5, 0.4999999).passed);
}

TEST(EvaluateGates, LessAndLessOrEqual) {
  EXPECT_FALSE(EvalOne("<", 0.2, 0.2).passed) << "'<' is exclusive";
  EXPECT_TRUE(EvalOne("<", 0.2, 0.1999999).passed);
  EXPECT_FALSE(EvalOne("<", 0.2, 0.3).passed);
  EXPECT_TRUE(EvalOne("<=", 0.2, 0.2).passed) << "'<=' is inclusive";
  EXPECT_TRUE(EvalOne("<=", 0.2, -5).passed);
  EXPECT_FALSE(EvalOne("<=", 0.2, 0.2000001).passed);
  // Negative thresholds (max_drawdown >= -0.2).
  EXPECT_TRUE(EvalOne(">=", -0.2, -0.2).passed);
  EXPECT_FALSE(EvalOne(">=", -0.2, -0.2000001).passed);
}

TEST(EvaluateGates, MissingMetricFailsSayingItIsMissing) {
  policy::TypePolicy p;
  p.gates = {{"ic", ">", 0.02}, {"sharpe", ">", 0.5}};
  auto gates = policy::EvaluateGates(p, {{"ic", 0.05}}, kT0, kT0);
  ASSERT_EQ(gates.size(), 2u);
  EXPECT_EQ(gates[0].name, "ic");
  EXPECT_TRUE(gates[0].passed);
  EXPECT_EQ(gates[1].name, "sharpe");
  EXPECT_FALSE(gates[1].passed);
  EXPECT_FALSE(gates[1].has_observed);
  EXPECT_TRUE(Contains(gates[1].detail, "missing")) << gates[1].detail;
  EXPECT_TRUE(Contains(gates[1].detail, "sharpe")) << gates[1].detail;

  // No metrics at all: every metric gate fails.
  auto none = policy::EvaluateGates(p, {}, kT0, kT0);
  ASSERT_EQ(none.size(), 2u);
  for (const auto& g : none) {
    EXPECT_FALSE(g.passed) << g.name;
    EXPECT_FALSE(g.has_observed) << g.name;
    EXPECT_TRUE(Contains(g.detail, "missing")) << g.detail;
  }
}

TEST(EvaluateGates, PaperTradingHoursBoundaryInNanoseconds) {
  const auto p = OneGate(policy::kPaperTradingGate, ">=", 24);
  const TimeNs registered = kT0;

  auto short_by_a_second =
      policy::EvaluateGates(p, {}, registered, registered + 23 * kHour + 59 * kMin + 59 * kSec);
  ASSERT_EQ(short_by_a_second.size(), 1u);
  EXPECT_FALSE(short_by_a_second[0].passed) << "23h59m59s is not 24 hours";
  EXPECT_TRUE(short_by_a_second[0].has_observed);
  EXPECT_NEAR(short_by_a_second[0].observed, 24.0 - 1.0 / 3600, 1e-9);

  auto short_by_a_ns = policy::EvaluateGates(p, {}, registered, registered + 24 * kHour - kNs);
  ASSERT_EQ(short_by_a_ns.size(), 1u);
  EXPECT_FALSE(short_by_a_ns[0].passed) << "24h minus one nanosecond is not 24 hours";

  auto exactly = policy::EvaluateGates(p, {}, registered, registered + 24 * kHour);
  ASSERT_EQ(exactly.size(), 1u);
  EXPECT_TRUE(exactly[0].passed) << "exactly 24h passes '>= 24'";
  EXPECT_DOUBLE_EQ(exactly[0].observed, 24.0);
  EXPECT_EQ(exactly[0].name, policy::kPaperTradingGate);

  auto later = policy::EvaluateGates(p, {}, registered, registered + 24 * kHour + kNs);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_TRUE(later[0].passed);

  // '>' 24: exactly 24h fails, one ns more passes.
  const auto strict = OneGate(policy::kPaperTradingGate, ">", 24);
  EXPECT_FALSE(policy::EvaluateGates(strict, {}, registered, registered + 24 * kHour)[0].passed);
  EXPECT_TRUE(
      policy::EvaluateGates(strict, {}, registered, registered + 24 * kHour + kNs)[0].passed);
}

TEST(EvaluateGates, PaperTradingUsesTheClockNotAReportedMetric) {
  // A model claiming paper_trading_hours=1000 in its metrics does not skip
  // the wait: the gate measures registration -> now.
  const auto p = OneGate(policy::kPaperTradingGate, ">=", 24);
  auto gates =
      policy::EvaluateGates(p, {{policy::kPaperTradingGate, 1000.0}}, kT0, kT0 + 1 * kHour);
  ASSERT_EQ(gates.size(), 1u);
  EXPECT_FALSE(gates[0].passed);
  EXPECT_DOUBLE_EQ(gates[0].observed, 1.0);
}

TEST(EvaluateGates, EveryGateIsEvaluatedInPolicyOrder) {
  const policy::Policy def = policy::DefaultPolicy();
  auto gates = policy::EvaluateGates(def.defaults, {{"ic", 0.05}, {"sharpe", 1.0}}, kT0,
                                     kT0 + 24 * kHour);
  ASSERT_EQ(gates.size(), 3u);
  EXPECT_EQ(gates[0].name, "ic");
  EXPECT_EQ(gates[1].name, "paper_trading_hours");
  EXPECT_EQ(gates[2].name, "sharpe");
  for (const auto& g : gates) EXPECT_TRUE(g.passed) << g.name;
}

TEST(DescribeFailures, ListsOnlyFailedGatesWithThresholdAndObserved) {
  const policy::Policy def = policy::DefaultPolicy();
  // ic fails (0.015), paper trading passes, sharpe missing.
  auto gates = policy::EvaluateGates(def.defaults, {{"ic", 0.015}}, kT0, kT0 + 48 * kHour);
  const std::string text = policy::DescribeFailures(gates);
  EXPECT_EQ(text, "ic: 0.015 is not > 0.02; sharpe: metric missing (needs > 0.5)");
  EXPECT_FALSE(Contains(text, "paper_trading_hours")) << text;

  // Paper trading failing, the others passing.
  auto early =
      policy::EvaluateGates(def.defaults, {{"ic", 0.05}, {"sharpe", 1.0}}, kT0, kT0 + 12 * kHour);
  EXPECT_EQ(policy::DescribeFailures(early), "paper_trading_hours: 12 is not >= 24");

  // Nothing failed: nothing to describe.
  auto ok =
      policy::EvaluateGates(def.defaults, {{"ic", 0.05}, {"sharpe", 1.0}}, kT0, kT0 + 24 * kHour);
  EXPECT_EQ(policy::DescribeFailures(ok), "");
}

TEST(DescribeFailures, DatasetCompatibilityWithoutObservedValueGivesItsDetail) {
  // Promote builds this gate with has_observed=false when the current
  // versions file cannot be read or parsed; the reason is in `detail`.
  events::Gate g;
  g.name = "dataset_compatibility";
  g.comparison = "==";
  g.threshold = 0;
  g.has_observed = false;
  g.passed = false;
  g.detail = "cannot read /srv/reg/datasets.json";
  const std::string text = policy::DescribeFailures({g});
  EXPECT_EQ(text, "dataset_compatibility: cannot read /srv/reg/datasets.json")
      << "the rejection line must say why, not 'metric missing (needs == 0)'";
}

// ============================================================================
// 2. ParsePolicy / LoadPolicy
// ============================================================================

const policy::GateSpec* FindSpec(const policy::TypePolicy& p, const std::string& name) {
  for (const auto& g : p.gates) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

std::vector<std::string> GateNames(const policy::TypePolicy& p) {
  std::vector<std::string> out;
  for (const auto& g : p.gates) out.push_back(g.name);
  return out;
}

void ExpectGate(const policy::TypePolicy& p, const std::string& name, const std::string& op,
                double threshold) {
  const policy::GateSpec* g = FindSpec(p, name);
  ASSERT_NE(g, nullptr) << name << " missing from " << p.Describe();
  EXPECT_EQ(g->op, op) << name;
  EXPECT_DOUBLE_EQ(g->threshold, threshold) << name;
}

TEST(ParsePolicy, DefaultPolicyIsTheSpecs) {
  const policy::Policy p = policy::DefaultPolicy();
  EXPECT_EQ(p.source, "built-in defaults");
  EXPECT_EQ(p.digest, "");
  EXPECT_TRUE(p.types.empty());
  EXPECT_EQ(GateNames(p.defaults),
            (std::vector<std::string>{"ic", "paper_trading_hours", "sharpe"}));
  ExpectGate(p.defaults, "ic", ">", 0.02);
  ExpectGate(p.defaults, "sharpe", ">", 0.5);
  ExpectGate(p.defaults, "paper_trading_hours", ">=", 24);
  EXPECT_FALSE(p.defaults.validator.has_value());
  EXPECT_FALSE(p.defaults.compatibility.has_value());
  EXPECT_EQ(&p.For(kRisk), &p.defaults);
  EXPECT_EQ(p.defaults.Describe(), "ic > 0.02, paper_trading_hours >= 24, sharpe > 0.5");
}

TEST(ParsePolicy, EmptyFileGivesDefaultsWithSourceAndDigest) {
  auto p = policy::ParsePolicy("", "policy.toml");
  ASSERT_TRUE(p) << ErrorOf(p);
  EXPECT_EQ(p->source, "policy.toml");
  EXPECT_EQ(p->digest, ToHex(Sha256::Of("")));
  EXPECT_EQ(p->defaults.Describe(), "ic > 0.02, paper_trading_hours >= 24, sharpe > 0.5");
  EXPECT_TRUE(p->types.empty());
}

TEST(ParsePolicy, DefaultTableOverridesTheBuiltInGates) {
  auto p = policy::ParsePolicy(
      "[default]\n"
      "ic = \"> 0.05\"\n"
      "sharpe = \">= 1\"\n",
      "policy.toml");
  ASSERT_TRUE(p) << ErrorOf(p);
  ExpectGate(p->defaults, "ic", ">", 0.05);
  ExpectGate(p->defaults, "sharpe", ">=", 1);
  ExpectGate(p->defaults, "paper_trading_hours", ">=", 24);  // untouched
  EXPECT_EQ(p->defaults.gates.size(), 3u);
  EXPECT_EQ(&p->For("alpha_weights"), &p->defaults);
}

// Thresholds use the CLI's strict decimal grammar (common/decimal.h):
// exponents, a negative zero and subnormals are fine (what it refuses is in
// ParsePolicyErrors.ThresholdNotANumber).
TEST(ParsePolicy, ThresholdsInTheStrictDecimalGrammar) {
  auto p = policy::ParsePolicy(
      "[default]\n"
      "ic = \"> 4.9e-324\"\n"
      "sharpe = \">= -1.5E+2\"\n"
      "max_drawdown = \">= -0\"\n",
      "policy.toml");
  ASSERT_TRUE(p) << ErrorOf(p);
  ExpectGate(p->defaults, "ic", ">", std::numeric_limits<double>::denorm_min());
  // Exactly the smallest subnormal, not 0 (EXPECT_DOUBLE_EQ allows 4 ulps).
  ASSERT_NE(FindSpec(p->defaults, "ic"), nullptr);
  EXPECT_EQ(FindSpec(p->defaults, "ic")->threshold, std::numeric_limits<double>::denorm_min());
  ExpectGate(p->defaults, "sharpe", ">=", -150);
  ExpectGate(p->defaults, "max_drawdown", ">=", 0);
}

TEST(ParsePolicy, TypeTableInheritsOverridesAddsAndRemoves) {
  const std::string text =
      "[default]\n"
      "ic = \"> 0.03\"\n"
      "\n"
      "[risk_model]\n"
      "sharpe = \"> 0.8\"                 # overrides the default\n"
      "max_drawdown = \">= -0.2\"         # an extra metric gate\n"
      "paper_trading_hours = \"off\"      # removes a default gate\n"
      "validator = { command = [\"python3\", \"check.py\"], timeout_seconds = 30 }\n"
      "compatibility = { current_versions_file = \"datasets.json\", strict = false }\n"
      "\n"
      "[feature_transforms]\n"
      "paper_trading_hours = \"off\"\n"
      "ic = \"off\"\n"
      "sharpe = \"off\"\n";
  auto p = policy::ParsePolicy(text, "policy.toml");
  ASSERT_TRUE(p) << ErrorOf(p);

  const policy::TypePolicy& risk = p->For(kRisk);
  EXPECT_EQ(GateNames(risk), (std::vector<std::string>{"ic", "max_drawdown", "sharpe"}))
      << "sorted by name, paper_trading_hours removed";
  ExpectGate(risk, "ic", ">", 0.03);  // inherited from [default], not the built-in 0.02
  ExpectGate(risk, "sharpe", ">", 0.8);
  ExpectGate(risk, "max_drawdown", ">=", -0.2);
  EXPECT_EQ(FindSpec(risk, "paper_trading_hours"), nullptr);

  ASSERT_TRUE(risk.validator.has_value());
  EXPECT_EQ(risk.validator->command, (std::vector<std::string>{"python3", "check.py"}));
  EXPECT_EQ(risk.validator->timeout_seconds, 30);
  ASSERT_TRUE(risk.compatibility.has_value());
  EXPECT_EQ(risk.compatibility->current_versions_file, "datasets.json");
  EXPECT_FALSE(risk.compatibility->strict);
  EXPECT_EQ(risk.Describe(),
            "ic > 0.03, max_drawdown >= -0.2, sharpe > 0.8; validator: python3 check.py (30 s); "
            "compatibility with datasets.json (drift allowed)");

  // The type table does not leak into [default] or other types.
  EXPECT_EQ(p->defaults.Describe(), "ic > 0.03, paper_trading_hours >= 24, sharpe > 0.5");
  EXPECT_EQ(p->For("alpha_weights").Describe(),
            "ic > 0.03, paper_trading_hours >= 24, sharpe > 0.5");
  EXPECT_TRUE(p->For("feature_transforms").gates.empty());
  EXPECT_EQ(p->For("feature_transforms").Describe(), "no gates");
}

TEST(ParsePolicy, TypeTableBeforeDefaultStillInheritsIt) {
  auto p = policy::ParsePolicy(
      "[risk_model]\n"
      "sharpe = \"> 0.8\"\n"
      "[default]\n"
      "ic = \"> 0.03\"\n",
      "policy.toml");
  ASSERT_TRUE(p) << ErrorOf(p);
  ExpectGate(p->For(kRisk), "ic", ">", 0.03);
  ExpectGate(p->For(kRisk), "sharpe", ">", 0.8);
}

TEST(ParsePolicy, ValidatorAndCompatibilityDefaults) {
  auto p = policy::ParsePolicy(
      "[alpha_weights]\n"
      "validator = { command = [\"/usr/bin/check\"] }\n"
      "compatibility = { current_versions_file = \"current.json\" }\n",
      "policy.toml");
  ASSERT_TRUE(p) << ErrorOf(p);
  const auto& a = p->For("alpha_weights");
  ASSERT_TRUE(a.validator.has_value());
  EXPECT_EQ(a.validator->command, (std::vector<std::string>{"/usr/bin/check"}));
  EXPECT_EQ(a.validator->timeout_seconds, 60);
  ASSERT_TRUE(a.compatibility.has_value());
  EXPECT_TRUE(a.compatibility->strict) << "strict is the default";
  EXPECT_TRUE(Contains(a.Describe(), "compatibility with current.json (strict)")) << a.Describe();

  // Timeout bounds are inclusive.
  for (int secs : {1, 3600}) {
    auto q = policy::ParsePolicy("[risk_model]\nvalidator = { command = [\"x\"], timeout_seconds = " +
                                     std::to_string(secs) + " }\n",
                                 "policy.toml");
    ASSERT_TRUE(q) << secs << ": " << ErrorOf(q);
    EXPECT_EQ(q->For(kRisk).validator->timeout_seconds, secs);
  }
}

TEST(ParsePolicy, DescribeForNamesSourceDigestAndGates) {
  const std::string text = "[risk_model]\nsharpe = \"> 0.8\"\n";
  auto p = policy::ParsePolicy(text, "/srv/reg/policy.toml");
  ASSERT_TRUE(p) << ErrorOf(p);
  const std::string d = p->DescribeFor(kRisk);
  EXPECT_EQ(d, "/srv/reg/policy.toml (sha256 " + ToHex(Sha256::Of(text)).substr(0, 12) +
                   "): ic > 0.02, paper_trading_hours >= 24, sharpe > 0.8");
  EXPECT_TRUE(Contains(p->DescribeFor("alpha_weights"), "sharpe > 0.5"));
  EXPECT_EQ(policy::DefaultPolicy().DescribeFor(kRisk),
            "built-in defaults: ic > 0.02, paper_trading_hours >= 24, sharpe > 0.5");
}

// Parses `text` expecting InvalidArgument naming "policy.toml:<line>".
void ExpectPolicyError(const std::string& text, int line, const std::string& also = "") {
  auto p = policy::ParsePolicy(text, "policy.toml");
  ASSERT_FALSE(p) << "accepted:\n" << text;
  EXPECT_EQ(p.error().code(), Code::kInvalidArgument) << p.error().ToString();
  const std::string& m = p.error().message();
  const std::string where = "policy.toml:" + std::to_string(line) + ":";
  EXPECT_EQ(m.rfind(where, 0), 0u) << "want prefix '" << where << "', got: " << m << "\nfor:\n"
                                   << text;
  if (!also.empty()) {
    EXPECT_TRUE(Contains(m, also)) << "want '" << also << "' in: " << m;
  }
}

TEST(ParsePolicyErrors, BadOperator) {
  ExpectPolicyError("[default]\nic = \"> 0.02\"\nsharpe = \"=> 0.5\"\n", 3, "sharpe");
  ExpectPolicyError("[default]\nsharpe = \"== 0.5\"\n", 2, "sharpe");
  ExpectPolicyError("[risk_model]\n\n\nic = \"0.02\"\n", 4, "ic");
}

TEST(ParsePolicyErrors, ThresholdNotANumber) {
  ExpectPolicyError("[default]\n\nsharpe = \"> abc\"\n", 3, "sharpe");
  ExpectPolicyError("[default]\nsharpe = \">\"\n", 2, "sharpe");
  ExpectPolicyError("[default]\nsharpe = \"> 0.5 extra\"\n", 2, "sharpe");
  ExpectPolicyError("[default]\nsharpe = \"> nan\"\n", 2, "sharpe");
  ExpectPolicyError("[default]\nsharpe = \"> 1e999\"\n", 2, "sharpe");
  ExpectPolicyError("[default]\nsharpe = \"> 0.5x\"\n", 2, "sharpe");
  // The CLI's strict decimal grammar (common/decimal.h): strtod read these.
  ExpectPolicyError("[default]\nsharpe = \"> 0x10\"\n", 2, "finite number");
  ExpectPolicyError("[default]\nsharpe = \"> .5\"\n", 2, "sharpe");
  ExpectPolicyError("[default]\nsharpe = \">= +1\"\n", 2, "sharpe");
  ExpectPolicyError("[default]\nsharpe = \"> infinity\"\n", 2, "sharpe");
}

TEST(ParsePolicyErrors, GateValueNotAString) {
  ExpectPolicyError("[risk_model]\nsharpe = 0.8\n", 2, "sharpe");
  ExpectPolicyError("[default]\nic = \"> 0.02\"\npaper_trading_hours = 24\n", 3,
                    "paper_trading_hours");
  ExpectPolicyError("[default]\nic = true\n", 2, "ic");
}

TEST(ParsePolicyErrors, TomlSyntaxError) {
  ExpectPolicyError("[default]\nic = \"> 0.02\"\nsharpe = \"> 0.5\n", 3);
  ExpectPolicyError("[default\nic = \"> 0.02\"\n", 1);
}

TEST(ParsePolicyErrors, SectionThatIsNotAValidModelName) {
  ExpectPolicyError("[default]\nic = \"> 0.02\"\n\n[Risk_Model]\nsharpe = \"> 0.8\"\n", 4,
                    "Risk_Model");
  ExpectPolicyError("[alpha-]\n[\"a.b\"]\n", 2, "a.b");
  ExpectPolicyError("[\"-x\"]\n", 1, "lowercase letters a-z");
  // A top-level key outside any table is not a section either.
  ExpectPolicyError("ic = \"> 0.02\"\n", 1, "ic");
}

TEST(ParsePolicy, AnyValidModelNameIsASection) {
  // Registered or not: a policy may be written before the first
  // registration, so a section for a name nobody uses is no error.
  auto p = policy::ParsePolicy(
      "[default]\nsharpe = \"> 0.5\"\n[alpha_momentum]\nsharpe = \"> 1.5\"\n"
      "[credit-risk-2]\nic = \"off\"\n[risk_modle]\nic = \"> 0.1\"\n",
      "policy.toml");
  ASSERT_TRUE(p) << p.error().ToString();
  EXPECT_TRUE(Contains(p->For("alpha_momentum").Describe(), "sharpe > 1.5"))
      << p->For("alpha_momentum").Describe();
  EXPECT_FALSE(Contains(p->For("credit-risk-2").Describe(), "ic "))
      << p->For("credit-risk-2").Describe();
  // Any other name falls back to [default].
  EXPECT_TRUE(Contains(p->For("alpha_value").Describe(), "sharpe > 0.5"))
      << p->For("alpha_value").Describe();
}

TEST(ParsePolicyErrors, DefaultThatIsNotATable) {
  // Every other top-level key that is not a type table is an error; a
  // `default` key that is not a table must not be silently ignored either.
  // Today both parse as the built-in defaults (bug: src/policy/policy.cc).
  ExpectPolicyError("default = \"off\"\n", 1, "default");
  ExpectPolicyError("# comment\ndefault = 3\n", 2, "default");
}

TEST(ParsePolicyErrors, ValidatorProblems) {
  ExpectPolicyError("[risk_model]\nvalidator = { timeout_seconds = 5 }\n", 2, "command");
  ExpectPolicyError("[risk_model]\nvalidator = { command = [] }\n", 2, "command");
  ExpectPolicyError("[risk_model]\nvalidator = { command = [1, 2] }\n", 2, "command");
  ExpectPolicyError("[risk_model]\nvalidator = \"python3 check.py\"\n", 2, "validator");
  ExpectPolicyError("[risk_model]\n\nvalidator = { command = [\"x\"], timeout_seconds = 0 }\n", 3,
                    "timeout_seconds");
  ExpectPolicyError("[risk_model]\nvalidator = { command = [\"x\"], timeout_seconds = 3601 }\n", 2,
                    "timeout_seconds");
  ExpectPolicyError("[risk_model]\nvalidator = { command = [\"x\"], timeout_seconds = -1 }\n", 2,
                    "timeout_seconds");
  ExpectPolicyError("[risk_model]\nvalidator = { command = [\"x\"], timeout_seconds = \"5\" }\n",
                    2, "timeout_seconds");
  ExpectPolicyError("[risk_model]\nvalidator = { command = [\"x\"], timeot_seconds = 5 }\n", 2,
                    "timeot_seconds");
}

TEST(ParsePolicyErrors, CompatibilityProblems) {
  ExpectPolicyError("[risk_model]\ncompatibility = { strict = true }\n", 2,
                    "current_versions_file");
  ExpectPolicyError(
      "[risk_model]\ncompatibility = { current_versions_file = \"d.json\", strict = \"yes\" }\n", 2,
      "strict");
  ExpectPolicyError(
      "[risk_model]\ncompatibility = { current_versions_file = \"d.json\", strrict = true }\n", 2,
      "strrict");
}

TEST(LoadPolicy, NoFileGivesDefaults) {
  testing::TempDir dir;
  auto p = policy::LoadPolicy(dir.path());
  ASSERT_TRUE(p) << ErrorOf(p);
  EXPECT_EQ(p->source, "built-in defaults");
  EXPECT_EQ(p->defaults.Describe(), "ic > 0.02, paper_trading_hours >= 24, sharpe > 0.5");
}

TEST(LoadPolicy, ReadsThePolicyFileAndNamesItInErrors) {
  testing::TempDir dir;
  const std::string path = dir.sub("policy.toml");
  WriteAll(path, "[risk_model]\nsharpe = \"> 0.8\"\n");
  auto p = policy::LoadPolicy(dir.path());
  ASSERT_TRUE(p) << ErrorOf(p);
  EXPECT_EQ(p->source, path);
  ExpectGate(p->For(kRisk), "sharpe", ">", 0.8);

  WriteAll(path, "[risk_model]\nsharpe = \"~ 0.8\"\n");
  auto bad = policy::LoadPolicy(dir.path());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(bad.error().message().rfind(path + ":2:", 0), 0u) << bad.error().message();
}

// ============================================================================
// 3. VersionCompatibilityChecker
// ============================================================================

const compat::DatasetVersions kModel = {{"compustat", "v1.0.0"}, {"crsp", "v1.2.3"}};

struct CompatCase {
  std::string name;
  compat::DatasetVersions model;
  compat::DatasetVersions current;
  bool strict;
  bool compatible;
  compat::Level level;
  std::vector<std::string> warnings;
};

TEST(Compatibility, FullTruthTable) {
  const std::string drift_line = "crsp: model trained on v1.2.3, current is v1.2.4";
  const std::string missing_line = "compustat: model trained on v1.0.0, not in the current datasets";
  const compat::DatasetVersions exact = kModel;
  const compat::DatasetVersions drift = {{"compustat", "v1.0.0"}, {"crsp", "v1.2.4"}};
  const compat::DatasetVersions missing = {{"crsp", "v1.2.3"}};
  const compat::DatasetVersions both = {{"crsp", "v1.2.4"}};
  const compat::DatasetVersions extra = {
      {"compustat", "v1.0.0"}, {"crsp", "v1.2.3"}, {"ibes", "v9.9.9"}};

  const std::vector<CompatCase> cases = {
      {"exact/strict", kModel, exact, true, true, compat::Level::kCompatible, {}},
      {"exact/lenient", kModel, exact, false, true, compat::Level::kCompatible, {}},
      {"drift/strict", kModel, drift, true, false, compat::Level::kDrift, {drift_line}},
      {"drift/lenient", kModel, drift, false, true, compat::Level::kDrift, {drift_line}},
      {"missing/strict", kModel, missing, true, false, compat::Level::kMissing, {missing_line}},
      {"missing/lenient", kModel, missing, false, false, compat::Level::kMissing, {missing_line}},
      {"drift+missing/strict", kModel, both, true, false, compat::Level::kMissing,
       {missing_line, drift_line}},
      {"drift+missing/lenient", kModel, both, false, false, compat::Level::kMissing,
       {missing_line, drift_line}},
      {"extra current/strict", kModel, extra, true, true, compat::Level::kCompatible, {}},
      {"extra current/lenient", kModel, extra, false, true, compat::Level::kCompatible, {}},
      {"empty model/strict", {}, exact, true, true, compat::Level::kCompatible, {}},
      {"empty model/lenient", {}, exact, false, true, compat::Level::kCompatible, {}},
      {"empty both/strict", {}, {}, true, true, compat::Level::kCompatible, {}},
      {"all missing/lenient", kModel, {}, false, false, compat::Level::kMissing,
       {missing_line, "crsp: model trained on v1.2.3, not in the current datasets"}},
  };
  for (const auto& c : cases) {
    const compat::VersionCompatibilityChecker checker(c.strict);
    EXPECT_EQ(checker.strict(), c.strict) << c.name;
    const compat::Result r = checker.Check(c.model, c.current);
    EXPECT_EQ(r.compatible, c.compatible) << c.name;
    EXPECT_EQ(r.level, c.level) << c.name << ": " << compat::LevelName(r.level);
    EXPECT_EQ(r.warnings, c.warnings) << c.name;
  }
}

TEST(Compatibility, DriftWarningWordingIsTheSpecs) {
  const compat::VersionCompatibilityChecker lenient(false);
  const compat::Result r = lenient.Check({{"crsp", "v1.2.3"}}, {{"crsp", "v1.2.4"}});
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0], "crsp: model trained on v1.2.3, current is v1.2.4");
  EXPECT_TRUE(r.compatible);
  // Two drifting datasets: one line each.
  const compat::Result two =
      lenient.Check(kModel, {{"compustat", "v1.0.1"}, {"crsp", "v1.2.4"}});
  EXPECT_EQ(two.warnings,
            (std::vector<std::string>{"compustat: model trained on v1.0.0, current is v1.0.1",
                                      "crsp: model trained on v1.2.3, current is v1.2.4"}));
  EXPECT_EQ(two.level, compat::Level::kDrift);
}

TEST(Compatibility, LevelNames) {
  EXPECT_EQ(compat::LevelName(compat::Level::kCompatible), "compatible");
  EXPECT_EQ(compat::LevelName(compat::Level::kDrift), "drift");
  EXPECT_EQ(compat::LevelName(compat::Level::kMissing), "missing");
}

// Sets or unsets an environment variable for one scope, then restores it.
class ScopedEnv {
 public:
  explicit ScopedEnv(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) saved_ = std::string(v);
  }
  ~ScopedEnv() {
    if (saved_) {
      setenv(name_, saved_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

  void Set(const char* value) { setenv(name_, value, 1); }
  void Unset() { unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

TEST(Compatibility, FromEnvironment) {
  ScopedEnv env("STRICT_VERSION_MODE");
  env.Unset();
  EXPECT_TRUE(compat::VersionCompatibilityChecker::FromEnvironment().strict()) << "unset";
  const std::vector<std::pair<const char*, bool>> cases = {
      {"true", true},  {"TRUE", true},   {"1", true},   {"yes", true},  {"", true},
      {"strict", true}, {"false", false}, {"FALSE", false}, {"False", false}, {"0", false},
      {"no", false},   {"NO", false},    {"off", false}, {"OFF", false}, {"Off", false},
  };
  for (const auto& [value, strict] : cases) {
    env.Set(value);
    EXPECT_EQ(compat::VersionCompatibilityChecker::FromEnvironment().strict(), strict)
        << "STRICT_VERSION_MODE='" << value << "'";
  }
}

TEST(Compatibility, ParseDatasetVersions) {
  auto ok = compat::ParseDatasetVersions(R"({"crsp": "v1.2.4", "compustat": "v1.0.1"})", "d.json");
  ASSERT_TRUE(ok) << ErrorOf(ok);
  EXPECT_EQ(*ok, (compat::DatasetVersions{{"compustat", "v1.0.1"}, {"crsp", "v1.2.4"}}));

  auto empty = compat::ParseDatasetVersions("{}", "d.json");
  ASSERT_TRUE(empty) << ErrorOf(empty);
  EXPECT_TRUE(empty->empty());

  for (const std::string bad : {"", "not json", "[]", R"(["crsp"])", "\"v1.2.4\"", "42", "{",
                                R"({"crsp": "v1", )"}) {
    auto r = compat::ParseDatasetVersions(bad, "d.json");
    ASSERT_FALSE(r) << "accepted: " << bad;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << bad;
    EXPECT_TRUE(Contains(r.error().message(), "d.json")) << r.error().message();
  }
  for (const std::string bad :
       {R"({"crsp": 1})", R"({"crsp": null})", R"({"crsp": {"v": "1"}})", R"({"crsp": ["v1"]})"}) {
    auto r = compat::ParseDatasetVersions(bad, "d.json");
    ASSERT_FALSE(r) << "accepted: " << bad;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << bad;
    EXPECT_TRUE(Contains(r.error().message(), "crsp")) << r.error().message();
    EXPECT_TRUE(Contains(r.error().message(), "d.json")) << r.error().message();
  }
}

// ============================================================================
// 4. validation::Run
// ============================================================================

std::vector<std::string> Sh(const std::string& script) {
  // "$0" is "sh"; the artifact path becomes "$1".
  return {"/bin/sh", "-c", script, "sh"};
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(Validator, ExitZeroIsOk) {
  auto r = validation::Run(Sh("echo loaded; exit 0"), "/tmp/model.pkl", 5000);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_TRUE(r->ok);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->signal, 0);
  EXPECT_EQ(r->output_tail, "loaded\n");
  EXPECT_EQ(r->Describe(), "exit code 0");
}

TEST(Validator, NonZeroExitCapturesStderrAndStdout) {
  auto r = validation::Run(Sh("echo to-stdout; echo prediction failed: NaN >&2; exit 3"),
                           "/tmp/model.pkl", 5000);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_FALSE(r->ok);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->Describe(), "exit code 3");
  EXPECT_TRUE(Contains(r->output_tail, "prediction failed: NaN")) << r->output_tail;
  EXPECT_TRUE(Contains(r->output_tail, "to-stdout")) << r->output_tail;
}

TEST(Validator, OutputTailIsBounded) {
  auto r = validation::Run(Sh("yes | head -c 100000; echo END-OF-OUTPUT"), "/tmp/model.pkl",
                           10000);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_TRUE(r->ok) << r->Describe();
  EXPECT_EQ(r->output_tail.size(), validation::kOutputTailBytes);
  const std::string end = "END-OF-OUTPUT\n";
  ASSERT_GE(r->output_tail.size(), end.size());
  EXPECT_EQ(r->output_tail.substr(r->output_tail.size() - end.size()), end)
      << "the tail is the END of the output";

  // Plain `yes | head -c 100000`, as in the spec of the bound.
  auto plain = validation::Run(Sh("yes | head -c 100000"), "/tmp/model.pkl", 10000);
  ASSERT_TRUE(plain) << ErrorOf(plain);
  EXPECT_TRUE(plain->ok);
  EXPECT_EQ(plain->output_tail.size(), validation::kOutputTailBytes);
  EXPECT_EQ(plain->output_tail.back(), '\n');

  // Short output is kept whole.
  auto small = validation::Run(Sh("head -c 2048 /dev/zero | tr '\\0' x"), "/tmp/m", 5000);
  ASSERT_TRUE(small) << ErrorOf(small);
  EXPECT_EQ(small->output_tail, std::string(2048, 'x'));
}

// True once `pid` is gone or a zombie (its parent may not reap it at once).
bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= line.size()) return false;
  const char state = line[close_paren + 2];
  return state == 'Z' || state == 'X';
}

TEST(Validator, TimeoutKillsTheWholeProcessGroup) {
  testing::TempDir dir;
  const std::string pid_file = dir.sub("sleeper.pid");
  const auto start = std::chrono::steady_clock::now();
  // The shell starts `sleep 30` as a child in its group; both must die.
  auto r = validation::Run(Sh("sleep 30 & echo $! > '" + pid_file + "'; echo started; wait"),
                           "/tmp/model.pkl", 1000);
  const double took = SecondsSince(start);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_EQ(r->Describe(), "timed out");
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 2.5) << "a 1 s timeout must not wait for `sleep 30`";
  EXPECT_TRUE(Contains(r->output_tail, "started")) << r->output_tail;

  std::ifstream in(pid_file);
  pid_t sleeper = 0;
  ASSERT_TRUE(in >> sleeper) << "no pid written";
  ASSERT_GT(sleeper, 0);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = ProcessGone(sleeper);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "the validator's child `sleep 30` (pid " << sleeper << ") survived";
  if (!gone) kill(sleeper, SIGKILL);
}

TEST(Validator, TimeoutOfASimpleSleep) {
  const auto start = std::chrono::steady_clock::now();
  auto r = validation::Run(Sh("sleep 30"), "/tmp/model.pkl", 1000);
  const double took = SecondsSince(start);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 2.5);
}

TEST(Validator, TimeoutAfterTheCommandClosesItsOutput) {
  // Closing stdout/stderr does not end the wait: the deadline still applies.
  const auto start = std::chrono::steady_clock::now();
  auto r = validation::Run(Sh("exec >/dev/null 2>&1; sleep 30"), "/tmp/model.pkl", 1000);
  const double took = SecondsSince(start);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->ok);
  EXPECT_LT(took, 2.5);
}

TEST(Validator, NonexistentCommandExits127) {
  auto r = validation::Run({"/nonexistent/modelreg-no-such-validator"}, "/tmp/model.pkl", 5000);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_FALSE(r->ok);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_TRUE(Contains(r->output_tail, "modelreg-no-such-validator")) << r->output_tail;

  auto on_path = validation::Run({"modelreg-no-such-validator-on-path"}, "/tmp/m", 5000);
  ASSERT_TRUE(on_path) << ErrorOf(on_path);
  EXPECT_EQ(on_path->exit_code, 127);
}

TEST(Validator, ArtifactPathIsTheLastArgument) {
  const std::string artifact = "/tmp/dir with spaces/model.pkl";
  auto r = validation::Run({"/bin/sh", "-c", "printf '%s|' \"$@\"; printf '#%s' \"$#\"", "sh",
                            "--first", "second arg"},
                           artifact, 5000);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_TRUE(r->ok);
  EXPECT_EQ(r->output_tail, "--first|second arg|" + artifact + "|#3");
}

TEST(Validator, KilledBySignal) {
  auto r = validation::Run(Sh("kill -9 $$"), "/tmp/model.pkl", 5000);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_FALSE(r->ok);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_EQ(r->Describe(), "killed by signal 9");
}

TEST(Validator, StdinIsDevNull) {
  const auto start = std::chrono::steady_clock::now();
  auto r = validation::Run(Sh("cat; echo done"), "/tmp/model.pkl", 5000);
  ASSERT_TRUE(r) << ErrorOf(r);
  EXPECT_TRUE(r->ok);
  EXPECT_EQ(r->output_tail, "done\n");
  EXPECT_LT(SecondsSince(start), 2.0);
}

TEST(Validator, EmptyCommandIsAnError) {
  auto r = validation::Run({}, "/tmp/model.pkl", 5000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  auto r2 = validation::Run({""}, "/tmp/model.pkl", 5000);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code(), Code::kInvalidArgument);
}

// ============================================================================
// 5. The registry enforcing them
// ============================================================================

using registry::Actor;
using registry::MetadataInput;
using registry::ModelStatus;
using registry::Registry;
using registry::RegistryOptions;
using registry::State;
using registry::VersionRecord;

constexpr char kSpecPolicy[] =
    "[default]\n"
    "ic = \"> 0.02\"\n"
    "sharpe = \"> 0.5\"\n"
    "paper_trading_hours = \">= 24\"\n";

class GatesRegistryTest : public ::testing::Test {
 protected:
  void WritePolicy(const std::string& text) {
    fs::create_directories(root_);
    WriteAll(root_ + "/policy.toml", text);
  }

  void Open(const Clock* clock = nullptr) {
    reg_.reset();
    RegistryOptions o;
    o.root = root_;
    o.create_if_missing = true;
    o.clock = clock != nullptr ? clock : &clock_;
    o.on_warning = [this](const std::string& w) {
      std::lock_guard<std::mutex> lock(warnings_mu_);
      warnings_.push_back(w);
    };
    auto r = Registry::Open(o);
    ASSERT_TRUE(r) << r.error().ToString();
    reg_ = std::move(*r);
  }

  std::string Artifact(const std::string& content) {
    const std::string dir = dir_.sub("src/" + std::to_string(next_src_++));
    fs::create_directories(dir);
    const std::string path = dir + "/model.pkl";
    WriteAll(path, content);
    return path;
  }

  // Registers at the clock's current time (no advance).
  void MustRegister(const std::string& version, const std::map<std::string, double>& metrics,
                    const std::map<std::string, std::string>& datasets = {}) {
    MetadataInput in;
    in.metrics = metrics;
    in.datasets = datasets;
    auto r = reg_->Register(kRisk, version, Artifact("weights of " + version), in, actor_);
    ASSERT_TRUE(r) << r.error().ToString();
    ASSERT_FALSE(r->already_registered);
  }

  Seq Head() const { return modelreg::query::Query(*reg_).Head()->seq; }

  EventBuffer EventAt(Seq seq) const {
    auto e = modelreg::query::Query(*reg_).Events(seq, {}, 1);
    EXPECT_TRUE(e && e->size() == 1) << "event " << seq << ": " << ErrorOf(e);
    return e && e->size() == 1 ? e->front() : EventBuffer{};
  }

  std::string LastType() const {
    const EventBuffer e = EventAt(Head());
    return e.empty() ? std::string() : PayloadTypeName(e.event().payload_type());
  }

  json LastJson() const {
    const EventBuffer e = EventAt(Head());
    return e.empty() ? json() : events::ToJson(e);
  }

  VersionRecord Rec(const std::string& version) const {
    VersionRecord out;
    bool found = false;
    reg_->Read([&](const State& s) {
      if (const VersionRecord* r = s.Find(kRisk, version)) {
        out = *r;
        found = true;
      }
    });
    EXPECT_TRUE(found) << version;
    return out;
  }

  std::string Production() const {
    std::string p;
    reg_->Read([&](const State& s) {
      auto it = s.types.find(kRisk);
      if (it != s.types.end()) p = it->second.production;
    });
    return p;
  }

  std::vector<projection::PromotionRecord> History() const {
    std::vector<projection::PromotionRecord> h;
    reg_->Read([&](const State& s) {
      auto it = s.types.find(kRisk);
      if (it != s.types.end()) h = it->second.history;
    });
    return h;
  }

  std::string ArtifactPath(const std::string& version) const {
    return root_ + "/artifacts/" + kRisk + "/" + version + "/model.pkl";
  }

  Result<registry::WriteResult> Promote(const std::string& version, bool override_gates = false,
                                        const Actor* actor = nullptr) {
    return reg_->Promote(kRisk, version, std::nullopt, override_gates,
                         actor != nullptr ? *actor : actor_);
  }

  // Sets the gate policy through the log, as `modelreg policy set` does.
  void MustSetPolicy(const std::string& text, const std::string& why = "tighter gates") {
    auto r = reg_->SetPolicy(text, "policy.toml", Actor{"admin", why});
    ASSERT_TRUE(r) << r.error().ToString();
    ASSERT_TRUE(r->changed) << r->summary;
  }

  // How many warnings contain `text`.
  int Warned(const std::string& text) {
    std::lock_guard<std::mutex> lock(warnings_mu_);
    int n = 0;
    for (const auto& w : warnings_) n += Contains(w, text) ? 1 : 0;
    return n;
  }

  int EventsOfType(const std::string& type) const {
    auto all = modelreg::query::Query(*reg_).Events(1, {}, 0);
    EXPECT_TRUE(all) << ErrorOf(all);
    int n = 0;
    if (all) {
      for (const auto& e : *all) n += PayloadTypeName(e.event().payload_type()) == type ? 1 : 0;
    }
    return n;
  }

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
  ManualClock clock_{kT0};
  Actor actor_{"alice", "weekly promotion"};
  std::unique_ptr<Registry> reg_;
  int next_src_ = 0;
  std::mutex warnings_mu_;
  std::vector<std::string> warnings_;
};

// A fixed clock that runs a hook once, the first time it is read after
// Arm(). A promotion first reads the clock to evaluate the paper-trading
// gate: after it took its copy of the version, before it appends.
class HookClock final : public Clock {
 public:
  explicit HookClock(TimeNs t) : t_(t) {}
  TimeNs NowNs() const override {
    if (auto hook = std::exchange(hook_, nullptr)) hook();
    return t_;
  }
  void Arm(std::function<void()> hook) { hook_ = std::move(hook); }

 private:
  TimeNs t_;
  mutable std::function<void()> hook_;
};

// An annotation landing while a promotion evaluates its gates: the
// promotion must not be recorded as passing on the metrics it replaced.
TEST_F(GatesRegistryTest, AnnotationDuringAPromotionIsAConflictNotAStalePass) {
  WritePolicy("[default]\npaper_trading_hours = \"off\"\nic = \"off\"\nsharpe = \"> 0.5\"\n");
  HookClock clock(kT0);
  Open(&clock);
  MustRegister("v1.0.0", {{"sharpe", 1.0}});
  bool annotated = false;
  clock.Arm([&] {
    registry::AnnotationInput in;
    in.metrics["sharpe"] = 0.1;
    in.source = "paper-trading";
    annotated = static_cast<bool>(reg_->Annotate(kRisk, "v1.0.0", in, Actor{"carol", "paper"}));
  });
  const Seq before = Head();
  auto raced = Promote("v1.0.0");
  ASSERT_TRUE(annotated) << "the hook did not run inside the promotion";
  ASSERT_FALSE(raced) << "promoted on the registration's sharpe 1.0 after it was annotated 0.1";
  EXPECT_EQ(raced.error().code(), Code::kConflict) << raced.error().ToString();
  EXPECT_TRUE(Contains(raced.error().message(), "annotated")) << raced.error().ToString();
  EXPECT_EQ(Head(), before + 1) << "only the annotation";
  // Again: the gates now see the annotated value and refuse.
  auto again = Promote("v1.0.0");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kRejected) << again.error().ToString();
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kStaged);
  reg_.reset();  // before `clock` goes
}

const json* FindGateJson(const json& payload, const std::string& name) {
  if (!payload.contains("gates") || !payload["gates"].is_array()) return nullptr;
  for (const auto& g : payload["gates"]) {
    if (g.value("name", "") == name) return &g;
  }
  return nullptr;
}

TEST_F(GatesRegistryTest, PaperTradingBoundaryRejectsThenPromotesWithTheGatesRecorded) {
  WritePolicy(kSpecPolicy);
  clock_.Set(kT0 - kSec);  // the adoption of policy.toml (event 1), before the registration
  Open();
  clock_.Set(kT0);
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  ASSERT_EQ(Rec("v1.0.0").registered_at, kT0) << "registered at T0 by the manual clock";

  // T0 + 23h59m and T0 + 23h59m59s: rejected, recorded, nothing else changes.
  for (TimeNs at : {kT0 + 23 * kHour + 59 * kMin, kT0 + 24 * kHour - kSec}) {
    clock_.Set(at);
    const Seq before = Head();
    auto r = Promote("v1.0.0");
    ASSERT_FALSE(r) << "promoted " << (at - kT0) / kSec << " s after registration";
    EXPECT_EQ(r.error().code(), Code::kRejected) << r.error().ToString();
    EXPECT_TRUE(Contains(r.error().message(), "paper_trading_hours")) << r.error().message();
    EXPECT_FALSE(Contains(r.error().message(), "ic:")) << "ic passed: " << r.error().message();
    EXPECT_EQ(Head(), before + 1) << "exactly one event: the rejection";
    EXPECT_EQ(LastType(), "PromotionRejected");
    EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kStaged);
    EXPECT_EQ(Production(), "");
    EXPECT_TRUE(History().empty());

    const json j = LastJson();
    const json& payload = j["payload"];
    EXPECT_EQ(payload.value("version", ""), "v1.0.0");
    const json* paper = FindGateJson(payload, "paper_trading_hours");
    ASSERT_NE(paper, nullptr) << j.dump();
    EXPECT_FALSE((*paper)["passed"].get<bool>());
    EXPECT_LT((*paper)["observed"].get<double>(), 24.0);
    const json* ic = FindGateJson(payload, "ic");
    ASSERT_NE(ic, nullptr) << j.dump();
    EXPECT_TRUE((*ic)["passed"].get<bool>());
    EXPECT_TRUE(Contains(payload.value("policy", ""), "paper_trading_hours >= 24"))
        << payload.dump();
  }

  // Exactly 24 hours: promoted.
  clock_.Set(kT0 + 24 * kHour);
  const Seq before = Head();
  auto r = Promote("v1.0.0");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->seq, before + 1);
  EXPECT_EQ(Head(), before + 1);
  EXPECT_EQ(LastType(), "ModelPromoted");
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kProduction);
  EXPECT_EQ(Production(), "v1.0.0");

  const json j = LastJson();
  const json& payload = j["payload"];
  ASSERT_TRUE(payload.contains("gates")) << j.dump();
  ASSERT_EQ(payload["gates"].size(), 3u) << j.dump();
  struct Want {
    const char* name;
    const char* op;
    double threshold;
    double observed;
  };
  for (const Want& w : {Want{"ic", ">", 0.02, 0.05}, Want{"paper_trading_hours", ">=", 24, 24},
                        Want{"sharpe", ">", 0.5, 1.0}}) {
    const json* g = FindGateJson(payload, w.name);
    ASSERT_NE(g, nullptr) << w.name << " not recorded: " << j.dump();
    EXPECT_EQ((*g)["comparison"].get<std::string>(), w.op) << w.name;
    EXPECT_DOUBLE_EQ((*g)["threshold"].get<double>(), w.threshold) << w.name;
    ASSERT_TRUE((*g)["observed"].is_number()) << w.name << ": " << g->dump();
    EXPECT_DOUBLE_EQ((*g)["observed"].get<double>(), w.observed) << w.name;
    EXPECT_TRUE((*g)["passed"].get<bool>()) << w.name;
  }
  EXPECT_FALSE(payload["gates_overridden"].get<bool>());
  const std::string policy_text = payload.value("policy", "");
  EXPECT_TRUE(Contains(policy_text, "policy of event #1")) << policy_text;  // the adoption
  EXPECT_TRUE(Contains(policy_text, "sha256 " + ToHex(Sha256::Of(kSpecPolicy)).substr(0, 12)))
      << policy_text;
  EXPECT_EQ(payload.value("policy_sha256", ""), ToHex(Sha256::Of(kSpecPolicy))) << payload.dump();
  EXPECT_TRUE(Contains(policy_text, "ic > 0.02, paper_trading_hours >= 24, sharpe > 0.5"))
      << policy_text;

  const auto history = History();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].version, "v1.0.0");
  EXPECT_FALSE(history[0].gates_overridden);
  EXPECT_EQ(history[0].gates_passed, 3);
  EXPECT_EQ(history[0].gates_total, 3);
}

TEST_F(GatesRegistryTest, NoPolicyFileMeansTheSpecDefaults) {
  Open();  // no policy.toml
  MustRegister("v1.0.0", {{"ic", 0.02}, {"sharpe", 1.0}});
  clock_.Set(kT0 + 48 * kHour);
  const Seq before = Head();
  auto r = Promote("v1.0.0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kRejected);
  EXPECT_TRUE(Contains(r.error().message(), "ic: 0.02 is not > 0.02")) << r.error().message();
  EXPECT_TRUE(Contains(r.error().message(), "built-in defaults")) << r.error().message();
  EXPECT_EQ(Head(), before + 1);
  EXPECT_EQ(LastType(), "PromotionRejected");
}

TEST_F(GatesRegistryTest, OverrideWithoutReasonIsRefusedAndWritesNothing) {
  WritePolicy(kSpecPolicy);
  Open();
  MustRegister("v1.0.0", {{"ic", 0.01}, {"sharpe", 1.0}});
  clock_.Set(kT0 + kHour);
  const Seq before = Head();
  const Actor no_reason{"bob", ""};
  auto r = Promote("v1.0.0", /*override_gates=*/true, &no_reason);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
  EXPECT_EQ(Head(), before) << "nothing appended";
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kStaged);
}

TEST_F(GatesRegistryTest, OverrideWithReasonPromotesAFailingModelAndRecordsIt) {
  WritePolicy(kSpecPolicy);
  Open();
  MustRegister("v1.0.0", {{"ic", 0.01}, {"sharpe", 1.0}});
  clock_.Set(kT0 + kHour);  // ic fails, paper trading fails, sharpe passes
  const Seq before = Head();
  const Actor emergency{"carol", "vendor data outage: v0 unusable"};
  auto r = Promote("v1.0.0", /*override_gates=*/true, &emergency);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(Head(), before + 1);
  EXPECT_EQ(LastType(), "ModelPromoted");
  EXPECT_TRUE(Contains(r->summary, "GATES OVERRIDDEN")) << r->summary;
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kProduction);

  const auto history = History();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_TRUE(history[0].gates_overridden);
  EXPECT_EQ(history[0].override_reason, "vendor data outage: v0 unusable");
  EXPECT_EQ(history[0].actor, "carol");
  EXPECT_EQ(history[0].gates_passed, 1);
  EXPECT_EQ(history[0].gates_total, 3);

  const json payload = LastJson()["payload"];
  EXPECT_TRUE(payload["gates_overridden"].get<bool>());
  EXPECT_EQ(payload.value("override_reason", ""), "vendor data outage: v0 unusable");
  const json* ic = FindGateJson(payload, "ic");
  ASSERT_NE(ic, nullptr);
  EXPECT_FALSE((*ic)["passed"].get<bool>()) << "the failed gate is recorded as failed";
}

TEST_F(GatesRegistryTest, OverrideOnAPassingModelIsNotRecordedAsAnOverride) {
  WritePolicy(kSpecPolicy);
  Open();
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  clock_.Set(kT0 + 25 * kHour);
  auto r = Promote("v1.0.0", /*override_gates=*/true);
  ASSERT_TRUE(r) << r.error().ToString();
  const auto history = History();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_FALSE(history[0].gates_overridden);
  EXPECT_EQ(history[0].override_reason, "");
}

TEST_F(GatesRegistryTest, TamperedArtifactFailsTheVersionWithOneEvent) {
  WritePolicy(kSpecPolicy);
  Open();
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  clock_.Set(kT0 + 25 * kHour);  // every gate would pass
  const std::string path = ArtifactPath("v1.0.0");
  ASSERT_EQ(chmod(path.c_str(), 0644), 0) << path;
  {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << "tampered";
  }
  const Seq before = Head();
  auto r = Promote("v1.0.0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kCorruption) << r.error().ToString();
  EXPECT_TRUE(Contains(r.error().message(), "sha256")) << r.error().message();
  EXPECT_EQ(Head(), before + 1) << "exactly one event";
  EXPECT_EQ(LastType(), "ModelFailed");
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kFailed);
  EXPECT_EQ(Production(), "");
  EXPECT_TRUE(Contains(LastJson()["payload"].value("reason", ""), "before promotion"))
      << LastJson().dump();

  // A failed version cannot be promoted, not even with an override.
  const Seq after = Head();
  auto again = Promote("v1.0.0", /*override_gates=*/true);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kFailedPrecondition) << again.error().ToString();
  EXPECT_EQ(Head(), after);
}

TEST_F(GatesRegistryTest, TamperingIsCaughtBeforeGatesEvenWithOverride) {
  WritePolicy(kSpecPolicy);
  Open();
  MustRegister("v1.0.0", {{"ic", 0.01}});
  clock_.Set(kT0 + kHour);
  const std::string path = ArtifactPath("v1.0.0");
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << "x";
  }
  const Seq before = Head();
  auto r = Promote("v1.0.0", /*override_gates=*/true);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kCorruption) << r.error().ToString();
  EXPECT_EQ(Head(), before + 1);
  EXPECT_EQ(LastType(), "ModelFailed");
}

// A missing file is an operational problem (an import, a partial restore),
// not a verdict on the model: recorded, refused, status unchanged; once the
// file is back the version is promotable.
TEST_F(GatesRegistryTest, MissingArtifactRefusesPromotionAndKeepsTheStatus) {
  WritePolicy(kSpecPolicy);
  Open();
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  clock_.Set(kT0 + 25 * kHour);  // every gate would pass
  const std::string path = ArtifactPath("v1.0.0");
  const std::string saved = path + ".saved";
  fs::copy_file(path, saved);
  ASSERT_TRUE(fs::remove(path));
  for (bool override_gates : {false, true}) {
    const Seq before = Head();
    auto r = Promote("v1.0.0", override_gates);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Code::kFailedPrecondition) << r.error().ToString();
    EXPECT_TRUE(Contains(r.error().message(), "missing")) << r.error().message();
    EXPECT_TRUE(Contains(r.error().message(), "status is unchanged")) << r.error().message();
    EXPECT_EQ(Head(), before + 1) << "exactly one event";
    EXPECT_EQ(LastType(), "ArtifactValidated");
    EXPECT_EQ(LastJson()["payload"]["result"], "missing") << LastJson().dump();
    EXPECT_EQ(LastJson()["payload"]["ok"], false);
    EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kStaged);
    EXPECT_EQ(Production(), "");
  }
  fs::rename(saved, path);
  auto valid = reg_->Validate(kRisk, "v1.0.0", actor_);
  ASSERT_TRUE(valid) << valid.error().ToString();
  EXPECT_TRUE(valid->ok);
  EXPECT_EQ(LastJson()["payload"]["result"], "ok");
  auto promoted = Promote("v1.0.0");
  ASSERT_TRUE(promoted) << promoted.error().ToString();
  EXPECT_EQ(Production(), "v1.0.0");
}

TEST_F(GatesRegistryTest, RollbackToAMissingArtifactIsRefusedAndKeepsProduction) {
  WritePolicy(kSpecPolicy);
  Open();
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  clock_.Advance(kSec);
  MustRegister("v1.1.0", {{"ic", 0.06}, {"sharpe", 1.2}});
  clock_.Set(kT0 + 25 * kHour);
  ASSERT_TRUE(Promote("v1.0.0"));
  clock_.Advance(kSec);
  auto second = Promote("v1.1.0");
  ASSERT_TRUE(second) << second.error().ToString();
  ASSERT_EQ(Production(), "v1.1.0");
  ASSERT_EQ(Rec("v1.0.0").status, ModelStatus::kArchived);

  const std::string path = ArtifactPath("v1.0.0");
  const std::string saved = path + ".saved";
  fs::copy_file(path, saved);
  ASSERT_TRUE(fs::remove(path));
  clock_.Advance(kSec);
  const Seq before = Head();
  auto r = reg_->Rollback(kRisk, /*fail_current=*/false, actor_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition) << r.error().ToString();
  EXPECT_EQ(Head(), before + 1) << "exactly one event";
  EXPECT_EQ(LastType(), "ArtifactValidated");
  EXPECT_EQ(LastJson()["payload"]["result"], "missing") << LastJson().dump();
  EXPECT_EQ(Production(), "v1.1.0") << "production unchanged";
  EXPECT_EQ(Rec("v1.1.0").status, ModelStatus::kProduction);
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kArchived) << "not failed: the file is missing";
  EXPECT_EQ(History().size(), 2u);

  // The file is back: the rollback goes through.
  fs::rename(saved, path);
  auto again = reg_->Rollback(kRisk, false, actor_);
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(Production(), "v1.0.0");
}

TEST_F(GatesRegistryTest, RollbackToAnAlteredArtifactFailsTheTargetAndKeepsProduction) {
  WritePolicy(kSpecPolicy);
  Open();
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  clock_.Advance(kSec);
  MustRegister("v1.1.0", {{"ic", 0.06}, {"sharpe", 1.2}});
  clock_.Set(kT0 + 25 * kHour);
  ASSERT_TRUE(Promote("v1.0.0"));
  clock_.Advance(kSec);
  ASSERT_TRUE(Promote("v1.1.0"));
  const std::string path = ArtifactPath("v1.0.0");
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << "x";
  }
  clock_.Advance(kSec);
  const Seq before = Head();
  auto r = reg_->Rollback(kRisk, /*fail_current=*/false, actor_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kCorruption) << r.error().ToString();
  EXPECT_EQ(Head(), before + 1) << "exactly one event";
  EXPECT_EQ(LastType(), "ModelFailed");
  EXPECT_EQ(Production(), "v1.1.0") << "production unchanged";
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kFailed);
  EXPECT_TRUE(Contains(LastJson()["payload"].value("reason", ""), "before rollback"))
      << LastJson().dump();

  // A second rollback now refuses (the only earlier version is failed) and
  // writes nothing.
  const Seq after = Head();
  auto again = reg_->Rollback(kRisk, false, actor_);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kFailedPrecondition) << again.error().ToString();
  EXPECT_EQ(Head(), after);
}

TEST_F(GatesRegistryTest, FailingValidatorCommandFailsTheVersion) {
  WritePolicy(std::string(kSpecPolicy) +
              "[risk_model]\n"
              "validator = { command = [\"/bin/sh\", \"-c\", "
              "\"echo cannot unpickle $1 >&2; exit 3\", \"sh\"], timeout_seconds = 5 }\n");
  Open();
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  clock_.Set(kT0 + 25 * kHour);
  const Seq before = Head();
  auto r = Promote("v1.0.0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kCorruption) << r.error().ToString();
  EXPECT_EQ(Head(), before + 1);
  EXPECT_EQ(LastType(), "ModelFailed");
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kFailed);
  const std::string reason = LastJson()["payload"].value("reason", "");
  EXPECT_TRUE(Contains(reason, "exit code 3")) << reason;
  EXPECT_TRUE(Contains(reason, "cannot unpickle " + ArtifactPath("v1.0.0"))) << reason;
}

TEST_F(GatesRegistryTest, ValidatorThatCannotRunOrTimesOutRecordsNothing) {
  for (const std::string& validator :
       {std::string("command = [\"/nonexistent/validator\"], timeout_seconds = 5"),
        std::string("command = [\"/bin/sh\", \"-c\", \"sleep 5\", \"sh\"], timeout_seconds = 1")}) {
    const std::string text =
        std::string(kSpecPolicy) + "[risk_model]\nvalidator = { " + validator + " }\n";
    if (reg_ == nullptr) {
      WritePolicy(text);  // adopted by the first open
      Open();
      MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
    } else {
      MustSetPolicy(text);
    }
    clock_.Set(kT0 + 25 * kHour);
    const Seq before = Head();
    auto r = Promote("v1.0.0");
    ASSERT_FALSE(r) << validator;
    EXPECT_EQ(r.error().code(), Code::kFailedPrecondition) << r.error().ToString();
    EXPECT_TRUE(Contains(r.error().message(), "nothing was recorded")) << r.error().ToString();
    EXPECT_EQ(Head(), before) << validator;
    EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kStaged) << validator;
  }
}

TEST_F(GatesRegistryTest, PassingValidatorSeesTheStoredArtifact) {
  WritePolicy(std::string(kSpecPolicy) +
              "[risk_model]\n"
              "validator = { command = [\"/bin/sh\", \"-c\", "
              "\"grep -q 'weights of v1.0.0' \\\"$1\\\"\", \"sh\"], timeout_seconds = 5 }\n");
  Open();
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  clock_.Set(kT0 + 25 * kHour);
  auto r = Promote("v1.0.0");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_TRUE(Contains(LastJson()["payload"].value("policy", ""), "validator: /bin/sh -c"));
}

TEST_F(GatesRegistryTest, DatasetCompatibilityGate) {
  WritePolicy(
      "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n"
      "[risk_model]\n"
      "compatibility = { current_versions_file = \"datasets.json\", strict = true }\n"
      "[alpha_weights]\n"
      "compatibility = { current_versions_file = \"datasets.json\", strict = false }\n");
  WriteAll(root_ + "/datasets.json", R"({"crsp": "v1.2.4", "compustat": "v1.0.0"})");
  Open();
  MustRegister("v1.0.0", {}, {{"crsp", "v1.2.3"}, {"compustat", "v1.0.0"}});

  // Strict: drift blocks, with the spec's line.
  const Seq before = Head();
  auto r = Promote("v1.0.0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kRejected) << r.error().ToString();
  EXPECT_TRUE(Contains(r.error().message(), "crsp: model trained on v1.2.3, current is v1.2.4"))
      << r.error().message();
  EXPECT_EQ(Head(), before + 1);
  EXPECT_EQ(LastType(), "PromotionRejected");
  const json rejected = LastJson();
  const json* g = FindGateJson(rejected["payload"], "dataset_compatibility");
  ASSERT_NE(g, nullptr) << rejected.dump();
  EXPECT_FALSE((*g)["passed"].get<bool>());

  // Non-strict (alpha_weights): drift allowed, the warning recorded.
  MetadataInput in;
  in.datasets = {{"crsp", "v1.2.3"}, {"compustat", "v1.0.0"}};
  auto reg = reg_->Register("alpha_weights", "v1.0.0", Artifact("alpha"), in, actor_);
  ASSERT_TRUE(reg) << reg.error().ToString();
  auto ok = reg_->Promote("alpha_weights", "v1.0.0", std::nullopt, false, actor_);
  ASSERT_TRUE(ok) << ok.error().ToString();
  const json promoted = LastJson();
  const json* ga = FindGateJson(promoted["payload"], "dataset_compatibility");
  ASSERT_NE(ga, nullptr) << promoted.dump();
  EXPECT_TRUE((*ga)["passed"].get<bool>());
  EXPECT_TRUE(Contains((*ga)["detail"].get<std::string>(),
                       "crsp: model trained on v1.2.3, current is v1.2.4"))
      << ga->dump();

  // Missing dataset blocks even when non-strict.
  MetadataInput in2;
  in2.datasets = {{"ibes", "v2.0.0"}};
  ASSERT_TRUE(reg_->Register("alpha_weights", "v1.1.0", Artifact("alpha 2"), in2, actor_));
  auto blocked = reg_->Promote("alpha_weights", "v1.1.0", std::nullopt, false, actor_);
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.error().code(), Code::kRejected) << blocked.error().ToString();
  EXPECT_TRUE(Contains(blocked.error().message(), "ibes")) << blocked.error().message();
}

TEST_F(GatesRegistryTest, UnreadableCurrentVersionsFileIsNamedInTheRejection) {
  WritePolicy(
      "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n"
      "[risk_model]\n"
      "compatibility = { current_versions_file = \"datasets.json\" }\n");
  Open();  // no datasets.json
  MustRegister("v1.0.0", {}, {{"crsp", "v1.2.3"}});
  const Seq before = Head();
  auto r = Promote("v1.0.0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kRejected) << r.error().ToString();
  EXPECT_EQ(Head(), before + 1);
  EXPECT_EQ(LastType(), "PromotionRejected");
  const json rejected = LastJson();
  const json* g = FindGateJson(rejected["payload"], "dataset_compatibility");
  ASSERT_NE(g, nullptr) << rejected.dump();
  EXPECT_FALSE((*g)["passed"].get<bool>());
  EXPECT_TRUE(Contains((*g)["detail"].get<std::string>(), "datasets.json")) << g->dump();
  // The one-line refusal must say why the gate failed.
  EXPECT_TRUE(Contains(r.error().message(), "cannot read " + root_ + "/datasets.json"))
      << r.error().message();
  EXPECT_FALSE(Contains(r.error().message(), "metric missing")) << r.error().message();
}

// A policy.toml that does not parse is not adopted (a warning at open);
// the promotion stops naming its line and writes nothing, as before the
// policy was part of the log. Other writes go on.
TEST_F(GatesRegistryTest, BadPolicyFileIsNotAdoptedAndStopsPromotion) {
  WritePolicy("[default]\nic = \"> 0.02\"\nsharpe = \">> 0.5\"\n");
  Open();
  EXPECT_EQ(Warned("policy.toml:3"), 1);
  EXPECT_EQ(Head(), 0u) << "nothing adopted";
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  clock_.Set(kT0 + 25 * kHour);
  const Seq before = Head();
  auto r = Promote("v1.0.0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
  EXPECT_TRUE(Contains(r.error().message(), "policy.toml:3")) << r.error().message();
  EXPECT_EQ(Head(), before);
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kStaged);
  // Fixed: adopted by the next command that needs it, then promoted.
  WritePolicy(kSpecPolicy);
  auto ok = Promote("v1.0.0");
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(EventsOfType("PolicyChanged"), 1);
  EXPECT_EQ(Warned("adopted " + root_ + "/policy.toml"), 1);
}

// SetPolicy checks the text with the policy parser before anything is
// written: a bad one changes nothing (no event, the policy in force stays).
TEST_F(GatesRegistryTest, BadPolicyTextChangesNothing) {
  WritePolicy(kSpecPolicy);
  Open();
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  const Seq before = Head();
  for (const auto& [text, line] : std::vector<std::pair<std::string, int>>{
           {"[default]\nic = \"> 0.02\"\nsharpe = \">> 0.5\"\n", 3},
           {"[default\n", 1},
           {"[Risk_model]\nic = \"> 0.1\"\n", 1}}) {
    auto r = reg_->SetPolicy(text, "new-policy.toml", Actor{"admin", "try"});
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
    EXPECT_TRUE(Contains(r.error().message(), "new-policy.toml:" + std::to_string(line) + ":"))
        << r.error().message();
    EXPECT_EQ(Head(), before) << text;
  }
  // Not UTF-8, no reason: refused too.
  EXPECT_EQ(CodeOf(reg_->SetPolicy("# \xff\n", "p.toml", Actor{"admin", "x"})),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(reg_->SetPolicy("[default]\n", "p.toml", Actor{"admin", " "})),
            Code::kInvalidArgument);
  EXPECT_EQ(Head(), before);
  auto in_force = reg_->PolicyAt(Head());
  ASSERT_TRUE(in_force && *in_force);
  EXPECT_EQ((*in_force)->sha256, ToHex(Sha256::Of(kSpecPolicy)));
  // The gates are still those of the policy in force.
  clock_.Set(kT0 + 12 * kHour);
  auto r = Promote("v1.0.0");
  ASSERT_FALSE(r);
  EXPECT_TRUE(Contains(r.error().message(), "paper_trading_hours")) << r.error().message();
}

// The same text again is a no-op: nothing is recorded, the answer names
// the event that set it.
TEST_F(GatesRegistryTest, SettingTheSamePolicyAgainRecordsNothing) {
  WritePolicy(kSpecPolicy);
  Open();
  ASSERT_EQ(Head(), 1u);
  auto same = reg_->SetPolicy(kSpecPolicy, "copy.toml", Actor{"admin", "again"});
  ASSERT_TRUE(same) << same.error().ToString();
  EXPECT_FALSE(same->changed);
  EXPECT_EQ(same->seq, 1u);
  EXPECT_TRUE(Contains(same->summary, "unchanged")) << same->summary;
  EXPECT_EQ(Head(), 1u);
  MustSetPolicy(std::string(kSpecPolicy) + "# a comment is a change of text\n");
  EXPECT_EQ(Head(), 2u);
  auto back = reg_->SetPolicy(kSpecPolicy, "copy.toml", Actor{"admin", "revert"});
  ASSERT_TRUE(back && back->changed) << ErrorOf(back);  // differs from the one in force
  EXPECT_EQ(back->seq, 3u);
}

// A gate threshold changed with SetPolicy takes effect on the next
// promotion, whose evidence names the policy's hash; the earlier
// promotion keeps the policy it was evaluated under.
TEST_F(GatesRegistryTest, PolicyChangeTakesEffectOnTheNextPromotion) {
  WritePolicy("[default]\npaper_trading_hours = \"off\"\n");
  Open();
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  MustRegister("v1.1.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  auto first = Promote("v1.0.0");
  ASSERT_TRUE(first) << first.error().ToString();
  const std::string strict = "[default]\npaper_trading_hours = \"off\"\nsharpe = \"> 1.5\"\n";
  MustSetPolicy(strict, "sharpe must exceed 1.5");
  const Seq before = Head();
  auto refused = Promote("v1.1.0");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::kRejected) << refused.error().ToString();
  EXPECT_TRUE(Contains(refused.error().message(), "sharpe: 1 is not > 1.5"))
      << refused.error().message();
  EXPECT_TRUE(Contains(refused.error().message(), "policy of event #" + std::to_string(before)))
      << refused.error().message();
  EXPECT_EQ(Head(), before + 1);
  EXPECT_EQ(LastJson()["payload"].value("policy_sha256", ""), ToHex(Sha256::Of(strict)));
  // Back to a looser threshold: the next promotion passes.
  const std::string loose = "[default]\npaper_trading_hours = \"off\"\nsharpe = \"> 0.9\"\n";
  MustSetPolicy(loose, "0.9 is enough");
  auto ok = Promote("v1.1.0");
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(LastJson()["payload"].value("policy_sha256", ""), ToHex(Sha256::Of(loose)));
  // The audit of each promotion shows the policy it was evaluated under.
  auto now = modelreg::query::Query(*reg_).Current(kRisk);
  ASSERT_TRUE(now && now->promotion) << ErrorOf(now);
  EXPECT_EQ(now->promotion->policy_sha256, ToHex(Sha256::Of(loose)));
  auto p1 = modelreg::query::Query(*reg_).Audit(INT64_MAX);
  ASSERT_TRUE(p1) << ErrorOf(p1);
  ASSERT_TRUE(p1->policy);
  EXPECT_EQ(p1->policy->text, loose);
  EXPECT_EQ(p1->policy->reason, "0.9 is enough");
}

// A policy.toml from before the policy was in the log is adopted exactly
// once, with a message; a later edit of the file is ignored (with a
// warning) and the adopted policy stays in force.
TEST_F(GatesRegistryTest, PolicyFileIsAdoptedOnceAndThenIgnored) {
  WritePolicy(kSpecPolicy);
  Open();
  EXPECT_EQ(Head(), 1u);
  EXPECT_EQ(LastType(), "PolicyChanged");
  const json adopted = LastJson();
  EXPECT_EQ(adopted["actor"], "modelreg (adopted policy.toml)");
  EXPECT_EQ(adopted["payload"]["reason"], "adopted from policy.toml on disk");
  EXPECT_EQ(adopted["payload"]["text"], kSpecPolicy);
  EXPECT_EQ(adopted["payload"]["sha256"], ToHex(Sha256::Of(kSpecPolicy)));
  EXPECT_EQ(Warned("adopted " + root_ + "/policy.toml"), 1);
  // Reopened: not again.
  Open();
  Open();
  EXPECT_EQ(Head(), 1u);
  EXPECT_EQ(Warned("adopted"), 1);
  EXPECT_EQ(reg_->PolicyFileNote(), "");
  // Edited afterwards: ignored, with a warning at promotion.
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  WritePolicy("[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n");
  EXPECT_TRUE(Contains(reg_->PolicyFileNote(), "is ignored")) << reg_->PolicyFileNote();
  clock_.Set(kT0 + 2 * kHour);
  auto r = Promote("v1.0.0");
  ASSERT_FALSE(r) << "the edited file turned the gates off";
  EXPECT_TRUE(Contains(r.error().message(), "paper_trading_hours")) << r.error().message();
  EXPECT_EQ(Warned("differs from the gate policy in force"), 1);
  Open();
  EXPECT_EQ(EventsOfType("PolicyChanged"), 1);
}

// Without policy.toml and without a PolicyChanged event: the built-in
// defaults, no event, PolicyAt says none.
TEST_F(GatesRegistryTest, NeitherFileNorEventMeansTheDefaults) {
  Open();
  EXPECT_EQ(Head(), 0u);
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  auto p = modelreg::query::Query(*reg_).Policy();
  ASSERT_TRUE(p) << ErrorOf(p);
  EXPECT_FALSE(p->policy.has_value());
  EXPECT_EQ(EventsOfType("PolicyChanged"), 0);
  auto r = Promote("v1.0.0");
  ASSERT_FALSE(r);
  EXPECT_TRUE(Contains(r.error().message(), "built-in defaults")) << r.error().message();
  EXPECT_TRUE(LastJson()["payload"]["policy_sha256"].is_null()) << LastJson().dump();
}

// The policy as of T: nothing recorded after T.
TEST_F(GatesRegistryTest, PolicyAtTIsTheLastChangeAtOrBeforeT) {
  WritePolicy(kSpecPolicy);
  Open();  // event 1 at kT0
  clock_.Set(kT0 + kHour);
  const std::string second = std::string(kSpecPolicy) + "[risk_model]\nsharpe = \"> 1\"\n";
  MustSetPolicy(second, "risk models need more");
  clock_.Set(kT0 + 2 * kHour);
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  const modelreg::query::Query q(*reg_);
  auto before = q.Policy(kT0 - 1);
  ASSERT_TRUE(before) << ErrorOf(before);
  EXPECT_EQ(before->seq, 0u);
  EXPECT_FALSE(before->policy);
  for (TimeNs t : {kT0, kT0 + kHour - 1}) {
    auto p = q.Policy(t);
    ASSERT_TRUE(p && p->policy) << ErrorOf(p);
    EXPECT_EQ(p->policy->seq, 1u) << t;
    EXPECT_EQ(p->policy->text, kSpecPolicy);
  }
  for (TimeNs t : {kT0 + kHour, kT0 + 3 * kHour}) {
    auto p = q.Policy(t);
    ASSERT_TRUE(p && p->policy) << ErrorOf(p);
    EXPECT_EQ(p->policy->seq, 2u) << t;
    EXPECT_EQ(p->policy->actor, "admin");
    EXPECT_EQ(p->policy->reason, "risk models need more");
    EXPECT_EQ(p->policy->text, second);
  }
  auto audit = q.Audit(kT0 + kHour - 1);
  ASSERT_TRUE(audit && audit->policy) << ErrorOf(audit);
  EXPECT_EQ(audit->policy->seq, 1u);
  // The same answers from a read-only registry (the rows) and after a
  // rebuild.
  reg_.reset();
  RegistryOptions ro;
  ro.root = root_;
  ro.read_only = true;
  auto r = Registry::Open(ro);
  ASSERT_TRUE(r) << ErrorOf(r);
  auto p = modelreg::query::Query(**r).Policy(kT0 + kHour - 1);
  ASSERT_TRUE(p && p->policy) << ErrorOf(p);
  EXPECT_EQ(p->policy->seq, 1u);
  r->reset();
  RegistryOptions rb;
  rb.root = root_;
  rb.for_rebuild = true;
  auto reb = Registry::Open(rb);
  ASSERT_TRUE(reb) << ErrorOf(reb);
  auto rebuilt = (*reb)->Rebuild();
  ASSERT_TRUE(rebuilt) << ErrorOf(rebuilt);
  EXPECT_EQ(rebuilt->before, rebuilt->after);
  auto now = modelreg::query::Query(**reb).Policy();
  ASSERT_TRUE(now && now->policy) << ErrorOf(now);
  EXPECT_EQ(now->policy->text, second);
}

// A policy change that lands while a promotion is being checked (here:
// when it reads the clock for the paper-trading gate, after it read the
// policy in force) is never bypassed: the promotion is not recorded under
// the old policy, and nothing else is written for it.
TEST_F(GatesRegistryTest, PolicyChangedDuringAPromotionIsNotBypassed) {
  WritePolicy(kSpecPolicy);
  HookClock clock(kT0);
  Open(&clock);
  MustRegister("v1.0.0", {{"ic", 0.05}, {"sharpe", 1.0}});
  reg_.reset();
  HookClock later(kT0 + 25 * kHour);
  Open(&later);
  const Seq before = Head();
  bool changed = false;
  later.Arm([&] {
    auto r = reg_->SetPolicy(std::string(kSpecPolicy) + "[risk_model]\nsharpe = \"> 5\"\n",
                             "policy.toml", Actor{"admin", "stop promotions"});
    changed = r && r->changed;
  });
  auto r = Promote("v1.0.0");
  ASSERT_TRUE(changed) << "the hook did not change the policy inside the promotion";
  ASSERT_FALSE(r) << "promoted under the policy that was replaced meanwhile";
  EXPECT_EQ(r.error().code(), Code::kConflict) << r.error().ToString();
  EXPECT_TRUE(Contains(r.error().message(), "the gate policy changed")) << r.error().message();
  EXPECT_EQ(Head(), before + 1) << "only the policy change";
  EXPECT_EQ(LastType(), "PolicyChanged");
  EXPECT_EQ(Rec("v1.0.0").status, ModelStatus::kStaged);
  // Promoted again: the new policy decides.
  auto again = Promote("v1.0.0");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kRejected) << again.error().ToString();
  EXPECT_TRUE(Contains(again.error().message(), "sharpe: 1 is not > 5")) << again.error().message();
  reg_.reset();  // before the clocks go
}

}  // namespace
}  // namespace modelreg
