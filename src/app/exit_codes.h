// Where the CLI's conventions live: the log directory inside a registry
// and the exit code for each error code (the table is in docs/cli.md).
#pragma once

#include <string>

#include "common/status.h"

namespace modelreg::app {

// <root>/registry: where the RocksDB log lives inside a registry directory.
std::string LogDir(const std::string& root);

// Process exit code for a Status (0 for OK).
int ExitCode(const Status& status);

}  // namespace modelreg::app
