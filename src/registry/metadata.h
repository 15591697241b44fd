// Registration metadata: the spec's ModelMetadata (from a JSON file and/or
// command-line flags) validated into an events::Registration, plus
// environment capture and the canonical config hash.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "events/model_events.h"

namespace modelreg::registry {

inline constexpr std::size_t kMaxMetadataBytes = 1u << 20;

struct MetadataInput {
  std::optional<std::string> metadata_json;  // text of --metadata FILE
  std::optional<std::string> config_json;    // text of --config FILE
  // Flags; each overrides the same key from the metadata file.
  std::map<std::string, double> metrics;
  std::map<std::string, std::string> datasets;
  std::optional<std::string> snapshot_id;
  std::vector<std::string> factors;            // replaces factor_list when given
  std::map<std::string, std::string> params;   // values parsed as JSON, else strings
};

// Fills every metadata field of a Registration except the artifact ones.
// `type`/`version` must agree with the file's model_type/version if given.
// Errors are InvalidArgument naming the field.
Result<events::Registration> BuildRegistration(const std::string& type,
                                               const std::string& version,
                                               const MetadataInput& input,
                                               const std::string& actor, TimeNs now);

// The spec's capture_environment: host, user, OS, tool version, and the
// git commit when run inside a git work tree.
events::Environment CaptureEnvironment();

// Canonical JSON (sorted keys, no whitespace) and its SHA-256 in hex.
std::string CanonicalJson(const nlohmann::json& j);
std::string ConfigHash(const nlohmann::json& config);

// Splits "key=value"; InvalidArgument naming `flag` otherwise.
Result<std::pair<std::string, std::string>> SplitAssignment(const std::string& text,
                                                            const std::string& flag);
// A number in the strict decimal grammar of common/decimal.h (finite, no
// whitespace, hex, inf or nan); InvalidArgument naming `what` otherwise.
Result<double> ParseFiniteNumber(const std::string& text, const std::string& what);

}  // namespace modelreg::registry
