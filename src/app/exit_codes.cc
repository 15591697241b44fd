#include "app/exit_codes.h"

#include <filesystem>

namespace modelreg::app {

std::string LogDir(const std::string& root) {
  return (std::filesystem::path(root) / "registry").string();
}

int ExitCode(const Status& status) {
  switch (status.code()) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument: return 2;
    case Code::kNotFound: return 3;
    case Code::kAlreadyExists:
    case Code::kConflict:
    case Code::kFailedPrecondition: return 4;
    case Code::kCorruption: return 5;
    case Code::kIOError: return 6;
    case Code::kBusy: return 7;
    case Code::kRejected: return 8;
    case Code::kInternal: return 1;
    case Code::kPermissionDenied: return 11;
  }
  return 1;
}

}  // namespace modelreg::app
