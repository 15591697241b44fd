// The model vocabulary: the model name (type) grammar, the well-known
// types, the version grammar and how versions order. Names become path
// components and row keys, so only these pass. It depends on common/ only,
// so every layer may use it.
// Thread-safety: free functions and constants.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace modelreg::model {

// The spec's four types: the well-known defaults. `audit` always lists
// them, registered or not; any other valid name exists once registered.
inline constexpr std::array<std::string_view, 4> kModelTypes = {
    "risk_model", "alpha_weights", "factor_definitions", "feature_transforms"};

// Model names (types): 1..kMaxModelTypeBytes of lowercase ASCII letters,
// digits, '_' and '-', starting with a letter. No '.', '/' or anything
// else, so a name is always one harmless path component and one row key
// segment. "default" is reserved (the policy file's fallback section).
inline constexpr std::size_t kMaxModelTypeBytes = 64;
inline constexpr char kModelTypeGrammar[] =
    "1 to 64 characters: lowercase letters a-z, digits 0-9, '_' and '-', starting with a letter "
    "(for example alpha_momentum); 'default' is reserved";

// OK for a name that follows the grammar; otherwise InvalidArgument naming
// the offending input and stating the grammar.
Status ValidateModelType(std::string_view type);
// Whether `type` is one of kModelTypes.
bool IsWellKnownType(std::string_view type);

// Semantic version with a `v` prefix: v1.2.0, v2.0.0-rc.1 (no build
// metadata, no leading zeros, at most 64 bytes).
Status ValidateVersion(std::string_view version);

// Semantic-version precedence (pre-releases before their release);
// returns <0, 0, >0. Both must be valid.
int CompareVersions(std::string_view a, std::string_view b);

}  // namespace modelreg::model
