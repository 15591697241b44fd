// The model vocabulary: which model types exist, the version grammar and how
// versions order. Names become path components, so only these pass. It
// depends on common/ only, so every layer may use it.
// Thread-safety: free functions and constants.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "common/status.h"

namespace modelreg::model {

inline constexpr std::array<std::string_view, 4> kModelTypes = {
    "risk_model", "alpha_weights", "factor_definitions", "feature_transforms"};

// OK for one of kModelTypes; otherwise an error listing the valid ones.
Status ValidateModelType(std::string_view type);

// Semantic version with a `v` prefix: v1.2.0, v2.0.0-rc.1 (no build
// metadata, no leading zeros, at most 64 bytes).
Status ValidateVersion(std::string_view version);

// Semantic-version precedence (pre-releases before their release);
// returns <0, 0, >0. Both must be valid.
int CompareVersions(std::string_view a, std::string_view b);

}  // namespace modelreg::model
