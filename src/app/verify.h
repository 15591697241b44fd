// `modelreg verify` and `modelreg-replay verify`: one check, two exit-code
// conventions (docs/runbook.md): a broken chain is 5 for both; a projection
// that differs from the fold is 5 for modelreg and 10 for modelreg-replay.
#pragma once

#include <ostream>

#include "app/registry_commands.h"

namespace modelreg::app {

// Verifies the registry read-only: the hash chain, then the projection
// against a fold of the log. Prints the result (text or --json) to `out`
// and one line on `err` for a failure, naming the one next command to run.
// Files that cannot be read are tried again after a fresh open (a writer in
// another process may have been replacing them); if they still cannot be
// read, that is damage to the registry (exit 5), unless the error is one of
// access (permissions; exit 6). Returns the exit code.
int VerifyCommand(const Globals& g, const char* program, int projection_exit, std::ostream& out,
                  std::ostream& err);

}  // namespace modelreg::app
