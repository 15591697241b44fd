// JSON from outside the process, parsed with a bounded nesting depth.
//
// nlohmann::json parses iteratively but copies and prints recursively, so a
// 100,000-deep array from a metadata file, an HTTP body or an imported line
// would overflow the stack later, far from the input. Every JSON input is
// therefore checked first: arrays and objects may nest at most
// kMaxJsonDepth levels (docs/cli.md, docs/api.md). Thread-safety: pure
// functions.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace modelreg {

// The deepest nesting of arrays and objects accepted in JSON input.
// `{"a": [1]}` is depth 2; a scalar is depth 0.
inline constexpr int kMaxJsonDepth = 64;

// OK when `text` nests arrays/objects at most kMaxJsonDepth deep (strings are
// skipped, so brackets inside them do not count). Otherwise
// InvalidArgument("<what> nests deeper than 64 levels, the limit for JSON
// input"). Linear, stops at the first level over the limit; says nothing
// about whether the text is otherwise valid JSON.
Status CheckJsonDepth(std::string_view text, std::string_view what);

// CheckJsonDepth, then parse. Invalid JSON is
// InvalidArgument("<what> is not valid JSON").
Result<nlohmann::json> ParseJsonInput(std::string_view text, std::string_view what);

// Parse for display or best-effort use: the value, or a discarded value when
// the text is not JSON or nests deeper than kMaxJsonDepth.
nlohmann::json ParseJsonOrDiscarded(std::string_view text);

}  // namespace modelreg
