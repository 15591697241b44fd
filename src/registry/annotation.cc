#include "registry/annotation.h"

#include <cmath>

#include "common/utf8.h"

namespace modelreg::registry {

namespace {

bool LabelChar(char c, bool first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
    return true;
  }
  return !first && (c == '.' || c == ':' || c == '-');
}

// UTF-8, bounded, no control characters (C0, DEL) except those allowed.
Status CheckText(const std::string& value, const std::string& what, std::size_t max,
                 bool allow_newlines) {
  if (!IsValidUtf8(value)) {
    return Status::InvalidArgument(what + " '" + Printable(SanitizeUtf8(value)) +
                                   "' is not valid UTF-8");
  }
  if (value.size() > max) {
    return Status::InvalidArgument(what + " is " + std::to_string(value.size()) +
                                   " bytes long; at most " + std::to_string(max) + " are allowed");
  }
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (allow_newlines && (c == '\n' || c == '\t')) continue;
    if (u < 0x20 || u == 0x7f) {
      return Status::InvalidArgument(what + " '" + Printable(value) +
                                     "' holds a control character");
    }
  }
  return Status::OK();
}

Status CheckCount(std::size_t n, const std::string& what) {
  if (n <= kMaxAnnotationItems) return Status::OK();
  return Status::InvalidArgument("too many " + what + " (" + std::to_string(n) + "); at most " +
                                 std::to_string(kMaxAnnotationItems) + " per annotation");
}

}  // namespace

Status CheckLabel(const std::string& value, const std::string& what) {
  bool ok = !value.empty() && value.size() <= kMaxLabelBytes;
  for (std::size_t i = 0; ok && i < value.size(); ++i) ok = LabelChar(value[i], i == 0);
  if (ok) return Status::OK();
  return Status::InvalidArgument(what + " '" + Printable(SanitizeUtf8(value)) +
                                 "' is not valid: use 1 to " + std::to_string(kMaxLabelBytes) +
                                 " letters, digits, '_', '.', ':' or '-', starting with a letter, "
                                 "digit or '_'");
}

Status CheckAnnotation(const AnnotationInput& in, const std::string& reason) {
  if (in.set_tags.empty() && in.removed_tags.empty() && !in.description &&
      in.metrics.empty()) {
    return Status::InvalidArgument(
        "nothing to annotate: give at least one of --tag, --untag, --description, --metric");
  }
  MODELREG_RETURN_IF_ERROR(CheckCount(in.set_tags.size(), "tags"));
  MODELREG_RETURN_IF_ERROR(CheckCount(in.removed_tags.size(), "tags to remove"));
  MODELREG_RETURN_IF_ERROR(CheckCount(in.metrics.size(), "metrics"));
  for (const auto& [k, v] : in.set_tags) {
    MODELREG_RETURN_IF_ERROR(CheckLabel(k, "tag key"));
    MODELREG_RETURN_IF_ERROR(CheckText(v, "the value of tag '" + k + "'", kMaxTagValueBytes, false));
  }
  for (const std::string& k : in.removed_tags) {
    MODELREG_RETURN_IF_ERROR(CheckLabel(k, "tag key"));
    if (in.set_tags.count(k) != 0) {
      return Status::InvalidArgument("tag '" + k + "' is both set and removed");
    }
  }
  if (in.description) {
    MODELREG_RETURN_IF_ERROR(CheckText(*in.description, "the description", kMaxDescriptionBytes,
                                       true));
  }
  for (const auto& [name, value] : in.metrics) {
    MODELREG_RETURN_IF_ERROR(CheckLabel(name, "metric name"));
    if (!std::isfinite(value)) {
      return Status::InvalidArgument("metric '" + name + "' is not a finite number");
    }
  }
  if (!in.metrics.empty() && in.source.empty()) {
    return Status::InvalidArgument(
        "metrics need --source: say where they come from (e.g. --source paper-trading)");
  }
  if (!in.source.empty()) MODELREG_RETURN_IF_ERROR(CheckLabel(in.source, "source"));
  if (reason.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Status::InvalidArgument("annotate needs --reason: say what was learned and how");
  }
  return CheckText(reason, "the reason", kMaxAnnotationReasonBytes, true);
}

}  // namespace modelreg::registry
