#include "compat/compatibility.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "common/json_input.h"

namespace modelreg::compat {

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kCompatible: return "compatible";
    case Level::kDrift: return "drift";
    case Level::kMissing: return "missing";
  }
  return "unknown";
}

VersionCompatibilityChecker VersionCompatibilityChecker::FromEnvironment() {
  const char* v = std::getenv("STRICT_VERSION_MODE");
  if (v == nullptr) return VersionCompatibilityChecker(true);
  std::string s(v);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool off = s == "false" || s == "0" || s == "no" || s == "off";
  return VersionCompatibilityChecker(!off);
}

Result VersionCompatibilityChecker::Check(const DatasetVersions& model_versions,
                                          const DatasetVersions& current_versions) const {
  Result r;
  bool drift = false, missing = false;
  for (const auto& [name, trained_on] : model_versions) {
    auto it = current_versions.find(name);
    if (it == current_versions.end()) {
      missing = true;
      r.warnings.push_back(name + ": model trained on " + trained_on +
                           ", not in the current datasets");
    } else if (it->second != trained_on) {
      drift = true;
      r.warnings.push_back(name + ": model trained on " + trained_on + ", current is " +
                           it->second);
    }
  }
  r.level = missing ? Level::kMissing : drift ? Level::kDrift : Level::kCompatible;
  r.compatible = !missing && !(drift && strict_);
  return r;
}

modelreg::Result<DatasetVersions> ParseDatasetVersions(const std::string& json_text,
                                                       const std::string& what) {
  MODELREG_RETURN_IF_ERROR(CheckJsonDepth(json_text, what));
  const auto j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Err(Status::InvalidArgument(what + " must be a JSON object like "
                                              "{\"crsp\": \"v1.2.4\"}"));
  }
  DatasetVersions out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) {
      return Err(Status::InvalidArgument(what + ": version of '" + k + "' must be a string"));
    }
    out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace modelreg::compat
