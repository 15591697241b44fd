#include "common/status.h"

namespace modelreg {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kConflict: return "conflict";
    case Code::kFailedPrecondition: return "failed_precondition";
    case Code::kCorruption: return "corruption";
    case Code::kIOError: return "io_error";
    case Code::kBusy: return "busy";
    case Code::kRejected: return "rejected";
    case Code::kInternal: return "internal";
    case Code::kPermissionDenied: return "permission_denied";
  }
  return "unknown";
}

Status Status::DiskFull(std::string m) {
  constexpr std::string_view kPrefix = "disk full: ";
  if (m.compare(0, kPrefix.size(), kPrefix) != 0) m.insert(0, kPrefix);
  Status s(Code::kIOError, std::move(m));
  s.disk_full_ = true;
  return s;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out(CodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  Status s(code_, std::move(m));
  s.disk_full_ = disk_full_;
  return s;
}

}  // namespace modelreg
