// The model-lifecycle payloads as plain C++ values, how to turn them into
// event drafts, and how to render any stored event as JSON.
//
// This layer knows the schema but no lifecycle rules (src/registry decides
// what may be written) and no storage (src/log writes drafts).
// Thread-safety: free functions over values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/sha256.h"
#include "log/envelope.h"
#include "log/event_buffer.h"

namespace modelreg::events {

struct Environment {
  std::string hostname;
  std::string user;
  std::string os;
  std::string tool_version;
  std::string git_commit;
  std::map<std::string, std::string> extra;
};

struct Registration {
  std::string model_id;
  std::string model_type;
  std::string version;
  std::string artifact_name;
  std::uint64_t artifact_size = 0;
  Digest artifact_sha256{};  // the file's SHA-256, or a directory's tree digest
  std::map<std::string, std::string> dataset_version_ids;
  std::string snapshot_id;
  std::vector<std::string> factor_list;
  std::string parameters_json = "{}";
  std::map<std::string, double> metrics;
  Environment env;
  std::string config_json = "{}";
  std::string config_hash;
  std::string created_by;
  TimeNs created_at = 0;
  // "" for a single file (nothing written: the event is what it always
  // was), kArtifactDirectory for a directory; then artifact_files counts
  // its files.
  std::string artifact_kind;
  std::uint64_t artifact_files = 0;
};

inline constexpr char kArtifactDirectory[] = "directory";

struct Gate {
  std::string name;
  std::string comparison;
  double threshold = 0;
  double observed = 0;
  bool has_observed = false;
  bool passed = false;
  std::string detail;
};

struct Promotion {
  std::string model_type;
  std::string version;
  std::string replaced_version;
  std::vector<Gate> gates;
  bool gates_overridden = false;
  std::string override_reason;
  std::string reason;
  std::string policy;
  // SHA-256 of the policy text evaluated; nullopt: the built-in defaults.
  std::optional<Digest> policy_sha256;
};

struct Archive {
  std::string model_type;
  std::string version;
  std::string reason;
};

struct Failure {
  std::string model_type;
  std::string version;
  std::string reason;
};

struct Rollback {
  std::string model_type;
  std::string from_version;
  std::string to_version;
  bool current_failed = false;
  std::string reason;
};

// What a validation found (ArtifactValidated.result).
inline constexpr char kValidationOk[] = "ok";
inline constexpr char kValidationMismatch[] = "mismatch";
inline constexpr char kValidationValidatorFailed[] = "validator_failed";
inline constexpr char kValidationMissing[] = "missing";

struct Validation {
  std::string model_type;
  std::string version;
  bool ok = false;
  Digest expected_sha256{};
  Digest observed_sha256{};
  std::uint64_t observed_size = 0;
  std::string detail;
  std::string result;  // kValidation*; "" = not recorded (older events)
};

struct Purge {
  std::string model_type;
  std::string version;
  std::uint64_t bytes_freed = 0;
  std::string reason;
};

struct Rejection {
  std::string model_type;
  std::string version;
  std::string current_version;
  std::vector<Gate> gates;
  std::string reason;
  std::string policy;
  std::optional<Digest> policy_sha256;  // as in Promotion
};

struct ConsumerAck {
  std::string model_type;
  std::string version;
  std::string consumer_id;
  bool ok = true;
  std::string attempted_version;
  std::string detail;
};

// The gate policy from this event on (PolicyChanged). `sha256` is computed
// from `text` by Draft.
struct PolicyChange {
  std::string text;
  std::string reason;
  std::string source;
};

// What was learned about a version after its registration (ModelAnnotated).
// Maps and lists are written sorted (canonical); `description` nullopt
// leaves the description as it is, "" clears it.
struct Annotation {
  std::string model_type;
  std::string version;
  std::map<std::string, std::string> set_tags;
  std::vector<std::string> removed_tags;
  std::optional<std::string> description;
  std::map<std::string, double> metrics;
  std::string source;
  std::string reason;
};

std::string Draft(const Envelope& env, const Registration& p);
std::string Draft(const Envelope& env, const ConsumerAck& p);
std::string Draft(const Envelope& env, const Promotion& p);
std::string Draft(const Envelope& env, const Archive& p);
std::string Draft(const Envelope& env, const Failure& p);
std::string Draft(const Envelope& env, const Rollback& p);
std::string Draft(const Envelope& env, const Validation& p);
std::string Draft(const Envelope& env, const Purge& p);
std::string Draft(const Envelope& env, const Rejection& p);
std::string Draft(const Envelope& env, const PolicyChange& p);
std::string Draft(const Envelope& env, const Annotation& p);

// {"seq":..,"recorded_at":"..Z","actor":..,"event_id":..,"type":"ModelPromoted",
//  "prev_hash":"hex","payload":{...}} - the stable --json form (docs/events.md).
nlohmann::json ToJson(const EventBuffer& event);

// The gates and policy text a ModelPromoted event recorded (false, and
// nothing set, for any other event); `policy_sha256`, if given, receives
// the hex SHA-256 of the policy it was evaluated under ("" when not
// recorded: the built-in defaults, or an event older than that field).
bool PromotionEvidence(const EventBuffer& event, std::vector<Gate>* gates, std::string* policy,
                       std::string* policy_sha256 = nullptr);

// One human-readable line: "#12 2025-01-15T09:30:00Z alice promoted risk_model v1.1.0 ..."
std::string Summary(const EventBuffer& event);

}  // namespace modelreg::events
