// The spec's VersionCompatibilityChecker: is a model trained on these
// dataset versions safe to run against the current ones?
//
//   exact match everywhere        -> compatible
//   a dataset at another version  -> drift: blocks in strict mode, warns otherwise
//   a dataset absent from current -> missing: blocks in both modes
//
// Datasets present only in the current set are irrelevant to the model.
// Thread-safety: immutable after construction.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace modelreg::compat {

using DatasetVersions = std::map<std::string, std::string>;

enum class Level { kCompatible, kDrift, kMissing };
std::string_view LevelName(Level level);  // "compatible" | "drift" | "missing"

struct Result {
  bool compatible = true;  // may be loaded / promoted
  Level level = Level::kCompatible;
  std::vector<std::string> warnings;  // one line per differing dataset
};

class VersionCompatibilityChecker {
 public:
  explicit VersionCompatibilityChecker(bool strict_mode = true) : strict_(strict_mode) {}

  // STRICT_VERSION_MODE: "false", "0", "no", "off" (any case) turn strict
  // mode off; unset or anything else keeps it on (the production default).
  static VersionCompatibilityChecker FromEnvironment();

  Result Check(const DatasetVersions& model_versions,
               const DatasetVersions& current_versions) const;

  bool strict() const { return strict_; }

 private:
  bool strict_;
};

// Parses {"crsp": "v1.2.4", ...} (a JSON object of strings).
modelreg::Result<DatasetVersions> ParseDatasetVersions(const std::string& json_text,
                                                       const std::string& what);

}  // namespace modelreg::compat
