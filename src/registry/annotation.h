// Annotations of a registered version (`modelreg annotate`, POST
// .../annotate): what a request may change and the checks it must pass
// before anything is written (docs/cli.md, "annotate").
// Thread-safety: plain values and functions.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace modelreg::registry {

// Bounds (docs/cli.md).
inline constexpr std::size_t kMaxLabelBytes = 64;         // tag key, metric name, source
inline constexpr std::size_t kMaxTagValueBytes = 256;
inline constexpr std::size_t kMaxDescriptionBytes = 4096;
inline constexpr std::size_t kMaxAnnotationReasonBytes = 4096;
inline constexpr std::size_t kMaxAnnotationItems = 64;    // per list, per request

struct AnnotationInput {
  std::map<std::string, std::string> set_tags;  // --tag KEY=VALUE
  std::vector<std::string> removed_tags;         // --untag KEY
  std::optional<std::string> description;        // --description TEXT ("" clears)
  std::map<std::string, double> metrics;         // --metric NAME=NUMBER
  std::string source;                            // --source, required with metrics
};

// A tag key, metric name or source: [A-Za-z0-9_][A-Za-z0-9_.:-]*, at most
// kMaxLabelBytes. InvalidArgument naming `what` otherwise.
Status CheckLabel(const std::string& value, const std::string& what);

// Everything about a request that does not need the registry: at least one
// change, the grammars and bounds above, UTF-8 without control characters
// (a description may hold newlines and tabs), finite metrics, a source with
// metrics, no key both set and removed, and a non-blank reason.
Status CheckAnnotation(const AnnotationInput& in, const std::string& reason);

}  // namespace modelreg::registry
