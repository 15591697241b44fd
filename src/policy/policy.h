// The promotion policy: which gates a model must pass, per model type. The
// registry keeps it in its log (PolicyChanged events, `modelreg policy
// set`; a <root>/policy.toml from before that is adopted once, see
// docs/gates.md); none recorded: the spec's defaults. Format in
// docs/gates.md:
//
//   [default]
//   ic = "> 0.02"
//   sharpe = "> 0.5"
//   paper_trading_hours = ">= 24"
//
//   [risk_model]
//   sharpe = "> 0.8"                 # overrides the default
//   max_drawdown = ">= -0.2"         # an extra metric gate
//   paper_trading_hours = "off"      # removes a default gate
//   validator = { command = ["python3", "check.py"], timeout_seconds = 30 }
//   compatibility = { current_versions_file = "datasets.json", strict = true }
//
// Also the pure gate evaluation. Thread-safety: values and free functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "events/model_events.h"

namespace modelreg::policy {

inline constexpr char kPaperTradingGate[] = "paper_trading_hours";

struct GateSpec {
  std::string name;  // a metric name, or paper_trading_hours
  std::string op;    // ">", ">=", "<", "<="
  double threshold = 0;
};

struct ValidatorSpec {
  std::vector<std::string> command;  // the artifact path is appended
  int timeout_seconds = 60;
};

struct CompatibilitySpec {
  std::string current_versions_file;  // JSON {"crsp": "v1.2.4"}, relative to the root
  bool strict = true;
};

struct TypePolicy {
  std::vector<GateSpec> gates;  // sorted by name
  std::optional<ValidatorSpec> validator;
  std::optional<CompatibilitySpec> compatibility;

  // "ic > 0.02, paper_trading_hours >= 24, sharpe > 0.5; validator: ...".
  std::string Describe() const;
};

struct Policy {
  std::string source;  // "built-in defaults" or the file path
  std::string digest;  // hex SHA-256 of the file, empty for defaults
  TypePolicy defaults;
  std::map<std::string, TypePolicy> types;

  const TypePolicy& For(const std::string& type) const;
  // What a promotion event records as "the policy in force".
  std::string DescribeFor(const std::string& type) const;
};

Policy DefaultPolicy();
// Parses policy TOML; InvalidArgument naming "<source>:<line>" on errors.
Result<Policy> ParsePolicy(const std::string& text, const std::string& source);
// The policy file <root>/policy.toml. Read only to adopt it into the log
// (src/registry) and by tests.
std::string PolicyFilePath(const std::string& root);
// Its bytes, or nullopt when it does not exist; over 1 MiB is an error.
Result<std::optional<std::string>> ReadPolicyFile(const std::string& root);
// <root>/policy.toml parsed, or the defaults when it does not exist.
Result<Policy> LoadPolicy(const std::string& root);

// Evaluates every gate (pure; `now` is the promotion time). A metric the
// gate needs but the model lacks fails that gate, saying so.
std::vector<events::Gate> EvaluateGates(const TypePolicy& policy,
                                        const std::map<std::string, double>& metrics,
                                        TimeNs registered_at, TimeNs now);

// "ic: 0.015 is not > 0.02; sharpe: metric missing (needs > 0.5)".
std::string DescribeFailures(const std::vector<events::Gate>& gates);

}  // namespace modelreg::policy
